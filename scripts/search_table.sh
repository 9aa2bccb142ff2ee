#!/usr/bin/env bash
# The paper's Tables 4 and 6 in miniature: greedy, best_of_n, sentence_beam, stage_beam and swires
# at beam 2 and 4 on the synthetic test and hard splits with one model (default: the embedded one),
# each run resumable (llava-cot eval --out), then one accuracy / tokens / time table and the
# accuracy-versus-tokens curve.
#
#   bash scripts/search_table.sh [WORKDIR] [LIMIT] [MODEL] [BENCHES] [JUDGE] [SEARCHES]
#
# BENCHES (default "synth-test synth-hard") picks the splits: the hard split's answers are
# about 2.5 times longer, and so is searching them. JUDGE (default: each search's own) gives
# every search the same judge (llava_cot.judges: pairwise, pointwise, likelihood, majority);
# SEARCHES (default "best_of_n sentence_beam stage_beam swires") picks the searches.
set -euo pipefail
work=${1:-runs/search-table}
limit=${2:-200}
model=${3:-embedded}
benches=${4:-synth-test synth-hard}
judge=${5:-}
searches=${6:-best_of_n sentence_beam stage_beam swires}
judged=()
[ -n "$judge" ] && judged=(--judge "$judge")

for bench in $benches; do
    out="$work/$bench/greedy"
    llava-cot eval --model "$model" --bench "$bench" --limit "$limit" --batch-size 50 --out "$out"
    for search in $searches; do
        for beam in 2 4; do
            out="$work/$bench/$search-$beam"
            llava-cot eval --model "$model" --bench "$bench" --limit "$limit" --search "$search" --beam "$beam" \
                "${judged[@]}" --out "$out"
        done
    done
    llava-cot eval plot "$work/$bench"/* --out "$work/$bench-compute.png"
done
