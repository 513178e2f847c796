"""facelab: see, recognise and describe faces, offline.

    >>> import facelab
    >>> faces = facelab.detect("group.jpg")            # boxes, landmarks, pose, quality
    >>> result = facelab.verify("a.jpg", "b.jpg")      # same person?  result.same, result.similarity
    >>> faces = facelab.embed("a.jpg")                 # faces with .embedding (unit vectors, cosine)

Images may be a path, bytes, a PIL image or a NumPy array; arrays are RGB unless you pass order="bgr"
(OpenCV's cv2.imread gives BGR). Models load on first use and are reused by the whole process.
Importing facelab loads no model and no heavy library.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenCV 5 warns on every net about placement targets it ignores; keep its log to real errors.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .faces import Face
    from .images import ChannelOrder
    from .verification import Verification

__all__ = ["detect", "embed", "verify", "compare", "load_image", "models", "analyze", "emoticon",
           "attributes_available", "open_gallery", "identify", "lookalike", "register_detector", "register_embedder",
           "FaceAnalysis", "FaceFilter", "Face", "Detector", "Embedder", "FacelabError", "__version__"]


def detect(image, *, min_size=None, min_score=None, max_yaw=None, max_pitch=None, max_roll=None,
           detector: str = "yunet", order: ChannelOrder = "rgb") -> list[Face]:
    """Every face in `image`, left to right: box, score, 5 landmarks, pose (degrees), quality."""
    from .pipeline import FaceFilter, shared_analysis

    filters = FaceFilter(min_size=min_size, min_score=min_score, max_yaw=max_yaw, max_pitch=max_pitch,
                         max_roll=max_roll)
    return shared_analysis(detector=detector).detect(image, filters, order=order)


def embed(image, *, model: str = "sface", flip: bool = False, order: ChannelOrder = "rgb") -> list[Face]:
    """Every face in `image` with `.embedding` (unit vector) and `.embedding_model` set."""
    from .pipeline import shared_analysis

    return shared_analysis(embedder=model, flip=flip).get(image, order=order)


def verify(image_a, image_b, *, model: str = "sface", flip: bool = False, threshold: float | None = None,
           far: float | None = None, face_a: int | None = None, face_b: int | None = None,
           order: ChannelOrder = "rgb") -> Verification:
    """Same person or not. Uses the main face of each photo unless face_a / face_b pick one by index."""
    from .pipeline import shared_analysis

    return shared_analysis(embedder=model, flip=flip).verify(image_a, image_b, threshold=threshold, far=far,
                                                             face_a=face_a, face_b=face_b, order=order)


def compare(a, b, *, model: str | None = None, threshold: float | None = None,
            far: float | None = None) -> Verification:
    """Same person or not, from two embeddings already computed: `Face`s from facelab.embed, or unit vectors
    (a stored embedding, a list of numbers). The answer is verify's: the model's calibrated threshold, or
    `threshold`, or the threshold for a target false-accept rate `far`. model: the embedder that made both
    (default: the faces' own, else "sface")."""
    from .pipeline import compare_embeddings

    return compare_embeddings(a, b, model=model, threshold=threshold, far=far)


def register_embedder(name: str, factory, *, replace: bool = False) -> None:
    """Add an embedding model: `factory` is a class filling facelab.Embedder (or a function taking `flip=` and
    returning one). Then embed / verify / FaceAnalysis accept model=name. See docs/architecture.md."""
    from .pipeline import register_embedder as _register

    _register(name, factory, replace=replace)


def register_detector(name: str, factory, *, replace: bool = False) -> None:
    """Add a face detector: `factory` is a class filling facelab.Detector (or a function returning one)."""
    from .pipeline import register_detector as _register

    _register(name, factory, replace=replace)


def analyze(image, attributes=None, *, order: ChannelOrder = "rgb") -> list[Face]:
    """Every face with `face.attributes` filled: age, gender, expression, eyewear, mask, skin_tone, emoticon and
    the classifiers registered with `facelab models add`, each under its model name (or only the names in
    `attributes`, a list or comma-separated string; only their models load).
    An attribute below the quality floor is {"value": None, "reason": ...}."""
    from .attributes import analyse_faces
    from .pipeline import shared_analysis

    if isinstance(attributes, str):
        attributes = attributes.split(",")
    fa = shared_analysis()
    rgb = load_image(image, order)
    faces = fa.detect_rgb(rgb)
    return analyse_faces(rgb, faces, attributes, embed=fa.embed_faces)


def emoticon(image, *, order: ChannelOrder = "rgb") -> list[str]:
    """One SVG emoticon per face (left to right), drawn from its expression, eyewear, mask and skin tone."""
    return [f.attributes["emoticon"]["svg"] for f in analyze(image, ["emoticon"], order=order)]


def attributes_available() -> list[str]:
    """Names accepted by analyze(attributes=...): the built-in attributes, then registered user classifiers."""
    from .attributes import available

    return available()


def models() -> dict[str, Any]:
    """The model registry: name -> spec (task, carrier package, licence, file, sha256...)."""
    from .models.registry import all_models

    return all_models()


def load_image(source, order: ChannelOrder = "rgb"):
    from .images import load_image as _load

    return _load(source, order)


def open_gallery(location, model: str | None = None, create: bool = True, timeout: float = 10.0, **options):
    """A gallery of known people: a SQLite file path (created if missing) or a postgresql:// URI.

    model: the embedder (None = the gallery's own; "sface" for a new one); another model than the gallery's
    raises StoreError. timeout: seconds to wait when another process is writing to the gallery."""
    from .gallery import open_gallery as _open

    return _open(location, model=model, create=create, timeout=timeout, **options)


def identify(image, gallery, top_k: int = 5, threshold: float | None = None, far: float | None = None,
             **kwargs) -> list:
    """Who is each face? Per face: the top_k people and `best` (None = unknown, below the threshold).

    gallery: a Gallery or a location. threshold / far: the cosine needed, or a target false-accept rate
    (default: the model's calibrated operating point)."""
    from .gallery import identify as _identify

    return _identify(image, gallery, top_k=top_k, threshold=threshold, far=far, **kwargs)


def lookalike(image, gallery, **kwargs) -> list:
    """Per face: the most similar person and their most similar photo, whatever the similarity."""
    from .gallery import lookalike as _lookalike

    return _lookalike(image, gallery, **kwargs)


def __getattr__(name: str):  # lazy public classes, so `import facelab` stays light
    if name in ("FaceAnalysis", "FaceFilter"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "Face":
        from .faces import Face

        return Face
    if name in ("Detector", "Embedder", "Detection"):
        from . import interfaces

        return getattr(interfaces, name)
    if name == "FacelabError":
        from .errors import FacelabError

        return FacelabError
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")
