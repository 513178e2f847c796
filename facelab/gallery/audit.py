"""Gallery check: photos filed under the wrong person, and one person filed under two names.

A gallery is only as good as its labels. Crawled photos bring namesakes and group photos whose stored face is
someone else; folders get named twice ("G_Bush", "George_W_Bush"). Both show in the embeddings alone:

- a photo is compared with its person's template *without it* (the mean of their other photos). It is suspect
  when that similarity is below the 1:1 threshold at `far` ("unlike their other photos"); the person it looks
  like most, if any verifies, is named. People with one photo cannot be checked. (Flagging photos merely closer
  to another person's template than to their own was tried: with dlib's narrow cosines it flagged dozens of
  right photos by 0.01 margins.)
- for each person A and their `neighbours` nearest people B among those whose templates verify as one at `far`
  (people whose templates do not are not one person, and this keeps large galleries cheap), the share of A's
  photos that are as similar to B's template as B's own photos are (at least the 10th percentile of B's
  leave-one-out similarities, suspect photos left out). One person split in two scores near 1; on LFW's 158
  people, siblings and look-alikes included, every pair scored 0 with SFace, at most 0.14 with dlib
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
CHUNK = 4096        # people compared with every other person at a time (bounds memory on large galleries)


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
    order = np.argsort(person_ids, kind="stable")  # each person's photos side by side: groups are slices
    photo_ids, person_ids, vectors = photo_ids[order], person_ids[order], vectors[order]
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    people, starts, counts = np.unique(person_ids, return_index=True, return_counts=True)
    report = GalleryCheck(gallery.model.name, far, round(threshold, 5), int(counts[counts > 1].sum()),
                          int(np.sum(counts > 1)), int(np.sum(counts == 1)))
    if not len(people):
        return report
    member = np.repeat(np.arange(len(people)), counts)
    sums = np.add.reduceat(vectors.astype(np.float64), starts)
    templates = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    own = _leave_one_out(vectors, sums, member, counts)
    names = gallery.person_names()
    person_names = [names[int(p)] for p in people]
    report.photos = _suspect_photos(gallery, vectors, templates, member, own, threshold, photo_ids, person_names)
    typical = _typical_similarity(own, member, starts, threshold)
    groups = [slice(a, a + n) for a, n in zip(starts, counts)]
    report.people = _similar_people(vectors, templates, groups, typical, threshold, share, neighbours,
                                    person_names)
    return report


def _leave_one_out(vectors, sums, member, counts) -> np.ndarray:
    """Each photo's cosine to the mean of its person's other photos (NaN for a person's only photo)."""
    rest = sums[member] - vectors
    norms = np.linalg.norm(rest, axis=1)
    own = np.einsum("ij,ij->i", vectors, rest) / np.maximum(norms, 1e-12)
    return np.where(counts[member] > 1, own, np.nan)


def _typical_similarity(own, member, starts, threshold) -> np.ndarray:
    """Per person, the OWN_QUANTILE of their photos' leave-one-out similarities, photos below the threshold left
    out (a misfiled photo must not lower the bar for everyone); NaN where none is left. Same interpolation as
    np.quantile, for all people at once."""
    fitting = own >= threshold  # NaN compares False
    keyed = np.where(fitting, own, np.inf)
    ranked = keyed[np.lexsort((keyed, member))]  # ascending within each person, left-out photos last
    n_fit = np.add.reduceat(fitting.astype(np.int64), starts)
    position = OWN_QUANTILE * np.maximum(n_fit - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(n_fit - 1, 0))
    a, b = ranked[starts + low], ranked[starts + high]
    step = np.zeros_like(a)
    between = high > low  # two fitting photos to interpolate between (else b - a may be inf - inf)
    step[between] = b[between] - a[between]
    return np.where(n_fit > 0, a + (position - low) * step, np.nan)


def _suspect_photos(gallery, vectors, templates, member, own, threshold, photo_ids, person_names):
    rows = np.flatnonzero(own < threshold)  # NaN (a person's only photo) compares False: not checked
    rows = rows[np.argsort(own[rows])]
    scores = vectors[rows] @ templates.T if len(rows) else np.zeros((0, len(templates)))
    scores[np.arange(len(rows)), member[rows]] = -np.inf  # the photo's own person
    out = []
    for row, row_scores in zip(rows, scores):
        other = int(row_scores.argmax()) if len(templates) > 1 else -1
        best = float(row_scores[other]) if other >= 0 else None
        reason = f"unlike their other photos ({own[row]:.2f} < {threshold:.2f})"
        if best is not None and best >= threshold:
            reason += f"; looks like {person_names[other]} ({best:.2f})"
        record = gallery.store.photo(int(photo_ids[row]))
        out.append(SuspectPhoto(int(photo_ids[row]), person_names[member[row]], record.source if record else None,
                                round(float(own[row]), 4), person_names[other] if other >= 0 else None,
                                None if best is None else round(best, 4), reason))
    return out


def _similar_people(vectors, templates, groups, typical, threshold, share, neighbours, person_names):
    def like(a: int, b: int) -> float:
        if np.isnan(typical[b]):
            return 0.0
        return round(float(np.mean(vectors[groups[a]] @ templates[b] >= typical[b])), 3)

    n_people = len(templates)
    k = min(neighbours, n_people - 1)
    pairs: dict[tuple[int, int], SimilarPeople] = {}
    for start in range(0, n_people, CHUNK) if k > 0 else ():
        block = templates[start:start + CHUNK] @ templates.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        # people whose templates do not even verify as one are not one person: only pairs above the threshold,
        # each person's k most similar of them
        rows, cols = np.nonzero(block >= threshold)
        by_row = np.lexsort((-block[rows, cols], rows))
        rows, cols = rows[by_row], cols[by_row]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # 0 for a row's most similar person
        for i, b in zip(rows[rank < k], cols[rank < k]):
            a, b = start + int(i), int(b)
            key = (min(a, b), max(a, b))
            if key not in pairs:
                x, y = key
                pairs[key] = SimilarPeople(person_names[x], person_names[y], like(x, y), like(y, x),
                                           round(float(block[i, b]), 4))
    found = [p for p in pairs.values() if max(p.share_a_like_b, p.share_b_like_a) >= share]
    return sorted(found, key=lambda p: -max(p.share_a_like_b, p.share_b_like_a))
