"""Baseline: linear/MLP heads for eyewear and mask on the SFace embedding and region pixels (features.py output).

Kept to document the choice: a logistic regression on the SFace embedding reached only 70 % (3-class) on the
masks, which is why the shipped models are small CNNs on the aligned crop (train_crops.py). Its fold helpers
(`SPECS`, `folds_for`) are shared with pack_crops.py.

    python -m facelab.attributes.training.train_heads eyewear [--cache .cache/attributes] [--out facelab/models/weights]
    python -m facelab.attributes.training.train_heads mask

Eyewear: LFW images split by the person-disjoint `fold` of lfw_eyewear.csv; the web photos (sunglasses_web,
eyeglasses, no_glasses) get folds by a hash of their file name. Held-out figure = fold 0 (trained on 1-4), plus
the 5-fold cross-validated mean. Mask: crops grouped by source image (GroupKFold, 5 folds); held-out = fold 0.
The shipped head is then refitted on all the data. Results go to OUT/<name>_head.json (the model card's numbers).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np


# Regions of the 64x64 aligned crop (the ArcFace crop resized), as (x0, y0, x1, y1).
EYE_BAND = (4, 20, 60, 38)
LOWER_FACE = (8, 36, 56, 62)


def region_pixels(crop: np.ndarray, region, size=(14, 6)) -> np.ndarray:
    """A region resized to `size` in CIELAB (0..1 scaled): colour and darkness without the identity."""
    import cv2

    x0, y0, x1, y1 = region
    patch = cv2.resize(crop[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    return lab.reshape(-1)


def features_from(embedding: np.ndarray, crop: np.ndarray, feature: str) -> np.ndarray:
    parts = []
    for name in feature.split("+"):
        if name == "embedding":
            parts.append(np.asarray(embedding, np.float32))
        elif name == "eyes":
            parts.append(region_pixels(crop, EYE_BAND))
        elif name == "lower":
            parts.append(region_pixels(crop, LOWER_FACE, (12, 12)))
        else:
            raise ValueError(f"unknown head feature {name!r}")
    return np.concatenate(parts)


SPECS = {
    "eyewear": {"cache": "eyewear", "classes": ["none", "eyeglasses", "sunglasses"], "feature": "embedding+eyes"},
    "mask": {"cache": "masks", "classes": ["none", "mask", "incorrect"], "feature": "embedding+lower"},
}


def folds_for(name: str, data) -> np.ndarray:
    if name == "eyewear":
        folds = data["fold"].copy()
        web = folds < 0
        folds[web] = [int(hashlib.sha256(g.encode()).hexdigest(), 16) % 5 for g in data["group"][web]]
        return folds
    groups = data["group"]
    uniq = sorted(set(groups))
    fold_of = {g: int(hashlib.sha256(g.encode()).hexdigest(), 16) % 5 for g in uniq}
    return np.array([fold_of[g] for g in groups])


def fit(x, y, classes, hidden: int, seed: int = 0):
    """Standardise, then a class-balanced logistic regression (hidden=0) or a one-hidden-layer MLP."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    if hidden:
        # balance the classes by repeating the rare ones (MLPClassifier has no class_weight)
        counts = np.bincount(y, minlength=len(classes))
        reps = np.concatenate([np.repeat(np.where(y == k)[0], max(1, int(round(counts.max() / max(c, 1)))))
                               for k, c in enumerate(counts)])
        clf = MLPClassifier((hidden,), alpha=1e-2, max_iter=300, early_stopping=False, random_state=seed)
        clf.fit(z[reps], y[reps])
        layers = list(zip(clf.coefs_, clf.intercepts_))
    else:
        clf = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)
        clf.fit(z, y)
        layers = [(clf.coef_.T, clf.intercept_)]
    return {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32),
            "layers": [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers]}


def predict(head, x):
    h = (x - head["mean"]) / head["scale"]
    for i, (w, b) in enumerate(head["layers"]):
        h = h @ w + b
        if i < len(head["layers"]) - 1:
            h = np.maximum(h, 0)
    return h.argmax(1)


def report(y, pred, classes, mask=None):
    if mask is not None:
        y, pred = y[mask], pred[mask]
    out = {"n": int(len(y)), "accuracy": round(float((y == pred).mean()), 4), "recall": {}, "confusion": []}
    for k, c in enumerate(classes):
        sel = y == k
        out["recall"][c] = round(float((pred[sel] == k).mean()), 4) if sel.any() else None
    out["confusion"] = [[int(((y == i) & (pred == j)).sum()) for j in range(len(classes))] for i in range(len(classes))]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(SPECS))
    ap.add_argument("--cache", default=".cache/attributes")
    ap.add_argument("--out", default="facelab/models/weights")
    ap.add_argument("--hidden", type=int, default=64, help="MLP hidden units (0 = logistic regression)")
    ap.add_argument("--feature", default=None, help="override the feature spec, e.g. embedding")
    args = ap.parse_args(argv)
    spec = SPECS[args.name]
    feature = args.feature or spec["feature"]
    data = np.load(Path(args.cache) / f"{spec['cache']}.npz")
    x = np.stack([features_from(e, c, feature) for e, c in zip(data["embedding"], data["crop64"])])
    y = data["label"].astype(int)
    folds = folds_for(args.name, data)
    classes = spec["classes"]
    pred = np.zeros_like(y)
    for k in range(5):
        head = fit(x[folds != k], y[folds != k], classes, args.hidden)
        pred[folds == k] = predict(head, x[folds == k])
    result = {"feature": feature, "hidden": args.hidden, "n": int(len(y)),
              "held_out_fold0": report(y, pred, classes, folds == 0), "cv5_out_of_fold": report(y, pred, classes)}
    if args.name == "eyewear":
        lfw = data["source"] == "lfw"
        result["held_out_fold0_lfw_only"] = report(y, pred, classes, (folds == 0) & lfw)
        result["cv5_lfw_only"] = report(y, pred, classes, lfw)
    else:
        two = np.minimum(y, 1), np.minimum(pred, 1)  # none vs any mask
        result["held_out_fold0_mask_vs_none"] = report(two[0], two[1], ["none", "mask"], folds == 0)
        result["cv5_mask_vs_none"] = report(two[0], two[1], ["none", "mask"])
        big = data["size"] >= 24
        result["cv5_faces_24px_plus"] = report(y, pred, classes, big)
    print(json.dumps(result, indent=1))
    head = fit(x, y, classes, args.hidden)
    out = Path(args.out)
    arrays = {"classes": np.array(classes), "feature": np.array(feature), "mean": head["mean"],
              "scale": head["scale"]}
    for i, (w, b) in enumerate(head["layers"]):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    np.savez_compressed(out / f"{args.name}_head.npz", **arrays)
    cards = out.parent / "cards"
    if cards.is_dir():
        (cards / f"{args.name}_head.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
