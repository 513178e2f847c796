"""The Face record: everything facelab knows about one face, and its JSON form."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Landmark order (YuNet's, also the ArcFace template's): all named as seen in the image.
LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass
class Pose:
    """Head pose in degrees, estimated from the 5 landmarks. 0/0/0 faces the camera upright."""

    yaw: float    # left-right turn; positive = face turned towards the image's right
    pitch: float  # up-down nod; positive = chin up
    roll: float   # in-plane tilt of the eye line; positive = clockwise in the image

    def to_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


@dataclass
class Quality:
    size: float        # shorter side of the face box, pixels of the input image
    eye_distance: float  # pixels between the eye landmarks
    sharpness: float   # variance of the Laplacian of the aligned grey crop (higher = sharper; < ~30 is blurred)

    def to_dict(self) -> dict[str, float]:
        return {"size": round(self.size, 1), "eye_distance": round(self.eye_distance, 1),
                "sharpness": round(self.sharpness, 1)}


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x, y, width, height in input-image pixels
    score: float                             # detector confidence 0..1
    landmarks: np.ndarray                    # (5, 2) float, LANDMARK_NAMES order
    index: int = 0                           # position in the photo's face list (left to right)
    pose: Pose | None = None
    quality: Quality | None = None
    aligned: np.ndarray | None = field(default=None, repr=False)  # 112x112 RGB canonical crop
    embedding: np.ndarray | None = field(default=None, repr=False)
    embedding_model: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def center(self) -> tuple[float, float]:
        return self.box[0] + self.box[2] / 2, self.box[1] + self.box[3] / 2

    def to_dict(self, with_embedding: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "box": {k: round(float(v), 1) for k, v in zip(("x", "y", "width", "height"), self.box)},
            "score": round(float(self.score), 4),
            "landmarks": {n: [round(float(x), 1), round(float(y), 1)]
                          for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks)},
        }
        if self.pose is not None:
            out["pose"] = self.pose.to_dict()
        if self.quality is not None:
            out["quality"] = self.quality.to_dict()
        if self.attributes:
            out["attributes"] = self.attributes
        if with_embedding and self.embedding is not None:
            out["embedding_model"] = self.embedding_model
            out["embedding"] = [round(float(v), 6) for v in self.embedding]
        return out
