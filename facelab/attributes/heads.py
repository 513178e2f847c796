"""Small classifiers trained in this project (eyewear, mask) on the aligned face crop facelab already makes."""
from __future__ import annotations

import numpy as np

from ..faces import Face
from ..models.registry import verify_model
from .base import softmax


def crop64(aligned: np.ndarray) -> np.ndarray:
    """The 64x64 crop the eyewear and mask CNNs read: the 112x112 ArcFace-aligned crop, area-downscaled."""
    import cv2

    return cv2.resize(aligned, (64, 64), interpolation=cv2.INTER_AREA)


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
