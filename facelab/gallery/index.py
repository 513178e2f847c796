"""Nearest-neighbour search over unit vectors (cosine = dot product): exact (NumPy) and approximate (HNSW).

Exact search is one matrix product: at 20,000 x 128 it takes well under a millisecond per query and is always
right, so small galleries use it. Above `HNSW_THRESHOLD` vectors the gallery switches to an HNSW graph.

Why usearch for HNSW (over faiss-cpu and hnswlib, which also install here):
- a small, maintained wheel (Apache-2.0) with no BLAS/OpenMP baggage; faiss-cpu is ~30 MB and its HNSW cannot
  remove vectors (IndexHNSW has no remove_ids), which a gallery needs for deleting a person;
- removal by key, serialisation to bytes (the index is stored as one file, replaced atomically), and f16 storage;
- hnswlib (0.8.0, last release 2023) is an sdist that compiles at install time, and marks deletions without
  erasing the vectors' bytes.
usearch also keeps a removed vector's bytes until its slot is reused, so `remove` below refills the freed slots
with zero vectors before removing them again: deleted faces do not survive in memory or in the saved file
(tests/test_gallery.py checks the file's bytes).
"""
from __future__ import annotations

import numpy as np

HNSW_THRESHOLD = 20_000      # vectors; below this exact search is both fast and exact
HNSW_CONNECTIVITY = 48       # M: links per node (100k: M=16 recall@10 0.982 at best, M=32 0.996; 1M: M=48 is
                             # 7 % faster than M=32 at recall 0.99, for a 20 % longer build)
HNSW_EXPANSION_ADD = 128     # efConstruction
HNSW_EXPANSION_SEARCH = 256  # ef up to LARGE_GRAPH vectors: recall@10 0.997 at 100k (benchmarks/search_scale.py)
HNSW_EXPANSION_SEARCH_LARGE = 448  # ef above it: at 1M, M=48, recall@10 0.9915 at p50 4.5 ms (ef=384: 0.989)
LARGE_GRAPH = 250_000
# The graph stores vectors as int8: 4x less vector memory and ~2.4x faster distance work than float32 (200k:
# ef=512 p50 2.4 vs 5.8 ms), at the price of coarse similarities (recall@10 0.95 alone). So the graph proposes
# RERANK_CANDIDATES and the exact float32 vectors (the caller's, e.g. the gallery's database) pick the top k:
# recall then equals float32's at the same ef (0.998 at 200k, ef=512).
HNSW_DTYPE = "i8"
RERANK_CANDIDATES = 30


def expansion_search_for(n: int) -> int:
    """HNSW's search breadth (ef) for a graph of n vectors: a bigger graph needs a wider search for the same
    recall."""
    return HNSW_EXPANSION_SEARCH if n <= LARGE_GRAPH else HNSW_EXPANSION_SEARCH_LARGE


def as_matrix(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    return v.reshape(1, -1) if v.ndim == 1 else v


class ExactIndex:
    """Brute force: ids and a matrix; search is a matrix product and a partial sort."""

    kind = "exact"

    def __init__(self, dim: int):
        self.dim = dim
        self.ids = np.zeros(0, np.int64)
        self.matrix = np.zeros((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self.matrix = np.vstack([self.matrix, as_matrix(vectors)])

    def remove(self, ids) -> None:
        keep = ~np.isin(self.ids, np.asarray(ids, np.int64))
        self.ids, self.matrix = self.ids[keep], self.matrix[keep]

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Cosine of every query against every stored vector: (n_queries, n)."""
        return as_matrix(queries) @ self.matrix.T

    def search(self, queries: np.ndarray, k: int, exact=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, similarities), each (n_queries, min(k, n)), best first. `exact` is HnswIndex's re-rank source;
        this index already holds the exact vectors, so it is not needed."""
        sims = self.similarities(queries)
        k = min(k, sims.shape[1])
        if k == 0:
            return np.zeros((len(sims), 0), np.int64), np.zeros((len(sims), 0), np.float32)
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else \
            np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        top = np.take_along_axis(sims, part, 1)
        order = np.argsort(-top, axis=1, kind="stable")
        cols = np.take_along_axis(part, order, 1)
        return self.ids[cols], np.take_along_axis(sims, cols, 1)

    def get(self, ids) -> np.ndarray:
        pos = {int(i): n for n, i in enumerate(self.ids)}
        return self.matrix[[pos[int(i)] for i in ids]]


class HnswIndex:
    """usearch HNSW graph over inner product (vectors are unit length, so inner product = cosine)."""

    kind = "hnsw"

    def __init__(self, dim: int, dtype: str = HNSW_DTYPE, connectivity: int = HNSW_CONNECTIVITY,
                 expansion_add: int = HNSW_EXPANSION_ADD, index=None):
        from usearch.index import Index

        self.dim = dim
        self.ef: int | None = None  # None: by the graph's size (expansion_search_for)
        self.index = index if index is not None else Index(
            ndim=dim, metric="ip", dtype=dtype, connectivity=connectivity, expansion_add=expansion_add)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = 1) -> None:
        # One insertion thread by default: usearch 2.26's multi-threaded add (threads=0) races and leaves a
        # damaged graph (measured: a 300-vector gallery missed exact self-matches in 24 of 30 builds with
        # threads=0, in 0 of 30 with threads=1; at 20k vectors 14 self-misses vs 0, for 8 % less build time).
        if len(ids):
            self.index.add(np.asarray(ids, np.uint64), as_matrix(vectors), threads=threads)

    def remove(self, ids) -> None:
        ids = np.asarray([i for i in np.asarray(ids, np.uint64) if self.index.contains(int(i))], np.uint64)
        if not len(ids):
            return
        self.index.remove(ids)
        # Overwrite the freed slots (usearch reuses them for the next additions), then free them again.
        self.index.add(ids, np.zeros((len(ids), self.dim), np.float32), threads=1)
        self.index.remove(ids)

    @property
    def dtype(self) -> str:
        return str(self.index.dtype).rsplit(".", 1)[-1]  # "ScalarKind.I8" -> "I8"

    def search(self, queries: np.ndarray, k: int, threads: int = 0, exact=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, similarities), best first. `exact(ids) -> (ids, float32 vectors)` re-ranks RERANK_CANDIDATES
        graph hits per query with exact similarities (needed for a quantised graph; the ids it returns may come
        in any order, and ids it does not know are dropped)."""
        q = as_matrix(queries)
        if exact is None:
            return self._graph_search(q, k, threads)
        ids, _ = self._graph_search(q, max(k, RERANK_CANDIDATES), threads)
        known, vecs = exact(np.unique(ids[ids >= 0]))
        row = {int(i): n for n, i in enumerate(known)}
        k = min(k, ids.shape[1])
        out_ids, out_sims = np.full((len(q), k), -1, np.int64), np.full((len(q), k), -np.inf, np.float32)
        for n, (hits, query) in enumerate(zip(ids, q)):
            hits = np.array([i for i in hits if int(i) in row], np.int64)
            sims = vecs[[row[int(i)] for i in hits]] @ query if len(hits) else np.zeros(0, np.float32)
            best = np.argsort(-sims, kind="stable")[:k]
            out_ids[n, :len(best)], out_sims[n, :len(best)] = hits[best], sims[best]
        return out_ids, out_sims

    def _graph_search(self, q: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.index))
        if k == 0:
            return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
        # usearch defines this property's setter apart from its getter, which mypy reads as read-only
        self.index.expansion_search = max(k, self.ef or expansion_search_for(len(self.index)))  # type: ignore[misc]
        res = self.index.search(q, k, threads=threads)
        keys = np.asarray(res.keys, np.int64).reshape(len(q), -1)
        sims = 1.0 - np.asarray(res.distances, np.float32).reshape(len(q), -1)
        counts = np.asarray(getattr(res, "counts", [len(res.keys)])).reshape(-1)
        # rows with fewer hits than k are padded by usearch: mark the padding (id -1) for callers to drop
        missing = np.arange(keys.shape[1])[None, :] >= counts[:, None]
        keys[missing], sims[missing] = -1, -np.inf
        return keys, sims

    def stored_bytes(self, ids) -> list[bytes]:
        """The bytes the graph holds for these vectors, in its own storage type (for checks that deleted
        vectors are gone from a saved file)."""
        rows = self.index.get(np.asarray(ids, np.uint64), dtype=self.dtype.lower())  # "i8", "f16", "f32", "f64"
        if not isinstance(rows, tuple):  # several keys give a tuple of rows
            raise TypeError(f"usearch returned {type(rows).__name__} for {len(ids)} keys")
        out = []
        for i, row in zip(ids, rows):
            if row is None:
                raise KeyError(f"vector {i} is not in the graph")
            out.append(np.asarray(row).tobytes())
        return out

    def get(self, ids) -> np.ndarray:
        return np.asarray(self.index.get(np.asarray(ids, np.uint64)), np.float32).reshape(len(ids), self.dim)

    def to_bytes(self) -> bytes:
        data = self.index.save()  # no path given: the serialised index
        if data is None:
            raise RuntimeError("usearch saved the index to a file instead of returning it")
        return bytes(data)

    @classmethod
    def from_bytes(cls, dim: int, data: bytes) -> HnswIndex:
        from usearch.index import Index

        index = Index.restore(bytearray(data))
        if index is None or index.ndim != dim:
            raise ValueError("index file does not match the gallery")
        return cls(dim, index=index)

    def memory_bytes(self) -> int:
        return int(self.index.memory_usage)
