"""Choosing the fused embedder's SFace weight on labelled pairs: shared by fit_fusion.py (which fits
facelab/models/fusion.json on LFW View 1) and lfw_verify.py (which cross-checks the choice inside View 2's
training folds). A module of its own so that neither script imports the other's main."""
from __future__ import annotations

import numpy as np

WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.005), 3)  # fine: plain dlib cosines spread ~5x narrower


def fit_weight(s_sface: np.ndarray, s_dlib: np.ndarray, labels: np.ndarray) -> tuple[float, list]:
    from facelab.evaluation.lfw import best_threshold

    curve = []
    for w in WEIGHTS:
        s = w * s_sface + (1 - w) * s_dlib
        t = best_threshold(s, labels)
        curve.append((float(w), float(((s >= t) == labels).mean())))
    best = max(acc for _, acc in curve)
    # Several weights tie on ~2,000 pairs: take the middle of the best plateau.
    tied = [w for w, acc in curve if acc == best]
    return float(tied[len(tied) // 2]), curve


def nested_cv_weight(pairs, s_sface: np.ndarray, s_dlib: np.ndarray) -> dict:
    """View 2 with the fusion weight chosen, like the threshold, on the 9 training folds of each split."""
    from facelab.evaluation.lfw import best_threshold

    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accs, chosen = [], []
    for k in sorted(set(folds)):
        tr, te = folds != k, folds == k
        w, _ = fit_weight(s_sface[tr], s_dlib[tr], labels[tr])
        s = w * s_sface + (1 - w) * s_dlib
        t = best_threshold(s[tr], labels[tr])
        accs.append(float(((s[te] >= t) == labels[te]).mean()))
        chosen.append(w)
    return {"mean_accuracy": float(np.mean(accs)), "std_accuracy": float(np.std(accs)),
            "fold_accuracies": accs, "weights": chosen}
