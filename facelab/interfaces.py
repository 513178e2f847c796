"""What a detector and an embedder must provide: the two extension points of the pipeline.

The pipeline (`facelab.pipeline.FaceAnalysis`) calls nothing else on them, so a new model is one class that fills
one of these interfaces plus one entry in its table (`facelab.detectors.DETECTORS`,
`facelab.embedders.EMBEDDERS`, or at run time `facelab.register_detector` / `facelab.register_embedder`).
See docs/architecture.md for a worked example.

They are `typing.Protocol`s: a class that has these attributes and methods is a Detector / Embedder, whether or not
it inherits from them (checked by mypy, and at load time by `isinstance`). The shipped models inherit explicitly,
so that a reader sees which interface a class fills.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .faces import Face


@dataclass
class Detection:
    """One face as a detector reports it, in input-image pixels."""

    box: np.ndarray        # x, y, w, h
    score: float           # confidence 0..1
    landmarks: np.ndarray  # (5, 2): eye left, eye right, nose, mouth left, mouth right (as seen in the image)


@runtime_checkable
class Detector(Protocol):
    """Finds faces. `detect` gets an RGB uint8 (H, W, 3) array and returns every face it finds; the pipeline
    aligns, orders and measures them (pose, quality) from the 5 landmarks, so those must be good enough to align."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns faces into identity vectors. `embed` gets the RGB photo and its faces (each with `landmarks` and the
    112x112 ArcFace-aligned crop in `aligned`, or None) and returns one unit-length float32 row per face,
    shape (len(faces), dim); an empty list gives (0, dim). Similarity is the dot product of two rows.

    `name` is stored with every vector (galleries, `Face.embedding_model`) and selects the calibrated threshold
    (`facelab/models/thresholds.json`): vectors of different names are never compared. A variant that changes the
    vectors (flip averaging: "+flip") must change the name."""

    name: str
    dim: int

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray: ...


# Table entries: called with no argument (detectors) or with `flip=` (embedders) to build the model, once per
# process (the pipeline caches the instance).
DetectorFactory = Callable[[], Detector]
EmbedderFactory = Callable[..., Embedder]
