"""1:N identification (open set: "unknown" below a threshold) and look-alike search over a gallery.

Scoring a person who has several photos (benchmarks/identify_lfw.py measures each on LFW):
- "max": the best cosine over the person's photos (nearest neighbour; what face_recognition does);
- "mean": the cosine to the person's template, the re-normalised mean of their photo embeddings
  (CompreFace's and Frigate's "subject" embedding);
- "both": the average of the two.
A search first takes the top photos from the vector index (exact or HNSW), then scores the people they belong
to. "max" is exact for every person found this way (their best photo is at least as close as the one found).

The "unknown" threshold, by default, is the one `gallery calibrate` measured on this very gallery
(facelab/gallery/calibrate.py, stored in the gallery), else an open-set calibration measured on LFW
(`open_set.json`, written by benchmarks/calibrate_gallery.py): the score that names 1 % of 2,721 never-enrolled
people as someone (FPIR 1 %) in a gallery of 1,560 people with up to 5 photos each, per model and scoring. The
1:1 verification threshold is far too low for 1:N: the best of many impostor scores passes it far more often
than one does. `far=` still picks a 1:1 point (operating_point(model, far=...)), and `threshold=` any value.
The share of strangers named grows with the gallery's size: a gallery much larger than 1,560 people should be
calibrated (`facelab gallery calibrate`); a smaller one names fewer strangers than 1 % at the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from ..faces import Face
    from . import Gallery

SCORINGS = ("max", "mean", "both")
DEFAULT_SCORING = "mean"  # LFW protocol 2: rank-1 99.86 % vs 99.80 % (max), DIR@FPIR 1 % 99.72 % vs 99.52 %
OPEN_SET_FILE = Path(__file__).with_name("open_set.json")


def default_threshold(model: str, scoring: str) -> tuple[float, float | None, str] | None:
    """(threshold, FPIR, source) calibrated for this model and scoring, or None."""
    try:
        text = OPEN_SET_FILE.read_text()
    except OSError as exc:  # a broken install: falling back to the 1:1 threshold would name strangers
        raise ModelError(f"{OPEN_SET_FILE} is missing or unreadable ({exc.strerror}): reinstall facelab") from None
    try:
        from .store import model_info

        table = json.loads(text)
        entry = table[model]
        if entry.get("fingerprint") != model_info(model).fingerprint:
            return None  # calibrated for other weights or fusion parameters
        return float(entry[scoring]["threshold"]), float(entry[scoring]["fpir"]), entry["source"]
    except (OSError, KeyError, ValueError):
        return None


@dataclass
class Match:
    person: str
    similarity: float
    photo_id: int          # the person's most similar photo
    photo_similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "similarity": round(self.similarity, 4), "photo_id": self.photo_id}


@dataclass
class Identification:
    face: Face | None
    matches: list[Match]
    threshold: float
    far: float | None = None
    scoring: str = DEFAULT_SCORING
    model: str = ""
    threshold_source: str = ""
    uncertain: list[str] = field(default_factory=list)  # quality reasons the answer may be wrong

    @property
    def best(self) -> Match | None:
        if self.matches and self.matches[0].similarity >= self.threshold:
            return self.matches[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"face": self.face.to_dict() if self.face is not None else None,
                "best": best.to_dict() if best else None,
                "matches": [m.to_dict() for m in self.matches],
                "threshold": round(self.threshold, 4), "far": self.far, "scoring": self.scoring,
                "model": self.model, "threshold_source": self.threshold_source, "uncertain": self.uncertain}


@dataclass
class Lookalike:
    face: Face | None
    person: str | None
    similarity: float | None
    photo: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"face": self.face.to_dict() if self.face is not None else None, "person": self.person,
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "photo": self.photo}


def candidate_count(top_k: int, n_vectors: int) -> int:
    """How many nearest photos to fetch so that top_k people come out of them (people have several photos)."""
    return min(n_vectors, max(50, 10 * top_k)) if n_vectors else 0


def rank_people(gallery: Gallery, queries: np.ndarray, top_k: int, scoring: str = DEFAULT_SCORING
                ) -> list[list[Match]]:
    """For each query vector, the top_k people, best first, scored as `scoring` says."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}")
    queries = np.asarray(queries, np.float32).reshape(-1, gallery.model.dim)
    store = gallery.store
    hits = store.search(queries, candidate_count(top_k, gallery.vector_count()))
    names = gallery.person_names()
    out = []
    for q, row in zip(queries, hits):
        best_photo: dict[int, tuple[int, float]] = {}
        for photo_id, person_id, sim in row:  # best first, so the first photo per person is its best
            best_photo.setdefault(person_id, (photo_id, sim))
        scores = {pid: sim for pid, (_, sim) in best_photo.items()}
        if scoring != "max" and best_photo:
            templates = gallery.templates(list(best_photo))
            for pid, template in templates.items():
                t_sim = float(template @ q)
                scores[pid] = t_sim if scoring == "mean" else (scores[pid] + t_sim) / 2
        ranked = sorted(scores, key=lambda pid: -scores[pid])[:top_k]
        out.append([Match(names.get(pid, f"#{pid}"), float(scores[pid]), best_photo[pid][0],
                          float(best_photo[pid][1])) for pid in ranked])
    return out
