"""Label check on embeddings: which items look unlike the rest of their label, and which two labels may be one.

Works on any set of unit embeddings with a label each: a gallery (label = person, `gallery check`) or a training
dataset of identities (label = class, `dataset check`). Crawled photos bring namesakes and group photos whose
face is someone else; folders get named twice ("G_Bush", "George_W_Bush"). Both show in the embeddings alone:

- an item is compared with its label's template *without it* (the mean of the label's other items). It is suspect
  when that similarity is below `threshold` (a 1:1 verification threshold, e.g. at FAR 0.1 %: "unlike their
  other photos"); the label it looks like most is named when that one reaches the threshold. Labels with one item
  cannot be checked. (Flagging items merely closer to another label's template than to their own was tried: with
  dlib's narrow cosines it flagged dozens of right photos by 0.01 margins.)
- for each label A and its `neighbours` nearest labels B among those whose templates reach the threshold (labels
  whose templates do not verify are not one person, and this keeps large galleries cheap), the share of A's items
  that are as similar to B's template as B's own items are (at least the 10th percentile of B's leave-one-out
  similarities, suspect items left out). One person split in two scores near 1; on LFW's 158 people, siblings and
  look-alikes included, every pair scored 0 with SFace, at most 0.14 with dlib (`benchmarks/gallery_check.py`).
  A pair is reported at `share` or more, in either direction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

OWN_QUANTILE = 0.1  # "as similar as the label's own items": all but their least typical 10 %
CHUNK = 4096        # labels compared with every other label at a time (bounds memory on large galleries)


@dataclass
class Suspect:
    index: int                       # row of the item in the vectors given
    label: str
    similarity: float                # to the label's template without this item
    nearest_other: str | None
    nearest_similarity: float | None
    reason: str


@dataclass
class SimilarPeople:
    a: str
    b: str
    share_a_like_b: float    # share of a's items as similar to b's template as b's own items are
    share_b_like_a: float
    template_similarity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LabelCheck:
    threshold: float
    items_checked: int       # items whose label has at least one other item
    labels_checked: int
    labels_with_one_item: int
    suspects: list[Suspect] = field(default_factory=list)        # worst first
    similar: list[SimilarPeople] = field(default_factory=list)   # most alike first


def check_labels(vectors: np.ndarray, labels: Sequence[str], threshold: float, share: float = 0.5,
                 neighbours: int = 5) -> LabelCheck:
    """Suspect items and pairs of labels that may be one person, for embeddings `vectors` labelled `labels`."""
    if not len(labels):  # an empty gallery or dataset: nothing to check
        return LabelCheck(round(float(threshold), 5), 0, 0, 0)
    vectors = np.asarray(vectors, np.float32).reshape(len(labels), -1)
    names, member = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    order = np.argsort(member, kind="stable")  # each label's items side by side: groups are slices
    vectors, member = vectors[order], member[order]
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    counts = np.bincount(member, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    result = LabelCheck(round(float(threshold), 5), int(counts[counts > 1].sum()), int(np.sum(counts > 1)),
                        int(np.sum(counts == 1)))
    sums = np.add.reduceat(vectors.astype(np.float64), starts)
    templates = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    own = _leave_one_out(vectors, sums, member, counts)
    result.suspects = _suspects(vectors, templates, member, own, threshold, names, order)
    typical = _typical_similarity(own, member, starts, threshold)
    groups = [slice(a, a + n) for a, n in zip(starts, counts)]
    result.similar = _similar_labels(vectors, templates, groups, typical, threshold, share, neighbours, names)
    return result


def _leave_one_out(vectors, sums, member, counts) -> np.ndarray:
    """Each item's cosine to the mean of its label's other items (NaN for a label's only item)."""
    rest = sums[member] - vectors
    norms = np.linalg.norm(rest, axis=1)
    own = np.einsum("ij,ij->i", vectors, rest) / np.maximum(norms, 1e-12)
    return np.where(counts[member] > 1, own, np.nan)


def _typical_similarity(own, member, starts, threshold) -> np.ndarray:
    """Per label, the OWN_QUANTILE of its items' leave-one-out similarities, items below the threshold left out
    (a misfiled photo must not lower the bar for everyone); NaN where none is left. Same interpolation as
    np.quantile, for all labels at once."""
    fitting = own >= threshold  # NaN compares False
    keyed = np.where(fitting, own, np.inf)
    ranked = keyed[np.lexsort((keyed, member))]  # ascending within each label, left-out items last
    n_fit = np.add.reduceat(fitting.astype(np.int64), starts)
    position = OWN_QUANTILE * np.maximum(n_fit - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(n_fit - 1, 0))
    a, b = ranked[starts + low], ranked[starts + high]
    step = np.zeros_like(a)
    between = high > low  # two fitting items to interpolate between (else b - a may be inf - inf)
    step[between] = b[between] - a[between]
    return np.where(n_fit > 0, a + (position - low) * step, np.nan)


def _suspects(vectors, templates, member, own, threshold, names, order) -> list[Suspect]:
    rows = np.flatnonzero(own < threshold)  # NaN (a label's only item) compares False: not checked
    rows = rows[np.argsort(own[rows])]
    scores = vectors[rows] @ templates.T if len(rows) else np.zeros((0, len(templates)))
    scores[np.arange(len(rows)), member[rows]] = -np.inf  # the item's own label
    out = []
    for row, row_scores in zip(rows, scores):
        other = int(row_scores.argmax()) if len(templates) > 1 else -1
        best = float(row_scores[other]) if other >= 0 else None
        reason = f"unlike their other photos ({own[row]:.2f} < {threshold:.2f})"
        if best is not None and best >= threshold:
            reason += f"; looks like {names[other]} ({best:.2f})"
        out.append(Suspect(int(order[row]), str(names[member[row]]), round(float(own[row]), 4),
                           str(names[other]) if other >= 0 else None, None if best is None else round(best, 4),
                           reason))
    return out


def _similar_labels(vectors, templates, groups, typical, threshold, share, neighbours, names):
    def like(a: int, b: int) -> float:
        if np.isnan(typical[b]):
            return 0.0
        return round(float(np.mean(vectors[groups[a]] @ templates[b] >= typical[b])), 3)

    n_labels = len(templates)
    k = min(neighbours, n_labels - 1)
    pairs: dict[tuple[int, int], SimilarPeople] = {}
    for start in range(0, n_labels, CHUNK) if k > 0 else ():
        block = templates[start:start + CHUNK] @ templates.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        # only pairs whose templates verify as one, each label's k most similar of them
        rows, cols = np.nonzero(block >= threshold)
        by_row = np.lexsort((-block[rows, cols], rows))
        rows, cols = rows[by_row], cols[by_row]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # 0 for a row's most similar label
        for i, b in zip(rows[rank < k], cols[rank < k]):
            a, b = start + int(i), int(b)
            key = (min(a, b), max(a, b))
            if key not in pairs:
                x, y = key
                pairs[key] = SimilarPeople(str(names[x]), str(names[y]), like(x, y), like(y, x),
                                           round(float(block[i, b]), 4))
    found = [p for p in pairs.values() if max(p.share_a_like_b, p.share_b_like_a) >= share]
    return sorted(found, key=lambda p: -max(p.share_a_like_b, p.share_b_like_a))
