#!/usr/bin/env bash
# Reproduce the embedded model (src/llava_cot/embedded) and its model card figures, seeded.
#
#   bash scripts/train_embedded.sh [WORKDIR] [STEPS] [JUDGE_STEPS] [DRILL_STEPS]
#
# 1. renders the synthetic train split; 2. trains a tiny Llava from scratch on the four-stage
# answers (a vision phase on the scene graphs first; the vision tower then stays frozen);
# 3. drills the multiple-choice items of the same split: their last step copies each option's
# value from the question, which step 2 leaves unlearned and a run of choice items alone teaches
# (the loss on them only starts to fall after about 150 drill steps); 4. continues on a mix of
# four-stage answers of every family and judge/verifier items, so the model keeps the other
# families and can judge and verify its own stages; 5. calibrates the SWIRES verifier
# threshold; 6. copies the model into the package; 7. scores it greedily on the synthetic test
# and hard splits.
# Every step resumes where it stopped when run again with the same WORKDIR.
set -euo pipefail
work=${1:-runs/embedded-build}
steps=${2:-2500}
judge_steps=${3:-400}
drill_steps=${4:-300}
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work"
# The commit the run was built from, for the model card ("-dirty": uncommitted changes were present).
[ -s "$work/commit" ] || git -C "$top" describe --always --dirty --abbrev=7 > "$work/commit" 2>/dev/null || rm -f "$work/commit"

[ -f "$work/data/train.jsonl" ] || llava-cot data synth --out "$work/data" --n 50000 --split train --seed 1
llava-cot train --data "$work/data" --out "$work/model" --init tiny --max-steps "$steps" \
    --batch-size 32 --lr 2e-3 --seed 0 --save-steps 250 --num-workers 1 --freeze-vision --resume
mkdir -p "$work/choice"
ln -sfn ../data/images "$work/choice/images"
if [ ! -f "$work/choice/train.jsonl" ]; then
    grep '"family": "choice"' "$work/data/train.jsonl" > "$work/choice/train.tmp"
    mv "$work/choice/train.tmp" "$work/choice/train.jsonl"
fi
llava-cot train --model "$work/model" --data "$work/choice" --out "$work/drill" --max-steps "$drill_steps" \
    --batch-size 32 --lr 5e-4 --seed 0 --save-steps 100 --num-workers 1 --freeze-vision --resume
[ -f "$work/mix/train.jsonl" ] || llava-cot data synth --out "$work/mix" --n 30000 --split train --seed 2 --task mix
llava-cot train --model "$work/drill" --data "$work/mix" --out "$work/judge" --max-steps "$judge_steps" \
    --batch-size 16 --lr 5e-4 --seed 0 --save-steps 100 --num-workers 1 --freeze-vision --resume
llava-cot calibrate --model "$work/judge" --limit 400
dest="$top/src/llava_cot/embedded"
mkdir -p "$dest"
cp "$work/judge"/{config.json,generation_config.json,model.safetensors,processor_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja,search.json} "$dest/"
for bench in synth-test synth-hard; do
    llava-cot eval --bench "$bench" --limit 1000 --batch-size 50 --out "$work/eval-$bench"
done
