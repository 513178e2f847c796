"""Fit the fused embedder's parameters (facelab/models/fusion.json).

    .venv/bin/python benchmarks/fit_fusion.py [--utk N] [--pairs view1|view2]

- sface_weight, sface_weight_flip: the weight w of SFace's cosine (dlib gets 1 - w), without and with SFace's
  flip averaging, with the best accuracy on labelled pairs: LFW View 1 (pairsDevTrain + pairsDevTest, LFW's
  development pairs; those whose two images are in this copy and have cached dlib vectors), or with
  --pairs view2 the View 2 pairs that have dlib vectors. The View 2 accuracy in benchmarks/results/lfw_verify.json
  never uses View 2 to choose w (and also reports w chosen inside each split's 9 training folds,
  `nested_cv_weight`).
- dlib_mean: two forms of the dlib half are compared on the same pairs: plain unit dlib vectors, and unit
  vectors centred on the mean descriptor of N UTKFace faces (../shared/data/utkface, detected by facelab's YuNet).
  The mean is stored only when centring has the better best accuracy (without flip).
Uses the embeddings cached by benchmarks/lfw_verify.py (out/lfw_cache/).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from fusion_weight import WEIGHTS, fit_weight
from lfw_cache import LFW, ROOT, dlib_stage, run_stage, view1_pairs
from lfw_verify import cached_sface

UTK = ROOT.parent / "shared" / "data" / "utkface"


def utk_dlib_mean(n: int) -> tuple[np.ndarray, int]:
    from facelab.images import load_image
    from facelab.pipeline import FaceAnalysis, pick_main_face

    files = sorted(str(p) for p in (UTK / "images").glob("*.jpg"))
    files = files[:: max(1, len(files) // n)][:n]
    analysis = FaceAnalysis()

    def box(path: str) -> dict:
        rgb = load_image(path)
        faces = analysis.detect_rgb(rgb)
        main = pick_main_face(faces, rgb.shape) if faces else None
        return {"found": bool(faces),
                "landmarks": np.asarray(main.landmarks if main else np.full((5, 2), np.nan), dtype=np.float64)}

    det = run_stage("utk_det_lm", files, box)
    kept = [f for f, ok in zip(files, det["found"]) if ok]
    landmarks = {f: lm for f, lm, ok in zip(files, det["landmarks"], det["found"]) if ok}
    vecs = dlib_stage(kept, landmarks, tag="utk_dlib_v1", root=None)["dlib"]
    return vecs.mean(0), len(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utk", type=int, default=200, help="UTKFace images for the dlib mean")
    ap.add_argument("--pairs", choices=["view1", "view2"], default="view1",
                    help="pairs the weight is fitted on (view2: only where View 1's images lack dlib vectors)")
    args = ap.parse_args()

    from facelab.embedders import FUSION_FILE, _unit

    mean, n_utk = utk_dlib_mean(args.utk)
    _, sf = cached_sface()
    dl = dict(np.load(ROOT / "out" / "lfw_cache" / "dlib_v1.npz"))
    idx_s = {n: i for i, n in enumerate(sf["names"])}
    idx_d = {n: i for i, n in enumerate(dl["names"])}
    if args.pairs == "view1":
        pairs = [(a, b, same) for a, b, same in view1_pairs() if a in idx_d and b in idx_d]
        source = (f"LFW View 1 ({len(pairs)} pairs of pairsDevTrain + pairsDevTest whose images are present "
                  "and embedded); View 2 not used")
    else:
        from facelab.evaluation.lfw import read_pairs
        v2 = [p for p in read_pairs(LFW / "pairs.txt") if p.a in idx_d and p.b in idx_d]
        pairs = [(p.a, p.b, p.same) for p in v2]
        source = (f"LFW View 2 pairs with dlib vectors ({len(pairs)} pairs, folds "
                  f"{sorted({p.fold + 1 for p in v2})}): the pairs thresholds are calibrated on; the accuracy "
                  "reported in benchmarks/results/lfw_verify.json chooses the weight inside each split's 9 "
                  "training folds instead (nested_cv_weight)")
    labels = np.array([s for _, _, s in pairs])

    def cos(vecs, idx):
        a = vecs[[idx[a] for a, _, _ in pairs]]
        b = vecs[[idx[b] for _, b, _ in pairs]]
        return np.einsum("ij,ij->i", a, b)

    from facelab.embedders import flip_average

    s_plain = cos(sf["rgb"], idx_s)
    s_flip = cos(flip_average(sf["rgb"], sf["rgb_mirror"]), idx_s)
    forms = {"plain": None, "centred": mean}
    fits = {}
    for form, m in forms.items():
        d = _unit(dl["dlib"]) if m is None else _unit(_unit(dl["dlib"]) - m)
        s_dlib = cos(d, idx_d)
        fits[form] = {variant: fit_weight(s, s_dlib, labels) for variant, s in (("plain", s_plain),
                                                                                ("flip", s_flip))}
    best_of = {form: {v: max(a for _, a in curve) for v, (_, curve) in f.items()} for form, f in fits.items()}
    form = max(fits, key=lambda f: best_of[f]["plain"])
    (w, curve), (w_flip, curve_flip) = fits[form]["plain"], fits[form]["flip"]
    params = {
        "sface_weight": w,
        "sface_weight_flip": w_flip,
        **({"dlib_mean": [round(float(x), 6) for x in mean]} if form == "centred" else {}),
        "fitted": {
            "dlib_form": f"{form}: best accuracy on {source} without flip / with flip: "
                         + "; ".join(f"{f} {b['plain']:.5f} / {b['flip']:.5f}" for f, b in best_of.items())
                         + f" (the centring mean: mean unit dlib descriptor of {n_utk} UTKFace faces, "
                           "../shared/data/utkface, dlib shape in the HOG-like box from YuNet's landmarks)",
            "sface_weight": f"best accuracy (threshold chosen on the same pairs) on {source}; grid step "
                            f"{WEIGHTS[1] - WEIGHTS[0]:g}, middle of the best plateau",
            "accuracy_at_weight": dict((f"{a:.3f}", round(b, 5)) for a, b in curve),
            "accuracy_at_weight_flip": dict((f"{a:.3f}", round(b, 5)) for a, b in curve_flip),
            "command": f"benchmarks/fit_fusion.py --utk {args.utk} --pairs {args.pairs}",
        },
    }
    FUSION_FILE.write_text(json.dumps(params, indent=1) + "\n")
    print(f"dlib {form}; sface_weight {w} (accuracy {dict(curve)[w]:.4f}; SFace alone {dict(curve)[1.0]:.4f}, "
          f"dlib alone {dict(curve)[0.0]:.4f}), with flip {w_flip} ({dict(curve_flip)[w_flip]:.4f}); "
          f"best per form {best_of}; wrote {FUSION_FILE}")

if __name__ == "__main__":
    main()
