"""The pipeline: image -> faces (box, landmarks) -> aligned crops, pose, quality -> embeddings -> decisions.

`FaceAnalysis` is the one object that runs it (as InsightFace's of the same name does): it owns the models,
loads each once, and is reused. The public functions in `facelab/__init__.py` use a shared instance.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .align import align_face
from .detectors import DETECTORS
from .embedders import EMBEDDERS
from .errors import ModelError, NoFaceError
from .faces import Face
from .images import ImageInput, load_image
from .pose import estimate_pose, estimate_quality
from .verification import Verification, cosine, operating_point, quality_concerns

DEFAULT_DETECTOR = "yunet"
DEFAULT_EMBEDDER = "sface"


@dataclass
class FaceFilter:
    """Which faces count as usable. None = no limit."""

    min_size: float | None = None   # pixels, shorter side of the box
    min_score: float | None = None
    max_yaw: float | None = None    # degrees, absolute
    max_pitch: float | None = None
    max_roll: float | None = None
    min_sharpness: float | None = None

    def reason(self, face: Face) -> str | None:
        """Why `face` fails the filter, or None if it passes."""
        q, p = face.quality, face.pose
        if self.min_size is not None and q and q.size < self.min_size:
            return f"too small ({q.size:.0f} px < {self.min_size:g})"
        if self.min_score is not None and face.score < self.min_score:
            return f"low detector score ({face.score:.2f} < {self.min_score:g})"
        if p is not None:
            for name, limit in (("yaw", self.max_yaw), ("pitch", self.max_pitch), ("roll", self.max_roll)):
                value = getattr(p, name)
                if limit is not None and abs(value) > limit:
                    return f"too turned ({name} {value:+.0f} > {limit:g} degrees)"
        if self.min_sharpness is not None and q and q.sharpness < self.min_sharpness:
            return f"blurred (sharpness {q.sharpness:.0f} < {self.min_sharpness:g})"
        return None


@lru_cache(maxsize=None)
def get_detector(name: str = DEFAULT_DETECTOR):
    if name not in DETECTORS:
        raise ModelError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name]()


@lru_cache(maxsize=None)
def get_embedder(name: str = DEFAULT_EMBEDDER, flip: bool = False):
    if name not in EMBEDDERS:
        from .embedders import OnnxEmbedder, registered_embedder_names

        if name in registered_embedder_names():  # a user-trained model (facelab models add)
            return OnnxEmbedder(name, flip=flip)
        raise ModelError(f"unknown embedding model {name!r}; known: "
                         f"{', '.join([*EMBEDDERS, *registered_embedder_names()])}")
    return EMBEDDERS[name](flip=flip)


def pick_main_face(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face:
    """The face a person means when a photo has several: the largest, favouring the centre.

    Score = area x (1 - distance from the centre / half-diagonal): a face halfway to a corner counts as half
    its size, so a much bigger face off-centre still beats a small one in the middle, but a bystander at the
    edge does not beat the subject. (Measured on the 750 LFW photos of 158 people that hold several faces:
    this picks LFW's labelled, central subject in 749; the earlier weight, 1 - 0.5 x distance, missed 3,
    among them a gallery photo that cost 17 identifications.)
    """
    h, w = image_shape[:2]
    half_diag = math.hypot(w, h) / 2

    def weight(f: Face) -> float:
        cx, cy = f.center
        return f.area * (1 - min(1.0, math.hypot(cx - w / 2, cy - h / 2) / half_diag))

    return max(faces, key=weight)


class FaceAnalysis:
    """Runs detection, alignment, pose/quality and (on demand) embedding over photos."""

    def __init__(self, detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER, flip: bool = False):
        self.detector_name = detector
        self.embedder_name = embedder
        self.flip = flip
        self._lock = threading.Lock()

    @property
    def detector(self):
        return get_detector(self.detector_name)

    @property
    def embedder(self):
        return get_embedder(self.embedder_name, self.flip)

    def detect(self, image: ImageInput, filters: FaceFilter | None = None, order: str = "rgb") -> list[Face]:
        """All faces in the photo, left to right, with landmarks, aligned crop, pose and quality."""
        rgb = load_image(image, order)
        return self.detect_rgb(rgb, filters)

    def detect_rgb(self, rgb: np.ndarray, filters: FaceFilter | None = None) -> list[Face]:
        faces = []
        for det in self.detector.detect(rgb):
            aligned = align_face(rgb, det.landmarks)
            face = Face(box=tuple(float(v) for v in det.box), score=det.score, landmarks=det.landmarks,
                        aligned=aligned)
            face.pose = estimate_pose(det.landmarks, rgb.shape[:2])
            face.quality = estimate_quality(face.box, det.landmarks, aligned)
            faces.append(face)
        faces.sort(key=lambda f: (f.center[0], f.center[1]))
        for i, f in enumerate(faces):
            f.index = i
        if filters is not None:
            faces = [f for f in faces if filters.reason(f) is None]
        return faces

    def embed_faces(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        vectors = self.embedder.embed(rgb, faces)
        for f, v in zip(faces, vectors):
            f.embedding = v
            f.embedding_model = self.embedder.name
        return faces

    def get(self, image: ImageInput, filters: FaceFilter | None = None, order: str = "rgb") -> list[Face]:
        """Detect and embed every face (InsightFace's `FaceAnalysis.get`)."""
        rgb = load_image(image, order)
        return self.embed_faces(rgb, self.detect_rgb(rgb, filters))

    def main_face(self, image: ImageInput, face_index: int | None = None, order: str = "rgb",
                  name: str = "photo") -> tuple[Face, int]:
        """The face to use from a photo (see `pick_main_face`), embedded; and how many faces the photo has."""
        rgb = load_image(image, order)
        faces = self.detect_rgb(rgb)
        if not faces:
            raise NoFaceError(f"{name}: no face found")
        if face_index is not None:
            if not 0 <= face_index < len(faces):
                raise NoFaceError(f"{name}: face {face_index} requested, but the photo has {len(faces)} "
                                  f"(0..{len(faces) - 1})")
            face = faces[face_index]
        else:
            face = pick_main_face(faces, rgb.shape)
        self.embed_faces(rgb, [face])
        return face, len(faces)

    def verify(self, image_a: ImageInput, image_b: ImageInput, threshold: float | None = None,
               far: float | None = None, face_a: int | None = None, face_b: int | None = None,
               order: str = "rgb", names: tuple[str, str] = ("A", "B")) -> Verification:
        point = operating_point(self.embedder.name, threshold, far)
        fa, na = self.main_face(image_a, face_a, order, names[0])
        fb, nb = self.main_face(image_b, face_b, order, names[1])
        sim = cosine(fa.embedding, fb.embedding)
        chosen = [{"photo": nm, "face": f.index, "of": n, "box": f.to_dict()["box"]}
                  for nm, f, n in ((names[0], fa, na), (names[1], fb, nb))]
        return Verification(same=sim >= point.threshold, similarity=sim, model=self.embedder.name, point=point,
                            faces=chosen, uncertain=quality_concerns(fa, names[0]) + quality_concerns(fb, names[1]))


@lru_cache(maxsize=None)
def shared_analysis(detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER,
                    flip: bool = False) -> FaceAnalysis:
    return FaceAnalysis(detector, embedder, flip)
