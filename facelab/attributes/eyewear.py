"""Eyewear: none / eyeglasses / sunglasses, a small CNN trained here on the aligned crop
(registry: eyewear_cnn; card: models/cards/eyewear_cnn.md)."""
from __future__ import annotations

from .base import Analyser, QualityFloor
from .heads import CropClassifier


class Eyewear(Analyser):
    names = ("eyewear",)
    floor = QualityFloor(min_size=40.0, max_yaw=45.0)

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.head = CropClassifier("eyewear_cnn", ["none", "eyeglasses", "sunglasses"])

    def predict(self, rgb, faces):
        for face, result in zip(faces, self.head.classify(faces)):
            face.attributes["eyewear"] = result
