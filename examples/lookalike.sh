#!/usr/bin/env bash
# Example 3: look-alike. Photos of people who are NOT among the 62 public figures of example 2 (LFW people with
# 10-19 photos, or your own photos as arguments) ranked against those classes by the embedding-head classifier.
# Run examples/public_figures.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
F="${FACELAB:-.venv/bin/python -m facelab}"
RUN=out/examples/people/run_head
L=../shared/data/lfw/images
[ -f $RUN/model.onnx ] || { echo "run examples/public_figures.sh first"; exit 2; }
if [ $# -eq 0 ]; then
  set -- $L/Anna_Kournikova/Anna_Kournikova_0001.jpg $L/Adrien_Brody/Adrien_Brody_0001.jpg \
         $L/Abdullah_Gul/Abdullah_Gul_0001.jpg $L/Condoleezza_Rice/Condoleezza_Rice_0001.jpg
fi
$F train predict $RUN "$@" --top 3
