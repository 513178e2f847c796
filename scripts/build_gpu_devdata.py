"""Build .devdata/gpu_dataset (< 20 MB) for scripts/gpu_smoke.sh from a dataset made here by
`facelab dataset build` (default: the public-figures example's, out/examples/people/dataset).

The device machine gets only the repository checkout (no ../shared, no face detector), so the smoke run trains
on these ready-made aligned crops.

    .venv/bin/python scripts/build_gpu_devdata.py [SOURCE_DATASET] [DEST] [--max-photos 3000]
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("source", nargs="?", default="out/examples/people/dataset")
ap.add_argument("dest", nargs="?", default=".devdata/gpu_dataset")
ap.add_argument("--max-photos", type=int, default=3000)
a = ap.parse_args()
src, dest = Path(a.source), Path(a.dest)
meta = json.loads((src / "dataset.json").read_text())
if not meta.get("complete"):
    raise SystemExit(f"{src}: build not finished")
rows = list(csv.DictReader(open(src / "manifest.csv")))[: a.max_photos]
if dest.exists():
    shutil.rmtree(dest)
for r in rows:
    (dest / r["file"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / r["file"], dest / r["file"])
with open(dest / "manifest.csv", "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
meta.update(raw=f"(copied from {src})", counts=None)
(dest / "dataset.json").write_text(json.dumps(meta, indent=2))
size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
print(f"{dest}: {len(rows)} crops, {len({r['class'] for r in rows})} classes, {size / 1e6:.1f} MB")
