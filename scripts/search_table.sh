#!/usr/bin/env bash
# The paper's Tables 4 and 6 in miniature: greedy, best_of_n, sentence_beam, stage_beam and swires
# at beam 2 and 4 on the synthetic test and hard splits with one model (default: the embedded one),
# each run resumable (llava-cot eval --out), then one accuracy / tokens / time table and the
# accuracy-versus-tokens curve.
#
#   bash scripts/search_table.sh [WORKDIR] [LIMIT] [MODEL] [BENCHES]
#
# BENCHES (default "synth-test synth-hard") picks the splits: the hard split's answers are
# about 2.5 times longer, and so is searching them.
set -euo pipefail
work=${1:-runs/search-table}
limit=${2:-200}
model=${3:-embedded}
benches=${4:-synth-test synth-hard}

for bench in $benches; do
    out="$work/$bench/greedy"
    llava-cot eval --model "$model" --bench "$bench" --limit "$limit" --batch-size 50 --out "$out"
    for search in best_of_n sentence_beam stage_beam swires; do
        for beam in 2 4; do
            out="$work/$bench/$search-$beam"
            llava-cot eval --model "$model" --bench "$bench" --limit "$limit" --search "$search" --beam "$beam" --out "$out"
        done
    done
    llava-cot eval plot "$work/$bench"/* --out "$work/$bench-compute.png"
done
