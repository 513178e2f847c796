"""The scale-out gallery: PostgreSQL with pgvector, behind the same Store interface as SQLite.

    facelab.open_gallery("postgresql://user@host:5432/db")          # tables in schema "facelab"
    facelab.open_gallery("postgresql://user@host:5432/db#team_a")   # another gallery in the same database

Embeddings are a `vector(dim)` column with an HNSW index (inner product: vectors are unit length), which
PostgreSQL keeps up to date on every insert and delete; search is `ORDER BY vector <#> q LIMIT k`.
Concurrent writers never block each other here (row locks only); a duplicate photo is caught by the unique
content hash (INSERT ... ON CONFLICT DO NOTHING), so two processes cannot store it twice. `timeout` bounds
how long a statement waits for a lock held by someone else.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import NotFound, StoreError
from ..extras import MissingExtra
from ..extras import message as extras_message
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
from .vectors import checked_person_name, checked_vector

# pgvector HNSW, measured at 100k SFace-like vectors (benchmarks/search_scale.py --pg-m 32 --pg-ef-construction 128):
# ef_search 100 gives recall@10 0.990, p50 3.8 ms (m = 16, ef_construction = 64 gave 0.955 at the same ef_search).
# Indexes are created with these values when a gallery is made; older galleries keep their index.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 100


def vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, np.float32).reshape(-1)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)



def shared_buffers_warning(index_bytes: int, shared_buffers_bytes: int) -> str | None:
    """A note for `stats()` when the HNSW index outgrows PostgreSQL's page cache: searches then read pages through
    the OS cache (measured at 300k vectors: p50 15.9 ms with the default 128 MB vs 5.0 ms with 2 GB,
    benchmarks/pg_shared_buffers.py)."""
    if index_bytes <= shared_buffers_bytes:
        return None
    return (f"the HNSW index ({index_bytes / 2**20:.0f} MB) is larger than PostgreSQL's shared_buffers "
            f"({shared_buffers_bytes / 2**20:.0f} MB): searches slow down about 3x; raise shared_buffers above "
            "the index size (about 1 GB per million faces) and restart the server")

class PostgresStore(Store):
    def __init__(self, uri: str, model: ModelInfo | None, create: bool = True, timeout: float = 10.0):
        try:
            import psycopg
        except ImportError:
            raise MissingExtra(extras_message("a PostgreSQL gallery", "postgres")) from None
        self.psycopg = psycopg
        uri, _, schema = uri.partition("#")
        schema = schema or "facelab"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
            raise StoreError(f"gallery name {schema!r} (after '#') must be a plain SQL identifier")
        self.uri, self.schema, self.timeout = uri, schema, timeout
        self.location = re.sub(r"//([^:@/]+):[^@/]+@", r"//\1:***@", uri) + (f"#{schema}" if schema != "facelab" else "")
        try:
            self.conn = psycopg.connect(uri, autocommit=True, connect_timeout=max(1, int(timeout)))
        except psycopg.Error as exc:
            raise StoreError(f"{self.location}: cannot connect to PostgreSQL ({str(exc).strip().splitlines()[0]})") from None
        try:
            self.conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            exists = self.conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()[0] is not None
            if not exists:
                if not create:
                    raise NotFound(f"{self.location}: no gallery here (create one with `facelab gallery enrol "
                                     f"ROOT --gallery {self.location}`)")
                self._create(model or model_info(DEFAULT_MODEL))
            stored = dict(self.conn.execute(f"SELECT key, value FROM {schema}.meta").fetchall())
            self.model = self.check_model(stored, model)
        except psycopg.Error as exc:
            self.conn.close()
            raise self._translate(exc) from None
        except Exception:
            self.conn.close()
            raise

    def _translate(self, exc: Exception) -> StoreError:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, self.psycopg.errors.LockNotAvailable) or "lock timeout" in msg:
            return StoreError(f"{self.location}: gallery is locked by another session (waited {self.timeout:g} s); "
                              f"try again later, or pass a longer --timeout")
        if isinstance(exc, self.psycopg.errors.UndefinedFile) or "extension \"vector\"" in msg:
            return StoreError(f"{self.location}: the server has no pgvector extension ({msg})")
        if isinstance(exc, self.psycopg.OperationalError):
            return StoreError(f"{self.location}: PostgreSQL connection failed ({msg})")
        return StoreError(f"{self.location}: gallery error: {msg}")

    def _create(self, model: ModelInfo) -> None:
        s = self.schema
        with self.write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"facelab:{s}",))  # one creator at a time
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.people (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
                        f"created double precision NOT NULL)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.photos (id bigserial PRIMARY KEY, person_id bigint NOT NULL "
                        f"REFERENCES {s}.people(id) ON DELETE CASCADE, source text, sha256 text NOT NULL UNIQUE, "
                        f"face_index int NOT NULL, n_faces int NOT NULL, box jsonb NOT NULL, pose jsonb, quality jsonb, "
                        f"added double precision NOT NULL)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS photos_person ON {s}.photos(person_id)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.embeddings (photo_id bigint PRIMARY KEY REFERENCES "
                        f"{s}.photos(id) ON DELETE CASCADE, model text NOT NULL, vector vector({model.dim}) NOT NULL)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS embeddings_hnsw ON {s}.embeddings USING hnsw (vector "
                        f"vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.files (source text PRIMARY KEY, size bigint NOT NULL, "
                        f"mtime double precision NOT NULL, sha256 text, status text NOT NULL, reason text, detail text, "
                        f"photo_id bigint REFERENCES {s}.photos(id) ON DELETE CASCADE)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s}.changes (seq bigserial PRIMARY KEY, op text NOT NULL, "
                        f"photo_id bigint NOT NULL)")
            cur.execute(self._faces_table())
            cur.execute(f"INSERT INTO {s}.meta VALUES (%s, %s), (%s, %s), (%s, %s), (%s, %s), (%s, %s) "
                        f"ON CONFLICT (key) DO NOTHING",
                        ("schema_version", str(SCHEMA_VERSION), "model", model.name, "dim", str(model.dim),
                         "fingerprint", model.fingerprint, "created", str(time.time())))

    def _faces_table(self) -> str:
        s = self.schema
        return (f"CREATE TABLE IF NOT EXISTS {s}.faces (photo_id bigint PRIMARY KEY REFERENCES {s}.photos(id) "
                f"ON DELETE CASCADE, jpeg bytea NOT NULL)")

    def _has_faces(self) -> bool:
        return self.read("SELECT to_regclass(%s)", (f"{self.schema}.faces",))[0][0] is not None

    @contextmanager
    def write(self) -> Iterator[Any]:
        try:
            with self.conn.transaction():
                with self.conn.cursor() as cur:
                    yield cur
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None

    # -- people and photos -------------------------------------------------------------------------------------
    def _person_id(self, cur, name: str, create: bool) -> int | None:
        if create:
            cur.execute(f"INSERT INTO {self.schema}.people (name, created) VALUES (%s, %s) ON CONFLICT (name) DO "
                        f"NOTHING", (name, time.time()))
        row = cur.execute(f"SELECT id FROM {self.schema}.people WHERE name = %s", (name,)).fetchone()
        return row[0] if row else None

    def add_photos(self, photos: Iterable[NewPhoto], files: Iterable[FileEntry] = ()) -> list[PhotoRecord | str]:
        s = self.schema
        photos, files = list(photos), {f.source: f for f in files}
        out: list[PhotoRecord | str] = []
        now = time.time()
        with self.write() as cur:
            if any(p.face_jpeg for p in photos):
                cur.execute(self._faces_table())  # a gallery made before faces could be kept gets the table now
            for p in photos:
                vec = checked_vector(p.vector, self.model, f"{self.location}: {p.source or p.person}")
                checked_person_name(p.person, self.location)
                pid = self._person_id(cur, p.person, create=True)
                row = cur.execute(f"INSERT INTO {s}.photos (person_id, source, sha256, face_index, n_faces, box, pose, "
                                  f"quality, added) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) "
                                  f"DO NOTHING RETURNING id",
                                  (pid, p.source, p.sha256, p.face_index, p.n_faces, json.dumps(p.box),
                                   json.dumps(p.pose), json.dumps(p.quality), now)).fetchone()
                if row is None:
                    dup = cur.execute(f"SELECT photos.id, people.name, photos.source FROM {s}.photos JOIN {s}.people "
                                      f"ON people.id = photos.person_id WHERE sha256 = %s", (p.sha256,)).fetchone()
                    out.append(f"duplicate of photo {dup[0]} ({dup[1]})")
                    if p.source in files:
                        f = files[p.source]
                        if dup[2] == p.source:
                            f.photo_id = dup[0]
                        else:
                            f.status, f.reason, f.detail = "skipped", "duplicate", out[-1]
                    # a person created only for this duplicate would stay empty: drop it
                    cur.execute(f"DELETE FROM {s}.people WHERE id = %s AND NOT EXISTS (SELECT 1 FROM {s}.photos "
                                f"WHERE person_id = %s)", (pid, pid))
                    continue
                photo_id = row[0]
                cur.execute(f"INSERT INTO {s}.embeddings VALUES (%s, %s, %s::vector)",
                            (photo_id, self.model.name, vector_literal(vec)))
                cur.execute(f"INSERT INTO {s}.changes (op, photo_id) VALUES ('add', %s)", (photo_id,))
                if p.face_jpeg:
                    cur.execute(f"INSERT INTO {s}.faces VALUES (%s, %s)", (photo_id, p.face_jpeg))
                out.append(PhotoRecord(photo_id, p.person, p.source, p.sha256, p.face_index, p.n_faces, p.box,
                                       p.pose, p.quality, now, self.model.name))
                if p.source in files:
                    files[p.source].photo_id = photo_id
            self._write_files(cur, files.values())
        return out

    def _write_files(self, cur, files: Iterable[FileEntry]) -> None:
        rows = [(f.source, f.size, f.mtime, f.sha256, f.status, f.reason, f.detail, f.photo_id) for f in files]
        if rows:
            cur.executemany(f"INSERT INTO {self.schema}.files VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT "
                            f"(source) DO UPDATE SET size = EXCLUDED.size, mtime = EXCLUDED.mtime, sha256 = "
                            f"EXCLUDED.sha256, status = EXCLUDED.status, reason = EXCLUDED.reason, detail = "
                            f"EXCLUDED.detail, photo_id = EXCLUDED.photo_id", rows)

    def record_files(self, files: Iterable[FileEntry]) -> None:
        files = list(files)
        if files:
            with self.write() as cur:
                self._write_files(cur, files)

    def file_entries(self, sources: list[str]) -> dict[str, FileEntry]:
        if not sources:
            return {}
        rows = self.read(f"SELECT * FROM {self.schema}.files WHERE source = ANY(%s)", (sources,))
        return {r[0]: FileEntry(*r) for r in rows}

    def forget_files(self, sources: list[str]) -> None:
        if sources:
            with self.write() as cur:
                cur.execute(f"DELETE FROM {self.schema}.files WHERE source = ANY(%s)", (sources,))

    def _photo_rows(self, where: str, params: tuple) -> list[PhotoRecord]:
        s = self.schema
        rows = self.read(f"SELECT photos.id, people.name, source, sha256, face_index, n_faces, box, pose, quality, "
                         f"added FROM {s}.photos JOIN {s}.people ON people.id = photos.person_id " + where, params)
        return [PhotoRecord(*r, model=self.model.name) for r in rows]

    def photo(self, photo_id: int) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE photos.id = %s", (int(photo_id),))
        return rows[0] if rows else None

    def photos_of(self, name: str) -> list[PhotoRecord]:
        return self._photo_rows("WHERE people.name = %s ORDER BY photos.id", (name,))

    def photo_by_hash(self, sha256: str) -> PhotoRecord | None:
        rows = self._photo_rows("WHERE sha256 = %s", (sha256,))
        return rows[0] if rows else None

    def _delete_photos(self, cur, ids: list[int]) -> None:
        s = self.schema
        cur.executemany(f"INSERT INTO {s}.changes (op, photo_id) VALUES ('del', %s)", [(i,) for i in ids])
        cur.execute(f"DELETE FROM {s}.files WHERE photo_id = ANY(%s)", (ids,))
        cur.execute(f"DELETE FROM {s}.embeddings WHERE photo_id = ANY(%s)", (ids,))
        if self._has_faces():
            cur.execute(f"DELETE FROM {s}.faces WHERE photo_id = ANY(%s)", (ids,))
        cur.execute(f"DELETE FROM {s}.photos WHERE id = ANY(%s)", (ids,))

    def face_image(self, photo_id: int) -> bytes | None:
        if not self._has_faces():
            return None
        rows = self.read(f"SELECT jpeg FROM {self.schema}.faces WHERE photo_id = %s", (int(photo_id),))
        return bytes(rows[0][0]) if rows else None

    def remove_photos(self, photo_ids: list[int]) -> int:
        s = self.schema
        with self.write() as cur:
            ids = [r[0] for r in cur.execute(f"SELECT id FROM {s}.photos WHERE id = ANY(%s)",
                                             ([int(i) for i in photo_ids],)).fetchall()]
            self._delete_photos(cur, ids)
            cur.execute(f"DELETE FROM {s}.people p WHERE NOT EXISTS (SELECT 1 FROM {s}.photos WHERE person_id = p.id)")
        return len(ids)

    def people(self) -> list[PersonRecord]:
        s = self.schema
        rows = self.read(f"SELECT people.id, name, COUNT(photos.id), created FROM {s}.people LEFT JOIN {s}.photos ON "
                         f"photos.person_id = people.id GROUP BY people.id ORDER BY name")
        return [PersonRecord(*r) for r in rows]

    def person(self, name: str) -> PersonRecord | None:
        s = self.schema
        rows = self.read(f"SELECT people.id, name, COUNT(photos.id), created FROM {s}.people LEFT JOIN {s}.photos ON "
                         f"photos.person_id = people.id WHERE name = %s GROUP BY people.id", (name,))
        return PersonRecord(*rows[0]) if rows else None

    def _need(self, cur, name: str) -> int:
        pid = self._person_id(cur, name, create=False)
        if pid is None:
            raise NotFound(f"{self.location}: no person named {name!r}")
        return pid

    def rename_person(self, old: str, new: str) -> None:
        checked_person_name(new, self.location)
        s = self.schema
        with self.write() as cur:
            pid = self._need(cur, old)
            if self._person_id(cur, new, create=False) is not None:
                raise StoreError(f"{self.location}: {new!r} already exists (use merge to combine two people)")
            cur.execute(f"UPDATE {s}.people SET name = %s WHERE id = %s", (new, pid))
            cur.execute(f"INSERT INTO {s}.changes (op, photo_id) VALUES ('person', 0)")

    def merge_people(self, src: str, dst: str) -> int:
        unique_merge_target(src, dst)
        s = self.schema
        with self.write() as cur:
            sid, did = self._need(cur, src), self._need(cur, dst)
            n = cur.execute(f"UPDATE {s}.photos SET person_id = %s WHERE person_id = %s", (did, sid)).rowcount
            cur.execute(f"DELETE FROM {s}.people WHERE id = %s", (sid,))
            cur.execute(f"INSERT INTO {s}.changes (op, photo_id) VALUES ('person', 0)")
        return n

    def delete_person(self, name: str) -> int:
        s = self.schema
        with self.write() as cur:
            pid = self._need(cur, name)
            rows = cur.execute(f"SELECT id, source FROM {s}.photos WHERE person_id = %s", (pid,)).fetchall()
            ids = [r[0] for r in rows]
            self._delete_photos(cur, ids)
            cur.execute(f"DELETE FROM {s}.people WHERE id = %s", (pid,))
            for folder in person_folders(name, [r[1] for r in rows]):
                cur.execute(f"DELETE FROM {s}.files WHERE photo_id IS NULL AND left(source, %s) = %s",
                            (len(folder), folder))
        # Deleted rows stay in the table and the HNSW index as dead tuples until vacuumed: vacuum now.
        try:
            for table in ("embeddings", "photos", "files") + (("faces",) if self._has_faces() else ()):
                self.conn.execute(f"VACUUM {s}.{table}")
        except self.psycopg.Error:
            pass
        return len(ids)

    # -- vectors -----------------------------------------------------------------------------------------------
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.schema
        rows = self.read(f"SELECT photos.id, person_id, vector::text FROM {s}.embeddings JOIN {s}.photos ON photos.id = "
                         f"embeddings.photo_id WHERE model = %s ORDER BY photos.id", (self.model.name,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, self.model.dim), np.float32)
        return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                np.stack([parse_vector(r[2]) for r in rows]))

    def vectors_of(self, photo_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = self.read(f"SELECT photo_id, vector::text FROM {self.schema}.embeddings WHERE model = %s AND photo_id = "
                         f"ANY(%s)", (self.model.name, [int(i) for i in photo_ids]))
        pos = {int(i): n for n, i in enumerate(photo_ids)}
        rows.sort(key=lambda r: pos.get(r[0], 0))
        return (np.array([r[0] for r in rows], np.int64),
                np.array([parse_vector(r[1]) for r in rows], np.float32).reshape(len(rows), self.model.dim))

    def vectors_of_people(self, person_ids: list[int]) -> dict[int, np.ndarray]:
        s = self.schema
        rows = self.read(f"SELECT person_id, vector::text FROM {s}.embeddings JOIN {s}.photos ON photos.id = "
                         f"embeddings.photo_id WHERE model = %s AND person_id = ANY(%s)",
                         (self.model.name, [int(i) for i in person_ids]))
        out: dict[int, list] = {}
        for pid, text in rows:
            out.setdefault(pid, []).append(parse_vector(text))
        return {pid: np.stack(v) for pid, v in out.items()}

    def vector_count(self) -> int:
        return int(self.read(f"SELECT COUNT(*) FROM {self.schema}.embeddings WHERE model = %s", (self.model.name,))[0][0])

    def version(self) -> int:
        return int(self.read(f"SELECT COALESCE(MAX(seq), 0) FROM {self.schema}.changes")[0][0])

    def person_names(self) -> dict[int, str]:
        return dict(self.read(f"SELECT id, name FROM {self.schema}.people"))

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[int, int, float]]]:
        s = self.schema
        q = np.asarray(query, np.float32).reshape(-1, self.model.dim)
        out = []
        try:
            with self.conn.transaction():
                # HNSW returns at most ef_search rows: keep it >= k
                self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, int(k))}")
                for row in q:
                    rows = self.conn.execute(
                        f"SELECT e.photo_id, p.person_id, -(e.vector <#> %s::vector) FROM {s}.embeddings e JOIN "
                        f"{s}.photos p ON p.id = e.photo_id WHERE e.model = %s ORDER BY e.vector <#> %s::vector "
                        f"LIMIT %s", (vector_literal(row), self.model.name, vector_literal(row), int(k))).fetchall()
                    out.append([(int(a), int(b), float(c)) for a, b, c in rows])
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None
        return out

    def get_meta(self, key: str) -> str | None:
        row = self.read(f"SELECT value FROM {self.schema}.meta WHERE key = %s", (key,))
        return row[0][0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as cur:
            cur.execute(f"INSERT INTO {self.schema}.meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                        f"excluded.value", (key, value))

    def stats(self) -> dict[str, Any]:
        s = self.schema
        n_people = self.read(f"SELECT COUNT(*) FROM {s}.people")[0][0]
        n_photos = self.read(f"SELECT COUNT(*) FROM {s}.photos")[0][0]
        n_emb = self.read(f"SELECT model, COUNT(*) FROM {s}.embeddings GROUP BY model")
        skipped = self.read(f"SELECT reason, COUNT(*) FROM {s}.files WHERE status = 'skipped' GROUP BY reason")
        kept = self.read(f"SELECT COUNT(*) FROM {s}.faces")[0][0] if self._has_faces() else 0
        size = self.read("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                         "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (s,))[0][0]
        index_bytes = self.read("SELECT COALESCE(pg_relation_size(to_regclass(%s)), 0)",
                                (f"{s}.embeddings_hnsw",))[0][0]
        buffers = self.read("SELECT setting::bigint * current_setting('block_size')::bigint FROM pg_settings "
                            "WHERE name = 'shared_buffers'")[0][0]
        warning = shared_buffers_warning(int(index_bytes), int(buffers))
        return {"gallery": self.location, "backend": "postgresql+pgvector", "schema_version": SCHEMA_VERSION,
                "model": self.model.to_dict(), "people": n_people, "photos": n_photos, "embeddings": dict(n_emb),
                "index": f"hnsw (pgvector, m={HNSW_M}, ef_search={HNSW_EF_SEARCH})", "face_images_kept": kept,
                "skipped_files": dict(skipped), "bytes_on_disk": int(size), "index_bytes": int(index_bytes),
                "shared_buffers_bytes": int(buffers), "warnings": [warning] if warning else []}

    def close(self) -> None:
        self.conn.close()
