"""1:1 decisions: a similarity, a threshold, the false-accept rate that threshold stands for, and whether the
faces were good enough for the answer to be trusted.

Thresholds are data (`models/thresholds.json`). For the shipped embedders they come from every pair of LFW
images (benchmarks/far_table.py: ~60 million impostor pairs): `far_table` holds, per target FAR 1e-1 .. 1e-6,
the lowest threshold whose measured FAR is at or below the target, with bootstrap intervals over people. The
default operating point is chosen by false-accept rate (FAR 1e-4; docs/thresholds.md says why), not the
best-accuracy point of a balanced benchmark. LFW View 2's 10-fold accuracy stays the published protocol figure
(`lfw_accuracy`, `view2`). `far=` picks another row; `threshold=` any value (the answer then says between which
measured FARs it lies).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FacelabError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from .faces import Face

THRESHOLDS_FILE = Path(__file__).parent / "models" / "thresholds.json"

# Below these a face is "uncertain": the answer is still given, with the reason. The same limits as enrolment's
# defaults (`gallery enrol`: --min-size 40 --max-yaw 45 --max-pitch 40) and the sharpness the Quality record calls
# blurred; benchmarks/demographics.py measures how LFW error rates move with them.
QUALITY_FLOOR = {"min_size": 40.0, "max_yaw": 45.0, "max_pitch": 40.0, "min_sharpness": 30.0}


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    """thresholds.json: every built-in model's operating points. Missing or damaged means a broken install, said
    as such (not "no calibrated threshold for sface")."""
    try:
        return json.loads(THRESHOLDS_FILE.read_text())
    except OSError as exc:
        raise ModelError(f"{THRESHOLDS_FILE} is missing or unreadable ({exc.strerror}): reinstall facelab") from None
    except ValueError:
        raise ModelError(f"{THRESHOLDS_FILE} is damaged (not JSON): reinstall facelab") from None


def far_text(far: float) -> str:
    """0.01 -> '0.01', 0.0001 -> '1e-4', 2.5e-05 -> '2.5e-5' (short and unambiguous)."""
    if far >= 1e-3:
        return f"{far:g}"
    mantissa, exponent = f"{far:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


@dataclass
class OperatingPoint:
    threshold: float
    far: float | None  # the false-accept rate this threshold was chosen for (None: a threshold the caller gave)
    source: str        # where the numbers come from
    far_range: tuple[float, float] | None = None  # a given threshold: the measured FARs of the table rows around it

    @property
    def label(self) -> str:
        """What the threshold stands for, in words: 'FAR 1e-04 on LFW all pairs'."""
        if self.far is not None:
            return f"FAR {far_text(self.far)} on {self.source}"
        if self.far_range is not None:
            lo, hi = self.far_range
            return f"threshold given; FAR between {far_text(lo)} and {far_text(hi)} on {self.source}"
        return "threshold given; its FAR is not measured"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"threshold": round(self.threshold, 5), "far": self.far, "source": self.source,
               "operating_point": self.label}
        if self.far_range is not None:
            out["far_range"] = list(self.far_range)
        return out


def operating_point(model: str, threshold: float | None = None, far: float | None = None) -> OperatingPoint:
    """The threshold to use for `model`: the given one, the one for a target FAR, or the model's default."""
    entry = _table().get(model) or _registered_point(model)
    if threshold is not None:
        src = entry.get("source", "LFW") if entry else "no table"
        return OperatingPoint(float(threshold), None, src, _far_range(entry, float(threshold)) if entry else None)
    if entry is None:
        raise ModelError(f"no calibrated threshold for model {model!r}; pass --threshold "
                         f"(calibrated: {', '.join(sorted(_table())) or 'none'})")
    src = entry.get("source", "LFW View 2")
    if far is None:
        return OperatingPoint(float(entry["default"]["threshold"]), entry["default"].get("far"), src)
    if not 0 < far < 1:  # NaN fails too
        raise FacelabError(f"far must be between 0 and 1 (exclusive), got {far:g}")
    # The lowest threshold whose FAR is <= the target; stricter than every row: the strictest row.
    points = sorted(entry["far_table"], key=lambda p: p["far"])
    ok = [p for p in points if p["far"] <= far]
    chosen = ok[-1] if ok else points[0]
    return OperatingPoint(float(chosen["threshold"]), float(chosen["far"]), src)


def _far_range(entry: dict[str, Any], threshold: float) -> tuple[float, float] | None:
    """The measured FARs of the two table rows whose thresholds bracket `threshold` (None outside the table)."""
    rows = sorted(entry.get("far_table", []), key=lambda p: p["threshold"])
    for lo, hi in zip(rows, rows[1:]):
        if lo["threshold"] <= threshold <= hi["threshold"]:
            return (float(hi.get("far_measured", hi["far"])), float(lo.get("far_measured", lo["far"])))
    return None


def _registered_point(model: str) -> dict[str, Any] | None:
    """User-trained embedders carry their LFW-calibrated thresholds in their registry entry (same format)."""
    from .models.registry import all_models

    spec = all_models().get(model.split("+")[0])
    return spec.extra.get("verification") if spec is not None else None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()))


def quality_concerns(face: Face, name: str = "face", floor: dict[str, float] | None = None) -> list[str]:
    """Why this face is too small, blurred or turned for a reliable decision (empty: it is fine)."""
    floor = QUALITY_FLOOR if floor is None else floor
    out = []
    q, p = face.quality, face.pose
    if q is not None and q.size < floor["min_size"]:
        out.append(f"{name}: face too small ({q.size:.0f} px < {floor['min_size']:g})")
    if q is not None and q.sharpness < floor["min_sharpness"]:
        out.append(f"{name}: face blurred (sharpness {q.sharpness:.1f} < {floor['min_sharpness']:g})")
    if p is not None and abs(p.yaw) > floor["max_yaw"]:
        out.append(f"{name}: face turned (yaw {p.yaw:+.0f} > {floor['max_yaw']:g} degrees)")
    if p is not None and abs(p.pitch) > floor["max_pitch"]:
        out.append(f"{name}: face turned (pitch {p.pitch:+.0f} > {floor['max_pitch']:g} degrees)")
    return out


@dataclass
class Verification:
    same: bool
    similarity: float
    model: str
    point: OperatingPoint
    faces: list[dict[str, Any]] = field(default_factory=list)  # which face of each photo was compared
    uncertain: list[str] = field(default_factory=list)        # quality reasons the answer may be wrong

    @property
    def verdict(self) -> str:
        word = "same person" if self.same else "different people"
        return f"{word} (threshold {self.point.threshold:.4g}, {self.point.label})"

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "similarity": round(self.similarity, 4), "model": self.model,
                **self.point.to_dict(), "verdict": self.verdict, "uncertain": self.uncertain, "faces": self.faces}
