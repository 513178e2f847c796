"""Facial expression (FER2013's 7 classes) from a CNN trained in this project (registry: expression_cnn).

FER2013 crops are loose 48x48 grey faces. Real photos are cut the same way: a similarity transform puts facelab's
5 landmarks where YuNet finds them on FER2013 training crops (FER_TEMPLATE, the median over 257 frontal crops,
measured by upscaling them x4), so a photo's face fills the 48x48 frame as the training faces did.
"""
from __future__ import annotations

import numpy as np

from ..align import similarity_transform
from ..models.registry import verify_model
from .base import Analyser, QualityFloor, onnx_session, softmax, withheld

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER2013 label ids 0..6
FER_SIZE = 48
# eye_left, eye_right, nose, mouth_left, mouth_right (as seen) in a 48x48 FER2013 crop
FER_TEMPLATE = np.array([[14.26, 18.58], [33.04, 18.73], [23.17, 28.62], [15.80, 36.46], [31.10, 36.64]])
SUPERSAMPLE = 4  # warp at 4x then area-downscale: a big face is averaged, not aliased, into 48x48


def fer_crop(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """48x48 grey uint8 crop of the face framed as FER2013 frames it."""
    import cv2

    big = FER_SIZE * SUPERSAMPLE
    m = similarity_transform(landmarks, FER_TEMPLATE * SUPERSAMPLE)
    # warp the colour image, then grey the 192x192 result: greying the whole photo first cost ms per face
    warped = cv2.warpAffine(rgb, m, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA)


class Expression(Analyser):
    names = ("expression",)
    floor = QualityFloor(min_size=24.0, max_yaw=45.0)  # FER faces are 48 px: a 24 px face is half that
    model_name = "expression_cnn"

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.session = onnx_session(verify_model(self.model_name))
        self.input = self.session.get_inputs()[0].name

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(crops).astype(np.float32)[:, None]
        return softmax(self.session.run(None, {self.input: batch})[0])

    def predict(self, rgb, faces):
        # FER2013 has no masked faces: with the mouth covered the model would guess, so say so instead
        masked = [f for f in faces if f.attributes.get("mask", {}).get("value") == "mask"]
        for face in masked:
            face.attributes["expression"] = withheld("mouth covered by a mask")
        faces = [f for f in faces if f not in masked]
        if not faces:
            return
        probs = self.probabilities([fer_crop(rgb, f.landmarks) for f in faces])
        for face, p in zip(faces, probs):
            k = int(np.argmax(p))
            face.attributes["expression"] = {
                "value": CLASSES[k], "probability": round(float(p[k]), 4),
                "probabilities": {c: round(float(v), 4) for c, v in zip(CLASSES, p)}, "model": self.model_name}
