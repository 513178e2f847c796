"""User classifiers as attributes: a classifier registered with `facelab models add RUN` is an attribute of
`facelab analyze` under its model name, next to the built-in ones.

The face is run through the same code as `facelab train predict` (OnnxClassifier.predict_faces: the aligned crop,
and for a head the frozen features it was trained on), and reported like a built-in classifier attribute:
{"value": label, "probability": p, "probabilities": {label: p, ...}, "model": name}, withheld below the quality
floor. A missing or altered model file is a ModelError naming the model (exit code 5, HTTP 503).
"""
from __future__ import annotations

import numpy as np

from ..errors import FacelabError, ModelError
from .base import Analyser


def user_classifiers(reserved=()) -> dict:
    """Registered user models that are facelab-trained classifiers (labels + input kind), name -> ModelSpec.
    A name in `reserved` (the built-in attributes) is left out: the built-in attribute keeps its name."""
    from ..models.registry import _builtin_registry, all_models

    builtin = _builtin_registry()
    return {name: spec for name, spec in all_models().items()
            if name not in builtin and name not in reserved and spec.task != "embedding"
            and "labels" in spec.extra and "input_kind" in spec.extra}


class UserClassifier(Analyser):
    """One registered classifier; `wanted` is its model name."""

    def __init__(self, wanted):
        super().__init__(wanted)
        from ..train.predict import OnnxClassifier

        (self.name,) = self.wanted
        try:
            self.model = OnnxClassifier.from_registry(self.name)
        except ModelError:
            raise
        except FacelabError as exc:  # e.g. a head whose feature spec this facelab cannot compute
            raise ModelError(f"user model {self.name!r} cannot be used: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime refusing the file: say which model, in one line
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"user model {self.name!r} cannot be loaded: {why}") from None

    def predict(self, rgb: np.ndarray, faces) -> None:
        labels = self.model.labels
        for face, p in zip(faces, self.model.predict_faces(rgb, faces)):
            k = int(np.argmax(p))
            face.attributes[self.name] = {
                "value": labels[k], "probability": round(float(p[k]), 4),
                "probabilities": {c: round(float(v), 4) for c, v in zip(labels, p)}, "model": self.name}
