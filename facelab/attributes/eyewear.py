"""Eyewear: none / eyeglasses / sunglasses, a head trained here (registry: eyewear_head, card in models/cards)."""
from __future__ import annotations

from .base import Analyser, QualityFloor
from .heads import Head


class Eyewear(Analyser):
    names = ("eyewear",)
    uses_embedding = True
    floor = QualityFloor(min_size=40.0, max_yaw=45.0)

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.head = Head("eyewear_head")

    def predict(self, rgb, faces):
        for face, result in zip(faces, self.head.classify(faces)):
            face.attributes["eyewear"] = result
