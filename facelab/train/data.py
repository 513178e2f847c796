"""Read a dataset folder written by `facelab dataset build` and check it can train what is asked."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import DatasetError
from .dataset import FORMAT


@dataclass
class FaceDataset:
    root: Path
    crop_size: int
    rows: list[dict[str, Any]]   # manifest rows (file, class, split, ...)

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def classes(self) -> list[str]:
        return sorted({r["class"] for r in self.rows})

    def split(self, name: str) -> list[dict[str, Any]]:
        if name == "all":
            return list(self.rows)
        return [r for r in self.rows if r["split"] == name]

    def counts(self, split: str) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for r in self.split(split):
            out[r["class"]] += 1
        return out

    def load_crops(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """(N, S, S, 3) RGB uint8. A crop that cannot be read or has the wrong size is a DatasetError."""
        from ..errors import ImageError
        from ..images import load_image

        out = np.empty((len(rows), self.crop_size, self.crop_size, 3), np.uint8)
        for i, r in enumerate(rows):
            try:
                img = load_image(self.root / r["file"])
            except ImageError as exc:
                raise DatasetError(f"dataset {self.root}: crop unreadable ({exc}); rebuild the dataset") from None
            if img.shape[:2] != (self.crop_size, self.crop_size):
                raise DatasetError(f"dataset {self.root}: {r['file']} is {img.shape[1]}x{img.shape[0]}, "
                                   f"expected {self.crop_size}x{self.crop_size} (mixed crop sizes)")
            out[i] = img
        return out


def open_dataset(path: str | Path) -> FaceDataset:
    root = Path(path)
    meta_file, manifest = root / "dataset.json", root / "manifest.csv"
    if not meta_file.is_file() or not manifest.is_file():
        raise DatasetError(f"{root}: not a facelab dataset (no dataset.json / manifest.csv); "
                           f"build one with `facelab dataset build RAW {root}`")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{root}: dataset format {meta.get('format')!r}, expected {FORMAT!r}")
    if not meta.get("complete"):
        raise DatasetError(f"{root}: the build did not finish; run `facelab dataset build` again to resume it")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return FaceDataset(root=root, crop_size=int(meta["crop_size"]), rows=rows)


def check_trainable(ds: FaceDataset, min_train: int = 2, need_val: bool = True) -> list[str]:
    """Refuse datasets that would train a meaningless model; return warnings for weak but usable ones."""
    classes = ds.classes
    if not classes:
        raise DatasetError(f"dataset {ds.root} is empty: no photo passed the filters (see its report.json)")
    if len(classes) == 1:
        raise DatasetError(f"dataset {ds.root} has one class ({classes[0]}): a classifier needs at least two")
    train = ds.counts("train")
    few = {c: n for c, n in train.items() if n < min_train}
    if few:
        listed = ", ".join(f"{c} ({n})" for c, n in sorted(few.items())[:5])
        raise DatasetError(f"classes with fewer than {min_train} training photos: {listed}"
                           f"{' ...' if len(few) > 5 else ''}; add photos or drop those class folders")
    warnings = []
    if need_val and not ds.split("val"):
        warnings.append("no validation split: early stopping and the best checkpoint use the training loss")
    top, bottom = max(train.values()), min(train.values())
    if top > 5 * bottom:
        warnings.append(f"classes are imbalanced ({bottom} to {top} training photos): class weights are used")
    return warnings


def check_crop_size(ds: FaceDataset, expected: int, what: str) -> None:
    if ds.crop_size != expected:
        raise DatasetError(f"dataset {ds.root} has {ds.crop_size}x{ds.crop_size} crops but {what} expects "
                           f"{expected}x{expected}; rebuild it with `facelab dataset build --size {expected}`")


def labels_of(rows: list[dict[str, Any]], classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({r["class"] for r in rows} - set(index))
    if unknown:
        raise DatasetError(f"classes not known to the model: {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''} (model classes: {', '.join(classes[:8])}...)")
    return np.array([index[r["class"]] for r in rows], dtype=np.int64)
