#!/usr/bin/env bash
# Reproduce the embedded model (src/llava_cot/embedded) and its model card figures, seeded.
#
#   bash scripts/train_embedded.sh [WORKDIR] [MAX_STEPS]
#
# 1. renders the synthetic train split, 2. trains a tiny Llava from scratch on it (a vision
# phase on the scene graphs, then SFT on the four-stage answers), 3. copies the final model into
# the package, 4. scores it greedily on the synthetic test and hard splits.
set -euo pipefail
work=${1:-runs/embedded-build}
steps=${2:-500}
top=$(cd "$(dirname "$0")/.." && pwd)

llava-cot data synth --out "$work/data" --n 50000 --split train --seed 1
llava-cot train --data "$work/data" --out "$work/model" --init tiny --max-steps "$steps" \
    --batch-size 32 --lr 2e-3 --seed 0 --save-steps 250 --num-workers 1 --freeze-vision
dest="$top/src/llava_cot/embedded"
mkdir -p "$dest"
cp "$work/model"/{config.json,generation_config.json,model.safetensors,processor_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$dest/"
for bench in synth-test synth-hard; do
    llava-cot eval --bench "$bench" --limit 200 --batch-size 50 --out "$work/eval-$bench"
done
