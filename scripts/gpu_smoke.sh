#!/usr/bin/env bash
# GPU smoke run of the training lab (run by the lead on the device machine; ~2-3 minutes).
#
#   bash scripts/gpu_smoke.sh            # expects .devdata/gpu_dataset (scripts/build_gpu_devdata.py makes it)
#
# Needs only torch, numpy, onnx, onnxruntime, pillow (no face detector, no ../shared): it trains on ready-made
# aligned crops through the Python API (not the CLI, whose other command modules may need more packages).
# Runs: (1) CNN classifier, resnet, 112 px input, 3 epochs, mixed precision; (2) the same in float32 (--no-amp)
# for 1 epoch; (3) an ArcFace embedder, mobilefacenet, 2 epochs; (4) a batch that cannot fit, to check the
# out-of-memory message. Prints throughput; writes $OUT/gpu_smoke.json (and the run folders' JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-.devdata/gpu_dataset}"
OUT="${OUT:-out/gpu_smoke}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
[ -f "$DATASET/manifest.csv" ] || { echo "no dataset at $DATASET (run scripts/build_gpu_devdata.py here first)"; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
DATASET="$DATASET" OUT="$OUT" "$PY" - <<'PYEOF'
import json, os, sys, time, traceback
sys.path.insert(0, ".")
import torch
from facelab.train import TrainingError
from facelab.train.classifier import train_classifier
from facelab.train.embedder import train_embedder
from facelab.train.loop import TrainConfig

ds, out = os.environ["DATASET"], os.environ["OUT"]
dev = "cuda" if torch.cuda.is_available() else "cpu"
doc = {"torch": torch.__version__, "device": dev,
       "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else None, "runs": {}}

def record(name, fn):
    t0 = time.perf_counter()
    try:
        r = fn()
        epochs = [{k: row[k] for k in ("epoch", "seconds", "images_per_s", "train_loss", "train_acc") if k in row}
                  | {k: row[k] for k in ("val_acc",) if k in row} for row in json.load(open(os.path.join(r["run"], "metrics.json")))]
        doc["runs"][name] = {"ok": True, "wall_s": round(time.perf_counter() - t0, 1), "epochs": epochs,
                             "test": r.get("test"), "export_max_abs_diff": r["export"]["max_abs_diff"],
                             "device": r["device"], "warnings": r["warnings"]}
        print(f"{name}: " + ", ".join(f"epoch {e['epoch']} {e['images_per_s']:.0f} img/s ({e['seconds']:.1f} s)" for e in epochs)
              + (f"; test acc {r['test']['accuracy']:.3f}" if r.get("test") else ""), flush=True)
    except Exception as exc:
        doc["runs"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
        print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)

record("cnn_resnet112_amp", lambda: train_classifier(ds, f"{out}/cnn_amp", method="cnn", backbone="resnet", input_size=112,
       cfg=TrainConfig(epochs=3, batch_size=256, lr=2e-3, device=dev), progress=False))
record("cnn_resnet112_fp32", lambda: train_classifier(ds, f"{out}/cnn_fp32", method="cnn", backbone="resnet", input_size=112,
       cfg=TrainConfig(epochs=1, batch_size=256, lr=2e-3, device=dev, amp=False), progress=False))
record("embedder_mobilefacenet112_arcface", lambda: train_embedder(ds, f"{out}/embedder", backbone="mobilefacenet", input_size=112,
       lfw_root=None, cfg=TrainConfig(epochs=2, batch_size=256, lr=2e-3, device=dev), progress=False))
# Out of memory (CUDA only: on a CPU the same request could wake the kernel's OOM killer instead): a batch far
# too large must give the clear message, not a traceback or a half-saved model.
t0 = time.perf_counter()
doc["oom"] = {"skipped": "no CUDA"}
try:
    if dev != "cuda":
        raise StopIteration
    train_classifier(ds, f"{out}/oom", method="cnn", backbone="resnet", input_size=224, width=256,
                     cfg=TrainConfig(epochs=1, batch_size=2048, device=dev), progress=False)
    doc["oom"] = {"raised": False}
except StopIteration:
    pass
except TrainingError as exc:
    doc["oom"] = {"raised": True, "message": str(exc), "seconds": round(time.perf_counter() - t0, 1)}
except Exception as exc:
    doc["oom"] = {"raised": False, "other_error": f"{type(exc).__name__}: {exc}"[:500]}
print("oom check:", doc["oom"], flush=True)
if dev == "cuda":
    doc["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
json.dump(doc, open(os.path.join(out, "gpu_smoke.json"), "w"), indent=2)
print("wrote", os.path.join(out, "gpu_smoke.json"))
PYEOF
