"""LFW View 2: the standard 10-fold verification protocol, run through facelab's full pipeline.

pairs.txt holds 10 folds of 300 matched + 300 mismatched pairs. For each fold, the threshold that maximises
accuracy on the other 9 folds is applied to it; the mean and standard deviation of the 10 fold accuracies are
the headline figures. AUC and TAR at FAR 1e-3 are computed over all 6,000 pairs.

Images where no face is found are not dropped (that would flatter the result): they are aligned with the
median landmark positions of the images where a face was found (LFW photos are centred on the face, so this
is where the face is), and counted and listed in the report.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FacelabError


@dataclass
class Pair:
    a: str  # "Name/Name_0001.jpg"
    b: str
    same: bool
    fold: int


def read_pairs(path: Path) -> list[Pair]:
    lines = path.read_text().split("\n")
    folds, per_fold = (int(x) for x in lines[0].split())
    pairs = []
    for i, line in enumerate(x for x in lines[1:] if x.strip()):
        parts = line.split("\t")
        if len(parts) == 3:
            name, n1, n2 = parts
            a, b, same = (name, int(n1)), (name, int(n2)), True
        else:
            a, b, same = (parts[0], int(parts[1])), (parts[2], int(parts[3])), False
        pairs.append(Pair(f"{a[0]}/{a[0]}_{a[1]:04d}.jpg", f"{b[0]}/{b[0]}_{b[1]:04d}.jpg", same,
                          i // (2 * per_fold)))
    if len(pairs) != folds * 2 * per_fold:
        raise FacelabError(f"{path}: expected {folds * 2 * per_fold} pairs, found {len(pairs)}")
    return pairs


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (midpoint between adjacent scores) with the highest accuracy on these pairs."""
    order = np.argsort(scores)
    s, y = scores[order], labels[order].astype(np.int64)
    # Predict "same" for scores >= t. For t just above s[i]: correct = negatives at or below i + positives above.
    neg_below = np.cumsum(1 - y)
    pos_above = y.sum() - np.cumsum(y)
    correct = neg_below + pos_above
    i = int(np.argmax(correct))
    if correct[i] < y.sum():  # accepting everything is better
        return float(s[0] - 1e-6)
    return float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i] + 1e-6)


def far_table(scores: np.ndarray, labels: np.ndarray, fars=(0.1, 0.05, 0.01, 0.005, 0.001)) -> list[dict]:
    """For each target FAR, the lowest threshold whose measured FAR on these impostor pairs is <= the target."""
    impostor = np.sort(scores[~labels])[::-1]
    genuine = scores[labels]
    rows = []
    for far in fars:
        k = int(np.floor(far * len(impostor)))  # at most k impostors accepted
        thr = float(impostor[k]) + 1e-6 if k < len(impostor) else float(impostor[-1])
        rows.append({"far": far, "threshold": round(thr, 5),
                     "measured_far": round(float((impostor >= thr).mean()), 5),
                     "tar": round(float((genuine >= thr).mean()), 5)})
    return rows


def evaluate_scores(pairs: list[Pair], scores: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accs, thresholds = [], []
    for k in sorted(set(folds)):
        train, test = folds != k, folds == k
        thr = best_threshold(scores[train], labels[train])
        accs.append(float(((scores[test] >= thr) == labels[test]).mean()))
        thresholds.append(thr)
    table = far_table(scores, labels)
    overall = best_threshold(scores, labels)
    impostor = scores[~labels]
    return {
        "pairs": len(pairs),
        "mean_accuracy": float(np.mean(accs)),
        "std_accuracy": float(np.std(accs)),
        "fold_accuracies": accs,
        "fold_thresholds": thresholds,
        "auc": float(roc_auc_score(labels, scores)),
        "tar_at_far_1e-3": next(r["tar"] for r in table if r["far"] == 0.001),
        "best_threshold": overall,
        "best_threshold_far": float((impostor >= overall).mean()),
        "far_table": table,
    }


def embed_images(root: Path, names: Iterable[str], analysis, progress: Callable | None = None) -> dict:
    """Embed the main face of each image; returns vectors, the no-face list and per-stage timings."""
    from ..align import align_face
    from ..faces import Face
    from ..images import load_image
    from ..pipeline import pick_main_face

    def embedding(rgb: np.ndarray, face: Face) -> np.ndarray:
        analysis.embed_faces(rgb, [face])
        if face.embedding is None:
            raise FacelabError(f"the {analysis.embedder_name} embedder returned no vector")
        return face.embedding

    names = list(names)
    vectors: dict[str, np.ndarray] = {}
    missing: list[str] = []
    landmark_sum, landmark_n = np.zeros((5, 2)), 0
    t_load = t_detect = t_embed = 0.0
    pending = []  # (name, rgb) with no face: embedded after the median landmarks are known
    for name in (progress(names) if progress else names):
        t0 = time.perf_counter()
        rgb = load_image(root / "images" / name)
        t1 = time.perf_counter()
        faces = analysis.detect_rgb(rgb)
        t2 = time.perf_counter()
        if not faces:
            missing.append(name)
            pending.append((name, rgb))
            t_load += t1 - t0
            t_detect += t2 - t1
            continue
        face = pick_main_face(faces, rgb.shape)
        vectors[name] = embedding(rgb, face)
        t3 = time.perf_counter()
        landmark_sum += face.landmarks
        landmark_n += 1
        t_load += t1 - t0
        t_detect += t2 - t1
        t_embed += t3 - t2
    mean_landmarks = landmark_sum / max(landmark_n, 1)
    for name, rgb in pending:
        face = Face(box=(0, 0, rgb.shape[1], rgb.shape[0]), score=0.0, landmarks=mean_landmarks)
        face.aligned = align_face(rgb, mean_landmarks)
        vectors[name] = embedding(rgb, face)
    n = max(len(names), 1)
    return {"vectors": vectors, "missing": missing,
            "ms_per_image": {"load": 1000 * t_load / n, "detect_align": 1000 * t_detect / n,
                             "embed": 1000 * t_embed / n, "total": 1000 * (t_load + t_detect + t_embed) / n}}


def run_lfw(root: Path, model: str = "sface", flip: bool = False, detector: str = "yunet",
            folds: int | None = None, out_dir: Path | None = None, progress: Callable | None = None) -> dict:
    from ..pipeline import FaceAnalysis

    root = Path(root)
    pairs_file = root / "pairs.txt"
    if not pairs_file.exists():
        raise FacelabError(f"{pairs_file}: not found (expected an LFW folder with pairs.txt and images/)")
    pairs = read_pairs(pairs_file)
    if folds is not None:
        pairs = [p for p in pairs if p.fold < folds]
    analysis = FaceAnalysis(detector=detector, embedder=model, flip=flip)
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    start = time.perf_counter()
    emb = embed_images(root, names, analysis, progress)
    elapsed = time.perf_counter() - start
    scores = np.array([float(emb["vectors"][p.a] @ emb["vectors"][p.b]) for p in pairs])
    report = {
        "protocol": "LFW View 2 (pairs.txt), 10-fold, threshold chosen on 9 folds" if folds is None
        else f"LFW View 2, first {folds} folds only (smoke run)",
        "images_version": "deep-funneled 250x250 (the original LFW JPEGs are not available here)",
        "model": analysis.embedder.name,
        "detector": detector,
        "images": len(names),
        "no_face_found": len(emb["missing"]),
        "no_face_images": emb["missing"],
        "no_face_handling": "aligned with the median landmarks of the detected images (not dropped)",
        "seconds": elapsed,
        "ms_per_image": emb["ms_per_image"],
        **evaluate_scores(pairs, scores),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        tag = analysis.embedder.name.replace("/", "-").replace("+", "_")
        (out_dir / f"lfw_{tag}.json").write_text(json.dumps(report, indent=2))
        np.savez_compressed(out_dir / f"lfw_{tag}_scores.npz", scores=scores,
                            labels=np.array([p.same for p in pairs]), folds=np.array([p.fold for p in pairs]))
        plot_roc(scores, np.array([p.same for p in pairs]), out_dir / f"lfw_{tag}_roc.png", report)
        report["files"] = [str(out_dir / f"lfw_{tag}{s}") for s in (".json", "_roc.png", "_scores.npz")]
    return report


def plot_roc(scores: np.ndarray, labels: np.ndarray, path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    ax.plot(np.maximum(fpr, 1e-4), tpr,
            label=f"{report['model']}: {100 * report['mean_accuracy']:.2f}% (AUC {report['auc']:.4f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0.8, 1.0)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW View 2 ROC (deep-funneled images)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
