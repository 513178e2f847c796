"""Boxes for the live webcam overlay, cheaply: YuNet alone on the frame scaled to at most LIVE_SIDE pixels.

The full `facelab.detect` also refines landmarks on tilted heads, aligns crops and measures pose and quality
(what recognition and attributes need); the overlay only needs where the faces are, every frame. Names and
attributes still come from the full pipeline, in the background (see stream.py).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

import facelab

from ..faces import LANDMARK_NAMES

LIVE_SIDE = 320  # a 640x480 frame is detected at 320x240: faces a webcam sees stay well inside YuNet's range


@lru_cache(maxsize=1)
def _detector():
    from ..detectors import YuNetDetector

    return YuNetDetector(max_side=LIVE_SIDE, refine_roll=False)


def live_faces(rgb: np.ndarray) -> list[dict]:
    """Face records (index, box, score, landmarks) in the frame's own pixels, left to right."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, LIVE_SIDE / max(h, w))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    try:
        detections = _detector().detect(np.ascontiguousarray(small))
    except TypeError:  # a detector whose options changed: the full pipeline still gives boxes
        return [f.to_dict() for f in facelab.detect(rgb)]
    faces = []
    for i, det in enumerate(sorted(detections, key=lambda d: float(d.box[0] + d.box[2] / 2))):
        x, y, bw, bh = (float(v) / scale for v in det.box)
        faces.append({
            "index": i,
            "box": {"x": round(x, 1), "y": round(y, 1), "width": round(bw, 1), "height": round(bh, 1)},
            "score": round(float(det.score), 4),
            "landmarks": {n: [round(float(px) / scale, 1), round(float(py) / scale, 1)]
                          for n, (px, py) in zip(LANDMARK_NAMES, det.landmarks)},
        })
    return faces
