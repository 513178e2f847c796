"""Training throughput on this machine's CPU (images/s, seconds per epoch) for the CNN classifier and the
embedder, on a dataset built by `facelab dataset build` (default: the public-figures example's).

    .venv/bin/python benchmarks/train_throughput.py [DATASET] [--threads N]
Writes benchmarks/results/train_throughput.json. Each configuration trains 1 epoch on up to --max-train
training photos (default 512, a seeded sample stratified by class) at batch 64; the images/s figure excludes loading
and export.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = [  # (name, method/kind, backbone, input size, batch)
    ("cnn_resnet_w32_56px", "cnn", "resnet", 56, 64),
    ("cnn_mobilefacenet_w64_56px", "cnn", "mobilefacenet", 56, 64),
    ("cnn_resnet_w32_112px", "cnn", "resnet", 112, 64),
    ("embedder_mobilefacenet_w64_56px_arcface", "embedder", "mobilefacenet", 56, 64),
    ("head_on_sface_embeddings", "head", None, None, 64),
]


def _subset(ds, max_train: int, tmp: Path):
    """The same dataset with at most `max_train` training photos (crops linked, not copied)."""
    import csv
    import random

    from facelab.train.data import open_dataset

    train = ds.split("train")
    random.Random(0).shuffle(train)
    per_class = max(2, -(-max_train // len(ds.classes)))  # stratified: every class keeps >= 2 photos
    taken: dict[str, int] = {}
    rows = []
    for r in train:
        if taken.get(r["class"], 0) < per_class:
            taken[r["class"]] = taken.get(r["class"], 0) + 1
            rows.append(r)
    rows += ds.split("val")[: max(64, max_train // 8)]
    (tmp / "crops").symlink_to((ds.root / "crops").resolve())
    (tmp / "dataset.json").write_text((ds.root / "dataset.json").read_text())
    with open(tmp / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return open_dataset(tmp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", nargs="?", default=str(ROOT / "out" / "examples" / "people" / "dataset"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-train", type=int, default=512, help="Train on at most this many photos (one epoch).")
    a = ap.parse_args()
    import torch

    from facelab.train.classifier import train_classifier
    from facelab.train.data import open_dataset
    from facelab.train.embedder import train_embedder
    from facelab.train.loop import TrainConfig

    ds = _subset(open_dataset(a.dataset), a.max_train, Path(tempfile.mkdtemp()))
    if a.threads:
        torch.set_num_threads(a.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, backbone, size, batch in CONFIGS:
            cfg = TrainConfig(epochs=1, batch_size=batch, device="cpu", threads=a.threads)
            t0 = time.perf_counter()
            if kind == "embedder":
                r = train_embedder(ds.root, Path(tmp) / name, backbone=backbone, input_size=size, lfw_root=None,
                                   cfg=cfg, progress=False)
            else:
                r = train_classifier(ds.root, Path(tmp) / name, method=kind, backbone=backbone or "resnet",
                                     input_size=size or 56, cfg=cfg, progress=False)
            wall = time.perf_counter() - t0
            row = r["best"]
            results.append({"config": name, "train_images": len(ds.split("train")), "batch": batch,
                            "images_per_s": row["images_per_s"], "epoch_seconds": row["seconds"],
                            "run_wall_seconds": round(wall, 1)})
            print(f"{name:42s} {row['images_per_s']:8.1f} img/s  epoch {row['seconds']:7.1f} s  "
                  f"(whole run incl. loading/export {wall:.0f} s)", flush=True)
    doc = {"dataset": str(ds.root), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)", "results": results}
    out = ROOT / "benchmarks" / "results" / "train_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
