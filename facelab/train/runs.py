"""The run folder: everything one training run leaves behind, readable without facelab.

    RUN/config.json            what was asked (dataset, architecture, hyper-parameters, seed, device)
    RUN/metrics.csv / .json    one row per epoch
    RUN/curves.png             loss and accuracy per epoch (needs matplotlib; skipped with a note otherwise)
    RUN/confusion.png          confusion matrix on the test split
    RUN/checkpoints/last.pt    full state to resume (model, optimiser, scaler, epoch, history, RNG)
    RUN/checkpoints/best.pt    the weights of the best validation epoch
    RUN/model.onnx             the export (checked against PyTorch), RUN/model_card.md
    RUN/summary.json           final figures
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from . import TrainingError


def default_run_dir(kind: str, dataset: Path) -> Path:
    return Path("runs") / f"{kind}-{Path(dataset).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}"


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.ckpt_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.ckpt_dir / "best.pt"

    @property
    def onnx(self) -> Path:
        return self.path / "model.onnx"

    def create(self, resume: bool) -> None:
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            if self.last.exists():
                raise TrainingError(f"run folder {self.path} already holds a run; pass --resume to continue it "
                                    f"or choose another --out")
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, default=_plain))
        os.replace(tmp, path)
        return path

    def read_json(self, name: str) -> Any:
        path = self.path / name
        if not path.is_file():
            raise TrainingError(f"{self.path}: no {name} (not a facelab run folder, or the run never started)")
        return json.loads(path.read_text())

    def config(self) -> dict[str, Any]:
        return self.read_json("config.json")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        self.write_json("metrics.json", history)
        if history:
            keys = list(dict.fromkeys(k for row in history for k in row))
            with open(self.path / "metrics.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(history)

    def plot_curves(self, history: list[dict[str, Any]]) -> Path | None:
        plt = _pyplot()
        if plt is None or not history:
            return None
        epochs = [r["epoch"] for r in history]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for key in ("train_loss", "val_loss"):
            if key in history[0]:
                ax1.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
        for key in ("train_acc", "val_acc", "lfw_acc"):
            if key in history[0]:
                ax2.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
        ax1.set_xlabel("epoch"), ax1.set_title("loss"), ax1.legend()
        ax2.set_xlabel("epoch"), ax2.set_title("accuracy"), ax2.legend(), ax2.set_ylim(0, 1)
        fig.tight_layout()
        out = self.path / "curves.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out


def plot_confusion(matrix, classes: list[str], path: Path, title: str) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(classes)
    size = min(4 + 0.25 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n)), ax.set_yticks(range(n))
    ax.set_xticklabels(classes, rotation=90, fontsize=max(4, 10 - n // 10))
    ax.set_yticklabels(classes, fontsize=max(4, 10 - n // 10))
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the GPU box has no matplotlib: figures are skipped, numbers are still written
        return None
    return plt


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
