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
from .sql_store import SqlStore
from .store import DEFAULT_MODEL, SCHEMA_VERSION, ModelInfo, model_info
from .vectors import stored_vector

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


class SqliteStore(SqlStore):
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
        with self._transaction("BEGIN IMMEDIATE") as cur:
            yield cur

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise translate(self.location, exc, self.timeout) from None

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Cursor]:
        """A read transaction: every statement in it sees the same state; writers are not blocked (WAL)."""
        with self._transaction("BEGIN") as cur:
            yield cur

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        """Committed when the block ends, rolled back when it raises; SQLite's errors become one-line StoreErrors."""
        cur = self.conn.cursor()
        try:
            cur.execute(begin)
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

    # -- the dialect SqlStore's rules are written in ----------------------------------------------------------------
    faces_ddl = FACES_TABLE

    def encode_vector(self, vector: np.ndarray) -> bytes:
        return np.asarray(vector, np.float32).tobytes()

    def decode_vector(self, value: Any, where: str) -> np.ndarray:
        return stored_vector(value, self.model.dim, where)

    def decode_matrix(self, values: list[Any], ids: np.ndarray) -> np.ndarray:
        size = 4 * self.model.dim
        for value, photo_id in zip(values, ids):
            if value is None or len(value) != size:  # a damaged row: one clear error rather than a reshape crash
                stored_vector(value, self.model.dim, f"{self.location}: photo {photo_id}")
        return np.frombuffer(b"".join(values), np.float32).reshape(len(values), self.model.dim)

    def table_exists(self, name: str, cur: Any = None) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(cur.execute(sql, (name,)).fetchone() if cur is not None else self.read(sql, (name,)))

    @contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        import fasteners

        with fasteners.InterProcessLock(f"{self.location}.{name}.lock"):  # a file next to the gallery
            yield

    def erase_residue(self) -> None:
        """Move the (secure-deleted) pages into the main file and empty the WAL, so old copies of deleted rows
        do not remain in the journal. Best effort: a reader holding an old snapshot keeps the WAL alive."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    # -- vectors: an in-memory index kept in step through the change log -----------------------------------------
    def vector_count(self) -> int:
        return len(self.search_index().built)  # COUNT(*) scans the table: 10+ ms at 100k rows

    def photo_people(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.read("SELECT id, person_id FROM photos ORDER BY id")
        arr = np.array(rows, np.int64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

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

    def stats(self) -> dict[str, Any]:
        counts = self.counts()
        size = sum(p.stat().st_size for p in self.files_of(self.path) if p.exists())
        # the index searches actually use (an HNSW graph also serves a gallery that shrank below the threshold)
        index_kind = "hnsw (usearch)" if self.search_index().built.kind == "hnsw" else "exact"
        return {"gallery": self.location, "backend": "sqlite", "schema_version": SCHEMA_VERSION,
                "model": self.model.to_dict(), "people": counts["people"], "photos": counts["photos"],
                "embeddings": counts["embeddings"], "index": index_kind,
                "face_images_kept": counts["face_images_kept"], "skipped_files": counts["skipped_files"],
                "bytes_on_disk": size}

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
        if loaded and len(self.built) != self.store.embedding_count():
            # the saved graph, brought up to date, still disagrees with the database: do not trust it
            self.index, self.seq = None, -1
            self._discard_file()
            self._rebuild()
            self._apply_changes(self.store.change_seq())
        if self.names is None or latest != getattr(self, "_mapped_seq", None):
            self.photo_ids, self.person_ids = self.store.photo_people()
            self.names = self.store.person_names()
            self._mapped_seq = latest

    @property
    def built(self) -> ExactIndex | HnswIndex:
        """The index, once sync() has loaded or built it (it always does before anything searches)."""
        if self.index is None:
            raise StoreError(f"{self.store.location}: the vector index was used before it was built")
        return self.index

    def _apply_changes(self, latest: int) -> None:
        if latest != self.seq:
            changes = self.store.changes_since(self.seq)
            added = {pid for _, op, pid in changes if op == "add"}
            removed = {pid for _, op, pid in changes if op == "del"}
            if removed:
                self.built.remove(sorted(removed))
            fresh = sorted(added - removed)
            if fresh:
                ids, vecs = self.store.vectors_of(fresh)
                self.built.add(ids, vecs)
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
        ids, sims = self.built.search(query, k, exact=self.store.vectors_of)
        out = []
        for row_ids, row_sims in zip(ids, sims):
            persons = self.person_of(row_ids)
            out.append([(int(i), int(p), float(s)) for i, p, s in zip(row_ids, persons, row_sims) if p >= 0])
        return out
