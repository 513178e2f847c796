"""Face mask: none / mask / incorrect (worn below the nose), a small CNN trained here on the face box widened by
20 %, 32x32 (registry: mask_cnn; card: models/cards/mask_cnn.md). Not the aligned crop: most training faces are
~25 px street faces whose landmarks YuNet misses or misplaces, and a mask hides the mouth landmarks."""
from __future__ import annotations

from .base import Analyser, QualityFloor
from .heads import CropClassifier


class Mask(Analyser):
    names = ("mask",)
    floor = QualityFloor(min_size=24.0, max_yaw=50.0, min_sharpness=0.0)  # trained on small street faces

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.head = CropClassifier("mask_cnn", ["none", "mask", "incorrect"], crop="box")

    def predict(self, rgb, faces):
        for face, result in zip(faces, self.head.classify(faces, rgb)):
            face.attributes["mask"] = result
