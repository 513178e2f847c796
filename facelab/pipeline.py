"""The pipeline: image -> faces (box, landmarks) -> aligned crops, pose, quality -> embeddings -> decisions.

`FaceAnalysis` is the one object that runs it (as InsightFace's of the same name does): it owns the models,
loads each once, and is reused. The public functions in `facelab/__init__.py` use a shared instance.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from .align import align_face
from .detectors import DETECTORS
from .embedders import EMBEDDERS
from .errors import FacelabError, ModelError, NoFaceError
from .faces import Face
from .images import ChannelOrder, ImageInput, load_image
from .interfaces import Detector, DetectorFactory, Embedder, EmbedderFactory
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


@cache
def get_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    if name not in DETECTORS:
        raise ModelError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    return _checked(DETECTORS[name](), Detector, f"detector {name!r}")


@cache
def get_embedder(name: str = DEFAULT_EMBEDDER, flip: bool = False) -> Embedder:
    if name not in EMBEDDERS:
        from .embedders import OnnxEmbedder, registered_embedder_names

        if name in registered_embedder_names():  # a user-trained model (facelab models add)
            return OnnxEmbedder(name, flip=flip)
        raise ModelError(f"unknown embedding model {name!r}; known: "
                         f"{', '.join([*EMBEDDERS, *registered_embedder_names()])}")
    return _checked(EMBEDDERS[name](flip=flip), Embedder, f"embedding model {name!r}")


def register_detector(name: str, factory: DetectorFactory, *, replace: bool = False) -> None:
    """Make `factory` (a Detector class, or a function returning one) available as detector `name`."""
    if not name or not isinstance(name, str):
        raise ModelError(f"a detector needs a non-empty name, got {name!r}")
    if name in DETECTORS and not replace:
        raise ModelError(f"detector {name!r} is already registered; pass replace=True to override it")
    DETECTORS[name] = factory
    get_detector.cache_clear()  # a replaced factory must not be served from the cache
    shared_analysis.cache_clear()


def register_embedder(name: str, factory: EmbedderFactory, *, replace: bool = False) -> None:
    """Make `factory` (an Embedder class, or a function taking `flip=` and returning one) available as embedding
    model `name` to facelab.embed / verify / FaceAnalysis. Its vectors have no calibrated threshold until one is
    measured (benchmarks/lfw_verify.py writes facelab/models/thresholds.json): pass threshold= meanwhile."""
    if not name or not isinstance(name, str) or "+" in name or "/" in name:
        raise ModelError(f"an embedder needs a plain name (no '+' or '/': they mark variants), got {name!r}")
    if name in EMBEDDERS and not replace:
        raise ModelError(f"embedding model {name!r} is already registered; pass replace=True to override it")
    EMBEDDERS[name] = factory
    get_embedder.cache_clear()  # a replaced factory must not be served from the cache
    shared_analysis.cache_clear()


def _checked(model, interface: type, what: str):
    """A registered factory that builds something else fails here, with its name, not later inside the pipeline."""
    if not isinstance(model, interface):
        members = [*interface.__annotations__, *(k for k in vars(interface) if k in ("detect", "embed"))]
        missing = [a for a in members if not hasattr(model, a)]
        raise ModelError(f"{what} gave a {type(model).__name__} object, which does not fill the "
                         f"{interface.__name__} interface (missing: {', '.join(missing) or '?'}; "
                         f"see facelab/interfaces.py)")
    return model


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
    def detector(self) -> Detector:
        return get_detector(self.detector_name)

    @property
    def embedder(self) -> Embedder:
        return get_embedder(self.embedder_name, self.flip)

    def detect(self, image: ImageInput, filters: FaceFilter | None = None, order: ChannelOrder = "rgb") -> list[Face]:
        """All faces in the photo, left to right, with landmarks, aligned crop, pose and quality."""
        rgb = load_image(image, order)
        return self.detect_rgb(rgb, filters)

    def detect_rgb(self, rgb: np.ndarray, filters: FaceFilter | None = None) -> list[Face]:
        faces = []
        for det in self.detector.detect(rgb):
            aligned = align_face(rgb, det.landmarks)
            x, y, w, h = (float(v) for v in det.box)
            face = Face(box=(x, y, w, h), score=det.score, landmarks=det.landmarks, aligned=aligned)
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

    def get(self, image: ImageInput, filters: FaceFilter | None = None, order: ChannelOrder = "rgb") -> list[Face]:
        """Detect and embed every face (InsightFace's `FaceAnalysis.get`)."""
        rgb = load_image(image, order)
        return self.embed_faces(rgb, self.detect_rgb(rgb, filters))

    def main_face(self, image: ImageInput, face_index: int | None = None, order: ChannelOrder = "rgb",
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
               order: ChannelOrder = "rgb", names: tuple[str, str] = ("A", "B")) -> Verification:
        operating_point(self.embedder.name, threshold, far)  # an uncalibrated model fails before any work
        fa, na = self.main_face(image_a, face_a, order, names[0])
        fb, nb = self.main_face(image_b, face_b, order, names[1])
        result = compare_embeddings(fa.embedding, fb.embedding, self.embedder.name, threshold, far)
        result.faces = [{"photo": nm, "face": f.index, "of": n, "box": f.to_dict()["box"]}
                        for nm, f, n in ((names[0], fa, na), (names[1], fb, nb))]
        result.uncertain = quality_concerns(fa, names[0]) + quality_concerns(fb, names[1])
        return result


# A unit vector written as JSON (6 decimals) and read back is within ~1e-5 of length 1; anything further off is
# not an embedding as facelab makes them, and its dot product would not be a cosine.
_UNIT_TOLERANCE = 1e-3


def _as_vector(v, model: str, which: str) -> np.ndarray:
    if isinstance(v, Face):
        if v.embedding is None:
            raise FacelabError(f"{which}: the face has no embedding (use facelab.embed, not detect)")
        if v.embedding_model and v.embedding_model != model:
            raise ModelError(f"{which} was embedded with {v.embedding_model!r}, not {model!r}: vectors of "
                             f"different models cannot be compared")
        v = v.embedding
    try:
        out = np.asarray(v, dtype=np.float32).ravel()
    except (TypeError, ValueError):
        raise FacelabError(f"{which}: not a vector of numbers ({type(v).__name__})") from None
    if not out.size or not np.isfinite(out).all():
        raise FacelabError(f"{which}: an embedding must be a non-empty vector of finite numbers")
    norm = float(np.linalg.norm(out))
    if abs(norm - 1.0) > _UNIT_TOLERANCE:
        raise FacelabError(f"{which}: not a unit vector (length {norm:.4g}); facelab embeddings have length 1")
    return out


def _model_of(a, b, model: str | None) -> str:
    """The model named by the call, else by the faces (Face.embedding_model), else the default."""
    if model is not None:
        return model
    named = {f.embedding_model for f in (a, b) if isinstance(f, Face) and f.embedding_model}
    if len(named) > 1:
        raise ModelError(f"the two faces were embedded with different models ({', '.join(sorted(named))}): "
                         f"vectors of different models cannot be compared")
    return named.pop() if named else DEFAULT_EMBEDDER


def compare_embeddings(a, b, model: str | None = None, threshold: float | None = None,
                       far: float | None = None) -> Verification:
    """Same person or not, from two embeddings already computed (stored vectors, `Face`s from facelab.embed).

    The decision is verify's: the cosine against the model's calibrated threshold (or `threshold`, or the one for
    a target false-accept rate `far`). `model` names the embedder that made both vectors (default: the faces' own
    `embedding_model`, else "sface"); vectors must be unit length and of equal size."""
    model = _model_of(a, b, model)
    point = operating_point(model, threshold, far)
    va, vb = _as_vector(a, model, "first embedding"), _as_vector(b, model, "second embedding")
    if va.shape != vb.shape:
        raise FacelabError(f"the embeddings differ in size ({va.size} and {vb.size}): not from the same model")
    dim = _known_dim(model)
    if dim is not None and va.size != dim:
        raise ModelError(f"{model} embeddings have {dim} numbers, these have {va.size}")
    sim = cosine(va, vb)
    return Verification(same=sim >= point.threshold, similarity=sim, model=model, point=point)


def _known_dim(model: str) -> int | None:
    """The vector size of `model` from the registry without loading it; None for a model the registry does
    not describe (one registered at run time with register_embedder)."""
    from .embedders import registered_embedder_names
    from .gallery.store import model_info

    base = model.split("+")[0].split("/")[0]
    if base not in EMBEDDERS and base not in registered_embedder_names():
        raise ModelError(f"unknown embedding model {model!r}; known: "
                         f"{', '.join([*EMBEDDERS, *registered_embedder_names()])}")
    try:
        return model_info(model).dim
    except ModelError:  # registered at run time, no registry entry
        return None


@cache
def shared_analysis(detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER,
                    flip: bool = False) -> FaceAnalysis:
    return FaceAnalysis(detector, embedder, flip)
