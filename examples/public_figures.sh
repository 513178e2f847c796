#!/usr/bin/env bash
# Example 2: a classifier of the LFW people with >= 20 photos (62 classes), photo-level split within each person.
# Compares a head on frozen SFace embeddings with a small CNN trained on the crops (CPU, few epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
F="${FACELAB:-.venv/bin/python -m facelab}"
OUT=out/examples/people
.venv/bin/python examples/make_raw.py lfw-people $OUT/raw --min-photos 20
# Deep-funneled LFW photos often show a second face at the edge: keep the main one (--largest).
$F dataset build $OUT/raw $OUT/dataset --largest --val 0.1 --test 0.2
# ...which sometimes is a bystander (or LFW's label is wrong): find the crops unlike their person and drop them.
$F dataset check $OUT/dataset --exclude || true   # exit 1 = it found some
resume() { [ -f "$1/checkpoints/last.pt" ] && echo --resume || true; }
$F train classifier $OUT/dataset --method head --out $OUT/run_head --epochs 40 $(resume $OUT/run_head)
# A CNN from scratch on the crops: slow on a CPU (~3.5 min per epoch here).
$F train classifier $OUT/dataset --method cnn --out $OUT/run_cnn --epochs ${CNN_EPOCHS:-3} --batch-size 64 \
  $(resume $OUT/run_cnn) || true
$F eval classifier $OUT/run_head $OUT/dataset
$F eval classifier $OUT/run_cnn $OUT/dataset || true
