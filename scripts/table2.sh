#!/usr/bin/env bash
# The paper's Table 2 in miniature: the same tiny model, data and budget trained on the full
# four-stage text (structured), the same text with its tags removed (untagged), and the final
# answer only (direct); each scored greedily on 1,000 synthetic test items and 300 hard ones (the
# hard split's answers are about 2.5 times longer).
#
#   bash scripts/table2.sh [WORKDIR] [STEPS] [SEED]
#
# WORKDIR/data is shared with scripts/train_embedded.sh (the same 50,000 training records).
set -euo pipefail
work=${1:-runs/embedded-build}
steps=${2:-2500}
seed=${3:-0}

[ -f "$work/data/train.jsonl" ] || llava-cot data synth --out "$work/data" --n 50000 --split train --seed 1
for format in structured untagged direct; do
    out="$work/table2/$format-seed$seed"
    # the structured run at seed 0 is the embedded model's first phase: the same run, reused
    [ "$format-$seed" = "structured-0" ] && out="$work/model"
    llava-cot train --data "$work/data" --out "$out" --init tiny --format "$format" --max-steps "$steps" \
        --batch-size 32 --lr 2e-3 --seed "$seed" --save-steps 250 --num-workers 1 --freeze-vision --resume
    # an untagged response has no CONCLUSION tag: its conclusion is its last paragraph
    read=conclusion
    [ "$format" = untagged ] && read=last-paragraph
    for bench in synth-test:1000 synth-hard:300; do
        llava-cot eval --model "$out" --bench "${bench%:*}" --limit "${bench#*:}" --batch-size 50 --answer-from "$read" \
            --out "$out/eval-${bench%:*}"
    done
done
