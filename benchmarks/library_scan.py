"""Library scan throughput (photos/s, faces/s), beside `gallery enrol`'s (benchmarks/enrol_throughput.py).

The same tree as enrol_throughput.py (LFW images through symlinks, people in alphabetical order until --photos
photos), scanned into a fresh library with `Library.scan` (every face detected, embedded, thumbnailed, then
grouped), per model and worker count; then a re-run with nothing changed (the incremental path).

    .venv/bin/python benchmarks/library_scan.py --photos 1000     # writes benchmarks/results/library_scan.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from enrol_throughput import build_tree  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "library_scan.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--runs", default="sface:1,sface+flip:1,sface+flip:2", help="model:workers,...")
    args = ap.parse_args()
    from facelab.library import open_library

    out = {"photos": args.photos, "cores": os.cpu_count(), "runs": [],
           "enrol_reference": "benchmarks/results/enrol_throughput.json (gallery enrol, sface, same tree)"}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "photos"
        out["people"] = len(build_tree(tree, args.photos))
        for spec in args.runs.split(","):
            model, workers = spec.split(":")
            db = Path(tmp) / f"lib_{model}_{workers}.db"
            lib = open_library(db, model=model)
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            report = lib.scan(tree, workers=int(workers), progress=False)
            seconds = time.perf_counter() - t0
            row = {"model": model, "workers": int(workers), "seconds": round(seconds, 2),
                   "photos_per_second": round(args.photos / seconds, 2),
                   "faces": report.faces_added, "faces_per_second": round(report.faces_added / seconds, 2),
                   "grouping_seconds": report.grouping["seconds"], "groups": report.grouping["new_groups"],
                   "skipped": {k: len(v) for k, v in report.skipped.items()},
                   "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
            t0 = time.perf_counter()
            again = lib.scan(tree, progress=False)
            row["rerun_unchanged_s"] = round(time.perf_counter() - t0, 2)
            row["rerun_unchanged"] = again.unchanged
            lib.close()
            out["runs"].append(row)
            print(json.dumps(row), flush=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
