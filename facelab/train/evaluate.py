"""`facelab eval classifier RUN DATASET`: accuracy, top-5, per-class precision/recall, confusion matrix, and a
contact sheet of the worst-classified crops (the fastest way to find wrong labels)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import DatasetError


def evaluate_arrays(probs: np.ndarray, y: np.ndarray, classes: list[str], files: list[str]) -> dict[str, Any]:
    n, k = probs.shape
    pred = probs.argmax(1)
    top5 = np.argsort(-probs, axis=1)[:, :min(5, k)]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = {}
    recalls = []
    for i, c in enumerate(classes):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        if recall is not None:
            recalls.append(recall)
        f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
        per_class[c] = {"precision": _r(precision), "recall": _r(recall), "f1": _r(f1), "support": int(support)}
    true_prob = probs[np.arange(n), y]
    worst = np.argsort(true_prob)[:48]
    return {"n": int(n), "accuracy": _r((pred == y).mean()), "top5": _r((top5 == y[:, None]).any(1).mean()),
            "balanced_accuracy": _r(np.mean(recalls)), "per_class": per_class, "confusion": confusion.tolist(),
            "worst": [{"file": files[i], "true": classes[y[i]], "predicted": classes[pred[i]],
                       "p_true": _r(true_prob[i]), "p_predicted": _r(probs[i, pred[i]])}
                      for i in worst if pred[i] != y[i]]}


def _r(v):
    return None if v is None else round(float(v), 4)


def evaluate_classifier(run_or_model: str | Path, dataset: str | Path, split: str | None = None,
                        out: str | Path | None = None, sheet: int = 24, progress=None) -> dict[str, Any]:
    from .data import labels_of, open_dataset
    from .predict import load_classifier
    from .runs import plot_confusion

    model = load_classifier(run_or_model)
    ds = open_dataset(dataset)
    if ds.crop_size != model.crop_size:
        raise DatasetError(f"dataset {ds.root} has {ds.crop_size}x{ds.crop_size} crops, the model takes "
                           f"{model.crop_size}x{model.crop_size}; rebuild it with --size {model.crop_size}")
    split = split or ("test" if ds.split("test") else "all")
    rows = ds.split(split)
    if not rows:
        raise DatasetError(f"dataset {ds.root} has no {split!r} photos")
    y = labels_of(rows, model.labels)
    if model.features:  # the same cached features the head was trained on
        from .frozen_features import dataset_features

        probs = model.run(dataset_features(ds, rows, model.features, progress))
    else:
        probs = np.concatenate([model.run(ds.load_crops(rows[i:i + 256])) for i in range(0, len(rows), 256)])
    report = evaluate_arrays(probs, y, model.labels, [r["file"] for r in rows])
    report.update(model=model.name, dataset=str(ds.root), split=split, warnings=[])
    majority = float(np.bincount(y).max() / len(y))
    if report["accuracy"] <= majority + 0.02:
        report["warnings"].append(f"accuracy {100 * report['accuracy']:.1f} % is no better than always answering "
                                  f"the commonest class ({100 * majority:.1f} %): the model does not work on this data")
    out_dir = (Path(out) if out
               else (Path(run_or_model) if Path(run_or_model).is_dir() else Path("out")) / f"eval-{ds.name}-{split}")
    out_dir.mkdir(parents=True, exist_ok=True)
    import json

    (out_dir / "eval.json").write_text(json.dumps(report, indent=2))
    files = [str(out_dir / "eval.json")]
    present = [i for i, c in enumerate(model.labels) if report["per_class"][c]["support"]]
    cm = report["confusion"]
    if len(present) < len(model.labels):  # classes absent from this split: leave their empty rows out
        cm = np.asarray(cm)[np.ix_(present, present)]
    if plot_confusion(cm, [model.labels[i] for i in present], out_dir / "confusion.png",
                      f"{ds.name} ({split}): accuracy {100 * report['accuracy']:.1f} %"):
        files.append(str(out_dir / "confusion.png"))
    if report["worst"]:
        contact_sheet(ds.root, report["worst"][:sheet], out_dir / "worst.png")
        files.append(str(out_dir / "worst.png"))
    report["files"] = files
    return report


def contact_sheet(root: Path, items: list[dict[str, Any]], path: Path, cols: int = 6, tile: int = 112) -> Path:
    """Crops in a grid, each captioned 'true -> predicted (p)'."""
    from PIL import Image, ImageDraw

    rows = (len(items) + cols - 1) // cols
    cap = 26
    sheet = Image.new("RGB", (cols * tile, rows * (tile + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, item in enumerate(items):
        x, y = (i % cols) * tile, (i // cols) * (tile + cap)
        try:
            img = Image.open(root / item["file"]).convert("RGB").resize((tile, tile))
        except OSError:
            continue
        sheet.paste(img, (x, y))
        draw.text((x + 2, y + tile + 1), f"{item['true'][:16]}", fill=(0, 110, 0))
        draw.text((x + 2, y + tile + 13), f"-> {item['predicted'][:12]} {item['p_predicted']:.2f}", fill=(180, 0, 0))
    sheet.save(path)
    return path
