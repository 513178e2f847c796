"""1:1 decisions: a similarity, a threshold, and the false-accept rate that threshold was chosen for.

Thresholds are data (`models/thresholds.json`, written by `benchmarks/lfw_verify.py`): for each embedder, the
cosine at which a given share of LFW View 2 impostor pairs is accepted. The default operating point is the
threshold of best 10-fold accuracy on LFW; `far=` picks a stricter or looser point from the table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

THRESHOLDS_FILE = Path(__file__).parent / "models" / "thresholds.json"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    if not THRESHOLDS_FILE.exists():
        return {}
    return json.loads(THRESHOLDS_FILE.read_text())


@dataclass
class OperatingPoint:
    threshold: float
    far: float | None  # false-accept rate measured on LFW at this threshold (None: user-given threshold)
    source: str        # where the numbers come from

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": round(self.threshold, 4), "far": self.far, "source": self.source}


def operating_point(model: str, threshold: float | None = None, far: float | None = None) -> OperatingPoint:
    """The threshold to use for `model`: the given one, the one for a target FAR, or the model's default."""
    if threshold is not None:
        return OperatingPoint(float(threshold), None, "given")
    entry = _table().get(model) or _registered_point(model)
    if entry is None:
        raise ModelError(f"no calibrated threshold for model {model!r}; pass --threshold "
                         f"(calibrated: {', '.join(sorted(_table())) or 'none'})")
    src = entry.get("source", "LFW View 2")
    if far is None:
        return OperatingPoint(float(entry["default"]["threshold"]), entry["default"].get("far"), src)
    # The lowest threshold whose measured FAR is <= the target.
    points = sorted(entry["far_table"], key=lambda p: p["far"])
    ok = [p for p in points if p["far"] <= far]
    chosen = ok[-1] if ok else points[0]
    return OperatingPoint(float(chosen["threshold"]), float(chosen["far"]), src)


def _registered_point(model: str) -> dict[str, Any] | None:
    """User-trained embedders carry their LFW-calibrated thresholds in their registry entry (same format)."""
    from .models.registry import all_models

    spec = all_models().get(model.split("+")[0])
    return spec.extra.get("verification") if spec is not None else None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()))


@dataclass
class Verification:
    same: bool
    similarity: float
    model: str
    point: OperatingPoint
    faces: list[dict[str, Any]] = field(default_factory=list)  # which face of each photo was compared

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "similarity": round(self.similarity, 4), "model": self.model,
                **self.point.to_dict(), "faces": self.faces}
