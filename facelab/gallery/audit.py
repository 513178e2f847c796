"""Gallery check: photos filed under the wrong person, and one person filed under two names.

A gallery is only as good as its labels. Crawled photos bring namesakes and group photos whose stored face is
someone else; folders get named twice ("G_Bush", "George_W_Bush"). Both show in the embeddings alone:

- a photo is compared with its person's template *without it* (the mean of their other photos). It is suspect
  when that similarity is below the 1:1 threshold at `far` ("unlike their other photos"); the person it looks
  like most, if any verifies, is named. People with one photo cannot be checked. (Flagging photos merely closer
  to another person's template than to their own was tried: with dlib's narrow cosines it flagged dozens of
  right photos by 0.01 margins.)
- for each person and their `neighbours` nearest people (by template), the share of A's photos that are as
  similar to B's template as B's own photos are (at least the 10th percentile of B's leave-one-out
  similarities, suspect photos left out). One person split in two scores near 1; on LFW's 158 people, siblings
  and look-alikes included, every pair scored 0 with SFace, at most 0.14 with dlib
  (`benchmarks/gallery_check.py`). A pair is reported at `share` or more, in either direction.

Nothing is changed: the report names photo ids for `gallery remove` and pairs for `gallery merge`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from . import Gallery

OWN_QUANTILE = 0.1  # "as similar as the person's own photos": all but their least typical 10 %
CHUNK = 8192        # photos scored against every template at a time (bounds memory on large galleries)


@dataclass
class SuspectPhoto:
    photo_id: int
    person: str
    source: str | None
    similarity: float        # to the person's template without this photo
    nearest_other: str | None
    nearest_similarity: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimilarPeople:
    a: str
    b: str
    share_a_like_b: float    # share of a's photos as similar to b's template as b's own photos are
    share_b_like_a: float
    template_similarity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GalleryCheck:
    model: str
    far: float
    threshold: float
    photos_checked: int
    people_checked: int
    people_with_one_photo: int
    photos: list[SuspectPhoto] = field(default_factory=list)
    people: list[SimilarPeople] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.photos and not self.people

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("photos", "people")}
        return {**out, "suspect_photos": [p.to_dict() for p in self.photos],
                "similar_people": [p.to_dict() for p in self.people]}


def check_gallery(gallery: "Gallery", far: float = 0.001, share: float = 0.5,
                  neighbours: int = 5) -> GalleryCheck:
    """Suspect photos (worst first) and pairs of people who may be one person (most alike first)."""
    from .enrol import match_threshold

    threshold = match_threshold(gallery.model.name, far)
    photo_ids, person_ids, vectors = gallery.store.vectors()
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    people, member = np.unique(person_ids, return_inverse=True)
    counts = np.bincount(member, minlength=len(people))
    sums = np.zeros((len(people), vectors.shape[1]), np.float64)
    np.add.at(sums, member, vectors)
    templates = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    own = _leave_one_out(vectors, sums, member, counts)
    report = GalleryCheck(gallery.model.name, far, round(threshold, 5), int(np.sum(counts[member] > 1)),
                          int(np.sum(counts > 1)), int(np.sum(counts == 1)))
    if not len(people):
        return report
    names = gallery.person_names()
    report.photos = _suspect_photos(gallery, vectors, templates, member, own, threshold, photo_ids,
                                    [names[int(p)] for p in people])
    report.people = _similar_people(vectors, templates, member, own, threshold, share, neighbours,
                                    [names[int(p)] for p in people])
    return report


def _leave_one_out(vectors, sums, member, counts) -> np.ndarray:
    """Each photo's cosine to the mean of its person's other photos (NaN for a person's only photo)."""
    rest = sums[member] - vectors
    norms = np.linalg.norm(rest, axis=1)
    own = np.einsum("ij,ij->i", vectors, rest) / np.maximum(norms, 1e-12)
    return np.where(counts[member] > 1, own, np.nan)


def _suspect_photos(gallery, vectors, templates, member, own, threshold, photo_ids, person_names):
    found = []
    for start in range(0, len(vectors), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(vectors)))
        scores = vectors[rows] @ templates.T
        scores[np.arange(len(rows)), member[rows]] = -np.inf  # the photo's own person
        other = scores.argmax(axis=1) if templates.shape[0] > 1 else np.full(len(rows), -1)
        for i, row in enumerate(rows):
            if np.isnan(own[row]):
                continue
            best = float(scores[i, other[i]]) if other[i] >= 0 else None
            if own[row] >= threshold:
                continue
            reason = f"unlike their other photos ({own[row]:.2f} < {threshold:.2f})"
            if best is not None and best >= threshold:
                reason += f"; looks like {person_names[other[i]]} ({best:.2f})"
            found.append((row, best, other[i], reason))
    out = []
    for row, best, other, reason in sorted(found, key=lambda f: own[f[0]]):
        record = gallery.store.photo(int(photo_ids[row]))
        out.append(SuspectPhoto(int(photo_ids[row]), person_names[member[row]], record.source if record else None,
                                round(float(own[row]), 4), person_names[other] if other >= 0 else None,
                                None if best is None else round(best, 4), reason))
    return out


def _similar_people(vectors, templates, member, own, threshold, share, neighbours, person_names):
    n_people = len(templates)
    typical = np.full(n_people, np.nan)  # each person's OWN_QUANTILE leave-one-out similarity
    order = np.argsort(member, kind="stable")
    starts = np.searchsorted(member[order], np.arange(n_people))
    groups = np.split(order, starts[1:])
    for p, rows in enumerate(groups):
        fitting = own[rows][own[rows] >= threshold]  # a misfiled photo must not lower the bar for everyone
        if len(fitting):
            typical[p] = np.quantile(fitting, OWN_QUANTILE)

    def like(a: int, b: int) -> float:
        if np.isnan(typical[b]):
            return 0.0
        return float(np.mean(vectors[groups[a]] @ templates[b] >= typical[b]))

    pairs: dict[tuple[int, int], SimilarPeople] = {}
    for start in range(0, n_people, CHUNK):
        block = templates[start:start + CHUNK] @ templates.T
        for i, row in enumerate(block):
            a = start + i
            row[a] = -np.inf
            for b in np.argsort(-row)[:neighbours]:
                key = (min(a, int(b)), max(a, int(b)))
                if key in pairs or not np.isfinite(row[b]):
                    continue
                x, y = key
                pairs[key] = SimilarPeople(person_names[x], person_names[y], round(like(x, y), 3),
                                           round(like(y, x), 3),
                                           round(float(row[b]), 4))
    found = [p for p in pairs.values() if max(p.share_a_like_b, p.share_b_like_a) >= share]
    return sorted(found, key=lambda p: -max(p.share_a_like_b, p.share_b_like_a))
