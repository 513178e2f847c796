"""The library's vector index for incremental grouping: k-means cells of the face vectors, kept in the database.

A full grouping of a big library already splits the faces into k-means cells to find neighbours (an inverted
file, `cluster.ivf_edges`); the cells' centres and each face's cell are kept here, so that sorting new faces
reads only the faces of the cells near them (and their groups), not every vector of the library.

- `library_cells`: one centre per cell (a mean of many people's faces, not one person's);
- `library_face_cells`: each face's cell; a deleted face's row goes with it (ON DELETE CASCADE);
- `library_faces_new`: a partial index of the faces not considered yet (grouped = 0), so finding them reads
  only them.
"""
from __future__ import annotations

import numpy as np

from .cluster import nearest_cells

SCHEMA = """
CREATE TABLE IF NOT EXISTS library_cells (id INTEGER PRIMARY KEY, centre BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS library_face_cells (
    face_id INTEGER PRIMARY KEY REFERENCES library_faces(id) ON DELETE CASCADE, cell INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS library_face_cells_cell ON library_face_cells(cell);
CREATE INDEX IF NOT EXISTS library_faces_new ON library_faces(id) WHERE grouped = 0;
"""
FACES_PER_CELL = 64  # fine cells: 1,000 new faces in a million-face library touch a few % of them
PROBES = 2           # cells a new face searches: its nearest ones ...
PROBE_MARGIN = 0.05  # ... whose centre is at most this much less similar than its nearest centre's
CHUNK = 500          # ids per SQL IN (...) list
CELL_COLUMNS = ("id", "centre")
FACE_CELL_COLUMNS = ("face_id", "cell")


def fine_cells(vectors: np.ndarray, coarse_home: np.ndarray, per_cell: int = FACES_PER_CELL,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split each coarse cell (the grouping's k-means cells) by k-means into cells of about `per_cell` faces:
    unit centres and each face's fine cell. Fitting one k-means of n / per_cell cells on a million faces would
    take hours; splitting each of the ~2,000 coarse cells takes seconds."""
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, np.float32)
    order = np.argsort(coarse_home, kind="stable")
    bounds = np.flatnonzero(np.diff(coarse_home[order])) + 1
    centres: list[np.ndarray] = []
    home = np.empty(len(x), np.int64)
    for rows in np.split(order, bounds):
        if not len(rows):
            continue
        parts = max(1, round(len(rows) / per_cell))
        if parts == 1:
            sub, local = x[rows].mean(0, keepdims=True), np.zeros(len(rows), np.int64)
        else:
            km = KMeans(parts, n_init=1, max_iter=20, random_state=seed).fit(x[rows])
            sub, local = km.cluster_centers_, km.labels_
        home[rows] = len(centres) + local
        centres.extend(sub)
    out = np.asarray(centres, np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12), home


def ensure(tables) -> None:
    """Create the cell tables if missing (SQLite's types, translated by the store's dialect for PostgreSQL)."""
    if tables.store.table_exists("library_face_cells") and tables.store.table_exists("library_cells"):
        return  # PostgreSQL's CREATE INDEX IF NOT EXISTS would wait for writers while it looks
    with tables.write() as cur:
        tables.store.lock(cur, "library-cells-schema")  # two processes create them once
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                cur.execute(tables.store.ddl(stmt))


def centres(tables) -> np.ndarray | None:
    rows = tables.read("SELECT centre FROM library_cells ORDER BY id")
    if not rows:
        return None
    return np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), tables.dim)


def save(tables, cell_centres: np.ndarray, homes: np.ndarray, ids: np.ndarray) -> None:
    """Replace the cells (after a full grouping): centres and every face's cell, in one transaction."""
    with tables.write() as cur:
        cur.execute("DELETE FROM library_face_cells")
        cur.execute("DELETE FROM library_cells")
        tables.store.insert_many(cur, "library_cells", CELL_COLUMNS,
                                 [(i, c.astype(np.float32).tobytes()) for i, c in enumerate(cell_centres)])
        tables.store.insert_many(cur, "library_face_cells", FACE_CELL_COLUMNS,
                                 zip(np.asarray(ids).tolist(), np.asarray(homes).tolist()))


def add(tables, cell_centres: np.ndarray, face_ids: np.ndarray, vectors: np.ndarray) -> None:
    """File new faces in their nearest cell."""
    if not len(face_ids):
        return
    home, _ = nearest_cells(vectors, cell_centres, 1)
    with tables.write() as cur:
        cur.executemany("INSERT INTO library_face_cells VALUES (?, ?) "  # SQLite and PostgreSQL alike
                        "ON CONFLICT (face_id) DO UPDATE SET cell = excluded.cell",
                        zip(np.asarray(face_ids).tolist(), home.tolist()))


def probe(cell_centres: np.ndarray, vectors: np.ndarray, probes: int = PROBES,
          margin: float = PROBE_MARGIN) -> np.ndarray:
    """The cells to read for these faces: each face's nearest `probes` cells, those within `margin` of its best."""
    if not len(vectors):
        return np.zeros(0, np.int64)
    sims = np.asarray(vectors, np.float32) @ cell_centres.T
    probes = min(probes, sims.shape[1])
    top = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
    top_sims = np.take_along_axis(sims, top, 1)
    near = top_sims >= top_sims.max(axis=1, keepdims=True) - margin
    return np.unique(top[near])


def counts(tables) -> tuple[int, int]:
    """(faces, faces filed in a cell)."""
    faces = int(tables.read("SELECT COUNT(*) FROM library_faces")[0][0])
    filed = int(tables.read("SELECT COUNT(*) FROM library_face_cells")[0][0])
    return faces, filed


def _face_state_sql(tables) -> str:
    """The columns faces_state lists; the JSON lookup in the store's dialect (SQLite json_extract, PostgreSQL ->>)."""
    size = tables.store.json_number("library_faces.quality", "size")
    return ("SELECT library_faces.id, COALESCE(group_id, -1), COALESCE(photos.person_id, -1), grouped, "
            f"COALESCE({size}, 0), vector FROM library_faces LEFT JOIN photos ON photos.id = library_faces.photo_id ")


def _state(rows: list[tuple], dim: int) -> dict[str, np.ndarray]:
    n = len(rows)
    return {"id": np.fromiter((r[0] for r in rows), np.int64, n),
            "group": np.fromiter((r[1] for r in rows), np.int64, n),
            "person": np.fromiter((r[2] for r in rows), np.int64, n),
            "grouped": np.fromiter((bool(r[3]) for r in rows), bool, n),
            "size": np.fromiter((r[4] for r in rows), np.float64, n),
            "vector": (np.frombuffer(b"".join(r[5] for r in rows), np.float32).reshape(n, dim) if n else
                       np.zeros((0, dim), np.float32))}


def new_faces(tables) -> dict[str, np.ndarray]:
    """The faces not considered yet, as faces_state lists them (through the partial index: only their rows)."""
    return _state(tables.read(_face_state_sql(tables) + "WHERE grouped = 0 ORDER BY library_faces.id"), tables.dim)


def faces_in(tables, cells: np.ndarray) -> dict[str, np.ndarray]:
    """Every face filed in these cells, as faces_state lists them."""
    rows: list[tuple] = []
    cells = np.asarray(cells).tolist()
    for start in range(0, len(cells), CHUNK):
        part = cells[start:start + CHUNK]
        rows += tables.read(_face_state_sql(tables) + "JOIN library_face_cells ON library_face_cells.face_id = "
                            f"library_faces.id WHERE library_face_cells.cell IN ({','.join('?' * len(part))})", part)
    rows.sort(key=lambda r: r[0])
    return _state(rows, tables.dim)


def labels_of(tables, face_ids) -> dict[int, tuple[int, int]]:
    """face id -> (group, person id) (-1 for none), for a few faces."""
    out: dict[int, tuple[int, int]] = {}
    ids = sorted({int(f) for f in face_ids})
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        for r in tables.read("SELECT library_faces.id, COALESCE(group_id, -1), COALESCE(photos.person_id, -1) FROM "
                             "library_faces LEFT JOIN photos ON photos.id = library_faces.photo_id WHERE "
                             f"library_faces.id IN ({','.join('?' * len(part))})", part):
            out[r[0]] = (r[1], r[2])
    return out
