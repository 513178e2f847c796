"""Grouping faces by person on every LFW image: which method, at which threshold (issue 15).

Data: out/lfw_cache/all_images.npz (benchmarks/lfw_all_images.py: one vector per LFW image with a detected face;
LFW's names are the truth; 4,281+ people, most with one or two photos).
Vectors: "sface+flip" (the unit mean of sface and its mirror), the library's default, "sface", "fused+flip" and
"fused" (FusedEmbedder.combine of those and dlib), "dlib_resnet" and "dlib_resnet+flip": every model a library can
be made with gets its threshold here (facelab/models/grouping.json); a library of any other model is refused.

Thresholds are chosen on half of the people (a fixed split by a hash of the name: "dev"), and reported on the
other half ("test") and on everyone; never on the figure reported. Scores: pairwise precision / recall / F
(over all pairs of faces: same group vs same person), BCubed precision / recall / F (per face), groups found.
Faces left unsorted count as groups of one.

Candidates: our k-NN graph (exact neighbours above a cosine threshold, k=20) cut by connected components or by
Chinese whispers (dlib); scikit-learn HDBSCAN; and the references on the same vectors: DBSCAN with Immich's
defaults (cosine distance 0.5, at least 3 faces) and dlib's chinese_whispers_clustering the face_recognition way
(Euclidean 0.5 between raw descriptors; the cache keeps unit vectors, so they are scaled back by the mean raw
length, measured on 100 LFW images; their spread is in the JSON). Published: approximate
rank-order clustering on all of LFW, pairwise F 0.87 (Otto, Wang and Jain, TPAMI 2018), quoted, not re-run.

    .venv/bin/python benchmarks/cluster_lfw.py        # writes benchmarks/results/cluster_lfw.json
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from facelab.library.cluster import ClusterParams, cluster  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cluster_lfw.json"
SETTINGS = ROOT / "facelab" / "models" / "grouping.json"
METHOD_NAMES = {"whispers": "chinese whispers", "components": "connected components"}
PUBLISHED = {"method": "approximate rank-order clustering (Otto, Wang, Jain, TPAMI 2018)",
             "data": "all 13,233 LFW images", "pairwise_f": 0.87}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise and BCubed precision / recall / F; label -1 = a group of one."""
    labels = np.asarray(labels).copy()
    alone = labels < 0
    labels[alone] = labels.max(initial=0) + 1 + np.arange(alone.sum())
    _, lab = np.unique(labels, return_inverse=True)
    _, tru = np.unique(truth, return_inverse=True)
    cell = lab.astype(np.int64) * (tru.max() + 1) + tru
    _, cell_id, cell_n = np.unique(cell, return_inverse=True, return_counts=True)
    lab_n = np.bincount(lab)
    tru_n = np.bincount(tru)
    pairs = lambda n: (n * (n - 1) // 2).sum()  # noqa: E731
    tp, pred, true = pairs(cell_n), pairs(lab_n), pairs(tru_n)
    p = tp / pred if pred else 1.0
    r = tp / true if true else 1.0
    n_ij = cell_n[cell_id]
    bp = float(np.mean(n_ij / lab_n[lab]))
    br = float(np.mean(n_ij / tru_n[tru]))
    f = lambda a, b: 2 * a * b / (a + b) if a + b else 0.0  # noqa: E731
    return {"pairwise_precision": round(float(p), 4), "pairwise_recall": round(float(r), 4),
            "pairwise_f": round(float(f(p, r)), 4), "bcubed_precision": round(bp, 4),
            "bcubed_recall": round(br, 4), "bcubed_f": round(float(f(bp, br)), 4),
            "groups": int(len(np.unique(labels[~alone]))), "unsorted_faces": int(alone.sum()),
            "faces": int(len(labels)), "people": int(len(tru_n))}


def split(people: np.ndarray) -> np.ndarray:
    """True for the dev half of the people (fixed by a hash of the name)."""
    return np.array([hashlib.sha256(p.encode()).digest()[0] % 2 == 0 for p in people])


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def graph_method(method: str):
    def run(x, threshold):
        return cluster(x, ClusterParams(threshold=threshold, k=20, min_size=2, method=method))
    return run


def hdbscan(x, min_cluster_size):
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=1).fit_predict(x)


def dbscan(x, eps, min_samples=3):
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(x)


def dlib_whispers(x, threshold=0.5):
    import dlib

    return np.array(dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in x], float(threshold)))


def dlib_raw_norm(names, n: int = 100) -> tuple[float, float]:
    """The mean length of dlib's raw descriptors (the cache keeps them unit length; face_recognition's 0.5 is a
    Euclidean distance between raw ones), measured on the first n LFW images."""
    from facelab.embedders import DlibEmbedder
    from facelab.images import load_image
    from facelab.pipeline import FaceAnalysis
    from lfw_cache import LFW

    embedder, analysis, norms = DlibEmbedder(), FaceAnalysis(), []
    for name in names[:n]:
        rgb = load_image(LFW / "images" / name)
        faces = analysis.detect_rgb(rgb)
        if faces:
            raw = np.array(embedder._net.compute_face_descriptor(embedder.chips(rgb, faces[:1])), np.float32)
            norms.append(float(np.linalg.norm(raw)))
    return float(np.mean(norms)), float(np.std(norms))


def tune(run, x, truth, grid):
    """The grid value with the best pairwise F on these faces, and every point tried."""
    tried = []
    for value in grid:
        s = scores(run(x, value), truth)
        tried.append({"value": round(float(value), 4), **s})
    best = max(tried, key=lambda t: (t["pairwise_f"], t["bcubed_f"]))
    return best["value"], tried


def _repo_relative(path: Path) -> str:
    """A path as the results JSON records it: relative to the checkout (no machine paths in tracked files)."""
    try:
        return str(path.resolve().relative_to(ROOT.resolve()))
    except ValueError:
        return path.name


def main() -> None:
    import argparse

    from facelab.embedders import FusedEmbedder
    from lfw_all_images import OUT, load

    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", default=str(OUT), help="the all-images cache (default: out/lfw_cache/all_images.npz)")
    ap.add_argument("--no-write", action="store_true", help="print only (a trial run): write no JSON")
    args = ap.parse_args()
    data = load(Path(args.vectors))
    found = data["found"].astype(bool)
    person = data["person"][found]
    sface_plain = unit(data["sface"][found])
    sface = unit(sface_plain + unit(data["sface_mirror"][found]))
    dlib_v = unit(data["dlib"][found])
    fused = FusedEmbedder(flip=True, load_models=False).combine(sface, dlib_v)
    dev_people = split(np.unique(person))
    dev = np.isin(person, np.unique(person)[dev_people])
    print(f"{found.sum()} faces of {len(np.unique(person))} people ({(~found).sum()} images without a face); "
          f"dev half {dev.sum()} faces, test half {(~dev).sum()}", flush=True)
    out = {"faces": int(found.sum()), "images_without_face": int((~found).sum()),
           "people": int(len(np.unique(person))), "dev_faces": int(dev.sum()), "test_faces": int((~dev).sum()),
           "split": "people by sha256(name)[0] % 2 (0 = dev)", "published": PUBLISHED, "results": [],
           "vectors_file": _repo_relative(Path(args.vectors))}

    def report(name, vectors_name, x, run, grid, chosen_by="dev", fixed="fixed (reference defaults)"):
        if grid is None:
            value, tried = None, []
        else:
            value, tried = tune(run, x[dev], person[dev], grid)
        args = () if value is None else (value,)
        test = scores(run(x[~dev], *args), person[~dev])
        labels, secs = timed(run, x, *args)
        full = scores(labels, person)
        row = {"method": name, "vectors": vectors_name, "parameter": value,
               "chosen_on": chosen_by if grid is not None else fixed, "test_half": test,
               "all": full, "seconds_all": round(secs, 2), "dev_grid": tried}
        out["results"].append(row)
        print(f"{name:32s} {vectors_name:10s} param={value} test F={test['pairwise_f']:.4f} "
              f"B3={test['bcubed_f']:.4f} | all F={full['pairwise_f']:.4f} P={full['pairwise_precision']:.4f} "
              f"R={full['pairwise_recall']:.4f} B3={full['bcubed_f']:.4f} groups={full['groups']} "
              f"({secs:.1f} s)", flush=True)

    dlib_flip = unit(dlib_v + unit(data["dlib_mirror"][found]))
    fused_plain = FusedEmbedder(flip=False, load_models=False).combine(sface_plain, dlib_v)
    chosen = {}
    for vname, x, grid in (("sface+flip", sface, np.arange(0.36, 0.80, 0.02).round(2)),
                           ("sface", sface_plain, np.arange(0.36, 0.80, 0.02).round(2)),
                           ("fused+flip", fused, np.arange(0.78, 0.92, 0.01).round(2)),
                           ("fused", fused_plain, np.arange(0.78, 0.92, 0.01).round(2)),
                           ("dlib_resnet", dlib_v, np.arange(0.88, 0.98, 0.01).round(2)),
                           ("dlib_resnet+flip", dlib_flip, np.arange(0.88, 0.98, 0.01).round(2))):
        for method in ("whispers", "components"):
            report(f"knn graph + {METHOD_NAMES[method]}", vname, x, graph_method(method), grid)
            row = out["results"][-1]
            dev_best = max(row["dev_grid"], key=lambda t: (t["pairwise_f"], t["bcubed_f"]))
            if vname not in chosen or dev_best["pairwise_f"] > chosen[vname]["dev_pairwise_f"]:
                chosen[vname] = {"threshold": row["parameter"], "method": method,
                                 "dev_pairwise_f": dev_best["pairwise_f"], "dev_bcubed_f": dev_best["bcubed_f"]}
    # the library's own threshold for a library of this many faces (the size rule; the same as the dev-chosen
    # one up to the dev half's size)
    from facelab.library.grouping import grouping_params

    def library_rule(x):
        return cluster(x, grouping_params("sface+flip", len(x)))

    report("library (sface+flip, size rule)", "sface+flip", sface, library_rule, None,
           fixed="facelab/models/grouping.json: the dev threshold, raised for libraries bigger than the dev half")
    out["results"][-1]["thresholds"] = {"test_half": grouping_params("sface+flip", int((~dev).sum())).threshold,
                                        "all": grouping_params("sface+flip", len(sface)).threshold}
    report("HDBSCAN (sklearn, min_samples=1)", "sface+flip", sface, hdbscan, [2, 3, 5])
    report("DBSCAN, Immich defaults", "sface+flip", sface, lambda x: dbscan(x, 0.5, 3), None)
    report("DBSCAN, Immich defaults", "fused+flip", fused, lambda x: dbscan(x, 0.5, 3), None)
    norm, spread = dlib_raw_norm(list(data["names"]))
    out["dlib_raw_descriptor_length"] = {"mean": round(norm, 4), "std": round(spread, 4), "images": 100}
    report("dlib chinese_whispers_clustering 0.5 (face_recognition)", "dlib (x mean raw length)", dlib_v * norm,
           lambda x: dlib_whispers(x, 0.5), None)
    # the library's settings: per model, the method and threshold best on the dev half (pairwise F)
    if args.no_write:
        return
    # the size rule comes from benchmarks/cluster_scale.py --choose-size-rule: kept as it is
    old = json.loads(SETTINGS.read_text()) if SETTINGS.exists() else {}
    for vname, entry in chosen.items():
        if "per_decade" in old.get("models", {}).get(vname, {}):
            entry["per_decade"] = old["models"][vname]["per_decade"]
    settings = {"source": "benchmarks/cluster_lfw.py (LFW, dev half of the people)", "k": 20, "min_size": 2,
                "models": chosen}
    if "size_rule" in old:
        settings["size_rule"] = old["size_rule"]
    SETTINGS.write_text(json.dumps(settings, indent=1) + "\n")
    print(f"wrote {SETTINGS}: {chosen}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
