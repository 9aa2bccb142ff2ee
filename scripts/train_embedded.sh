#!/usr/bin/env bash
# Reproduce the embedded model (src/llava_cot/embedded), its model card and the card's figures, seeded.
#
#   bash scripts/train_embedded.sh [--resume] [WORKDIR] [STEPS] [JUDGE_STEPS] [DRILL_STEPS] [RECORDS]
#
# 1. renders the synthetic train split (RECORDS four-stage records, every question family and
# only the trained phrasings); 2. trains a tiny Llava from scratch on the four-stage answers (a
# vision phase on the scene graphs first; the vision tower then stays frozen); 3. drills the
# multiple-choice items of the same split: their last step copies each option's value from the
# question, which step 2 leaves unlearned and a run of choice items alone teaches (the loss on
# them only starts to fall after about 150 drill steps); 4. continues on a mix of four-stage
# answers of every family and judge/verifier items, so the model keeps the other families and
# can judge and verify its own stages; 5. calibrates the SWIRES verifier threshold; 6. copies the
# model into the package; 7. scores it greedily per family on the synthetic test split, on the
# held-out phrasings (synth-phrasings: test scenes, wordings never trained) and on the hard
# split; 8. writes the model card from those files (scripts/model_card.py).
#
# A new WORKDIR starts a build; after a stop (kill, reboot), the same command with --resume
# continues it: every phase resumes from its last checkpoint (saved every 250 / 100 steps), a
# phase that reached its step count is not trained again, data already rendered is kept, and
# the evaluations resume by item. Without --resume an existing WORKDIR is refused, so that a
# build is never silently continued on data that an older checkout rendered.
set -euo pipefail
resume=0
if [ "${1:-}" = "--resume" ]; then resume=1; shift; fi
work=${1:-runs/embedded-build}
steps=${2:-2500}  # scripts/table2.sh reuses WORKDIR/model as its structured run: give it the same STEPS
judge_steps=${3:-400}
drill_steps=${4:-300}
records=${5:-50000}
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$resume" = 0 ] && [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
    echo "train_embedded.sh: $work exists; pass --resume to continue that build, or give a new WORKDIR" >&2
    exit 2
fi
mkdir -p "$work"
# The commit the run was built from, for the model card ("-dirty": uncommitted changes were present).
[ -s "$work/commit" ] || git -C "$top" describe --always --dirty --abbrev=7 > "$work/commit" 2>/dev/null || rm -f "$work/commit"

[ -f "$work/data/train.jsonl" ] || llava-cot data synth --out "$work/data" --n "$records" --split train --seed 1
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
[ -f "$work/judge/search.json" ] || llava-cot calibrate --model "$work/judge" --limit 400
dest="$top/src/llava_cot/embedded"
mkdir -p "$dest"
cp "$work/judge"/{config.json,generation_config.json,model.safetensors,processor_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja,search.json} "$dest/"
# 1000 items where an item takes a fraction of a second; the hard split's take seconds each.
for bench in synth-test:1000 synth-phrasings:1000 synth-hard:300; do
    llava-cot eval --bench "${bench%%:*}" --limit "${bench##*:}" --batch-size 50 --out "$work/eval-${bench%%:*}"
done
python "$top/scripts/model_card.py" "$work" > "$dest/README.md"
