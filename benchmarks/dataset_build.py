"""`facelab dataset build` speed and what each filter drops, on up to 5,000 LFW photos (deep-funneled).

Photos are chosen at random (seed 0) from ../shared/data/lfw/images and laid out by gender label
(female/ male/, the published LFW gender lists) as symlinks in a temporary folder; the build uses the
default filters plus --largest (LFW photos often show a second face at the edge).

    .venv/bin/python benchmarks/dataset_build.py [--photos 5000]
Writes benchmarks/results/dataset_build.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = Path(os.environ.get("FACELAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=5000)
    a = ap.parse_args()
    from facelab.train.dataset import REASONS, BuildOptions, build_dataset

    if not (LFW / "images").is_dir():
        raise SystemExit(f"LFW not found at {LFW}")
    female = set((LFW / "gender_female.txt").read_text().split())
    male = set((LFW / "gender_male.txt").read_text().split()) - female
    photos = sorted(p for p in (LFW / "images").glob("*/*.jpg") if p.name in female | male)
    random.Random(0).shuffle(photos)
    photos = photos[: a.photos]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        for p in photos:
            cls = "female" if p.name in female else "male"
            (raw / cls).mkdir(parents=True, exist_ok=True)
            (raw / cls / p.name).symlink_to(p.resolve())
        from facelab.pipeline import shared_analysis

        _ = shared_analysis().detector  # the property loads the model: before the clock starts
        t0 = time.perf_counter()
        report = build_dataset(raw, Path(tmp) / "ds", BuildOptions(largest=True)).to_dict()
        seconds = time.perf_counter() - t0
    n = report["photos"]
    dropped = {r: report["dropped_counts"].get(r, 0) for r in REASONS}
    result = {"photos": n, "kept": report["kept"], "seconds": round(seconds, 1),
              "photos_per_s": round(n / seconds, 2),
              "dropped_share": {r: round(c / n, 4) for r, c in dropped.items()},
              "dropped_count": dropped, "options": BuildOptions(largest=True).to_dict(),
              "data": "LFW deep-funneled 250x250, random sample (seed 0), classes = gender lists",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)"}
    print(f"{n} photos in {seconds:.1f} s: {n / seconds:.1f} photos/s; kept {report['kept']}")
    for r, c in dropped.items():
        if c:
            print(f"  dropped {c:5d} ({100 * c / n:5.2f} %)  {r}")
    out = ROOT / "benchmarks" / "results" / "dataset_build.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
