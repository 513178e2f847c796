"""Load test: N concurrent clients POST a real photo to /v1/analyze for D seconds against a local server.

    .venv/bin/python benchmarks/load.py                      # 16 clients, 60 s, /v1/analyze
    .venv/bin/python benchmarks/load.py --endpoint detect    # the same on /v1/detect

Starts `facelab serve` (one uvicorn process, default inference threads = CPU count) on a free port, warms it
up with one request, then each client sends the next request as soon as its previous answer arrives. Prints and
writes benchmarks/results/load.json: requests, errors (any non-200 or transport error), throughput, p50/p95/max.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import threading
import time
from pathlib import Path

import httpx
from PIL import Image
from skimage import data

from _server import local_server, machine

RESULTS = Path(__file__).resolve().parent / "results"


def photo_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=90)  # 512x512, one face
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="analyze", choices=["analyze", "detect", "recognize", "verify"])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=None, help="server inference threads (default: CPU count)")
    ap.add_argument("--attributes", default=None, help="analyze only these, e.g. age,gender (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "load.json"))
    args = ap.parse_args()

    jpg = photo_jpeg()
    path = f"/v1/{args.endpoint}" + (f"?attributes={args.attributes}" if args.attributes else "")
    files = ({"image_a": ("a.jpg", jpg, "image/jpeg"), "image_b": ("b.jpg", jpg, "image/jpeg")}
             if args.endpoint == "verify" else {"image": ("a.jpg", jpg, "image/jpeg")})
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    with local_server(args.threads) as (url, _key):
        warm = httpx.post(url + path, files=files, timeout=120)
        if warm.status_code != 200:
            raise SystemExit(f"{path} answered {warm.status_code}: {warm.text[:300]}")
        load_before = machine()
        stop_at = time.perf_counter() + args.seconds

        def client():
            with httpx.Client(base_url=url, timeout=120) as http:
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    try:
                        r = http.post(path, files=files)
                        problem = None if r.status_code == 200 else f"HTTP {r.status_code}"
                    except httpx.HTTPError as exc:
                        problem = type(exc).__name__
                    dt = time.perf_counter() - t0
                    with lock:
                        if problem:
                            errors[problem] = errors.get(problem, 0) + 1
                        else:
                            latencies.append(dt)

        started = time.perf_counter()
        workers = [threading.Thread(target=client) for _ in range(args.clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started

    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None  # noqa: E731
    result = {
        "endpoint": path, "clients": args.clients, "seconds": round(elapsed, 1), "image": "astronaut 512x512 JPEG",
        "requests_ok": len(ms), "errors": sum(errors.values()), "error_kinds": errors,
        "throughput_rps": round(len(ms) / elapsed, 2),
        "latency_ms": {"p50": pick(0.50), "p95": pick(0.95), "max": round(ms[-1], 1) if ms else None,
                       "mean": round(statistics.fmean(ms), 1) if ms else None},
        "machine": {**load_before, "load_average_1min_after": machine()["load_average_1min"]},
        "server": f"facelab serve (1 uvicorn process, inference threads = {args.threads or load_before['cpus']})",
        "command": f"benchmarks/load.py --endpoint {args.endpoint} --clients {args.clients} --seconds {args.seconds:g}"
                   + (f" --attributes {args.attributes}" if args.attributes else ""),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
