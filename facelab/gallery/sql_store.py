"""The rules of a gallery, written once for every SQL backend (SQLite, PostgreSQL).

`SqlStore` holds what a gallery *does*: the order of the checks before a write, duplicates (by content hash),
the change log that keeps vector indexes in step, deletion everywhere (photos, embeddings, face crops, the files
ledger) and the rename / merge / delete rules with their typed errors. A backend supplies only what differs
between databases:

- transactions: `write()` (one all-or-nothing transaction, yielding a cursor) and `read(sql, params)`;
- the dialect: every statement here is written with `?` placeholders (a backend whose driver wants `%s`
  translates them), `vector_param` / `vector_column` / `encode_vector` / `decode_vector` for the embeddings
  column (a BLOB of float32 in SQLite, a pgvector `vector` in PostgreSQL), `faces_ddl` and `table_exists`;
- `lock_hashes`: what makes the duplicate check race-free (nothing in SQLite, whose write transaction already
  excludes every other writer; advisory locks in PostgreSQL, whose writers run side by side);
- `erase_residue` (make deleted rows unrecoverable), `search`, `vector_count` and `stats`.

To add a backend: subclass SqlStore, create its schema (the same tables and columns as sqlite.py's SCHEMA),
fill in the items above, and run the gallery test suite against it (tests/test_gallery.py's `store_location`).
"""
from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ..errors import Conflict, NotFound
from .store import FileEntry, NewPhoto, PersonRecord, PhotoRecord, Store, person_folders
from .vectors import checked_person_name, checked_vector

CHUNK = 500  # ids per `IN (...)` list: SQLite allows at most 999 parameters per statement before 3.32

PHOTO_COLUMNS = ("photos.id, people.name, photos.source, photos.sha256, photos.face_index, photos.n_faces, "
                 "photos.box, photos.pose, photos.quality, photos.added")


def json_value(value: Any) -> Any:
    """A JSON column's value: SQLite returns the text, PostgreSQL's jsonb the decoded object."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def marks(n: int) -> str:
    return ",".join("?" * n)


class SqlStore(Store):
    """A Store over SQL tables (meta, people, photos, embeddings, files, faces, changes); see the module text."""

    # -- what a backend supplies ---------------------------------------------------------------------------------
    vector_param = "?"            # SQL for one vector parameter (PostgreSQL: "?::vector")
    vector_column = "vector"      # SQL reading embeddings.vector into what decode_vector takes
    faces_ddl: str                # CREATE TABLE IF NOT EXISTS faces (...), made on first use

    @abstractmethod
    def write(self) -> AbstractContextManager[Any]:
        """One write transaction (all or nothing); yields a cursor taking `?` placeholders."""

    @abstractmethod
    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]: ...

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Any]:
        """A read transaction (yields a cursor): a multi-statement read sees one state, and writers go on."""

    @abstractmethod
    def encode_vector(self, vector: np.ndarray) -> Any: ...

    @abstractmethod
    def decode_vector(self, value: Any, where: str) -> np.ndarray: ...

    def decode_matrix(self, values: list[Any], ids: np.ndarray) -> np.ndarray:
        """The vectors of these photos as one float32 matrix (a backend may have a faster way than one by one)."""
        return np.stack([self.decode_vector(v, f"{self.location}: photo {i}") for v, i in zip(values, ids)])

    @abstractmethod
    def table_exists(self, name: str, cur: Any = None) -> bool: ...

    def lock_hashes(self, cur: Any, hashes: list[str]) -> None:
        """Make the duplicate check of these content hashes race-free until the transaction ends."""

    def lock(self, cur: Any, key: str) -> None:
        """Hold `key` until the transaction ends: a check-then-write on it cannot interleave with another
        writer's (nothing to do in SQLite, whose write transaction already excludes every other writer)."""

    @abstractmethod
    def named_lock(self, name: str) -> AbstractContextManager[Any]:
        """An exclusive lock across processes, held outside transactions (e.g. one library grouping at a time)."""

    def ddl(self, sql: str) -> str:
        """A CREATE statement written for SQLite (INTEGER PRIMARY KEY, REAL, BLOB) in this database's types."""
        return sql

    def insert_many(self, cur: Any, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        """INSERT many rows in one go (PostgreSQL: COPY; one statement per row costs a round trip each there)."""
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(len(columns))})", rows)

    def scratch_table(self, cur: Any, name: str, columns: str) -> None:
        """An empty table only this connection sees, for a batch the next statements join (a grouping's moves):
        SQLite's TEMP table, emptied; PostgreSQL's dropped at commit."""
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        cur.execute(f"DELETE FROM {name}")

    def json_number(self, column: str, key: str) -> str:
        """SQL for the number under `key` of a JSON text column."""
        return f"json_extract({column}, '$.{key}')"

    def erase_residue(self) -> None:
        """After deleting biometric data: make the deleted rows unrecoverable from the database files."""

    # -- people and photos -----------------------------------------------------------------------------------------
    def _person_id(self, cur: Any, name: str, create: bool) -> int | None:
        if create:
            return self.ensure_person(cur, name)
        row = cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def ensure_person(self, cur: Any, name: str) -> int:
        """The id of the person with this name, created if new."""
        row = cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row:
            return int(row[0])
        # ON CONFLICT: another writer may create the same person at the same moment (PostgreSQL)
        cur.execute("INSERT INTO people (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    (name, time.time()))
        return int(cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0])

    def _need(self, cur: Any, name: str) -> int:
        pid = self._person_id(cur, name, create=False)
        if pid is None:
            raise NotFound(f"{self.location}: no person named {name!r}")
        return pid

    def insert_photo(self, cur: Any, person_id: int, source: str | None, sha256: str, face_index: int,
                     n_faces: int, box: Any, pose: Any, quality: Any, added: float, vector: Any) -> int:
        """One photo row with its embedding (already encoded) and its change-log entry; returns the photo id.
        box / pose / quality are JSON text."""
        photo_id = cur.execute("INSERT INTO photos (person_id, source, sha256, face_index, n_faces, box, pose, "
                               "quality, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                               (person_id, source, sha256, face_index, n_faces, box, pose, quality,
                                added)).fetchone()[0]
        cur.execute(f"INSERT INTO embeddings (photo_id, model, vector) VALUES (?, ?, {self.vector_param})",
                    (photo_id, self.model.name, vector))
        cur.execute("INSERT INTO changes (op, photo_id) VALUES ('add', ?)", (photo_id,))
        return int(photo_id)

    def add_photos(self, photos: Iterable[NewPhoto], files: Iterable[FileEntry] = ()) -> list[PhotoRecord | str]:
        photos, by_source = list(photos), {f.source: f for f in files}
        out: list[PhotoRecord | str] = []
        now = time.time()
        with self.write() as cur:
            if any(p.face_jpeg for p in photos):
                cur.execute(self.faces_ddl)  # a gallery made before faces could be kept gets the table now
            self.lock_hashes(cur, sorted({p.sha256 for p in photos}))
            for p in photos:
                # the duplicate check comes first: a duplicate creates nothing, not even its person
                dup = cur.execute("SELECT photos.id, people.name, photos.source FROM photos JOIN people ON "
                                  "people.id = photos.person_id WHERE sha256 = ?", (p.sha256,)).fetchone()
                if dup:
                    message = f"duplicate of photo {dup[0]} ({dup[1]})"
                    out.append(message)
                    if p.source in by_source:
                        f = by_source[p.source]
                        if dup[2] == p.source:  # this very file, added meanwhile by another process
                            f.photo_id = dup[0]
                        else:
                            f.status, f.reason, f.detail = "skipped", "duplicate", message
                    continue
                vec = checked_vector(p.vector, self.model, f"{self.location}: {p.source or p.person}")
                checked_person_name(p.person, self.location)
                pid = self.ensure_person(cur, p.person)
                photo_id = self.insert_photo(cur, pid, p.source, p.sha256, p.face_index, p.n_faces,
                                             json.dumps(p.box), json.dumps(p.pose), json.dumps(p.quality), now,
                                             self.encode_vector(vec))
                if p.face_jpeg:
                    cur.execute("INSERT INTO faces (photo_id, jpeg) VALUES (?, ?)", (photo_id, p.face_jpeg))
                out.append(PhotoRecord(photo_id, p.person, p.source, p.sha256, p.face_index, p.n_faces, p.box,
                                       p.pose, p.quality, now, self.model.name))
                if p.source in by_source:
                    by_source[p.source].photo_id = photo_id
            self._write_files(cur, by_source.values())
        return out

    def _write_files(self, cur: Any, files: Iterable[FileEntry]) -> None:
        rows = [(f.source, f.size, f.mtime, f.sha256, f.status, f.reason, f.detail, f.photo_id) for f in files]
        if rows:
            cur.executemany("INSERT INTO files (source, size, mtime, sha256, status, reason, detail, photo_id) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET size = "
                            "excluded.size, mtime = excluded.mtime, sha256 = excluded.sha256, status = "
                            "excluded.status, reason = excluded.reason, detail = excluded.detail, photo_id = "
                            "excluded.photo_id", rows)

    def record_files(self, files: Iterable[FileEntry]) -> None:
        files = list(files)
        if files:
            with self.write() as cur:
                self._write_files(cur, files)

    def file_entries(self, sources: list[str]) -> dict[str, FileEntry]:
        out = {}
        for i in range(0, len(sources), CHUNK):
            chunk = sources[i:i + CHUNK]
            rows = self.read("SELECT source, size, mtime, sha256, status, reason, detail, photo_id FROM files "
                             f"WHERE source IN ({marks(len(chunk))})", chunk)
            out.update({r[0]: FileEntry(*r) for r in rows})
        return out

    def forget_files(self, sources: list[str]) -> None:
        if sources:
            with self.write() as cur:
                cur.executemany("DELETE FROM files WHERE source = ?", [(s,) for s in sources])

    def _photo_rows(self, where: str, params: tuple) -> list[PhotoRecord]:
        rows = self.read(f"SELECT {PHOTO_COLUMNS} FROM photos JOIN people ON people.id = photos.person_id {where}",
                         params)
        return [PhotoRecord(r[0], r[1], r[2], r[3], r[4], r[5], json_value(r[6]), json_value(r[7]),
                            json_value(r[8]), r[9], self.model.name) for r in rows]

    def photo(self, photo_id: int) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE photos.id = ?", (int(photo_id),))
        return rows[0] if rows else None

    def photos_of(self, name: str) -> list[PhotoRecord]:
        return self._photo_rows("WHERE people.name = ? ORDER BY photos.id", (name,))

    def photo_by_hash(self, sha256: str) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def delete_photos(self, cur: Any, ids: list[int]) -> None:
        """Delete photos with everything that holds their face: embedding, crop, ledger entry; and log it, so
        every vector index drops them. People left empty are the caller's to delete."""
        ids = [int(i) for i in ids]
        cur.executemany("INSERT INTO changes (op, photo_id) VALUES ('del', ?)", [(i,) for i in ids])
        has_faces = self.table_exists("faces", cur)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            tables = ["files", "embeddings"] + (["faces"] if has_faces else [])
            for table in tables:
                cur.execute(f"DELETE FROM {table} WHERE photo_id IN ({marks(len(chunk))})", chunk)
            cur.execute(f"DELETE FROM photos WHERE id IN ({marks(len(chunk))})", chunk)

    @staticmethod
    def delete_empty_people(cur: Any) -> None:
        # NOT EXISTS (an anti-join on photos_person), not NOT IN: see library/grouping.py _file_missing
        cur.execute("DELETE FROM people WHERE NOT EXISTS (SELECT 1 FROM photos WHERE photos.person_id = people.id)")

    def face_image(self, photo_id: int) -> bytes | None:
        if not self.table_exists("faces"):
            return None
        rows = self.read("SELECT jpeg FROM faces WHERE photo_id = ?", (int(photo_id),))
        return bytes(rows[0][0]) if rows else None

    def remove_photos(self, photo_ids: list[int]) -> int:
        wanted = [int(i) for i in photo_ids]
        with self.write() as cur:
            ids: list[int] = []
            for i in range(0, len(wanted), CHUNK):
                chunk = wanted[i:i + CHUNK]
                ids += [r[0] for r in cur.execute(f"SELECT id FROM photos WHERE id IN ({marks(len(chunk))})",
                                                  chunk).fetchall()]
            self.delete_photos(cur, ids)
            self.delete_empty_people(cur)
        return len(ids)

    def _people_rows(self, where: str = "", params: tuple = ()) -> list[PersonRecord]:
        rows = self.read("SELECT people.id, people.name, COUNT(photos.id), people.created FROM people LEFT JOIN "
                         f"photos ON photos.person_id = people.id {where} GROUP BY people.id ORDER BY people.name",
                         params)
        return [PersonRecord(r[0], r[1], int(r[2]), r[3]) for r in rows]

    def people(self) -> list[PersonRecord]:
        return self._people_rows()

    def person(self, name: str) -> PersonRecord | None:
        rows = self._people_rows("WHERE people.name = ?", (name,))
        return rows[0] if rows else None

    def rename_person(self, old: str, new: str) -> None:
        checked_person_name(new, self.location)
        with self.write() as cur:
            pid = self._need(cur, old)
            if self._person_id(cur, new, create=False) is not None:
                raise Conflict(f"{self.location}: {new!r} already exists (use merge to combine two people)")
            cur.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
            cur.execute("INSERT INTO changes (op, photo_id) VALUES ('person', 0)")

    def merge_people(self, src: str, dst: str) -> int:
        if src == dst:
            raise Conflict(f"cannot merge {src!r} into itself")
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
            self.delete_photos(cur, ids)
            cur.execute("DELETE FROM people WHERE id = ?", (pid,))
            cur.executemany("DELETE FROM files WHERE photo_id IS NULL AND substr(source, 1, ?) = ?",
                            [(len(f), f) for f in person_folders(name, [r[1] for r in rows])])
        self.erase_residue()
        return len(ids)

    # -- vectors ---------------------------------------------------------------------------------------------------
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.read(f"SELECT photos.id, photos.person_id, embeddings.{self.vector_column} FROM embeddings JOIN "
                         "photos ON photos.id = embeddings.photo_id WHERE model = ? ORDER BY photos.id",
                         (self.model.name,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, self.model.dim), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        persons = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        return ids, persons, self.decode_matrix([r[2] for r in rows], ids)

    def vectors_of(self, photo_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        ids = [int(x) for x in photo_ids]
        found: dict[int, np.ndarray] = {}
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            for pid, value in self.read(f"SELECT photo_id, {self.vector_column} FROM embeddings WHERE model = ? "
                                        f"AND photo_id IN ({marks(len(chunk))})", [self.model.name, *chunk]):
                found[int(pid)] = self.decode_vector(value, f"{self.location}: photo {pid}")
        order = [i for i in dict.fromkeys(ids) if i in found]  # in the order asked
        return (np.array(order, np.int64),
                np.array([found[i] for i in order], np.float32).reshape(len(order), self.model.dim))

    def vectors_of_people(self, person_ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, list] = {}
        ids = [int(x) for x in person_ids]
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            rows = self.read(f"SELECT photos.person_id, embeddings.{self.vector_column} FROM embeddings JOIN photos "
                             f"ON photos.id = embeddings.photo_id WHERE model = ? AND photos.person_id IN "
                             f"({marks(len(chunk))}) ORDER BY photos.id", [self.model.name, *chunk])
            for pid, value in rows:
                out.setdefault(pid, []).append(self.decode_vector(value, f"{self.location}: person {pid}"))
        return {pid: np.stack(v) for pid, v in out.items()}

    def change_seq(self) -> int:
        return int(self.read("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def version(self) -> int:
        return self.change_seq()

    def person_names(self) -> dict[int, str]:
        return dict(self.read("SELECT id, name FROM people"))

    # -- settings kept with the gallery ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as cur:
            cur.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                        "excluded.value", (key, value))

    def counts(self) -> dict[str, Any]:
        """The part of `stats()` every backend shares."""
        kept = self.read("SELECT COUNT(*) FROM faces")[0][0] if self.table_exists("faces") else 0
        return {"people": self.read("SELECT COUNT(*) FROM people")[0][0],
                "photos": self.read("SELECT COUNT(*) FROM photos")[0][0],
                "embeddings": dict(self.read("SELECT model, COUNT(*) FROM embeddings GROUP BY model")),
                "face_images_kept": kept,
                "skipped_files": dict(self.read("SELECT reason, COUNT(*) FROM files WHERE status = 'skipped' "
                                                "GROUP BY reason"))}
