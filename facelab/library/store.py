"""The library's tables, inside a gallery's own database, SQLite or PostgreSQL (one store, not two).

A library is a gallery whose photos hold many faces and whose people may be unnamed groups:
- `library_files`: the scan ledger, one row per file looked at (size, mtime, sha256, how many faces, or why skipped);
- `library_faces`: every face found (box, landmarks, pose, quality, detector score, embedding, small JPEG
  thumbnail) and where it is sorted: an unnamed group (`group_id`), a named person (`photo_id`: the face is then
  also a photo of that person in the gallery's own `photos` / `embeddings` tables, so `facelab identify -g lib.db`
  knows them), or neither (unsorted);
- `library_rejects`: "not this person", remembered: a face never goes back to that person (person_id) or into a
  group with that face (other_face).

The tables are created on first use (CREATE TABLE IF NOT EXISTS), so existing galleries open unchanged. The SQL is
the gallery store's dialect (`gallery.sql_store.SqlStore`): written once with `?` placeholders and SQLite's
column types, which a PostgreSQL gallery translates (`ddl`, `json_number`, `lock`). Where SQLite relies on its
one-writer file lock, PostgreSQL takes a transaction-scoped advisory lock (`store.lock`): on a file's path while
its faces are stored, so two scans at once never store a file twice.
Deletion follows the gallery's: a named face's row references its gallery photo ON DELETE CASCADE, so deleting
a person (here or with `gallery delete`) deletes their faces, thumbnails and embeddings everywhere.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Conflict, NotFound, StoreError
from ..gallery.sql_store import SqlStore
from ..gallery.store import Store

# The library's names for the shared typed errors (kept: callers and tests import them from here).
LibraryNotFound = NotFound
LibraryConflict = Conflict


SCHEMA = """
CREATE TABLE IF NOT EXISTS library_files (
    source TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT, status TEXT NOT NULL,
    reason TEXT, detail TEXT, faces INTEGER NOT NULL DEFAULT 0, scanned REAL NOT NULL);
CREATE TABLE IF NOT EXISTS library_faces (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, face_index INTEGER NOT NULL,
    n_faces INTEGER NOT NULL, box TEXT NOT NULL, landmarks TEXT, pose TEXT, quality TEXT, score REAL,
    vector BLOB NOT NULL, thumb BLOB, group_id INTEGER,
    photo_id INTEGER REFERENCES photos(id) ON DELETE CASCADE,
    grouped INTEGER NOT NULL DEFAULT 0, added REAL NOT NULL, UNIQUE (source, face_index));
CREATE INDEX IF NOT EXISTS library_faces_group ON library_faces(group_id);
CREATE INDEX IF NOT EXISTS library_faces_photo ON library_faces(photo_id);
CREATE INDEX IF NOT EXISTS library_faces_source ON library_faces(source);
CREATE TABLE IF NOT EXISTS library_rejects (
    face_id INTEGER NOT NULL REFERENCES library_faces(id) ON DELETE CASCADE,
    person_id INTEGER REFERENCES people(id) ON DELETE CASCADE,
    other_face INTEGER REFERENCES library_faces(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS library_rejects_face ON library_rejects(face_id);
"""


@dataclass
class FaceRow:
    """One face of the library, as listed (no vector)."""

    id: int
    source: str
    face_index: int
    n_faces: int
    box: dict[str, float]
    pose: dict[str, float] | None
    quality: dict[str, float] | None
    group: int | None
    person: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "face_index": self.face_index, "n_faces": self.n_faces,
                "box": self.box, "pose": self.pose, "quality": self.quality, "group": self.group,
                "person": self.person}


@dataclass
class NewFace:
    source: str
    sha256: str
    face_index: int
    n_faces: int
    box: dict[str, float]
    landmarks: dict[str, list[float]] | None
    pose: dict[str, float] | None
    quality: dict[str, float] | None
    score: float
    vector: np.ndarray
    thumb: bytes | None


FACE_COLUMNS = ("library_faces.id, library_faces.source, library_faces.face_index, library_faces.n_faces, "
                "library_faces.box, library_faces.pose, library_faces.quality, group_id, people.name")
FACE_JOIN = ("library_faces LEFT JOIN photos ON photos.id = library_faces.photo_id "
             "LEFT JOIN people ON people.id = photos.person_id")


def _face(row: tuple) -> FaceRow:
    return FaceRow(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5] or "null"),
                   json.loads(row[6] or "null"), row[7], row[8])


class LibraryTables:
    """SQL over a gallery store's connection; every write is one of its transactions (all or nothing)."""

    def __init__(self, store: Store):
        if not isinstance(store, SqlStore):
            raise StoreError(f"{store.location}: this gallery store cannot hold a photo library")
        self.store: SqlStore = store
        self.dim = store.model.dim
        if store.table_exists("library_rejects"):  # made last, in one transaction with the others
            return  # (PostgreSQL's CREATE INDEX IF NOT EXISTS would lock out writers while it looks)
        with store.write() as cur:
            store.lock(cur, "library-schema")  # two processes opening a new library create the tables once
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    cur.execute(store.ddl(stmt))

    @property
    def location(self) -> str:
        return self.store.location

    def write(self):
        return self.store.write()

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        return self.store.read(sql, params)

    # -- the scan ledger -------------------------------------------------------------------------------------
    def ledger(self) -> dict[str, tuple[int, float, str | None, str]]:
        """source -> (size, mtime, sha256, status) of every file scanned."""
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in
                self.read("SELECT source, size, mtime, sha256, status FROM library_files")}

    def store_file(self, source: str, size: int, mtime: float, sha: str | None, faces: list[NewFace],
                   skip: tuple[str, str] | None = None) -> str:
        """Write one file's faces (replacing any earlier ones of that path) and its ledger row, in one
        transaction. Returns "added", or "unchanged" when another scan stored this very version meanwhile."""
        with self.write() as cur:
            self.store.lock(cur, f"library-file:{source}")  # another scan storing this file waits for us
            have = cur.execute("SELECT size, mtime, sha256 FROM library_files WHERE source = ?",
                               (source,)).fetchone()
            if have and have[0] == size and abs(have[1] - mtime) < 1e-6 and have[2] == sha:
                return "unchanged"
            self._delete_faces_of(cur, [source])
            now = time.time()
            for f in faces:
                vec = np.asarray(f.vector, np.float32).reshape(-1)
                if len(vec) != self.dim:
                    raise StoreError(f"{self.location}: embedding has {len(vec)} values, library expects "
                                     f"{self.dim} ({self.store.model.name})")
                cur.execute("INSERT INTO library_faces (source, sha256, face_index, n_faces, box, landmarks, pose, "
                            "quality, score, vector, thumb, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (f.source, f.sha256, f.face_index, f.n_faces, json.dumps(f.box),
                             json.dumps(f.landmarks), json.dumps(f.pose), json.dumps(f.quality), f.score,
                             vec.tobytes(), f.thumb, now))
            status, reason, detail = ("skipped", *skip) if skip else ("done", None, None)
            cur.execute("INSERT INTO library_files (source, size, mtime, sha256, status, reason, detail, faces, "
                        "scanned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET size = "
                        "excluded.size, mtime = excluded.mtime, sha256 = excluded.sha256, status = excluded.status, "
                        "reason = excluded.reason, detail = excluded.detail, faces = excluded.faces, scanned = "
                        "excluded.scanned", (source, size, mtime, sha, status, reason, detail, len(faces), now))
        return "added"

    def touch_file(self, source: str, size: int, mtime: float) -> None:
        with self.write() as cur:
            cur.execute("UPDATE library_files SET size = ?, mtime = ? WHERE source = ?", (size, mtime, source))

    def _delete_faces_of(self, cur: Any, sources: list[str]) -> int:
        """Delete the faces of these files, with the gallery photos of the named ones (vector index included)."""
        n = 0
        for s in sources:
            photo_ids = [r[0] for r in cur.execute("SELECT photo_id FROM library_faces WHERE source = ? AND "
                                                   "photo_id IS NOT NULL", (s,)).fetchall()]
            if photo_ids:
                self.store.delete_photos(cur, photo_ids)
            n += cur.execute("DELETE FROM library_faces WHERE source = ?", (s,)).rowcount
        if n:
            self.store.delete_empty_people(cur)
        return n

    def forget_files(self, sources: list[str]) -> int:
        """Files that vanished: their faces go (and the ledger rows)."""
        if not sources:
            return 0
        with self.write() as cur:
            n = self._delete_faces_of(cur, sources)
            cur.executemany("DELETE FROM library_files WHERE source = ?", [(s,) for s in sources])
        self.store.erase_residue()
        return n

    # -- vectors and sorting state ---------------------------------------------------------------------------
    def faces_state(self) -> dict[str, np.ndarray]:
        """Every face: id, group (-1 none), person id (-1 none), grouped flag, size (px), vector. Read in chunks
        into preallocated arrays: at a million faces, a list of rows would double the memory."""
        size = self.store.json_number("library_faces.quality", "size")
        with self.store.snapshot() as cur:  # one read transaction: the count and the rows see the same state
            n = int(cur.execute("SELECT COUNT(*) FROM library_faces").fetchone()[0])
            out = {"id": np.empty(n, np.int64), "group": np.empty(n, np.int64), "person": np.empty(n, np.int64),
                   "grouped": np.empty(n, bool), "size": np.empty(n, np.float64),
                   "vector": np.empty((n, self.dim), np.float32)}
            cur.execute(f"SELECT library_faces.id, COALESCE(group_id, -1), COALESCE(photos.person_id, -1), grouped, "
                        f"COALESCE({size}, 0), vector FROM library_faces "
                        f"LEFT JOIN photos ON photos.id = library_faces.photo_id ORDER BY library_faces.id")
            at = 0
            while True:
                rows = cur.fetchmany(20_000)
                if not rows:
                    break
                end = at + len(rows)
                out["id"][at:end] = [r[0] for r in rows]
                out["group"][at:end] = [r[1] for r in rows]
                out["person"][at:end] = [r[2] for r in rows]
                out["grouped"][at:end] = [bool(r[3]) for r in rows]
                out["size"][at:end] = [r[4] for r in rows]
                out["vector"][at:end] = np.frombuffer(b"".join(r[5] for r in rows), np.float32).reshape(-1, self.dim)
                at = end
        return out

    def gallery_photos_without_faces(self) -> tuple[np.ndarray, np.ndarray]:
        """Person ids and vectors of gallery photos that are not library faces (people enrolled by folder)."""
        rows = self.read(f"SELECT photos.id, photos.person_id, embeddings.{self.store.vector_column} FROM photos "
                         "JOIN embeddings ON embeddings.photo_id = photos.id WHERE NOT EXISTS (SELECT 1 FROM "
                         "library_faces f WHERE f.photo_id = photos.id) ORDER BY photos.id")  # an anti-join
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), np.int64, n)
        return (np.fromiter((r[1] for r in rows), np.int64, n),
                self.store.decode_matrix([r[2] for r in rows], ids) if n else np.zeros((0, self.dim), np.float32))

    def rejects(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """("not this person") (face, person id) pairs and (face, other face) pairs."""
        rows = self.read("SELECT face_id, person_id, other_face FROM library_rejects")
        return ([(r[0], r[1]) for r in rows if r[1] is not None], [(r[0], r[2]) for r in rows if r[2] is not None])

    def next_group_id(self) -> int:
        return int(self.read("SELECT COALESCE(MAX(group_id), 0) + 1 FROM library_faces")[0][0])

    def apply_grouping(self, changes: list[tuple[int, int, int | None]], to_people: list[tuple[int, int, int]],
                       considered: list[int]) -> tuple[int, int]:
        """Write a grouping in one transaction: (face, old group, new group) moves of unnamed faces, (face, old
        group, person id) faces that join a named person, and the faces considered (no longer new). A face
        the user sorted meanwhile (its group or person changed since it was read) is left as the user put it."""
        moved = named = 0
        with self.write() as cur:
            if changes:  # one batch joined in, not a statement per face (PostgreSQL: 100k faces took 18 s more)
                self.store.scratch_table(cur, "grouping_moves", "face bigint PRIMARY KEY, old bigint, new bigint")
                self.store.insert_many(cur, "grouping_moves", ("face", "old", "new"), changes)
                moved = cur.execute(
                    "UPDATE library_faces SET group_id = (SELECT m.new FROM grouping_moves m WHERE m.face = "
                    "library_faces.id) WHERE id IN (SELECT face FROM grouping_moves) AND photo_id IS NULL AND "
                    "COALESCE(group_id, -1) = (SELECT m.old FROM grouping_moves m WHERE m.face = library_faces.id)"
                ).rowcount
            for face, old, person_id in to_people:
                row = cur.execute("SELECT photo_id, COALESCE(group_id, -1) FROM library_faces WHERE id = ?",
                                  (face,)).fetchone()
                exists = cur.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone()
                if row is None or row[0] is not None or row[1] != old or not exists:
                    continue
                self._make_photo(cur, face, person_id)
                named += 1
            self.store.scratch_table(cur, "grouping_considered", "face bigint PRIMARY KEY")
            self.store.insert_many(cur, "grouping_considered", ("face",), ((f,) for f in considered))
            cur.execute("UPDATE library_faces SET grouped = 1 WHERE id IN (SELECT face FROM grouping_considered) "
                        "AND grouped = 0")
        return moved, named

    def _make_photo(self, cur: Any, face: int, person_id: int) -> int:
        """Make a library face a photo of a named person (gallery tables + the vector index's change log)."""
        src, sha, idx, n, box, pose, quality, vector = cur.execute(
            "SELECT source, sha256, face_index, n_faces, box, pose, quality, vector FROM library_faces WHERE id = ?",
            (face,)).fetchone()
        # a photo's sha256 is unique in a gallery; a group photo holds several faces, so the face's record carries
        # the file's hash and the face's number
        photo_id = self.store.insert_photo(cur, person_id, src, f"{sha}#face{idx}", idx, n, box, pose, quality,
                                           time.time(),
                                           self.store.encode_vector(np.frombuffer(bytes(vector), np.float32)))
        cur.execute("UPDATE library_faces SET photo_id = ?, group_id = NULL, grouped = 1 WHERE id = ?",
                    (photo_id, face))
        return photo_id

    def _unmake_photo(self, cur: Any, face: int) -> None:
        """Take a face away from its named person (its library row stays; its gallery photo goes)."""
        photo_id = cur.execute("SELECT photo_id FROM library_faces WHERE id = ?", (face,)).fetchone()[0]
        if photo_id is None:
            return
        cur.execute("UPDATE library_faces SET photo_id = NULL WHERE id = ?", (face,))
        self.store.delete_photos(cur, [photo_id])

    # -- listing ---------------------------------------------------------------------------------------------
    def face(self, face_id: int) -> FaceRow | None:
        rows = self.read(f"SELECT {FACE_COLUMNS} FROM {FACE_JOIN} WHERE library_faces.id = ?", (int(face_id),))
        return _face(rows[0]) if rows else None

    def faces(self, where: str = "", params: Iterable[Any] = (), limit: int | None = None) -> list[FaceRow]:
        sql = f"SELECT {FACE_COLUMNS} FROM {FACE_JOIN} {where} ORDER BY library_faces.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_face(r) for r in self.read(sql, params)]

    def thumb(self, face_id: int) -> bytes | None:
        rows = self.read("SELECT thumb FROM library_faces WHERE id = ?", (int(face_id),))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None
