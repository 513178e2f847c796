"""Face mask: none / mask / incorrect (worn below the nose), a head trained here (registry: mask_head)."""
from __future__ import annotations

from .base import Analyser, QualityFloor
from .heads import Head


class Mask(Analyser):
    names = ("mask",)
    uses_embedding = True
    floor = QualityFloor(min_size=24.0, max_yaw=50.0, min_sharpness=0.0)  # trained on small street faces

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.head = Head("mask_head")

    def predict(self, rgb, faces):
        for face, result in zip(faces, self.head.classify(faces)):
            face.attributes["mask"] = result
