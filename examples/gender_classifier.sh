#!/usr/bin/env bash
# Example 1: a gender classifier trained on the UTKFace subset (3,000 photos, 1,500 per class), tested on LFW's
# gender labels (a different source: 1,000 random photos per class).
set -euo pipefail
cd "$(dirname "$0")/.."
F="${FACELAB:-.venv/bin/python -m facelab}"
PY=.venv/bin/python
OUT=out/examples/gender
$PY examples/make_raw.py utkface-gender $OUT/utk_raw
$PY examples/make_raw.py lfw-gender $OUT/lfw_raw --per-class 1000
# UTKFace crops are 200x200 close-ups; --largest keeps the main face when a second one is visible.
$F dataset build $OUT/utk_raw $OUT/utk --largest --val 0.1 --test 0.1
$F dataset build $OUT/lfw_raw $OUT/lfw --largest --val 0 --test 1   # all test: it is only used for evaluation
# Heads on frozen features (seconds each): SFace identity vectors, then the penultimate layer of the CC0 age_v1
# network (trained for age, not gender) and of gender_v1 (itself trained for gender: transfer learning, not
# gender learned from these 3,000 photos).
for FEAT in sface age_v1 gender_v1; do
  RUN=$OUT/run_head; [ $FEAT = sface ] || RUN=$OUT/run_head_$FEAT
  [ -f $RUN/checkpoints/last.pt ] || \
    $F train classifier $OUT/utk --method head --features $FEAT --hidden 64 --epochs 40 --out $RUN
  $F eval classifier $RUN $OUT/lfw --out $OUT/eval_lfw${RUN#$OUT/run_head}
done
# The CNN on the crops (slow on a CPU: ~4 min per epoch here); --resume continues an interrupted run.
if [ -f $OUT/run_cnn/checkpoints/last.pt ]; then RESUME=--resume; else RESUME=; fi
$F train classifier $OUT/utk --method cnn --epochs ${CNN_EPOCHS:-3} --out $OUT/run_cnn $RESUME || true
$F eval classifier $OUT/run_cnn $OUT/lfw --out $OUT/eval_lfw_cnn
