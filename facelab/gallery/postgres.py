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

import re
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import NotFound, StoreError
from ..extras import MissingExtra
from ..extras import message as extras_message
from .sql_store import SqlStore
from .store import DEFAULT_MODEL, SCHEMA_VERSION, ModelInfo, model_info

# pgvector HNSW, measured at 100k SFace-like vectors (benchmarks/search_scale.py --pg-m 32 --pg-ef-construction 128):
# ef_search 100 gives recall@10 0.990, p50 3.8 ms (m = 16, ef_construction = 64 gave 0.955 at the same ef_search).
# Indexes are created with these values when a gallery is made; older galleries keep their index.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 100


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form; 9 significant digits round-trip every float32 exactly (7 did not: a vector read back
    differed in the last bits from the one stored)."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, np.float32).reshape(-1)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)


# SQLite's column types as PostgreSQL's, for tables created from one statement for both (the photo library's)
DDL_TYPES = [(r"\bINTEGER PRIMARY KEY\b", "bigserial PRIMARY KEY"), (r"\bINTEGER\b", "bigint"),
             (r"\bREAL\b", "double precision"), (r"\bBLOB\b", "bytea"), (r"\bTEXT\b", "text")]


@lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """SqlStore's `?` placeholders as psycopg's `%s` (a literal % doubled). The shared SQL holds no `?` or `%` in
    string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


class QmarkCursor:
    """A psycopg cursor that takes the shared SQL's `?` placeholders."""

    def __init__(self, cur: Any):
        self.cur = cur

    def execute(self, sql: str, params: Iterable[Any] = ()) -> QmarkCursor:
        self.cur.execute(pyformat(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> QmarkCursor:
        rows = [tuple(r) for r in rows]
        if rows:
            self.cur.executemany(pyformat(sql), rows)
        return self

    def fetchone(self) -> tuple | None:
        return self.cur.fetchone()

    def fetchall(self) -> list[tuple]:
        return self.cur.fetchall()

    def fetchmany(self, size: int) -> list[tuple]:
        return self.cur.fetchmany(size)

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount



def shared_buffers_warning(index_bytes: int, shared_buffers_bytes: int) -> str | None:
    """A note for `stats()` when the HNSW index outgrows PostgreSQL's page cache: searches then read pages through
    the OS cache (measured at 300k vectors: p50 15.9 ms with the default 128 MB vs 5.0 ms with 2 GB,
    benchmarks/pg_shared_buffers.py)."""
    if index_bytes <= shared_buffers_bytes:
        return None
    return (f"the HNSW index ({index_bytes / 2**20:.0f} MB) is larger than PostgreSQL's shared_buffers "
            f"({shared_buffers_bytes / 2**20:.0f} MB): searches slow down about 3x; raise shared_buffers above "
            "the index size (about 1 GB per million faces) and restart the server")

class PostgresStore(SqlStore):
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
        self.location = (re.sub(r"//([^:@/]+):[^@/]+@", r"//\1:***@", uri)
                         + (f"#{schema}" if schema != "facelab" else ""))
        try:
            self.conn = psycopg.connect(uri, autocommit=True, connect_timeout=max(1, int(timeout)))
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise StoreError(f"{self.location}: cannot connect to PostgreSQL ({first_line})") from None
        try:
            self.conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.meta",)).fetchall()[0][0]
            if not exists and not create:
                raise NotFound(f"{self.location}: no gallery here (create one with `facelab gallery enrol "
                               f"ROOT --gallery {self.location}`)")
            if not exists:
                with self.conn.transaction():
                    self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"facelab:{schema}",))
                    self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._use_schema()
            if not exists:
                self._create(model or model_info(DEFAULT_MODEL))
            stored: dict[str, str] = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            self.model = self.check_model(stored, model)
        except psycopg.Error as exc:
            self.conn.close()
            raise self._translate(exc) from None
        except Exception:
            self.conn.close()
            raise

    def _use_schema(self) -> None:
        """Unqualified table names (the shared SQL's) mean this gallery's schema; the `vector` type is found in
        whichever schema the extension was installed in."""
        row = self.conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = "
                                "e.extnamespace WHERE e.extname = 'vector'").fetchone()
        path = [self.schema] + ([row[0]] if row and row[0] != self.schema else [])
        self.conn.execute("SELECT set_config('search_path', %s, false)", (", ".join(f'"{p}"' for p in path),))

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
        with self.write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"facelab:{self.schema}",))  # one creator
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)")
            cur.execute("CREATE TABLE IF NOT EXISTS people (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
                        "created double precision NOT NULL)")
            cur.execute("CREATE TABLE IF NOT EXISTS photos (id bigserial PRIMARY KEY, person_id bigint NOT NULL "
                        "REFERENCES people(id) ON DELETE CASCADE, source text, sha256 text NOT NULL UNIQUE, "
                        "face_index int NOT NULL, n_faces int NOT NULL, box jsonb NOT NULL, pose jsonb, quality jsonb, "
                        "added double precision NOT NULL)")
            cur.execute("CREATE INDEX IF NOT EXISTS photos_person ON photos(person_id)")
            cur.execute(f"CREATE TABLE IF NOT EXISTS embeddings (photo_id bigint PRIMARY KEY REFERENCES "
                        f"photos(id) ON DELETE CASCADE, model text NOT NULL, vector vector({int(model.dim)}) NOT NULL)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS embeddings_hnsw ON embeddings USING hnsw (vector "
                        f"vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")
            cur.execute("CREATE TABLE IF NOT EXISTS files (source text PRIMARY KEY, size bigint NOT NULL, "
                        "mtime double precision NOT NULL, sha256 text, status text NOT NULL, reason text, detail text, "
                        "photo_id bigint REFERENCES photos(id) ON DELETE CASCADE)")
            cur.execute("CREATE TABLE IF NOT EXISTS changes (seq bigserial PRIMARY KEY, op text NOT NULL, "
                        "photo_id bigint NOT NULL)")
            cur.execute(self.faces_ddl)
            cur.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                            [("schema_version", str(SCHEMA_VERSION)), ("model", model.name), ("dim", str(model.dim)),
                             ("fingerprint", model.fingerprint), ("created", str(time.time()))])

    # -- transactions ------------------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[QmarkCursor]:
        try:
            with self.conn.transaction():
                with self.conn.cursor() as cur:
                    yield QmarkCursor(cur)
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[QmarkCursor]:
        """A read-only REPEATABLE READ transaction whose cursor lives on the server: `fetchmany` then streams
        rows (a client cursor would hold a million faces' rows in memory at once)."""
        try:
            with self.conn.transaction():
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with self.conn.cursor(name="facelab_snapshot") as cur:
                    yield QmarkCursor(cur)
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self.conn.execute(pyformat(sql), tuple(params)).fetchall()
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None

    # -- the dialect SqlStore's rules are written in ---------------------------------------------------------------
    faces_ddl = ("CREATE TABLE IF NOT EXISTS faces (photo_id bigint PRIMARY KEY REFERENCES photos(id) "
                 "ON DELETE CASCADE, jpeg bytea NOT NULL)")
    vector_param = "?::vector"
    vector_column = "vector::text"

    def encode_vector(self, vector: np.ndarray) -> str:
        return vector_literal(vector)

    def decode_vector(self, value: Any, where: str) -> np.ndarray:
        return parse_vector(value)

    def table_exists(self, name: str, cur: Any = None) -> bool:
        sql, params = "SELECT to_regclass(?)", (f"{self.schema}.{name}",)
        row = cur.execute(sql, params).fetchone() if cur is not None else self.read(sql, params)[0]
        return row[0] is not None

    def lock_hashes(self, cur: Any, hashes: list[str]) -> None:
        """Writers run side by side here: two that add one photo at once would both find no duplicate. A
        transaction-scoped advisory lock per hash bucket (taken in sorted order, so two writers cannot deadlock)
        makes the second wait until the first commits; 256 buckets bound the locks one transaction holds."""
        buckets = sorted({zlib.crc32(h.encode()) % 256 for h in hashes})
        for bucket in buckets:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(?), ?)", (f"facelab:{self.schema}:photos", bucket))

    def lock(self, cur: Any, key: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"facelab:{self.schema}:{key}",))

    @contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """A session-level advisory lock (the connection is in autocommit, so it outlives transactions)."""
        key = (f"facelab:{self.schema}:{name}",)
        try:
            self.conn.execute("SET lock_timeout = 0")  # wait as long as the holder works, like a file lock
            self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", key)
            self.conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None
        try:
            yield
        finally:
            try:
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", key)
            except self.psycopg.Error:
                pass  # a lost connection released it

    def insert_many(self, cur: Any, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        with cur.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def scratch_table(self, cur: Any, name: str, columns: str) -> None:
        cur.execute(f"CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")

    def ddl(self, sql: str) -> str:
        for sqlite_type, pg_type in DDL_TYPES:
            sql = re.sub(sqlite_type, pg_type, sql)
        return sql

    def json_number(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')::float8"

    def erase_residue(self) -> None:
        """Deleted rows stay in the tables and their indexes (HNSW included) as dead tuples until vacuumed: vacuum
        every table of the gallery now."""
        try:
            tables = self.read("SELECT tablename FROM pg_tables WHERE schemaname = ?", (self.schema,))
            for (table,) in tables:
                self.conn.execute(f'VACUUM "{self.schema}"."{table}"')
        except self.psycopg.Error:
            pass

    # -- vectors: pgvector's HNSW index, kept up to date by PostgreSQL -----------------------------------------
    def vector_count(self) -> int:
        return int(self.read("SELECT COUNT(*) FROM embeddings WHERE model = ?", (self.model.name,))[0][0])

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[int, int, float]]]:
        q = np.asarray(query, np.float32).reshape(-1, self.model.dim)
        out = []
        try:
            with self.conn.transaction():
                # HNSW returns at most ef_search rows: keep it >= k
                self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, int(k))}")
                for row in q:
                    rows = self.conn.execute(
                        "SELECT e.photo_id, p.person_id, -(e.vector <#> %s::vector) FROM embeddings e JOIN "
                        "photos p ON p.id = e.photo_id WHERE e.model = %s ORDER BY e.vector <#> %s::vector "
                        "LIMIT %s", (vector_literal(row), self.model.name, vector_literal(row), int(k))).fetchall()
                    out.append([(int(a), int(b), float(c)) for a, b, c in rows])
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None
        return out

    def stats(self) -> dict[str, Any]:
        s = self.schema
        counts = self.counts()
        size = self.read("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                         "ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'r'", (s,))[0][0]
        index_bytes = self.read("SELECT COALESCE(pg_relation_size(to_regclass(?)), 0)",
                                (f"{s}.embeddings_hnsw",))[0][0]
        buffers = self.read("SELECT setting::bigint * current_setting('block_size')::bigint FROM pg_settings "
                            "WHERE name = 'shared_buffers'")[0][0]
        warning = shared_buffers_warning(int(index_bytes), int(buffers))
        return {"gallery": self.location, "backend": "postgresql+pgvector", "schema_version": SCHEMA_VERSION,
                "model": self.model.to_dict(), "people": counts["people"], "photos": counts["photos"],
                "embeddings": counts["embeddings"],
                "index": f"hnsw (pgvector, m={HNSW_M}, ef_search={HNSW_EF_SEARCH})",
                "face_images_kept": counts["face_images_kept"], "skipped_files": counts["skipped_files"],
                "bytes_on_disk": int(size), "index_bytes": int(index_bytes),
                "shared_buffers_bytes": int(buffers), "warnings": [warning] if warning else []}

    def close(self) -> None:
        self.conn.close()
