"""Sorting the library's faces: new faces into existing groups and named people, the rest grouped anew.

Incremental (after every scan): faces not considered yet join the named person or group most of their close
neighbours belong to (`cluster.assign`); the ones that join nothing are grouped together with the unsorted faces
near them (`cluster.cluster`, on that pool only). Nothing else moves: a named person keeps every face they had.
In a big library (over EXACT_LIMIT faces) only the faces of the k-means cells near the new faces are read
(`cells.py`), not every vector.
Full (`library cluster --full`): every unnamed face is assigned to named people or grouped again from scratch.

The threshold grows with the library (`cluster.size_threshold`): more faces, more strangers above a fixed one.

"Not this person" is obeyed both ways: a face never joins a person it was taken from, and never ends in one group
with a face it was separated from.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from . import cells
from .cluster import EXACT_LIMIT, UNSORTED, ClusterParams, assign, cluster, fit_cells, nearest_cells

SETTINGS = Path(__file__).parents[1] / "models" / "grouping.json"  # packaged with the other model data
MIN_FACE_PX = 40.0  # smaller faces embed poorly (as enrolment's default): they stay unsorted


def grouping_params(model: str, faces: int = 0) -> ClusterParams:
    """The grouping parameters measured for `model` on LFW (benchmarks/cluster_lfw.py) with the rule that raises
    the threshold for a big library (`faces` > 0: already applied for that many faces; regroup applies it for
    the library's own count). A model never measured is refused: a threshold that suits one model merges
    strangers or splits people with another."""
    table = json.loads(SETTINGS.read_text()) if SETTINGS.exists() else {}
    entry = table.get("models", {}).get(model)
    if not entry:
        raise ModelError(f"no grouping threshold measured for model {model!r}: a photo library groups faces of "
                         f"{', '.join(sorted(table.get('models', {}))) or 'no model'} (benchmarks/cluster_lfw.py "
                         f"measures a model on LFW)")
    params = ClusterParams(threshold=float(entry["threshold"]), k=int(table.get("k", 20)),
                           min_size=int(table.get("min_size", 2)), method=entry.get("method", "whispers"),
                           ref_faces=int(table.get("size_rule", {}).get("ref_faces", 0)),
                           per_decade=float(entry.get("per_decade", 0.0)))
    return params.for_faces(faces) if faces else params


def label_of(person: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One label space for named people (2 * person id) and unnamed groups (2 * group id + 1); -1 neither."""
    return np.where(person >= 0, 2 * person, np.where(group >= 0, 2 * group + 1, UNSORTED))


def regroup(tables, params: ClusterParams, full: bool = False) -> dict[str, Any]:
    """Sort the library's faces (see the module's docstring), with `params` for the library's size. A big
    library's incremental run reads only the faces in the cells near its new faces."""
    cells.ensure(tables)
    faces, filed = cells.counts(tables)
    params = params.for_faces(faces)
    if full or faces <= EXACT_LIMIT:
        return _regroup_all(tables, params, full, keep_cells=faces > EXACT_LIMIT)
    centres = cells.centres(tables)
    if centres is None:  # grown past EXACT_LIMIT since the last full grouping: file every face once
        return _regroup_all(tables, params, full, keep_cells=True)
    return _regroup_near(tables, params, centres, faces, filed)


def _forbidden(tables, new_ids: np.ndarray, ref_label_of_face) -> dict[int, set[int]]:
    """Row of a new face -> labels it must not get ("not this person"): the people it was taken from, and the
    group or person of every face it was separated from."""
    person_rejects, face_rejects = tables.rejects()
    pos = {int(f): i for i, f in enumerate(new_ids)}
    forbidden: dict[int, set[int]] = {}
    for face, pid in person_rejects:
        if face in pos:
            forbidden.setdefault(pos[face], set()).add(2 * pid)
    pairs = [(a, b) for face, other in face_rejects for a, b in ((face, other), (other, face)) if a in pos]
    labels = ref_label_of_face([b for _, b in pairs])
    for a, b in pairs:
        if labels.get(b, UNSORTED) >= 0:
            forbidden.setdefault(pos[a], set()).add(labels[b])
    return forbidden


def _sorting(ids, old_group, rows, got) -> tuple[list, list]:
    """(face, old group, person id) joins of named people and (face, old group, group) moves, from `assign`."""
    to_people, moves = [], []
    for r, lab in zip(rows, got):
        if lab >= 0 and lab % 2 == 0:
            to_people.append((int(ids[r]), int(old_group[r]), int(lab // 2)))
        elif lab >= 0:
            moves.append((int(ids[r]), int(old_group[r]), int(lab // 2)))
    return to_people, moves


def _pool_moves(tables, params, ids, vec, old_group, pool_rows, full: bool, keep_cells: dict | None = None):
    """Group the pool anew: its labels and the (face, old group, new group) moves."""
    _, face_rejects = tables.rejects()
    pool_vec = vec if len(pool_rows) == len(vec) else vec[pool_rows]
    labels = cluster(pool_vec, params, keep_cells=keep_cells) if len(pool_rows) else np.zeros(0, np.int64)
    del pool_vec
    labels = _split_rejected(labels, pool_rows, ids, face_rejects)
    # full: every unnamed face that joined no person is in the pool, so the groups are renumbered 1.. by size
    first = 1 if full else tables.next_group_id()
    moves = []
    for r, lab in zip(pool_rows, labels):
        new_group = int(first + lab) if lab >= 0 else None
        if (old_group[r] if old_group[r] >= 0 else None) != new_group:
            moves.append((int(ids[r]), int(old_group[r]), new_group))
    return labels, moves


def _regroup_all(tables, params: ClusterParams, full: bool, keep_cells: bool) -> dict[str, Any]:
    """Read every face: a full grouping, or an incremental one of a small library. `keep_cells`: file every
    face in k-means cells for later incremental runs."""
    t0 = time.perf_counter()
    st = tables.faces_state()
    ids, vec = st["id"], st["vector"]
    usable = st["size"] >= MIN_FACE_PX
    named = st["person"] >= 0
    unnamed = usable & ~named

    # references: named faces, people enrolled from folders, and (incremental) the existing groups
    g_person, g_vec = tables.gallery_photos_without_faces()
    ref_mask = named | ((st["group"] >= 0) & (not full))
    ref_vec = np.vstack([vec[ref_mask], g_vec])
    ref_lab = np.concatenate([label_of(st["person"][ref_mask], st["group"][ref_mask]), 2 * g_person])

    new = unnamed & (~st["grouped"] if not full else True)
    new_rows = np.flatnonzero(new)
    ref_ids = ids[ref_mask]
    ref_labels = ref_lab[:int(ref_mask.sum())]

    def ref_label_of_face(faces):
        at = np.searchsorted(ref_ids, faces)
        return {int(f): int(ref_labels[a]) for f, a in zip(faces, at) if a < len(ref_ids) and ref_ids[a] == f}

    forbidden = _forbidden(tables, ids[new_rows], ref_label_of_face)
    # (no copy of a million vectors when there is nothing to join, as in a first full grouping)
    got = assign(vec[new_rows], ref_vec, ref_lab, params.threshold, forbidden=forbidden) if len(ref_vec) else \
        np.full(len(new_rows), -1, np.int64)
    del ref_vec
    old_group = st["group"]
    to_people, moves = _sorting(ids, old_group, new_rows, got)

    # the pool grouped anew: new faces that joined nothing, plus (incremental) the faces already unsorted
    joined = np.zeros(len(ids), bool)
    joined[new_rows[got >= 0]] = True
    pool = new & ~joined
    if not full:  # ... but not the new faces that just joined someone (their stored group is still none)
        pool |= unnamed & (old_group < 0) & ~joined
    pool_rows = np.flatnonzero(pool)
    kept: dict = {}
    labels, pool_moves = _pool_moves(tables, params, ids, vec, old_group, pool_rows, full, kept)
    moves += pool_moves
    first_seen = ids[unnamed & ~st["grouped"]]  # flagged once, so later runs do not consider them new again
    moved, to_named = tables.apply_grouping(moves, to_people, first_seen.tolist())
    if keep_cells:  # every face filed in fine cells, split from the pool's k-means cells (or new ones)
        centres = kept.get("centres")
        if centres is None:
            centres = fit_cells(vec)
        home = np.full(len(ids), -1, np.int64)
        if "home" in kept:
            home[pool_rows] = kept["home"]
        rest = np.flatnonzero(home < 0)
        home[rest] = nearest_cells(vec[rest], centres, 1)[0]
        cells.save(tables, *cells.fine_cells(vec, home), ids=ids)
    n_groups = len(set(int(x) for x in labels if x >= 0))
    return {"mode": "full" if full else "incremental", "faces": int(len(ids)), "considered": int(len(new_rows)),
            "joined_people": to_named, "joined_groups": int(sum(1 for lab in got if lab >= 0 and lab % 2)),
            "pool": int(len(pool_rows)), "new_groups": n_groups, "moved": moved,
            "too_small": int((~usable).sum()), "faces_read": int(len(ids)), "threshold": params.threshold,
            "method": params.method, "seconds": round(time.perf_counter() - t0, 3)}


def _regroup_near(tables, params: ClusterParams, centres: np.ndarray, faces: int, filed: int) -> dict[str, Any]:
    """Incremental grouping of a big library: read the new faces, then only the faces filed in the cells near
    them (with their groups and people), and the unsorted ones among those."""
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    mark = [t0]

    def lap(name: str) -> None:  # seconds per step, for the benchmark
        now = time.perf_counter()
        steps[name] = round(now - mark[0], 3)
        mark[0] = now

    new = cells.new_faces(tables)
    if faces - filed > len(new):  # faces neither filed nor new (a run stopped between its two writes): file them
        _file_missing(tables, centres)
    usable = new["size"] >= MIN_FACE_PX
    wanted = usable & (new["person"] < 0)
    lap("read_new")
    near = cells.faces_in(tables, cells.probe(centres, new["vector"][wanted]))
    lap("read_near")
    near_is_new = np.isin(near["id"], new["id"])
    # references: named faces and groups near the new faces, and people enrolled from folders
    g_person, g_vec = tables.gallery_photos_without_faces()
    ref_mask = ~near_is_new & ((near["person"] >= 0) | (near["group"] >= 0))
    ref_vec = np.vstack([near["vector"][ref_mask], g_vec])
    ref_lab = np.concatenate([label_of(near["person"][ref_mask], near["group"][ref_mask]), 2 * g_person])

    def ref_label_of_face(face_ids):
        return {f: int(label_of(np.array([p]), np.array([g]))[0]) for f, (g, p) in
                cells.labels_of(tables, face_ids).items()}

    new_rows = np.flatnonzero(wanted)
    forbidden = _forbidden(tables, new["id"][new_rows], ref_label_of_face)
    got = assign(new["vector"][new_rows], ref_vec, ref_lab, params.threshold, forbidden=forbidden) \
        if len(ref_vec) else np.full(len(new_rows), -1, np.int64)
    to_people, moves = _sorting(new["id"], new["group"], new_rows, got)
    lap("assign")

    # the pool: new faces that joined nothing, and the unsorted faces near them
    lonely = new_rows[got < 0]
    unsorted_near = ~near_is_new & (near["person"] < 0) & (near["group"] < 0) & (near["size"] >= MIN_FACE_PX)
    ids = np.concatenate([new["id"][lonely], near["id"][unsorted_near]])
    vec = np.vstack([new["vector"][lonely], near["vector"][unsorted_near]])
    old_group = np.concatenate([new["group"][lonely], near["group"][unsorted_near]])
    labels, pool_moves = _pool_moves(tables, params, ids, vec, old_group, np.arange(len(ids)), False)
    moves += pool_moves
    lap("pool")
    moved, to_named = tables.apply_grouping(moves, to_people, new["id"][new["person"] < 0].tolist())
    cells.add(tables, centres, new["id"], new["vector"])
    lap("write")
    n_groups = len(set(int(x) for x in labels if x >= 0))
    return {"mode": "incremental", "faces": faces, "considered": int(len(new_rows)),
            "joined_people": to_named, "joined_groups": int(sum(1 for lab in got if lab >= 0 and lab % 2)),
            "pool": int(len(ids)), "new_groups": n_groups, "moved": moved, "too_small": int((~usable).sum()),
            "faces_read": int(len(new["id"]) + len(near["id"])), "threshold": params.threshold,
            "method": params.method, "seconds": round(time.perf_counter() - t0, 3), "steps_s": steps}


def _file_missing(tables, centres: np.ndarray) -> None:
    # NOT EXISTS, not NOT IN (subquery): PostgreSQL runs the latter as a loop over the subquery for each face once
    # it outgrows work_mem (a million-face library: minutes, not a second)
    rows = tables.read("SELECT id, vector FROM library_faces WHERE grouped = 1 AND NOT EXISTS "
                       "(SELECT 1 FROM library_face_cells c WHERE c.face_id = library_faces.id)")
    if rows:
        vec = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), tables.dim)
        cells.add(tables, centres, np.array([r[0] for r in rows]), vec)


def _split_rejected(labels: np.ndarray, rows: np.ndarray, ids: np.ndarray, face_rejects) -> np.ndarray:
    """A face that ended in one group with a face it was separated from goes back to unsorted."""
    if not face_rejects or not len(labels):
        return labels
    labels = labels.copy()
    pos = {int(ids[r]): i for i, r in enumerate(rows)}  # face id -> place in labels
    for a, b in face_rejects:
        ia, ib = pos.get(a), pos.get(b)
        if ia is not None and ib is not None and labels[ia] >= 0 and labels[ia] == labels[ib]:
            labels[ia] = UNSORTED
    return labels
