"""Draw faces on a photo (boxes, landmarks, labels) for `--draw` and the demos."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .faces import Face

_GREEN = (40, 200, 80)
_LANDMARK_COLOURS = [(255, 64, 64), (64, 64, 255), (255, 200, 0), (255, 64, 255), (0, 220, 220)]


def draw_faces(rgb: np.ndarray, faces: Sequence[Face], labels: Sequence[str] | None = None) -> np.ndarray:
    import cv2

    out = rgb.copy()
    thick = max(1, round(max(rgb.shape[:2]) / 400))
    for i, face in enumerate(faces):
        x, y, w, h = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), _GREEN, thick)
        for (px, py), colour in zip(face.landmarks, _LANDMARK_COLOURS):
            cv2.circle(out, (int(round(px)), int(round(py))), thick + 1, colour, -1)
        text = labels[i] if labels else f"#{face.index} {face.score:.2f}"
        scale = 0.4 * thick
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y - 4 if y - th - 6 > 0 else y + h + th + 4
        cv2.rectangle(out, (x, ty - th - 3), (x + tw + 4, ty + 3), _GREEN, -1)
        cv2.putText(out, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
