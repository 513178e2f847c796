"""Grouping at scale: 100,000 faces of 20,000 synthetic people, through the library's real SQLite path (issue 15).

Synthetic identities as in benchmarks/search_scale.py: people's centres drawn from LFW's between-person
covariance, photos = centre + LFW's within-person covariance, unit length; fitted on every LFW image's
sface+flip vector (out/lfw_cache/all_images.npz), the library's default model.

Measured:
1. full grouping (`library cluster --full`) of N faces already in a library database: seconds, peak memory of the
   process (ru_maxrss), pairwise / BCubed scores against the synthetic identities;
2. incremental: the 50 biggest groups are named, then 1,000 new faces (new photos of existing people and a few
   new people) are added and sorted (`library cluster`, what every scan runs): seconds, and whether every named
   person kept every face they had.

    .venv/bin/python benchmarks/cluster_scale.py --size 100000   # writes benchmarks/results/cluster_scale_100000.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cluster_lfw import scores, unit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def face_model(path: str | None = None):
    import search_scale
    from lfw_all_images import OUT, load

    data = load(Path(path or OUT))
    found = data["found"].astype(bool)
    x = unit(unit(data["sface"][found]) + unit(data["sface_mirror"][found]))
    return search_scale.fit_face_model(x, data["person"][found]), search_scale


def fill_library(lib, vectors: np.ndarray, start: int = 0) -> list[int]:
    """Insert faces straight into the library's table (as a scan would, without images)."""
    with lib.tables.write() as cur:
        cur.executemany(
            "INSERT INTO library_faces (source, sha256, face_index, n_faces, box, landmarks, pose, quality, score, "
            "vector, thumb, added) VALUES (?, ?, 0, 1, '{}', NULL, NULL, '{\"size\": 100}', 1.0, ?, NULL, ?)",
            [(f"/synthetic/{start + i}.jpg", f"{start + i:064x}", v.tobytes(), time.time())
             for i, v in enumerate(vectors)])
        ids = [r[0] for r in cur.execute("SELECT id FROM library_faces WHERE source >= '/synthetic/' ORDER BY id")]
    return ids


def ivf_recall(x: np.ndarray, lib, sample: int = 2000) -> dict:
    """Share of the exact graph's edges (each face's k best above the threshold) the IVF search finds."""
    from facelab.library.cluster import ivf_edges, neighbour_edges
    from facelab.library.grouping import grouping_params

    params = grouping_params(lib.model.name)
    rows = np.random.default_rng(1).choice(len(x), sample, replace=False)
    r, c, _ = neighbour_edges(x[rows], params.threshold, params.k + 1, others=x, exclude_self=False)
    exact = {(int(rows[i]), int(j)) for i, j in zip(r, c) if rows[i] != j}
    r2, c2, _ = ivf_edges(x, params.threshold, params.k)
    wanted = set(rows.tolist())
    found = {(int(i), int(j)) for i, j in zip(r2, c2) if int(i) in wanted}
    return {"faces_sampled": sample, "exact_edges": len(exact), "found": len(exact & found),
            "recall": round(len(exact & found) / max(len(exact), 1), 4)}


def labels_by_face(lib) -> dict[int, int]:
    rows = lib.tables.read("SELECT library_faces.id, COALESCE(group_id, -1), COALESCE(photos.person_id, -1) FROM "
                           "library_faces LEFT JOIN photos ON photos.id = library_faces.photo_id")
    return {r[0]: (2 * r[2] if r[2] >= 0 else (2 * r[1] + 1 if r[1] >= 0 else -1)) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--photos-per-person", type=float, default=5.0)
    ap.add_argument("--new", type=int, default=1000)
    ap.add_argument("--vectors", default=None, help="the all-images cache (default: out/lfw_cache/all_images.npz)")
    ap.add_argument("--no-write", action="store_true", help="print only (a trial run)")
    args = ap.parse_args()
    from facelab.library import open_library

    model, search_scale = face_model(args.vectors)
    search_scale.DIM = 128
    rng = np.random.default_rng(0)
    x, person, centres = search_scale.synthesize(args.size, model, rng, args.photos_per_person)
    base_rss = maxrss_mb()
    out = {"faces": args.size, "people": int(len(np.unique(person))), "machine_cores": os.cpu_count(),
           "model": "sface+flip (synthetic, LFW covariances)",
           "fitted_on": args.vectors or "out/lfw_cache/all_images.npz"}
    with tempfile.TemporaryDirectory() as tmp:
        lib = open_library(Path(tmp) / "lib.db", model="sface+flip")
        t0 = time.perf_counter()
        ids = fill_library(lib, x)
        out["insert_s"] = round(time.perf_counter() - t0, 1)
        print(f"{args.size} faces of {out['people']} people inserted in {out['insert_s']} s", flush=True)

        t0 = time.perf_counter()
        g = lib.group(full=True)
        out["full_grouping_s"] = round(time.perf_counter() - t0, 1)
        out["full_grouping_peak_rss_mb"] = round(maxrss_mb(), 0)
        out["rss_before_grouping_mb"] = round(base_rss, 0)
        lab = labels_by_face(lib)
        out["full_grouping"] = {**scores(np.array([lab[i] for i in ids]), person), "detail": g}
        print(f"full grouping: {out['full_grouping_s']} s, peak RSS {out['full_grouping_peak_rss_mb']} MB; "
              f"{ {k: v for k, v in out['full_grouping'].items() if k != 'detail'} }", flush=True)

        if args.size > 30_000:  # the approximate (IVF) neighbours against exact ones, for 2,000 faces
            out["ivf_edge_recall"] = ivf_recall(x, lib)
            print(f"IVF edge recall: {out['ivf_edge_recall']}", flush=True)

        # name the 50 biggest groups, then add new faces and sort them incrementally
        groups = lib.people()["groups"][:50]
        for i, grp in enumerate(groups):
            lib.name(grp["group"], f"person{i:02d}")
        before = {p["name"]: set(f.id for f in lib.faces_of(p["name"])) for p in lib.people()["people"]}
        n_old = args.new * 9 // 10
        pick = rng.choice(len(centres), n_old)
        noise = rng.standard_normal((n_old, 128)).astype(np.float32) @ model[2].T.astype(np.float32)
        new_old_people = unit(centres[pick] + noise)
        new_people, new_person, _ = search_scale.synthesize(args.new - n_old, model, rng, 2.0)
        new = np.vstack([new_old_people, new_people])
        fill_library(lib, new, start=args.size)
        t0 = time.perf_counter()
        g = lib.group()
        out["incremental"] = {"new_faces": args.new, "seconds": round(time.perf_counter() - t0, 2), "detail": g}
        after = {p["name"]: set(f.id for f in lib.faces_of(p["name"])) for p in lib.people()["people"]}
        out["incremental"]["named_people_keep_every_face"] = all(before[n] <= after.get(n, set()) for n in before)
        lab = labels_by_face(lib)
        truth = np.concatenate([person, pick, len(centres) + new_person])  # ids in the order of insertion
        all_ids = sorted(lab)
        out["after_incremental"] = scores(np.array([lab[i] for i in all_ids]), truth)
        out["peak_rss_mb"] = round(maxrss_mb(), 0)
        print(f"incremental: {out['incremental']['new_faces']} faces in {out['incremental']['seconds']} s; named "
              f"people keep every face: {out['incremental']['named_people_keep_every_face']}", flush=True)
        lib.close()
    if args.no_write:
        return
    path = RESULTS / f"cluster_scale_{args.size}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
