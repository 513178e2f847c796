"""Calibrate the age output of age_v1 and measure gender_v1, out-of-fold (never on the images fitted on).

    python -m training.attributes.train_age_gender [--cache out/attributes-cache] [--out facelab/models/weights]

Needs `extract_faces.py utkface --age-gender` (and `extract_faces.py lfw_gender --age-gender` for the LFW gender
figure). Age: ridge regression on age_gender.age_features of the face's probabilities (raw expected age, spread,
5-year pooled probabilities; the face+mirror average is scored too), 5 image-disjoint folds on the UTKFace subset
(UTKFace has no person ids; each image is its own group); MAE reported out-of-fold, overall and per age band; then
refitted on all of it and saved as age_calibration.npz. Gender: gender_v1 accuracy, plain, image+mirror averaged,
and as shipped (3 framings + mirrors; no fitting).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from facelab.attributes.age_gender import age_features, raw_age

from ..paths import ATTRIBUTE_CACHE, WEIGHTS

BANDS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 120))


def fold_of(groups) -> np.ndarray:
    return np.array([int(hashlib.sha256(str(g).encode()).hexdigest(), 16) % 5 for g in groups])


def band_mae(age, pred):
    out = {"all": {"n": int(len(age)), "mae": round(float(np.abs(pred - age).mean()), 2)}}
    for lo, hi in BANDS:
        sel = (age >= lo) & (age <= hi)
        out[f"{lo}-{hi}"] = {"n": int(sel.sum()), "mae": round(float(np.abs(pred[sel] - age[sel]).mean()), 2),
                             "bias": round(float((pred[sel] - age[sel]).mean()), 2)}
    return out


def ridge(x, y, alpha):
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return mean, scale, coef, float(y.mean())


def gender_accuracy(d, age=None):
    y = d["gender"].astype(int)
    plain = d["gender_probs"][:, 1] >= 0.5
    avg = (d["gender_probs"][:, 1] + d["gender_probs_mirrored"][:, 1]) / 2 >= 0.5
    out = {"n": int(len(y)), "gender_v1": round(float((plain == y).mean()), 4),
           "gender_v1_mirror_average": round(float((avg == y).mean()), 4)}
    shipped = d["gender_probs_shipped"][:, 1] >= 0.5 if "gender_probs_shipped" in d else None
    if shipped is not None:  # 3 framings + mirrors, as the analyser reads it
        out["shipped_3_paddings_and_mirrors"] = round(float((shipped == y).mean()), 4)
    if age is not None:
        for lo, hi in BANDS:
            sel = (age >= lo) & (age <= hi)
            out[f"mirror_average_{lo}-{hi}"] = round(float((avg[sel] == y[sel]).mean()), 4)
            if shipped is not None:
                out[f"shipped_{lo}-{hi}"] = round(float((shipped[sel] == y[sel]).mean()), 4)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=str(ATTRIBUTE_CACHE), help="extract_faces.py's output (default: %(default)s)")
    ap.add_argument("--out", default=str(WEIGHTS), help="default: %(default)s")
    ap.add_argument("--alpha", type=float, default=10.0)
    args = ap.parse_args(argv)
    cache, out = Path(args.cache), Path(args.out)
    utk = np.load(cache / "utkface.npz")
    age = utk["age"].astype(float)
    mirror = (utk["age_probs"] + utk["age_probs_mirrored"]) / 2
    folds = fold_of(utk["group"])
    results = {"age": {"age_v1_raw": band_mae(age, raw_age(utk["age_probs"])),
                       "age_v1_mirror_average": band_mae(age, raw_age(mirror))}}

    def out_of_fold(probs):
        x, pred = age_features(probs), np.zeros_like(age)
        for k in range(5):
            tr = folds != k
            mean, scale, coef, icpt = ridge(x[tr], age[tr], args.alpha)
            pred[~tr] = np.clip(((x[~tr] - mean) / scale) @ coef + icpt, 0, 100)
        return band_mae(age, pred)

    # shipped: the face alone (a mirror pass of age_v1 doubles the attribute's cost); mirror kept as the comparison
    results["age"]["calibrated_out_of_fold"] = out_of_fold(utk["age_probs"])
    results["age"]["calibrated_mirror_average_out_of_fold"] = out_of_fold(mirror)
    x_age = age_features(utk["age_probs"])
    mean, scale, coef, icpt = ridge(x_age, age, args.alpha)
    np.savez(out / "age_calibration.npz", mean=mean.astype(np.float32), scale=scale.astype(np.float32),
             coef=coef.astype(np.float32), intercept=np.float32(icpt))
    results["gender"] = {"utkface": gender_accuracy(utk, age)}
    if (cache / "lfw_gender.npz").is_file():
        results["gender"]["lfw"] = gender_accuracy(np.load(cache / "lfw_gender.npz"))
    print(json.dumps(results, indent=1))
    cards = out.parent / "cards"
    if cards.is_dir():
        (cards / "age_gender.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
