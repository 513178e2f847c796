"""The embedded gallery: one SQLite file (WAL journal, one transaction per write), no server.

Tables: meta (schema version, model id, fingerprint), people, photos (path, sha256, box, pose, quality),
embeddings (one float32 blob per photo, tagged with the model), files (the enrolment ledger), faces (face crops,
kept only on request) and changes (an append-only log of added / deleted photo ids that keeps the vector index in
step).

The vector index lives in memory, built from the embeddings table: exact search for small galleries, an HNSW
graph (usearch) above `HNSW_THRESHOLD` vectors, persisted next to the database (`<db>.hnsw`, replaced
atomically) together with the change-log position it reflects; on open only the changes made since are applied.
The file is bound to its database: it carries the gallery's random `index_id` (kept in meta) and a SHA-256 of
the graph, and is thrown away and rebuilt from the embeddings when either does not match (a gallery recreated
at the same path, a damaged file), or when its vector count disagrees with the database's after catching up.

Concurrency: WAL lets readers run while one process writes; writers queue on SQLite's lock for `timeout`
seconds (BEGIN IMMEDIATE, so the wait happens at the start of a transaction, never half-way), then get a
StoreError that says the gallery is locked. Deleted rows are overwritten (secure_delete) and the WAL is
checkpointed after deleting a person, so removed faces do not linger in the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotFound, StoreError
from .index import HNSW_THRESHOLD, ExactIndex, HnswIndex
from .store import (
    DEFAULT_MODEL,
    SCHEMA_VERSION,
    FileEntry,
    ModelInfo,
    NewPhoto,
    PersonRecord,
    PhotoRecord,
    Store,
    model_info,
    person_folders,
    unique_merge_target,
)
from .vectors import checked_person_name, checked_vector, stored_vector

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT, sha256 TEXT NOT NULL UNIQUE, face_index INTEGER NOT NULL, n_faces INTEGER NOT NULL,
    box TEXT NOT NULL, pose TEXT, quality TEXT, added REAL NOT NULL);
CREATE INDEX IF NOT EXISTS photos_person ON photos(person_id);
CREATE TABLE IF NOT EXISTS embeddings (
    photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
    model TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT, status TEXT NOT NULL,
    reason TEXT, detail TEXT, photo_id INTEGER REFERENCES photos(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS faces (
    photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE, jpeg BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, photo_id INTEGER NOT NULL);
"""


FACES_TABLE = next(stmt for stmt in SCHEMA.split(";") if "TABLE IF NOT EXISTS faces" in stmt)


def translate(location: str, exc: sqlite3.Error, timeout: float) -> StoreError:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return StoreError(f"{location}: gallery is locked by another process that is writing to it (waited "
                          f"{timeout:g} s); try again when it has finished, or pass a longer --timeout")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return StoreError(f"{location}: not a readable facelab gallery (corrupt or not an SQLite file: {msg})")
    if "readonly" in msg or "unable to open" in msg:
        return StoreError(f"{location}: cannot write the gallery ({msg})")
    return StoreError(f"{location}: gallery error: {msg}")


class SqliteStore(Store):
    def __init__(self, path: str | os.PathLike, model: ModelInfo | None, create: bool = True,
                 timeout: float = 10.0, hnsw_threshold: int = HNSW_THRESHOLD):
        self.path = Path(path)
        self.location = str(path)
        self.timeout = timeout
        self.hnsw_threshold = hnsw_threshold
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise NotFound(f"{self.location}: no such gallery (create one with `facelab gallery enrol ROOT "
                             f"--gallery {self.location}`)")
        if not exists and not self.path.parent.is_dir():
            raise StoreError(f"{self.location}: folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise StoreError(f"{self.location}: is a folder, not a gallery file")
        # A gallery we cannot write (read-only media, a shared read-only copy) is opened read-only, so it can still
        # be searched; writes then fail with "cannot write the gallery".
        self.read_only = exists and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))
        try:
            self.conn = self._connect_read_only() if self.read_only else sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise translate(self.location, exc, timeout) from None
        self._search: _VectorSearch | None = None
        try:
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA secure_delete = ON")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at each checkpoint, never corrupt
            if not exists:
                self._create(model or model_info(DEFAULT_MODEL))
            stored = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            self.conn.close()
            if "no such table: meta" in str(exc):
                raise StoreError(f"{self.location}: an SQLite file, but not a facelab gallery") from None
            raise translate(self.location, exc, timeout) from None
        except StoreError:
            self.conn.close()
            raise
        try:
            self.model = self.check_model(stored, model)
        except Exception:
            self.conn.close()
            raise

    def _connect_read_only(self) -> sqlite3.Connection:
        """mode=ro, else (a WAL gallery whose folder cannot hold the -shm file) immutable=1: nothing can change
        the file on read-only media, so SQLite may skip locking altogether."""
        from urllib.parse import quote

        base = "file:" + quote(str(self.path.resolve()))
        for flags in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = sqlite3.connect(base + flags, uri=True, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
        raise StoreError(f"{self.location}: cannot open the read-only gallery")

    def _create(self, model: ModelInfo | None) -> None:
        if model is None:
            raise StoreError(f"{self.location}: a new gallery needs an embedding model")
        self.conn.execute("PRAGMA journal_mode = WAL")
        with self.write() as cur:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            have = dict(cur.execute("SELECT key, value FROM meta").fetchall())
            if not have:  # another process may have created it between our check and our lock
                cur.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("model", model.name), ("dim", str(model.dim)),
                    ("fingerprint", model.fingerprint), ("created", str(time.time())), ("app", "facelab"),
                    ("index_id", uuid.uuid4().hex)])

    # -- transactions ----------------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction; waits up to `timeout` s for other writers, then a clear 'locked' error."""
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(self.location, exc, self.timeout) from None
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            try:
                cur.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise translate(self.location, exc, self.timeout) from None
            raise

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise translate(self.location, exc, self.timeout) from None

    # -- people and photos -------------------------------------------------------------------------------------
    def _person_id(self, cur: sqlite3.Cursor, name: str, create: bool) -> int | None:
        row = cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            return None
        cur.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, time.time()))
        return cur.lastrowid

    def add_photos(self, photos: Iterable[NewPhoto], files: Iterable[FileEntry] = ()) -> list[PhotoRecord | str]:
        photos, files = list(photos), {f.source: f for f in files}
        out: list[PhotoRecord | str] = []
        now = time.time()
        with self.write() as cur:
            if any(p.face_jpeg for p in photos):
                cur.execute(FACES_TABLE)  # a gallery made before faces could be kept gets the table now
            for p in photos:
                dup = cur.execute("SELECT photos.id, people.name, photos.source FROM photos JOIN people ON "
                                  "people.id = photos.person_id WHERE sha256 = ?", (p.sha256,)).fetchone()
                if dup:
                    out.append(f"duplicate of photo {dup[0]} ({dup[1]})")
                    if p.source in files:
                        f = files[p.source]
                        if dup[2] == p.source:  # this very file, added meanwhile by another process
                            f.photo_id = dup[0]
                        else:
                            f.status, f.reason, f.detail = "skipped", "duplicate", out[-1]
                    continue
                vec = checked_vector(p.vector, self.model, f"{self.location}: {p.source or p.person}")
                checked_person_name(p.person, self.location)
                pid = self._person_id(cur, p.person, create=True)
                cur.execute("INSERT INTO photos (person_id, source, sha256, face_index, n_faces, box, pose, "
                            "quality, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (pid, p.source, p.sha256, p.face_index, p.n_faces, json.dumps(p.box),
                             json.dumps(p.pose), json.dumps(p.quality), now))
                photo_id = cur.lastrowid
                cur.execute("INSERT INTO embeddings VALUES (?, ?, ?)", (photo_id, self.model.name, vec.tobytes()))
                cur.execute("INSERT INTO changes (op, photo_id) VALUES ('add', ?)", (photo_id,))
                if p.face_jpeg:
                    cur.execute("INSERT INTO faces VALUES (?, ?)", (photo_id, p.face_jpeg))
                out.append(PhotoRecord(photo_id, p.person, p.source, p.sha256, p.face_index, p.n_faces, p.box,
                                       p.pose, p.quality, now, self.model.name))
                if p.source in files:
                    files[p.source].photo_id = photo_id
            self._write_files(cur, files.values())
        return out

    def _write_files(self, cur: sqlite3.Cursor, files: Iterable[FileEntry]) -> None:
        cur.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(f.source, f.size, f.mtime, f.sha256, f.status, f.reason, f.detail, f.photo_id)
                         for f in files])

    def record_files(self, files: Iterable[FileEntry]) -> None:
        files = list(files)
        if files:
            with self.write() as cur:
                self._write_files(cur, files)

    def file_entries(self, sources: list[str]) -> dict[str, FileEntry]:
        out = {}
        for i in range(0, len(sources), 500):
            chunk = sources[i:i + 500]
            rows = self.read(f"SELECT * FROM files WHERE source IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: FileEntry(*r) for r in rows})
        return out

    def forget_files(self, sources: list[str]) -> None:
        if sources:
            with self.write() as cur:
                cur.executemany("DELETE FROM files WHERE source = ?", [(s,) for s in sources])

    def _photo_rows(self, where: str, params: tuple) -> list[PhotoRecord]:
        rows = self.read("SELECT photos.id, people.name, source, sha256, face_index, n_faces, box, pose, quality, "
                         "added FROM photos JOIN people ON people.id = photos.person_id " + where, params)
        return [PhotoRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]),
                            json.loads(r[8]), r[9], self.model.name) for r in rows]

    def photo(self, photo_id: int) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE photos.id = ?", (int(photo_id),))
        return rows[0] if rows else None

    def photos_of(self, name: str) -> list[PhotoRecord]:
        return self._photo_rows("WHERE people.name = ? ORDER BY photos.id", (name,))

    def photo_by_hash(self, sha256: str) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def _delete_photos(self, cur: sqlite3.Cursor, ids: list[int]) -> None:
        cur.executemany("INSERT INTO changes (op, photo_id) VALUES ('del', ?)", [(i,) for i in ids])
        cur.executemany("DELETE FROM files WHERE photo_id = ?", [(i,) for i in ids])
        cur.executemany("DELETE FROM embeddings WHERE photo_id = ?", [(i,) for i in ids])
        if self._has_faces(cur):
            cur.executemany("DELETE FROM faces WHERE photo_id = ?", [(i,) for i in ids])
        cur.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in ids])

    @staticmethod
    def _has_faces(cur: sqlite3.Cursor) -> bool:
        return cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'faces'").fetchone() is not None

    def face_image(self, photo_id: int) -> bytes | None:
        if not self._has_faces(self.conn.cursor()):
            return None
        rows = self.read("SELECT jpeg FROM faces WHERE photo_id = ?", (int(photo_id),))
        return bytes(rows[0][0]) if rows else None

    def remove_photos(self, photo_ids: list[int]) -> int:
        with self.write() as cur:
            ids = [r[0] for r in cur.execute(
                f"SELECT id FROM photos WHERE id IN ({','.join('?' * len(photo_ids))})", photo_ids).fetchall()]
            self._delete_photos(cur, ids)
            cur.execute("DELETE FROM people WHERE id NOT IN (SELECT DISTINCT person_id FROM photos)")
        return len(ids)

    def people(self) -> list[PersonRecord]:
        rows = self.read("SELECT people.id, name, COUNT(photos.id), created FROM people LEFT JOIN photos ON "
                         "photos.person_id = people.id GROUP BY people.id ORDER BY name")
        return [PersonRecord(*r) for r in rows]

    def person(self, name: str) -> PersonRecord | None:
        rows = self.read("SELECT people.id, name, COUNT(photos.id), created FROM people LEFT JOIN photos ON "
                         "photos.person_id = people.id WHERE name = ? GROUP BY people.id", (name,))
        return PersonRecord(*rows[0]) if rows else None

    def _need(self, cur: sqlite3.Cursor, name: str) -> int:
        pid = self._person_id(cur, name, create=False)
        if pid is None:
            raise NotFound(f"{self.location}: no person named {name!r}")
        return pid

    def rename_person(self, old: str, new: str) -> None:
        checked_person_name(new, self.location)
        with self.write() as cur:
            pid = self._need(cur, old)
            if self._person_id(cur, new, create=False) is not None:
                raise StoreError(f"{self.location}: {new!r} already exists (use merge to combine two people)")
            cur.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
            cur.execute("INSERT INTO changes (op, photo_id) VALUES ('person', 0)")

    def merge_people(self, src: str, dst: str) -> int:
        unique_merge_target(src, dst)
        with self.write() as cur:
            sid, did = self._need(cur, src), self._need(cur, dst)
            n = cur.execute("UPDATE photos SET person_id = ? WHERE person_id = ?", (did, sid)).rowcount
            cur.execute("DELETE FROM people WHERE id = ?", (sid,))
            cur.execute("INSERT INTO changes (op, photo_id) VALUES ('person', 0)")
        return n

    def delete_person(self, name: str) -> int:
        with self.write() as cur:
            pid = self._need(cur, name)
            rows = cur.execute("SELECT id, source FROM photos WHERE person_id = ?", (pid,)).fetchall()
            ids = [r[0] for r in rows]
            self._delete_photos(cur, ids)
            cur.execute("DELETE FROM people WHERE id = ?", (pid,))
            cur.executemany("DELETE FROM files WHERE photo_id IS NULL AND substr(source, 1, ?) = ?",
                            [(len(f), f) for f in person_folders(name, [r[1] for r in rows])])
        self.erase_residue()
        return len(ids)

    def erase_residue(self) -> None:
        """Move the (secure-deleted) pages into the main file and empty the WAL, so old copies of deleted rows
        do not remain in the journal. Best effort: a reader holding an old snapshot keeps the WAL alive."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    # -- vectors -----------------------------------------------------------------------------------------------
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.read("SELECT photos.id, person_id, vector FROM embeddings JOIN photos ON photos.id = "
                         "embeddings.photo_id WHERE model = ? ORDER BY photos.id", (self.model.name,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, self.model.dim), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        persons = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        size = 4 * self.model.dim
        for r in rows:
            if r[2] is None or len(r[2]) != size:  # a damaged row: one clear error rather than a reshape crash
                stored_vector(r[2], self.model.dim, f"{self.location}: photo {r[0]}")
        matrix = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), self.model.dim)
        return ids, persons, matrix

    def vectors_of(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        out_ids, out_vecs = [], []
        for i in range(0, len(ids), 500):
            chunk = [int(x) for x in ids[i:i + 500]]
            rows = self.read(f"SELECT photo_id, vector FROM embeddings WHERE model = ? AND photo_id IN "
                             f"({','.join('?' * len(chunk))})", [self.model.name, *chunk])
            out_ids += [r[0] for r in rows]
            out_vecs += [stored_vector(r[1], self.model.dim, f"{self.location}: photo {r[0]}") for r in rows]
        return np.array(out_ids, np.int64), np.array(out_vecs, np.float32).reshape(len(out_ids), self.model.dim)

    def vectors_of_people(self, person_ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, list] = {}
        for i in range(0, len(person_ids), 500):
            chunk = [int(x) for x in person_ids[i:i + 500]]
            rows = self.read(f"SELECT person_id, vector FROM embeddings JOIN photos ON photos.id = "
                             f"embeddings.photo_id WHERE model = ? AND person_id IN ({','.join('?' * len(chunk))})",
                             [self.model.name, *chunk])
            for pid, blob in rows:
                out.setdefault(pid, []).append(stored_vector(blob, self.model.dim, f"{self.location}: person {pid}"))
        return {pid: np.stack(v) for pid, v in out.items()}

    def vector_count(self) -> int:
        return len(self.search_index().index)  # COUNT(*) scans the table: 10+ ms at 100k rows

    def version(self) -> int:
        return self.change_seq()

    def person_names(self) -> dict[int, str]:
        return dict(self.read("SELECT id, name FROM people"))

    def photo_people(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.read("SELECT id, person_id FROM photos ORDER BY id")
        arr = np.array(rows, np.int64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def change_seq(self) -> int:
        return int(self.read("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def changes_since(self, seq: int) -> list[tuple[int, str, int]]:
        return self.read("SELECT seq, op, photo_id FROM changes WHERE seq > ? ORDER BY seq", (seq,))

    @property
    def index_path(self) -> Path:
        return self.path.with_name(self.path.name + ".hnsw")

    @staticmethod
    def files_of(path: str | os.PathLike) -> list[Path]:
        """Every file a gallery at `path` may have: the database, its journal and its vector index (all hold
        biometric data; deleting a gallery deletes them all)."""
        path = Path(path)
        return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.with_name(path.name + ".hnsw")]

    def index_id(self) -> str | None:
        """The random id that binds a saved vector index to this database; made on first use for galleries
        created before it existed. None when the gallery cannot be written (the index is then not saved)."""
        rows = self.read("SELECT value FROM meta WHERE key = 'index_id'")
        if rows:
            return rows[0][0]
        if self.read_only:
            return None
        try:
            with self.write() as cur:
                cur.execute("INSERT OR IGNORE INTO meta VALUES ('index_id', ?)", (uuid.uuid4().hex,))
        except StoreError:
            return None
        return self.read("SELECT value FROM meta WHERE key = 'index_id'")[0][0]

    def embedding_count(self) -> int:
        return int(self.read("SELECT COUNT(*) FROM embeddings WHERE model = ?", (self.model.name,))[0][0])

    def search_index(self) -> _VectorSearch:
        if self._search is None:
            self._search = _VectorSearch(self)
        self._search.sync()
        return self._search

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[int, int, float]]]:
        return self.search_index().search(query, k)

    def get_meta(self, key: str) -> str | None:
        row = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as cur:
            cur.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value))

    def stats(self) -> dict[str, Any]:
        n_people = self.read("SELECT COUNT(*) FROM people")[0][0]
        n_photos = self.read("SELECT COUNT(*) FROM photos")[0][0]
        n_emb = self.read("SELECT model, COUNT(*) FROM embeddings GROUP BY model")
        skipped = self.read("SELECT reason, COUNT(*) FROM files WHERE status = 'skipped' GROUP BY reason")
        kept = self.read("SELECT COUNT(*) FROM faces")[0][0] if self._has_faces(self.conn.cursor()) else 0
        size = sum(p.stat().st_size for p in self.files_of(self.path) if p.exists())
        # the index searches actually use (an HNSW graph also serves a gallery that shrank below the threshold)
        index_kind = "hnsw (usearch)" if self.search_index().index.kind == "hnsw" else "exact"
        return {"gallery": self.location, "backend": "sqlite", "schema_version": SCHEMA_VERSION,
                "model": self.model.to_dict(), "people": n_people, "photos": n_photos,
                "embeddings": dict(n_emb), "index": index_kind, "face_images_kept": kept,
                "skipped_files": dict(skipped), "bytes_on_disk": size}

    def close(self) -> None:
        if self._search is not None:
            self._search.save()
            self._search = None
        self.conn.close()


class _VectorSearch:
    """The in-memory vector index of one SqliteStore, kept in step with the database through the change log."""

    def __init__(self, store: SqliteStore):
        self.store = store
        self.dim = store.model.dim
        self.seq = -1
        self.index: ExactIndex | HnswIndex | None = None
        self.photo_ids = np.zeros(0, np.int64)
        self.person_ids = np.zeros(0, np.int64)
        self.names: dict[int, str] = {}
        self.dirty = False  # the HNSW graph changed since it was last saved

    def _load_saved(self) -> None:
        """Start from the persisted HNSW file if it belongs to this very database (index_id), this model, and its
        bytes are intact (sha256). A file that fails any check is stale or damaged: it is deleted (it holds face
        vectors, possibly of a deleted gallery) and the index is rebuilt from the database."""
        path = self.store.index_path
        if not path.exists():
            return
        try:
            raw = path.read_bytes()
            header_len = int.from_bytes(raw[:4], "little")
            header = json.loads(raw[4:4 + header_len])
            graph = raw[4 + header_len:]
            gallery_id = self.store.index_id()
            if gallery_id is None:  # an old gallery we cannot give an id now: build in memory, keep the file
                return
            if (header.get("index_id") != gallery_id
                    or header["fingerprint"] != self.store.model.fingerprint or header["dim"] != self.dim
                    or header.get("sha256") != hashlib.sha256(graph).hexdigest()
                    or int(header["seq"]) > self.store.change_seq()):
                raise ValueError("index file does not belong to this gallery")
            self.index = HnswIndex.from_bytes(self.dim, graph)
            self.seq = int(header["seq"])
        except StoreError:
            raise
        except Exception:  # a damaged or foreign index file is only a cache: rebuild from the database
            self.index, self.seq = None, -1
            self._discard_file()

    def _discard_file(self) -> None:
        try:
            self.store.index_path.unlink(missing_ok=True)
        except OSError:
            pass  # read-only media: the file stays, and is ignored

    def save(self) -> None:
        """Persist the HNSW graph, first catching up with the database: a graph saved from a stale view could
        put back the vectors of a person another process has deleted since."""
        if not isinstance(self.index, HnswIndex) or not self.dirty:
            return
        try:
            self.sync()
        except StoreError:
            return  # the database is unreadable now; keep the old file (it is only a cache)
        self._write()

    def _write(self) -> None:
        if not isinstance(self.index, HnswIndex):
            return
        gallery_id = self.store.index_id()
        if gallery_id is None or self.store.read_only:
            return  # a read-only gallery: the graph lives in memory only
        graph = self.index.to_bytes()
        header = json.dumps({"seq": self.seq, "fingerprint": self.store.model.fingerprint, "dim": self.dim,
                             "count": len(self.index), "index_id": gallery_id,
                             "sha256": hashlib.sha256(graph).hexdigest()}).encode()
        path = self.store.index_path
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(len(header).to_bytes(4, "little") + header)
                fh.write(graph)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: readers see the old or the new index, never half of one
            self.dirty = False
        except OSError:
            tmp.unlink(missing_ok=True)

    def _rebuild(self) -> None:
        ids, _, matrix = self.store.vectors()
        self.seq = self.store.change_seq()
        if len(ids) >= self.store.hnsw_threshold:
            self.index = HnswIndex(self.dim)
            self.index.add(ids, matrix)
            self.dirty = True
        else:
            self.index = ExactIndex(self.dim)
            self.index.add(ids, matrix)

    def sync(self) -> None:
        latest = self.store.change_seq()
        loaded = False
        if self.index is None:
            if self.seq < 0:
                self._load_saved()
                loaded = self.index is not None
            if self.index is None:
                self._rebuild()
        self._apply_changes(latest)
        if loaded and len(self.index) != self.store.embedding_count():
            # the saved graph, brought up to date, still disagrees with the database: do not trust it
            self.index, self.seq = None, -1
            self._discard_file()
            self._rebuild()
            self._apply_changes(self.store.change_seq())
        if self.names is None or latest != getattr(self, "_mapped_seq", None):
            self.photo_ids, self.person_ids = self.store.photo_people()
            self.names = self.store.person_names()
            self._mapped_seq = latest

    def _apply_changes(self, latest: int) -> None:
        if latest != self.seq:
            changes = self.store.changes_since(self.seq)
            added = {pid for _, op, pid in changes if op == "add"}
            removed = {pid for _, op, pid in changes if op == "del"}
            if removed:
                self.index.remove(sorted(removed))
            fresh = sorted(added - removed)
            if fresh:
                ids, vecs = self.store.vectors_of(fresh)
                self.index.add(ids, vecs)
            self.seq = max([c[0] for c in changes] + [self.seq])
            self.dirty = self.dirty or bool(added or removed)
            if isinstance(self.index, ExactIndex) and len(self.index) >= self.store.hnsw_threshold:
                self._rebuild()
            if removed and isinstance(self.index, HnswIndex):
                self._write()  # deleted faces must leave the persisted index now, not at close

    def person_of(self, photo_ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.photo_ids, photo_ids)
        pos = np.clip(pos, 0, max(len(self.photo_ids) - 1, 0))
        ok = (len(self.photo_ids) > 0) & (self.photo_ids[pos] == photo_ids)
        return np.where(ok, self.person_ids[pos] if len(self.person_ids) else -1, -1)

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[int, int, float]]]:
        # an HNSW graph proposes candidates, the stored float32 vectors decide (exact search ignores the source)
        ids, sims = self.index.search(query, k, exact=self.store.vectors_of)
        out = []
        for row_ids, row_sims in zip(ids, sims):
            persons = self.person_of(row_ids)
            out.append([(int(i), int(p), float(s)) for i, p, s in zip(row_ids, persons, row_sims) if p >= 0])
        return out
