"""Sorting the library's faces: new faces into existing groups and named people, the rest grouped anew.

Incremental (after every scan): faces not considered yet join the named person or group most of their close
neighbours belong to (`cluster.assign`); the ones that join nothing are grouped together with the faces already
unsorted (`cluster.cluster`, on that pool only). Nothing else moves: a named person keeps every face they had.
Full (`library cluster --full`): every unnamed face is assigned to named people or grouped again from scratch.

"Not this person" is obeyed both ways: a face never joins a person it was taken from, and never ends in one group
with a face it was separated from.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .cluster import UNSORTED, ClusterParams, assign, cluster

SETTINGS = Path(__file__).parents[1] / "models" / "grouping.json"  # packaged with the other model data
MIN_FACE_PX = 40.0  # smaller faces embed poorly (as enrolment's default): they stay unsorted


def grouping_params(model: str) -> ClusterParams:
    """The grouping threshold chosen for `model` on LFW (benchmarks/cluster_lfw.py, dev half of the people);
    for a model not measured there, its strictest calibrated 1:1 threshold (FAR 0.1 %), which groups less."""
    table = json.loads(SETTINGS.read_text()) if SETTINGS.exists() else {}
    entry = table.get("models", {}).get(model)
    if entry:
        return ClusterParams(threshold=float(entry["threshold"]), k=int(table.get("k", 20)),
                             min_size=int(table.get("min_size", 2)), method=entry.get("method", "whispers"))
    from ..verification import operating_point

    return ClusterParams(threshold=operating_point(model, None, 0.001).threshold)


def label_of(person: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One label space for named people (2 * person id) and unnamed groups (2 * group id + 1); -1 neither."""
    return np.where(person >= 0, 2 * person, np.where(group >= 0, 2 * group + 1, UNSORTED))


def regroup(tables, params: ClusterParams, full: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    st = tables.faces_state()
    ids, vec = st["id"], st["vector"]
    usable = st["size"] >= MIN_FACE_PX
    named = st["person"] >= 0
    unnamed = usable & ~named
    person_rejects, face_rejects = tables.rejects()
    row_of = {int(f): i for i, f in enumerate(ids)}

    # references: named faces, people enrolled from folders, and (incremental) the existing groups
    g_person, g_vec = tables.gallery_photos_without_faces()
    ref_mask = named | ((st["group"] >= 0) & (not full))
    ref_vec = np.vstack([vec[ref_mask], g_vec])
    ref_lab = np.concatenate([label_of(st["person"][ref_mask], st["group"][ref_mask]), 2 * g_person])

    new = unnamed & (~st["grouped"] if not full else True)
    new_rows = np.flatnonzero(new)
    forbidden: dict[int, set[int]] = {}
    for face, pid in person_rejects:
        if face in row_of and new[row_of[face]]:
            forbidden.setdefault(int(np.searchsorted(new_rows, row_of[face])), set()).add(2 * pid)
    ref_label_of_face = {int(f): int(lab) for f, lab in zip(ids[ref_mask], ref_lab[:int(ref_mask.sum())])}
    for face, other in face_rejects:  # separated from a face of a group or person: never into that one
        for a, b in ((face, other), (other, face)):
            if a in row_of and new[row_of[a]] and b in ref_label_of_face:
                forbidden.setdefault(int(np.searchsorted(new_rows, row_of[a])), set()).add(ref_label_of_face[b])
    # (no copy of a million vectors when there is nothing to join, as in a first full grouping)
    got = assign(vec[new_rows], ref_vec, ref_lab, params.threshold, forbidden=forbidden) if len(ref_vec) else \
        np.full(len(new_rows), -1, np.int64)
    to_people, moves = [], []
    old_group = st["group"]
    for r, lab in zip(new_rows, got):
        if lab >= 0 and lab % 2 == 0:
            to_people.append((int(ids[r]), int(old_group[r]), int(lab // 2)))
        elif lab >= 0:
            moves.append((int(ids[r]), int(old_group[r]), int(lab // 2)))

    # the pool grouped anew: new faces that joined nothing, plus (incremental) the faces already unsorted
    joined = np.zeros(len(ids), bool)
    joined[new_rows[got >= 0]] = True
    pool = new & ~joined
    if not full:
        pool |= unnamed & (old_group < 0)
    pool_rows = np.flatnonzero(pool)
    pool_vec = vec if len(pool_rows) == len(vec) else vec[pool_rows]
    labels = cluster(pool_vec, params) if len(pool_rows) else np.zeros(0, np.int64)
    del pool_vec
    labels = _split_rejected(labels, pool_rows, ids, face_rejects, row_of)

    # full: every unnamed face that joined no person is in the pool, so the groups are renumbered 1.. by size
    first = 1 if full else tables.next_group_id()
    for r, lab in zip(pool_rows, labels):
        new_group = int(first + lab) if lab >= 0 else None
        if (old_group[r] if old_group[r] >= 0 else None) != new_group:
            moves.append((int(ids[r]), int(old_group[r]), new_group))
    first_seen = ids[unnamed & ~st["grouped"]]  # flagged once, so later runs do not consider them new again
    moved, to_named = tables.apply_grouping(moves, to_people, first_seen.tolist())
    n_groups = len(set(int(x) for x in labels if x >= 0))
    return {"mode": "full" if full else "incremental", "faces": int(len(ids)), "considered": int(len(new_rows)),
            "joined_people": to_named, "joined_groups": int(sum(1 for lab in got if lab >= 0 and lab % 2)),
            "pool": int(len(pool_rows)), "new_groups": n_groups, "moved": moved,
            "too_small": int((~usable).sum()), "threshold": params.threshold, "method": params.method,
            "seconds": round(time.perf_counter() - t0, 3)}


def _split_rejected(labels: np.ndarray, rows: np.ndarray, ids: np.ndarray, face_rejects, row_of) -> np.ndarray:
    """A face that ended in one group with a face it was separated from goes back to unsorted."""
    if not face_rejects or not len(labels):
        return labels
    labels = labels.copy()
    pos = {int(r): i for i, r in enumerate(rows)}
    for a, b in face_rejects:
        ia, ib = pos.get(row_of.get(a, -1)), pos.get(row_of.get(b, -1))
        if ia is not None and ib is not None and labels[ia] >= 0 and labels[ia] == labels[ib]:
            labels[ia] = UNSORTED
    return labels
