"""Small classifiers trained in this project (eyewear, mask): eyewear reads the aligned face crop facelab already
makes, the mask CNN reads the face box itself (tiny street faces align badly)."""
from __future__ import annotations

import numpy as np

from ..faces import Face
from ..models.registry import get_model, verify_model
from .base import softmax

# YuNet's box against the Kaggle mask annotations (1,976 faces found by both, the masks cache of
# training/attributes/extract_faces.py): same width, 7 % taller, centre 12 % of the annotated height higher (YuNet
# takes in more forehead). Mapping YuNet's box onto the annotation convention shows the mask CNN the region it was
# trained on.
YUNET_HEIGHT_RATIO = 1.07
YUNET_CENTRE_SHIFT = 0.118
BOX_MARGIN = 0.2  # the data set's crops: the box widened by 20 % of its size on every side


def crop64(aligned: np.ndarray) -> np.ndarray:
    """The 64x64 crop the eyewear CNN reads: the 112x112 ArcFace-aligned crop, area-downscaled."""
    import cv2

    return cv2.resize(aligned, (64, 64), interpolation=cv2.INTER_AREA)


def annotation_box(box) -> tuple[float, float, float, float]:
    """YuNet's (x, y, w, h) -> the face box as the mask data set draws it, (x0, y0, x1, y1)."""
    x, y, w, h = (float(v) for v in box)
    ah = h / YUNET_HEIGHT_RATIO
    cx, cy = x + w / 2, y + h / 2 + YUNET_CENTRE_SHIFT * ah
    return cx - w / 2, cy - ah / 2, cx + w / 2, cy + ah / 2


def box_crop(rgb: np.ndarray, xyxy, size: int = 64) -> np.ndarray:
    """The box widened by BOX_MARGIN per side, clipped to the image and resized to size x size: how the mask data
    set's crops were cut, so training (on those crops) and use (on a YuNet box) see the same thing."""
    import cv2

    x0, y0, x1, y1 = xyxy
    mx, my = (x1 - x0) * BOX_MARGIN, (y1 - y0) * BOX_MARGIN
    H, W = rgb.shape[:2]
    a, b = max(0, int(round(x0 - mx))), max(0, int(round(y0 - my)))
    c, d = min(W, int(round(x1 + mx))), min(H, int(round(y1 + my)))
    if c - a < 2 or d - b < 2:
        a, b, c, d = 0, 0, W, H
    patch = rgb[b:d, a:c]
    shrink = patch.shape[0] > size or patch.shape[1] > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class CropClassifier:
    """A small CNN trained here on a square crop, run with onnxruntime. crop="aligned": the ArcFace-aligned crop
    (training/train_crops.py); crop="box": the widened face box (training/train_mask.py). The input side is the
    model's own (64 or 32)."""

    def __init__(self, model_name: str, classes: list[str], crop: str = "aligned"):
        from .base import onnx_session

        self.name, self.classes, self.crop = model_name, classes, crop
        self.session = onnx_session(verify_model(model_name))
        self.input = self.session.get_inputs()[0].name
        self.side = int(self.session.get_inputs()[0].shape[-1])
        # a network trained class-balanced over-calls rare classes; the registry may give the data's class shares
        prior = get_model(model_name).extra.get("class_prior")
        self.prior = np.asarray(prior, np.float32) if prior else None

    def crops(self, rgb: np.ndarray | None, faces: list[Face]) -> np.ndarray:
        import cv2

        if self.crop == "box":
            if rgb is None:
                raise ValueError(f"{self.name} reads the face box: pass the photo")
            crops = [box_crop(rgb, annotation_box(f.box)) for f in faces]
        else:
            if any(f.aligned is None for f in faces):
                raise ValueError(f"{self.name} reads the aligned crop: pass faces from facelab's detector")
            crops = [crop64(f.aligned) for f in faces if f.aligned is not None]
        if self.side != 64:  # the training crops were packed at 64 and area-resized to the model's side
            crops = [cv2.resize(c, (self.side, self.side), interpolation=cv2.INTER_AREA) for c in crops]
        return np.stack(crops)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """[N,64,64,3] uint8 RGB crops -> class probabilities."""
        x = np.ascontiguousarray(batch.astype(np.float32).transpose(0, 3, 1, 2))
        p = softmax(self.session.run(None, {self.input: x})[0])
        if self.prior is not None:
            p = p * self.prior
            p /= p.sum(axis=1, keepdims=True)
        return p

    def classify(self, faces: list[Face], rgb: np.ndarray | None = None) -> list[dict]:
        probs = self.probabilities(self.crops(rgb, faces))
        out = []
        for p in probs:
            k = int(np.argmax(p))
            out.append({"value": self.classes[k], "probability": round(float(p[k]), 4),
                        "probabilities": {c: round(float(v), 4) for c, v in zip(self.classes, p)},
                        "model": self.name})
        return out
