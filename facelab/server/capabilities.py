"""Which parts of facelab this build has (the "features" of /v1/health), and records made JSON-ready.

Other areas' functions are looked up by their agreed names at call time, so the server gains analyze / identify /
galleries as soon as that code is installed, with no edit here."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import facelab

from .errors import NotAvailable

# feature -> the public facelab function it needs
FEATURES = {
    "detect": "detect", "embed": "embed", "verify": "verify",
    "analyze": "analyze", "emoticon": "emoticon",
    "identify": "identify", "lookalike": "lookalike", "galleries": "open_gallery",
}


def has(feature: str) -> bool:
    return hasattr(facelab, FEATURES[feature])


def api(feature: str) -> Callable:
    """The facelab function behind `feature`, or a 501 not_available error."""
    fn = getattr(facelab, FEATURES[feature], None)
    if fn is None:
        raise NotAvailable(feature)
    return fn


def available() -> dict[str, bool]:
    return {name: has(name) for name in FEATURES}


def attribute_names() -> list[str]:
    fn = getattr(facelab, "attributes_available", None)
    if fn is None:
        return []
    try:
        return list(fn())
    except Exception:  # a broken attribute model must not take the health check down with it
        return []


def plain(obj: Any) -> Any:
    """Records from other areas (to_dict objects, dataclasses, NumPy values) as JSON-ready data."""
    if hasattr(obj, "to_dict"):
        return plain(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return plain(asdict(obj))
    return obj
