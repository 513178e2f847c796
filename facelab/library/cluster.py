"""Grouping faces by person: a thresholded nearest-neighbour graph, cut into groups.

The method was chosen by measurement (benchmarks/cluster_lfw.py on every LFW image, docs/library.md):
1. every face's neighbours above a strict 1:1 similarity (the model's threshold at a small FAR) are found by
   exact blockwise matrix products (no all-pairs matrix is ever held: one block of rows at a time), at most
   `k` per face;
2. the graph is cut by Chinese whispers (dlib's implementation, weighted by similarity), which, unlike
   connected components, does not chain two people together through one bad edge;
3. groups smaller than `min_size` stay "unsorted" (label -1).

`assign` puts new faces into existing groups (the incremental path): a face joins the group (or named person)
whose members are its nearest neighbours, when enough of them are above the threshold; otherwise it waits in
unsorted for the next grouping of the unsorted faces.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

UNSORTED = -1


@dataclass(frozen=True)
class ClusterParams:
    threshold: float          # cosine similarity an edge needs
    k: int = 20               # neighbours kept per face
    min_size: int = 2         # smaller groups stay unsorted
    method: str = "whispers"  # "whispers" (Chinese whispers) or "components" (connected components)
    ref_faces: int = 0        # the library size `threshold` was chosen at (faces) ...
    per_decade: float = 0.0   # ... and its rise per tenfold growth past it (see size_threshold)

    def for_faces(self, faces: int) -> ClusterParams:
        """These parameters for a library of `faces` faces."""
        return replace(self, threshold=size_threshold(self.threshold, faces, self.ref_faces, self.per_decade),
                       ref_faces=0, per_decade=0.0)


def size_threshold(threshold: float, faces: int, ref_faces: int, per_decade: float) -> float:
    """The threshold for a library of `faces` faces. Each face meets about faces x FAR strangers above a fixed
    threshold, so a bigger library merges more strangers: past `ref_faces` (the size the threshold was chosen at)
    it rises `per_decade` for every tenfold growth; it is never lowered (benchmarks/cluster_scale.py)."""
    if faces <= ref_faces or ref_faces <= 0 or per_decade <= 0:
        return threshold
    return round(threshold + per_decade * float(np.log10(faces / ref_faces)), 4)


def block_rows(n: int, budget_floats: int = 32_000_000) -> int:
    """Rows per block so that one block of similarities stays near 128 MB of float32."""
    return int(max(64, min(8192, budget_floats // max(n, 1))))


def neighbour_edges(vectors: np.ndarray, threshold: float, k: int, others: np.ndarray | None = None,
                    exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (row, col, similarity) from each row of `vectors` to its <= k most similar rows of `others`
    (default: `vectors` itself) with similarity >= threshold. Exact: blockwise matrix products."""
    x = np.ascontiguousarray(vectors, np.float32)
    y = x if others is None else np.ascontiguousarray(others, np.float32)
    same = others is None
    rows, cols, sims = [], [], []
    step = block_rows(len(y))
    for start in range(0, len(x), step):
        block = x[start:start + step] @ y.T
        if same and exclude_self:
            idx = np.arange(start, start + len(block))
            block[idx - start, idx] = -2.0
        r, c = np.nonzero(block >= threshold)
        if not len(r):
            continue
        s = block[r, c]
        # keep each row's k best: sort by (row, -similarity), then the rank within each row
        order = np.lexsort((-s, r))
        r, c, s = r[order], c[order], s[order]
        first = np.searchsorted(r, r, side="left")
        keep = (np.arange(len(r)) - first) < k
        rows.append(r[keep] + start)
        cols.append(c[keep])
        sims.append(s[keep])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64),
            np.concatenate(sims).astype(np.float32))


EXACT_LIMIT = 30_000  # faces; above this, neighbours come from an inverted-file search (all pairs grow as n²)
# Cells each face searches in the inverted file. Development draws (synthetic seed 11, 300k faces): 8 probes pairwise
# F 0.9928 (52.6 s), 12 0.9975 (67.7 s), 16 0.9988 (83.6 s); 16 is the fewest within 0.001 of the best tried (the
# rule the size rule uses); at 1M (seed 11) 16 probes gave F 0.9983. Incremental grouping does not use it.
IVF_PROBES = 16


def graph_edges(vectors: np.ndarray, threshold: float, k: int, seed: int = 0, keep_cells: dict | None = None):
    """The k-NN graph's edges above `threshold`: exact up to EXACT_LIMIT faces, approximate (IVF) above."""
    if len(vectors) <= EXACT_LIMIT:
        return neighbour_edges(vectors, threshold, k)
    return ivf_edges(vectors, threshold, k, seed=seed, keep_cells=keep_cells)


def fit_cells(vectors: np.ndarray, cells: int | None = None, seed: int = 0) -> np.ndarray:
    """Unit centres of `cells` k-means cells (scikit-learn's MiniBatchKMeans, on a sample of 40 faces a cell);
    default 2 * sqrt(n) cells, between 16 and 4096."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.ascontiguousarray(vectors, np.float32)
    n = len(x)
    cells = min(n, cells or int(min(4096, max(16, 2 * np.sqrt(n)))))
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, min(n, 40 * cells), replace=False)]
    centres = MiniBatchKMeans(cells, init="random", n_init=1, max_iter=10, batch_size=4096, random_state=seed).fit(
        sample).cluster_centers_.astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def nearest_cells(vectors: np.ndarray, centres: np.ndarray, probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest cell (where it is stored) and its `probes` nearest cells (where it searches)."""
    x = np.ascontiguousarray(vectors, np.float32)
    n, probes = len(x), min(probes, len(centres))
    home = np.empty(n, np.int64)
    probe = np.empty((n, probes), np.int64)
    step = block_rows(len(centres), 16_000_000)
    for start in range(0, n, step):
        sims = x[start:start + step] @ centres.T
        probe[start:start + step] = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
        home[start:start + step] = np.argmax(sims, axis=1)
    return home, probe


def ivf_edges(vectors: np.ndarray, threshold: float, k: int, cells: int | None = None, probes: int = IVF_PROBES,
              seed: int = 0, keep_cells: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate neighbour_edges: the faces are split into `cells` by k-means (scikit-learn, on a sample), and
    each face is compared only with the faces of its `probes` nearest cells (an inverted file, as in IVF
    indexes). Work is n x probes x n / cells instead of n²; the faces of one person lie close together, so they
    share cells (the recall of edges is measured in benchmarks/cluster_scale.py). `keep_cells`, when given,
    receives the centres and each face's home cell (the library keeps them for incremental grouping)."""
    x = np.ascontiguousarray(vectors, np.float32)
    centres = fit_cells(x, cells, seed)
    cells = len(centres)
    home, probe = nearest_cells(x, centres, probes)
    if keep_cells is not None:
        keep_cells.update(centres=centres, home=home)
    probes = probe.shape[1]
    members = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[members], np.arange(cells + 1))
    # every (face, probed cell), sorted by cell: face i's j-th probe is flat index i * probes + j, so the sort's
    # order divided by `probes` is the face (no n x probes arrays beyond the probes and their order: 16 probes
    # at a million faces are 128 MB each)
    c_of = probe.ravel()
    q_bounds = np.r_[0, np.cumsum(np.bincount(c_of, minlength=cells))]
    q_sorted = np.argsort(c_of, kind="stable")
    del c_of, probe
    q_sorted //= probes
    rows, cols, sims_out = [], [], []
    for cell in range(cells):
        m = members[bounds[cell]:bounds[cell + 1]]
        if not len(m):
            continue
        x_m = x[m].T
        queries = q_sorted[q_bounds[cell]:q_bounds[cell + 1]]
        step = block_rows(len(m), 16_000_000)  # k-means cells are uneven: a big one's queries in blocks of ~64 MB
        for start in range(0, len(queries), step):
            q = queries[start:start + step]
            block = x[q] @ x_m
            r, cc = np.nonzero(block >= threshold)
            keep = q[r] != m[cc]
            rows.append(q[r][keep])
            cols.append(m[cc][keep])
            sims_out.append(block[r, cc][keep])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    r, c, s = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims_out)
    order = np.lexsort((-s, r))  # each face's k best
    r, c, s = r[order], c[order], s[order]
    keep = (np.arange(len(r)) - np.searchsorted(r, r, side="left")) < k
    return r[keep], c[keep], s[keep]


def components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def chinese_whispers(n: int, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """dlib's Chinese whispers over the undirected graph (each edge once, weight = similarity); a face with no
    edge is a group of its own."""
    import dlib

    labels = np.full(n, UNSORTED, np.int64)
    if len(rows):
        a, b = np.minimum(rows, cols), np.maximum(rows, cols)
        key, first = np.unique(a * n + b, return_index=True)
        a, b, w = a[first], b[first], sims[first]
        nodes = np.unique(np.concatenate([a, b]))  # dlib numbers the vertices 0..max: give it only these
        local = np.searchsorted(nodes, np.stack([a, b]))
        del key, first, a, b
        edges = list(zip(local[0].tolist(), local[1].tolist(), w.astype(float).tolist()))
        del local, w
        sub = np.asarray(dlib.chinese_whispers(edges), np.int64)
        del edges
        labels[nodes] = sub
    alone = np.flatnonzero(labels == UNSORTED)
    labels[alone] = labels.max(initial=-1) + 1 + np.arange(len(alone))
    return labels


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Groups of fewer than min_size faces become unsorted (-1); the others are renumbered 0..g-1 by size."""
    labels = np.asarray(labels, np.int64)
    out = np.full(len(labels), UNSORTED, np.int64)
    if not len(labels):
        return out
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    big = counts >= min_size
    order = np.argsort(-counts[big], kind="stable")
    new_id = np.full(len(ids), UNSORTED, np.int64)
    new_id[np.flatnonzero(big)[order]] = np.arange(big.sum())
    valid = labels >= 0
    out[valid] = new_id[inverse[valid]]
    return out


def cluster(vectors: np.ndarray, params: ClusterParams, keep_cells: dict | None = None) -> np.ndarray:
    """Group label per face (0..g-1, largest group first), -1 for unsorted. `keep_cells`: see ivf_edges."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    rows, cols, sims = graph_edges(vectors, params.threshold, params.k, keep_cells=keep_cells)
    if params.method == "components":
        labels = components(n, rows, cols)
    elif params.method == "whispers":
        labels = chinese_whispers(n, rows, cols, sims)
    else:
        raise ValueError(f"unknown grouping method {params.method!r}")
    return drop_small(labels, params.min_size)


def assign(new: np.ndarray, known: np.ndarray, known_labels: np.ndarray, threshold: float, k: int = 10,
           min_votes: int = 1, forbidden: dict[int, set[int]] | None = None) -> np.ndarray:
    """For each new vector, the label (of `known_labels`, >= 0) most of its neighbours above `threshold` carry,
    weighted by similarity; -1 when fewer than `min_votes` neighbours vote. `forbidden[i]` = labels the new
    face i must not get ("not this person")."""
    out = np.full(len(new), UNSORTED, np.int64)
    if not len(new) or not len(known):
        return out
    rows, cols, sims = neighbour_edges(new, threshold, k, others=known, exclude_self=False)
    labels = np.asarray(known_labels, np.int64)[cols]
    ok = labels >= 0
    rows, labels, sims = rows[ok], labels[ok], sims[ok]
    votes: dict[int, dict[int, tuple[int, float]]] = {}
    for r, lab, s in zip(rows.tolist(), labels.tolist(), sims.tolist()):
        if forbidden and lab in forbidden.get(r, ()):
            continue
        count, total = votes.setdefault(r, {}).get(lab, (0, 0.0))
        votes[r][lab] = (count + 1, total + s)
    for r, by_label in votes.items():
        lab, (count, _) = max(by_label.items(), key=lambda kv: kv[1][1])
        if count >= min_votes:
            out[r] = lab
    return out
