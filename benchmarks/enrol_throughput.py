"""Enrolment throughput: photos per second for a 5,000-photo tree, and how it scales with processes.

The tree is built in a temporary folder from LFW images through symlinks (ROOT/<person>/<photo>), people in
alphabetical order until --photos photos. Runs, each into a fresh SQLite gallery:
- `enrol_folder(workers=N)` for each N in --workers (one process writing, N processes detecting/embedding);
- a re-run of the last one (nothing changed: the incremental path);
- --split K: K separate `facelab gallery enrol` processes at once into ONE gallery, each on its share of the
  people (what several machines or shells enrolling into a shared gallery do).
This machine has 2 cores, shared: the figures are for it, and say how many cores were busy.

    .venv/bin/python benchmarks/enrol_throughput.py --photos 5000 --workers 1,2 --split 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = ROOT.parent / "shared" / "data" / "lfw" / "images"
RESULTS = ROOT / "benchmarks" / "results" / "enrol_throughput.json"


def build_tree(root: Path, n_photos: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    total = 0
    for person in sorted(p.name for p in LFW.iterdir() if p.is_dir()):
        if total >= n_photos:
            break
        (root / person).mkdir(parents=True)
        for f in sorted((LFW / person).glob("*.jpg"))[: n_photos - total]:
            (root / person / f.name).symlink_to(f)
            total += 1
            counts[person] = counts.get(person, 0) + 1
    return counts


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=5000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--split", type=int, default=2, help="also run K enrol processes at once into one gallery (0: no)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    import facelab

    out = {"photos": args.photos, "cores": os.cpu_count(), "model": "sface", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = tmp / "tree"
        counts = build_tree(tree, args.photos)
        out["people"] = len(counts)
        print(f"tree: {sum(counts.values())} photos of {len(counts)} people", flush=True)
        last = None
        for w in [int(x) for x in args.workers.split(",") if x]:
            db = tmp / f"w{w}.db"
            g = facelab.open_gallery(db)
            before = load_avg()
            report = g.enrol_folder(tree, progress=False, workers=w)
            g.close()
            d = report.to_dict()
            row = {"mode": f"one enrol, {w} worker process{'es' if w > 1 else ''}", "workers": w,
                   "seconds": d["seconds"], "photos_per_second": d["photos_per_second"], "added": d["added"],
                   "skipped": {k: len(v) for k, v in d["skipped"].items()}, "load_before": before,
                   "load_after": load_avg()}
            out["runs"].append(row)
            print(f"  {row}", flush=True)
            last = db
        if last is not None:
            g = facelab.open_gallery(last)
            t0 = time.perf_counter()
            report = g.enrol_folder(tree, progress=False)
            g.close()
            secs = time.perf_counter() - t0
            out["rerun_unchanged"] = {"seconds": round(secs, 2), "unchanged": report.unchanged,
                                      "added": len(report.added)}
            print(f"  re-run: {out['rerun_unchanged']}", flush=True)
        if args.split > 1:
            people = sorted(counts)
            shares = [people[i::args.split] for i in range(args.split)]
            db = tmp / "split.db"
            facelab.open_gallery(db).close()
            procs, t0 = [], time.perf_counter()
            for k, share in enumerate(shares):
                sub = tmp / f"share{k}"
                sub.mkdir()
                for person in share:
                    (sub / person).symlink_to(tree / person, target_is_directory=True)
                procs.append(subprocess.Popen([sys.executable, "-m", "facelab", "gallery", "enrol", str(sub), "-g",
                                               str(db), "--json", "--timeout", "60"], stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                              env={**os.environ, "PYTHONPATH": str(ROOT)}))
            reports = [json.loads(p.communicate()[0]) for p in procs]
            secs = time.perf_counter() - t0
            g = facelab.open_gallery(db)
            stats = g.stats()
            g.close()
            n = sum(r["added"] + sum(len(v) for v in r["skipped"].values()) for r in reports)
            row = {"mode": f"{args.split} enrol processes at once into one gallery", "processes": args.split,
                   "seconds": round(secs, 1), "photos_per_second": round(n / secs, 2),
                   "added": sum(r["added"] for r in reports), "photos_in_gallery": stats["photos"]}
            out["runs"].append(row)
            print(f"  {row}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
