"""LFW View 2 for every facelab embedder and the face_recognition package, from one set of cached embeddings.

    .venv/bin/python benchmarks/lfw_verify.py [--folds N] [--reference-folds N] [--no-thresholds]

Each image is detected once (YuNet through FaceAnalysis.detect_rgb) and embedded once per model (cached in
out/lfw_cache/, see lfw_cache.py); flip averaging and fusion are formed from the cached vectors with the
functions the embedders use (`embedders.flip_average`, `FusedEmbedder.combine`), so the figures are those of
`facelab verify --model X [--flip]`. Prints a table, writes benchmarks/results/lfw_verify.json and ROC plots
in out/lfw_verify/, and (full protocol only) every model's operating points in facelab/models/thresholds.json.

ms/image is the sum of the per-stage times measured while caching (load, detect + align + pose/quality, the
dlib roll check, each embedding pass) on a shared 2-core machine: indicative only; benchmarks/speed.py
measures speed side by side.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from lfw_cache import (
    CACHE,
    LFW,
    ROOT,
    detect_stage,
    dlib_mirror_stage,
    dlib_stage,
    face_recognition_stage,
    fill_missing,
    sface_stage,
    view1_pairs,
)

RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "out" / "lfw_verify"


def pipeline_landmarks(det: dict, detector) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks facelab's detector returns for each image: YuNet's, or the de-rotated re-detection where
    the detector's own rule (`YuNetDetector.use_refined`) picks it."""
    use = np.array([bool(f) and detector.use_refined(float(y), float(d))
                    for f, y, d in zip(det["found"], det["yunet_roll"], det["dlib_roll"])])
    lm = np.where(use[:, None, None], det["lm_ref"], det["lm_raw"])
    return fill_missing(lm, det["found"].astype(bool)), use


def sface_vectors(names: list[str], det: dict, detector) -> tuple[dict, np.ndarray]:
    """SFace rows on the pipeline's landmarks. Stage sface_raw holds YuNet's own landmarks for every image;
    images whose landmarks the roll refinement replaces come from stage sface_ref."""
    found = det["found"].astype(bool)
    raw = fill_missing(det["lm_raw"], found)
    lm, refined = pipeline_landmarks(det, detector)
    sf = sface_stage(names, dict(zip(names, raw)), "sface_raw")
    sf["rgb_raw"] = sf["rgb"].copy()
    moved = [n for n, r in zip(names, refined) if r]
    if moved:
        ref = sface_stage(moved, dict(zip(names, lm)), "sface_ref", bgr=False)
        index = {n: i for i, n in enumerate(names)}
        for j, n in enumerate(moved):
            for k in ("rgb", "rgb_mirror"):
                sf[k][index[n]] = ref[k][j]
    np.savez(CACHE / "sface_pipeline.npz", names=np.array(names), rgb=sf["rgb"], rgb_mirror=sf["rgb_mirror"])
    return sf, refined


def roll_refinement_ablation(names, det, pairs, tolerances=(4, 6, 8, 10)) -> dict:
    """SFace accuracy with YuNet's landmarks replaced by the de-rotated re-detection never, or when dlib's and
    YuNet's eye lines differ by >= t degrees (the detector's rule at other tolerances)."""
    from facelab.embedders import flip_average
    from facelab.evaluation.lfw import evaluate_scores

    found = det["found"].astype(bool)
    raw, ref = fill_missing(det["lm_raw"], found), fill_missing(det["lm_ref"], found)
    sf = sface_stage(names, dict(zip(names, raw)), "sface_raw")
    gap = np.abs(np.nan_to_num(det["dlib_roll"] - det["yunet_roll"]))
    moved = [n for n, g in zip(names, gap) if g >= min(tolerances)]
    re = sface_stage(moved, dict(zip(names, ref)), "sface_ref", bgr=False)
    index = {n: i for i, n in enumerate(names)}
    a = np.array([index[p.a] for p in pairs])
    b = np.array([index[p.b] for p in pairs])
    out = {}
    for t in (None, *tolerances):
        plain, mirror = sf["rgb"].copy(), sf["rgb_mirror"].copy()
        if t is not None:
            for j, n in enumerate(moved):
                if gap[index[n]] >= t:
                    plain[index[n]], mirror[index[n]] = re["rgb"][j], re["rgb_mirror"][j]
        row = {"refined_images": int(0 if t is None else (gap >= t).sum())}
        for label, v in (("sface", plain), ("sface+flip", flip_average(plain, mirror))):
            r = evaluate_scores(pairs, np.einsum("ij,ij->i", v[a], v[b]))
            row[label] = {"mean_accuracy": round(r["mean_accuracy"], 5), "std_accuracy": round(r["std_accuracy"], 5),
                          "auc": round(r["auc"], 5), "tar_at_far_1e-3": r["tar_at_far_1e-3"]}
        out["never" if t is None else f">= {t} degrees"] = row
    return out


def all_image_names(pairs) -> list[str]:
    """View 2's images of these pairs and View 1's (for fitting the fusion weight), sorted."""
    return sorted({p.a for p in pairs} | {p.b for p in pairs} | {n for a, b, _ in view1_pairs() for n in (a, b)})


def cached_sface() -> tuple[list[str], dict]:
    from facelab.evaluation.lfw import read_pairs
    from facelab.pipeline import get_detector

    names = all_image_names(read_pairs(LFW / "pairs.txt"))
    sf, _ = sface_vectors(names, detect_stage(names), get_detector())
    return names, sf


def reference_names(pairs, folds: int) -> list[str]:
    seen: dict[str, None] = {}
    for p in pairs:
        if p.fold < folds:
            seen.setdefault(p.a)
            seen.setdefault(p.b)
    return list(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, help="only the first N folds (quick check; thresholds not written)")
    ap.add_argument("--dlib-folds", type=int, default=10, help="run dlib (and fusion) on the first N folds")
    ap.add_argument("--dlib-flip-folds", type=int, default=10,
                    help="embed mirrored dlib chips (dlib_resnet+flip) on the first N folds")
    ap.add_argument("--reference-folds", type=int, default=10,
                    help="run the face_recognition pipeline on the first N folds (0: leave it out)")
    ap.add_argument("--no-thresholds", action="store_true", help="do not write facelab/models/thresholds.json")
    args = ap.parse_args()

    from facelab.embedders import FUSION_FILE, FusedEmbedder, flip_average
    from facelab.evaluation.calibrate import write_thresholds
    from facelab.evaluation.lfw import evaluate_scores, plot_roc, read_pairs
    from facelab.pipeline import get_detector

    all_pairs = read_pairs(LFW / "pairs.txt")
    folds = args.folds or 10
    pairs = [p for p in all_pairs if p.fold < folds]
    names = all_image_names(pairs)
    index = {n: i for i, n in enumerate(names)}
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    print(f"LFW View 2: {len(pairs)} pairs ({folds} folds); {len(names)} images incl. View 1's", flush=True)

    det = detect_stage(names)
    found = det["found"].astype(bool)
    sf, refined = sface_vectors(names, det, get_detector())
    landmarks = dict(zip(names, pipeline_landmarks(det, get_detector())[0]))  # what facelab's dlib branch sees
    # dlib's ResNet costs ~10x SFace here: it runs on the images of the first --dlib-folds folds (in fold order,
    # so that an interrupted run still covers whole folds), and every dlib figure says how many folds it used.
    dl_folds = min(args.dlib_folds, folds)
    dl_pairs = [p for p in pairs if p.fold < dl_folds]
    dl_names = list(dict.fromkeys(n for p in dl_pairs for n in (p.a, p.b)))
    dl = dlib_stage(dl_names, landmarks) if dl_names else {"dlib": [], "t_embed": []}
    d_vec = np.full((len(names), 128), np.nan, np.float32)
    t_dl = np.full(len(names), np.nan)
    for j, n in enumerate(dl_names):
        d_vec[index[n]], t_dl[index[n]] = dl["dlib"][j], dl["t_embed"][j]

    fl_folds = min(args.dlib_flip_folds, dl_folds)
    fl_pairs = [p for p in pairs if p.fold < fl_folds]
    fl_names = list(dict.fromkeys(n for p in fl_pairs for n in (p.a, p.b)))
    d_flip = np.full((len(names), 128), np.nan, np.float32)
    if fl_names:
        mirror = dlib_mirror_stage(fl_names, landmarks)["dlib_mirror"]
        for j, n in enumerate(fl_names):
            d_flip[index[n]] = flip_average(d_vec[index[n]], mirror[j])

    fused, fused_flip = FusedEmbedder(load_models=False), FusedEmbedder(flip=True, load_models=False)
    s_rgb, s_flip = sf["rgb"], flip_average(sf["rgb"], sf["rgb_mirror"])
    # per-image seconds: load, detect+align+pose/quality, the dlib roll check (+ re-detection where it fires)
    front = det["t_load"] + det["t_detect"] + det["t_refine"]
    t_sf = sf["t_embed"]
    configs = [
        ("sface", s_rgb, front + t_sf, pairs),
        ("sface/bgr", sf["bgr"], front + t_sf, pairs),
        ("sface+flip", s_flip, front + 2 * t_sf, pairs),
        ("dlib_resnet", d_vec, front + t_dl, dl_pairs),
        ("dlib_resnet+flip", d_flip, front + 2 * t_dl, fl_pairs),
        ("fused", fused.combine(s_rgb, d_vec), front + t_sf + t_dl, dl_pairs),
        ("fused+flip", fused_flip.combine(s_flip, d_vec), front + 2 * t_sf + t_dl, dl_pairs),
    ]

    def evaluate(name, vec, t, subset):
        a = np.array([index[p.a] for p in subset])
        b = np.array([index[p.b] for p in subset])
        used = np.unique(np.r_[a, b])
        scores = np.einsum("ij,ij->i", vec[a], vec[b])
        folds_used = len({p.fold for p in subset})
        if folds_used == 1:  # one fold leaves no other fold to choose the threshold on: split it in two
            from dataclasses import replace
            subset = [replace(p, fold=i % 2) for i, p in enumerate(subset)]
        figures = evaluate_scores(subset, scores)
        if folds_used == 1:
            figures["note"] = ("one fold only: accuracy is 2-fold cross-validated over alternate pairs of that "
                               "fold, not the 10-fold protocol")
        report = {"model": name, "folds": folds_used, "pairs": len(subset), "images": int(len(used)),
                  "no_face_found": int((~found[used]).sum()),
                  "ms_per_image": None if t is None else round(float(1000 * t[used].mean()), 2), **figures}
        if folds_used < folds:
            s = np.einsum("ij,ij->i", s_rgb[a], s_rgb[b])
            report["sface_on_same_folds"] = evaluate_scores(subset, s)["mean_accuracy"]
        return report, scores

    results, scores_by_model = {}, {}
    for name, vec, t, subset in configs:
        if not subset:
            continue
        results[name], scores_by_model[name] = evaluate(name, vec, t, subset)
    results["sface/bgr"]["note"] = ("BGR feed on YuNet's own landmarks for every image (the roll refinement's "
                                    "re-embedding is RGB only); compare with 'sface (YuNet landmarks only)'")
    results["sface (YuNet landmarks only)"], _ = evaluate("sface (YuNet landmarks only)", sf["rgb_raw"], None,
                                                          pairs)

    if args.reference_folds:
        ref_folds = min(args.reference_folds, folds)
        ref_pairs = [p for p in pairs if p.fold < ref_folds]
        ref_names = reference_names(ref_pairs, ref_folds)
        fr = face_recognition_stage(ref_names)
        ri = {n: i for i, n in enumerate(ref_names)}
        a = fr["vector"][[ri[p.a] for p in ref_pairs]]
        b = fr["vector"][[ri[p.b] for p in ref_pairs]]
        scores = -np.linalg.norm(a - b, axis=1)  # face_recognition compares by Euclidean distance
        t = fr["t_load"] + fr["t_detect"] + fr["t_embed"]
        report = {"model": "face_recognition", "folds": ref_folds, "pairs": len(ref_pairs),
                  "images": len(ref_names), "no_face_found": int((~fr["found"].astype(bool)).sum()),
                  "no_face_handling": "encoded at a fixed box where HOG finds faces in deep-funneled LFW",
                  "ms_per_image": round(float(1000 * t.mean()), 2), **evaluate_scores(ref_pairs, scores)}
        report["tolerance_0.6_accuracy"] = float(((-scores <= 0.6) == np.array([p.same for p in ref_pairs])).mean())
        if ref_folds < folds:
            report["sface_on_same_folds"] = evaluate_scores(ref_pairs, scores_by_model["sface"][:len(ref_pairs)]
                                                            )["mean_accuracy"]
        results["face_recognition"] = report
        scores_by_model["face_recognition"] = scores

    ablation = roll_refinement_ablation(names, det, pairs)
    print("roll refinement (SFace accuracy):", ", ".join(
        f"{k}: {100 * v['sface']['mean_accuracy']:.2f} / flip {100 * v['sface+flip']['mean_accuracy']:.2f}"
        for k, v in ablation.items()))

    # Fusion weight chosen by nested cross-validation inside View 2's training folds (a cross-check of the
    # View 1 fit in fusion.json).
    from fusion_weight import nested_cv_weight
    d_c = fused.centre(d_vec)
    a = np.array([index[p.a] for p in dl_pairs])
    b = np.array([index[p.b] for p in dl_pairs])
    for name, s_vec in (("fused", s_rgb), ("fused+flip", s_flip)) if dl_pairs else ():
        ss = np.einsum("ij,ij->i", s_vec[a], s_vec[b])
        sd = np.einsum("ij,ij->i", d_c[a], d_c[b])
        results[name]["nested_cv_weight"] = nested_cv_weight(dl_pairs, ss, sd)

    PLOTS.mkdir(parents=True, exist_ok=True)
    labels = np.array([p.same for p in pairs])
    header = f"{'model':32s} {'accuracy':>16s} {'AUC':>8s} {'TAR@1e-3':>9s} {'no face':>8s} {'ms/img':>7s}"
    print(header)
    for name, r in results.items():
        print(f"{name:32s} {100 * r['mean_accuracy']:7.2f} % +- {100 * r['std_accuracy']:4.2f} {r['auc']:8.5f} "
              f"{100 * r['tar_at_far_1e-3']:8.2f}% {r.get('no_face_found', ''):>8} {r.get('ms_per_image') or '':>7}"
              + (f"  ({r['folds']} folds; sface on them {100 * r['sface_on_same_folds']:.2f} %)"
                 if "sface_on_same_folds" in r else ""))
        if name in scores_by_model:
            tag = name.replace("/", "-").replace("+", "_")
            lab = labels[:len(scores_by_model[name])]
            plot_roc(scores_by_model[name], lab, PLOTS / f"roc_{tag}.png", r)
    for name in ("fused", "fused+flip") if dl_pairs else ():
        n = results[name]["nested_cv_weight"]
        print(f"{name}: weight chosen inside each split's training folds: {100 * n['mean_accuracy']:.2f} % +- "
              f"{100 * n['std_accuracy']:.2f} (weights {sorted(set(n['weights']))})")

    doc = {
        "protocol": "LFW View 2 (pairs.txt), 10 folds, threshold chosen on 9 and tested on the 10th"
        if folds == 10 else f"LFW View 2, first {folds} folds (quick check)",
        "images_version": "deep-funneled 250x250",
        "detector": "YuNet 2023mar int8 (facelab pipeline: native size, dlib roll check)",
        "roll_refined_images": int(refined[np.unique(np.r_[ia, ib])].sum()),
        "roll_refinement_ablation": ablation,
        "fusion": {"sface_weight": fused.weight, "sface_weight_flip": fused_flip.weight,
                   **(json.loads(FUSION_FILE.read_text()).get("fitted", {}) if FUSION_FILE.exists() else {})},
        "command": "benchmarks/lfw_verify.py" + (f" --folds {folds}" if folds < 10 else ""),
        "results": {k: {kk: vv for kk, vv in v.items() if kk not in ("fold_thresholds",)} for k, v in results.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("lfw_verify.json" if folds == 10 else f"lfw_verify_{folds}folds.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} and ROC plots in {PLOTS}")
    if folds == 10 and not args.no_thresholds:
        for name, r in results.items():
            if name in ("sface", "sface/bgr", "sface+flip", "dlib_resnet", "dlib_resnet+flip", "fused", "fused+flip"):
                write_thresholds(r, source=f"LFW View 2, {r['pairs']} pairs ({r['folds']} folds, deep-funneled)")
        print("wrote facelab/models/thresholds.json")


if __name__ == "__main__":
    main()
