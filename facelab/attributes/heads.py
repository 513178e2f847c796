"""Small classifier heads trained in this project (eyewear, mask) on features facelab already computes.

A head is an .npz registered in trained.toml: `classes`, `feature` (which features, see `face_features`),
`mean`/`scale` (standardisation) and the layers `W0, b0[, W1, b1]` (ReLU between): a logistic regression or a
one-hidden-layer MLP, run with NumPy (no extra runtime).
"""
from __future__ import annotations

import numpy as np

from ..faces import Face
from ..models.registry import verify_model
from .base import softmax

# Regions of the 64x64 aligned crop (the ArcFace crop resized), as (x0, y0, x1, y1).
EYE_BAND = (4, 20, 60, 38)
LOWER_FACE = (8, 36, 56, 62)


def crop64(aligned: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(aligned, (64, 64), interpolation=cv2.INTER_AREA)


def region_pixels(crop: np.ndarray, region, size=(14, 6)) -> np.ndarray:
    """A region resized to `size` in CIELAB (0..1 scaled): colour and darkness without the identity."""
    import cv2

    x0, y0, x1, y1 = region
    patch = cv2.resize(crop[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    return lab.reshape(-1)


def features_from(embedding: np.ndarray, crop: np.ndarray, feature: str) -> np.ndarray:
    parts = []
    for name in feature.split("+"):
        if name == "embedding":
            parts.append(np.asarray(embedding, np.float32))
        elif name == "eyes":
            parts.append(region_pixels(crop, EYE_BAND))
        elif name == "lower":
            parts.append(region_pixels(crop, LOWER_FACE, (12, 12)))
        else:
            raise ValueError(f"unknown head feature {name!r}")
    return np.concatenate(parts)


def face_features(face: Face, feature: str) -> np.ndarray:
    return features_from(face.embedding, crop64(face.aligned), feature)


class Head:
    def __init__(self, model_name: str):
        data = np.load(verify_model(model_name), allow_pickle=False)
        self.name = model_name
        self.classes = [str(c) for c in data["classes"]]
        self.feature = str(data["feature"])
        self.mean, self.scale = data["mean"], data["scale"]
        self.layers = []
        i = 0
        while f"W{i}" in data:
            self.layers.append((data[f"W{i}"], data[f"b{i}"]))
            i += 1

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        h = (np.atleast_2d(x) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return softmax(h)

    def classify(self, faces: list[Face]) -> list[dict]:
        probs = self.probabilities(np.stack([face_features(f, self.feature) for f in faces]))
        out = []
        for p in probs:
            k = int(np.argmax(p))
            out.append({"value": self.classes[k], "probability": round(float(p[k]), 4),
                        "probabilities": {c: round(float(v), 4) for c, v in zip(self.classes, p)},
                        "model": self.name})
        return out


class CropClassifier:
    """A small CNN trained here on the 64x64 aligned crop (training/train_crops.py), run with onnxruntime."""

    def __init__(self, model_name: str, classes: list[str]):
        from .base import onnx_session

        self.name, self.classes = model_name, classes
        self.session = onnx_session(verify_model(model_name))
        self.input = self.session.get_inputs()[0].name

    def classify(self, faces: list[Face]) -> list[dict]:
        batch = np.stack([crop64(f.aligned) for f in faces]).astype(np.float32).transpose(0, 3, 1, 2)
        probs = softmax(self.session.run(None, {self.input: np.ascontiguousarray(batch)})[0])
        out = []
        for p in probs:
            k = int(np.argmax(p))
            out.append({"value": self.classes[k], "probability": round(float(p[k]), 4),
                        "probabilities": {c: round(float(v), 4) for c, v in zip(self.classes, p)},
                        "model": self.name})
        return out
