"""LFW identification (1:N, closed and open set) through facelab's gallery, on the 158 people with >= 10 images.

Protocol 1: gallery = each person's first image, probes = all their other images (4,166).
Protocol 2: gallery = each person's first 5 images (one gallery of up to 5 photos per person), probes = the rest.
Every probe's embedding goes through a real facelab gallery (SQLite, `Gallery.rank`, the code behind
`facelab.identify`), scored as max / mean template / both. Embeddings come from the cache written by
benchmarks/lfw_embeddings.py (facelab's pipeline: YuNet, main face, alignment, embedder); `--images` instead
runs `Gallery.identify` on the probe image files (detection + embedding + search, the full `facelab identify`).

Open set: non-mated probes are the first image of 1,000 LFW people with < 10 images (never enrolled).
DIR at FPIR 1 %: the share of mated probes identified at rank 1 with a score above the threshold that lets 1 %
of the non-mated probes be named as someone. Also reported: FPIR and DIR at facelab's default threshold,
operating_point(model, far=0.01) (calibrated on LFW View 2 pairs, 1:1).

A probe whose image has no detected face counts as a miss (rank > 5). Images are LFW deep-funneled.

The face_recognition package's approach, on the same split: its own HOG detection and encodings (raw dlib
descriptors), nearest known encoding by Euclidean distance, "match" when distance <= tolerance 0.6.

    .venv/bin/python benchmarks/identify_lfw.py            # -> benchmarks/results/identify_lfw.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lfw_embeddings import CENTRE_CACHE, FR_CACHE, IMPOSTOR_CACHE, image_path, load_cache  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "identify_lfw.json"
OPEN_SET = ROOT / "facelab" / "gallery" / "open_set.json"  # the identify default thresholds (data, not code)


def write_open_set_thresholds(out: dict) -> None:
    """Per model and scoring: the threshold that named 1 % of never-enrolled people on LFW (protocol 2, the
    labelled face). `facelab identify` uses it when no --threshold / --far is given."""
    policies = list(out["protocols"])
    rows = out["protocols"][policies[-1]]["P2: up to 5 gallery images per person"]["facelab"]
    table = json.loads(OPEN_SET.read_text()) if OPEN_SET.exists() else {}
    for r in rows:
        table[r["model"]] = {sc: {"threshold": x["open_set"]["threshold_at_fpir_1pct"], "fpir": 0.01,
                                  "dir": x["open_set"]["dir_at_fpir_1pct"]} for sc, x in r["scoring"].items()}
        n_imp = next(iter(r["scoring"].values()))["open_set"]["nonmated_probes"]
        from facelab.gallery.store import model_info

        table[r["model"]]["fingerprint"] = model_info(r["model"]).fingerprint  # fused: changes with its parameters
        table[r["model"]]["source"] = (f"LFW deep-funneled: {r['people']} people x up to 5 photos, "
                                       f"{n_imp} never-enrolled people "
                                       f"(benchmarks/identify_lfw.py)")
    OPEN_SET.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def fused_vectors(cache: dict, flip: bool = False) -> np.ndarray:
    """The "fused" (or "fused+flip") embedder's vectors, rebuilt from the cached SFace and dlib parts with the
    current fusion parameters (exactly FusedEmbedder.combine)."""
    from facelab.embedders import FusedEmbedder

    emb = FusedEmbedder(flip=flip, load_models=False)  # parameters only; the two networks are not needed here
    out = emb.combine(cache["sface+flip" if flip else "sface"], cache["dlib_resnet"])
    out[cache["n_faces"] == 0] = 0
    return out


def vectors_for(model: str, cache: dict) -> np.ndarray:
    if model in ("fused", "fused+flip"):
        return fused_vectors(cache, flip=model == "fused+flip")
    return cache[model]


def split(cache: dict, n_gallery: int):
    numbers, found = cache["number"], cache["n_faces"] > 0
    gal = (numbers <= n_gallery) & found
    probe = numbers > n_gallery
    return gal, probe, found


def closed_and_open(ranked, probe_names, probe_found, impostor_top, thresholds: dict):
    """rank-1/5 over mated probes; DIR at FPIR 1 %; FPIR and DIR at facelab's thresholds."""
    correct_rank = []
    top_scores = []
    for name, found, row in zip(probe_names, probe_found, ranked):
        people = [m.person for m in row] if found else []
        correct_rank.append(people.index(name) + 1 if name in people else 99)
        top_scores.append(row[0].similarity if found and row else -1.0)
    r = np.array(correct_rank)
    top = np.array(top_scores)
    imp = np.sort(np.asarray(impostor_top))[::-1]
    k = int(np.floor(0.01 * len(imp)))
    t_fpir = float(imp[k]) + 1e-6  # at most 1 % of non-mated probes score >= this
    dir_at = lambda t: float(np.mean((r == 1) & (top >= t)))  # noqa: E731
    return {"probes": int(len(r)), "rank1": round(float(np.mean(r == 1)), 5), "rank5": round(float(np.mean(r <= 5)), 5),
            "open_set": {"nonmated_probes": int(len(imp)),
                         "threshold_at_fpir_1pct": round(t_fpir, 4), "dir_at_fpir_1pct": round(dir_at(t_fpir), 5),
                         **{f"at_{name}": {"threshold": round(t, 4), "fpir": round(float(np.mean(imp >= t)), 5),
                                           "dir": round(dir_at(t), 5)} for name, t in thresholds.items()}}}


def run_model(model: str, cache: dict, impostors: dict | None, n_gallery: int, scorings, tmp: Path) -> dict:
    import facelab
    from facelab.verification import operating_point

    vecs = vectors_for(model, cache)
    gal, probe, found = split(cache, n_gallery)
    db = tmp / f"{model}_{n_gallery}.db"
    for f in tmp.glob(db.name + "*"):
        f.unlink()
    g = facelab.open_gallery(db, model=model)
    t0 = time.perf_counter()
    for name in sorted(set(cache["name"])):
        sel = gal & (cache["name"] == name)
        if sel.any():
            g.add_embeddings(name, vecs[sel], sources=[str(f) for f in cache["files"][sel]])
    build_s = time.perf_counter() - t0
    try:  # what `facelab identify` uses: the default point, and --far 0.01 (both calibrated 1:1 on LFW View 2)
        thresholds = {"default": operating_point(model).threshold,
                      "far_0.01": operating_point(model, far=0.01).threshold}
    except Exception:  # no calibrated threshold for this model yet
        thresholds = {}
    out = {"model": model, "gallery_photos": int(gal.sum()), "people": len(set(cache["name"][gal])),
           "probes_without_face": int((probe & ~found).sum()), "gallery_build_s": round(build_s, 2), "scoring": {}}
    imp_vecs = None
    if impostors is not None:
        imp_vecs = vectors_for(model, impostors)[impostors["n_faces"] > 0]
    for scoring in scorings:
        t0 = time.perf_counter()
        ranked = g.rank(vecs[probe], top_k=5, scoring=scoring)
        secs = time.perf_counter() - t0
        imp_top = [row[0].similarity for row in g.rank(imp_vecs, 1, scoring)] if imp_vecs is not None else [1.0]
        res = closed_and_open(ranked, cache["name"][probe], found[probe], imp_top, thresholds)
        res["ms_per_probe"] = round(1000 * secs / max(1, probe.sum()), 3)
        out["scoring"][scoring] = res
        at = res["open_set"].get("at_default")
        print(f"  {model:12s} P{'1' if n_gallery == 1 else '2'} {scoring:5s} rank-1 {res['rank1']:.4%} rank-5 "
              f"{res['rank5']:.4%} DIR@FPIR1% {res['open_set']['dir_at_fpir_1pct']:.4%}"
              + (f" (default t={at['threshold']:.3f}: FPIR {at['fpir']:.2%}, DIR {at['dir']:.2%})" if at else ""),
              flush=True)
    g.close()
    return out


def face_recognition_approach(n_gallery: int, cache: dict, impostors: dict | None, centred: dict | None) -> dict | None:
    """Nearest known encoding (Euclidean), tolerance 0.6, with the package's own detection and encodings; and
    facelab (sface, gallery.rank, mean scoring) on exactly the same subset of images, for comparison."""
    if not FR_CACHE.exists():
        return None
    d = dict(np.load(FR_CACHE))
    mated = np.isin(d["name"], np.unique(cache["name"]))
    names, numbers, enc, found = d["name"], d["number"], d["encoding"], d["n_faces"] > 0
    gal = mated & (numbers <= n_gallery) & found
    probe = mated & (numbers > n_gallery)
    imp = ~mated & found
    if not probe.any():
        return None  # the subset has no probe for this protocol
    known, known_names = enc[gal], names[gal]
    dist = np.linalg.norm(enc[probe][:, None, :] - known[None, :, :], axis=2)
    order = np.argsort(dist, axis=1)
    ranks, named_right = [], []
    for i, (name, ok) in enumerate(zip(names[probe], found[probe])):
        people = list(dict.fromkeys(known_names[order[i]]))[:5] if ok else []
        ranks.append(people.index(name) + 1 if name in people else 99)
        named_right.append(ok and people[:1] == [name] and dist[i, order[i, 0]] <= 0.6)
    imp_dist = np.linalg.norm(enc[imp][:, None, :] - known[None, :, :], axis=2).min(axis=1)
    r = np.array(ranks)
    out = {"subset": f"each person's first {int(numbers[mated].max())} images, "
                     f"{int((~mated).sum())} never-enrolled people",
           "face_recognition": {
               "approach": "face_recognition 1.3.0: HOG detector, face_encodings, nearest known encoding, "
                           "tolerance 0.6",
               "gallery_photos": int(gal.sum()), "probes": int(probe.sum()),
               "probes_without_face": int((probe & ~found).sum()),
               "rank1": round(float(np.mean(r == 1)), 5), "rank5": round(float(np.mean(r <= 5)), 5),
               "identified_within_tolerance": round(float(np.mean(named_right)), 5),
               "fpir_at_tolerance": round(float(np.mean(imp_dist <= 0.6)), 5), "nonmated_probes": int(imp.sum())}}
    # facelab on the same images
    import facelab

    max_n = int(numbers[mated].max())
    for label, data in (("facelab_sface_main_face", cache), ("facelab_sface_centre_face", centred)):
        if data is None:
            continue
        keep = data["number"] <= max_n
        g_sel = keep & (data["number"] <= n_gallery)
        p_sel = keep & (data["number"] > n_gallery)
        with tempfile.TemporaryDirectory() as tmp:
            g = facelab.open_gallery(Path(tmp) / "fr.db")
            for name in sorted(set(data["name"])):
                sel = g_sel & (data["name"] == name)
                g.add_embeddings(name, data["sface"][sel])
            ranked = g.rank(data["sface"][p_sel], top_k=5, scoring="mean")
            t, _, _ = g.threshold()
            imp_names = set(d["name"][~mated])
            imp_vecs = impostors["sface"][np.isin(impostors["name"], list(imp_names))] if impostors else None
            imp_top = [row[0].similarity for row in g.rank(imp_vecs, 1, "mean")] if imp_vecs is not None else []
            g.close()
        rr = [([m.person for m in row].index(n) + 1 if n in [m.person for m in row] else 99)
              for n, row in zip(data["name"][p_sel], ranked)]
        named = [row[0].person == n and row[0].similarity >= t for n, row in zip(data["name"][p_sel], ranked)]
        out[label] = {"probes": int(p_sel.sum()), "rank1": round(float(np.mean(np.array(rr) == 1)), 5),
                      "rank5": round(float(np.mean(np.array(rr) <= 5)), 5),
                      "identified_above_default_threshold": round(float(np.mean(named)), 5),
                      "fpir_at_default_threshold":
                          round(float(np.mean(np.array(imp_top) >= t)), 5) if imp_top else None,
                      "default_threshold": round(t, 4)}
    return out


def through_images(model: str, cache: dict, limit: int | None, tmp: Path) -> dict:
    """The whole `facelab identify` on probe files (protocol 1): detection, embedding, search."""
    import facelab
    from facelab.pipeline import pick_main_face

    vecs = vectors_for(model, cache)
    gal, probe, _ = split(cache, 1)
    g = facelab.open_gallery(tmp / f"{model}_images.db", model=model)
    for name in sorted(set(cache["name"])):
        sel = gal & (cache["name"] == name)
        if sel.any():
            g.add_embeddings(name, vecs[sel])
    idx = np.flatnonzero(probe)[:limit]
    hits, t0 = 0, time.perf_counter()
    for n, i in enumerate(idx):
        results = g.identify(image_path(cache["name"][i], int(cache["number"][i])), top_k=5)
        if results:
            main = pick_main_face([r.face for r in results], (250, 250))
            r = results[[x.face for x in results].index(main)]
            hits += bool(r.matches) and r.matches[0].person == cache["name"][i]
        if n % 200 == 0:
            print(f"\r  images: {n + 1}/{len(idx)} rank-1 so far {hits / (n + 1):.4%}", end="", flush=True)
    print()
    secs = time.perf_counter() - t0
    g.close()
    return {"model": model, "protocol": 1, "probes": int(len(idx)), "rank1": round(hits / len(idx), 5),
            "seconds": round(secs, 1), "ms_per_probe": round(1000 * secs / len(idx), 1)}


def with_centre_faces(cache: dict) -> dict | None:
    """The cache with, for photos with several faces, the face nearest the centre (LFW's labelled subject)."""
    if not CENTRE_CACHE.exists():
        return None
    centre = dict(np.load(CENTRE_CACHE))
    out = {k: v.copy() for k, v in cache.items()}
    for key in ("sface", "dlib_resnet", "sface+flip"):
        if key in out and key in centre:
            out[key][centre["index"]] = centre[key]
    return out


def fused_weight_sweep(cache: dict, flip: bool = False) -> dict:
    """P1 rank-1 of SFace (flip-averaged with `flip`) + dlib fused at other weights than fusion.json's (fitted for
    verification). Chosen on these very probes, so a diagnostic of what fusion could reach here, never a reported
    result."""
    from facelab.embedders import FusedEmbedder

    gal, probe, found = split(cache, 1)
    emb = FusedEmbedder(flip=flip, load_models=False)
    out = {}
    for w in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        emb.weight = w
        f = emb.combine(cache["sface+flip" if flip else "sface"], cache["dlib_resnet"])
        top = cache["name"][gal][np.argmax(f[probe] @ f[gal].T, axis=1)]
        out[f"{w:.1f}"] = round(float(np.mean((top == cache["name"][probe]) & found[probe])), 5)
    return out


def p1_misses(cache: dict, model: str = "sface") -> list[dict]:
    """The P1 probes (main face, max scoring) whose best gallery match is someone else, to look at by eye."""
    vecs = vectors_for(model, cache)
    gal, probe, found = split(cache, 1)
    sims = vecs[probe] @ vecs[gal].T
    gal_names, probe_names = list(cache["name"][gal]), cache["name"][probe]
    best = np.argmax(sims, axis=1)
    out = []
    for i in np.where((np.array(gal_names)[best] != probe_names) | ~found[probe])[0]:
        own = sims[i, gal_names.index(probe_names[i])] if probe_names[i] in gal_names else None
        out.append({"probe": str(cache["files"][probe][i]), "named": str(gal_names[best[i]]),
                    "similarity": round(float(sims[i, best[i]]), 3),
                    "own_gallery_photo": None if own is None else round(float(own), 3),
                    "faces_in_photo": int(cache["n_faces"][probe][i])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-open-set", action="store_true",
                    help="write this run's FPIR 1 %% thresholds into facelab/gallery/open_set.json (the shipped "
                         "defaults come from benchmarks/calibrate_gallery.py: 1,560 people, 2,721 strangers)")
    ap.add_argument("--models", default=None,
                    help="default: sface,dlib_resnet,fused, + sface+flip,fused+flip when the caches have them "
                         "(benchmarks/lfw_embeddings.py --add-flip)")
    ap.add_argument("--images", type=int, default=0, metavar="N",
                    help="also run facelab identify on N probe image files (0: none; -1: all)")
    args = ap.parse_args()
    cache = load_cache()
    impostors = dict(np.load(IMPOSTOR_CACHE)) if IMPOSTOR_CACHE.exists() else None
    flip_cached = "sface+flip" in cache and (impostors is None or "sface+flip" in impostors)
    models = (args.models or "sface,dlib_resnet,fused" + (",sface+flip,fused+flip" if flip_cached else "")).split(",")
    out = {"dataset": "LFW deep-funneled, 158 people with >= 10 images", "images": int(len(cache["name"])),
           "images_without_face": int((cache["n_faces"] == 0).sum()), "protocols": {}}
    centred = with_centre_faces(cache)
    policies = [("main face (facelab's pick_main_face)", cache)]
    if centred is not None:
        policies.append(("centre face (LFW's labelled subject) in photos with several faces", centred))
    with tempfile.TemporaryDirectory() as tmp:
        for policy, data in policies:
            print(f"face choice: {policy}", flush=True)
            out["protocols"][policy] = {}
            protocols = ((1, "P1: 1 gallery image per person"), (5, "P2: up to 5 gallery images per person"))
            for n_gallery, label in protocols:
                rows = [run_model(m, data, impostors, n_gallery, ("max", "mean", "both") if n_gallery > 1 else ("max",),
                                  Path(tmp)) for m in models]
                out["protocols"][policy][label] = {"facelab": rows}
        out["fused_weight_sweep_p1_rank1"] = {
            "note": "diagnostic only: the weight is chosen on the test probes themselves (main face, max scoring)",
            "rank1_by_sface_weight": fused_weight_sweep(cache)}
        if flip_cached:
            out["fused_weight_sweep_p1_rank1"]["rank1_by_sface_weight_flip"] = fused_weight_sweep(cache, flip=True)
        sweep = out["fused_weight_sweep_p1_rank1"]["rank1_by_sface_weight"]
        print(f"  fused weight sweep, P1 rank-1 (diagnostic): {sweep}")
        out["p1_misses_sface"] = p1_misses(cache)
        if flip_cached:
            out["p1_misses_fused+flip"] = p1_misses(cache, "fused+flip")
        for n_gallery, label in ((1, "P1"), (5, "P2")):
            fr = face_recognition_approach(n_gallery, cache, impostors, centred)
            out.setdefault("face_recognition_comparison", {})[label] = fr
            if fr:
                print(f"  {label} same subset: {json.dumps({k: v for k, v in fr.items() if k != 'subset'})}")
        if args.images:
            out["through_images"] = through_images("sface", cache, None if args.images < 0 else args.images, Path(tmp))
            print(f"  facelab identify on image files (sface, P1): {out['through_images']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS}")
    if impostors is not None and args.write_open_set:
        write_open_set_thresholds(out)
        print(f"wrote {OPEN_SET}")


if __name__ == "__main__":
    main()
