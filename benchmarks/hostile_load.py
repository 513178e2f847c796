"""Hostile load (issue 17): server memory and /v1/health latency while clients send the worst image the limits allow.

    .venv/bin/python benchmarks/hostile_load.py                  # 4 hostile clients, 60 s, then the fuzz counts
    .venv/bin/python benchmarks/hostile_load.py --skip-tests     # the load figures only

Starts `facelab serve` with its default limits (20 MiB upload, 50 MP, decoded pixels <= 150 MB) on a free port.
The worst allowed images are small files that decode to the most memory the limits let through:
- a 7070x7070 8-bit RGB PNG (49.98 MP, 150 MB of pixels) of flat grey, 0.15 MB on disk;
- a 7000x7000 16-bit greyscale PNG (49 MP, 98 MB of pixels; the issue's "95 KB PNG"), 0.1 MB on disk.
(A 49 MP 32-bit float TIFF, the issue's other example, is now refused from its header: 187 MiB of pixels.)
N clients POST them to /v1/detect (no key needed) back to back, alternating, for D seconds, while one more
client asks /v1/health every 100 ms. The server's RSS is sampled every 50 ms. Targets: RSS < 1 GB, health
p95 < 200 ms. Then, unless --skip-tests, tests/test_fuzz.py and tests/test_hardening.py run once and the count of
hostile inputs they tried (and failures) is added. Writes benchmarks/results/hostile_load.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from _server import ROOT, local_server, machine

RESULTS = Path(__file__).resolve().parent / "results"


def worst_images() -> dict[str, bytes]:
    out = {}
    buf = io.BytesIO()
    Image.fromarray(np.full((7070, 7070, 3), 128, np.uint8)).save(buf, "PNG")
    out["rgb8_7070x7070.png"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.full((7000, 7000), 30000, np.uint16)).save(buf, "PNG")
    out["gray16_7000x7000.png"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((7000, 7000), np.float32)).save(buf, "TIFF", compression="tiff_deflate")
    out["float32_7000x7000.tif"] = buf.getvalue()
    return out


def server_process() -> psutil.Process:
    """The `facelab serve` child this script started."""
    for child in psutil.Process().children(recursive=True):
        if "serve" in " ".join(child.cmdline()):
            return child
    raise SystemExit("server process not found")


def pct(values: list[float], q: float) -> float | None:
    ms = sorted(values)
    return round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None


def measure(args) -> dict:
    images = worst_images()
    allowed = {k: v for k, v in images.items() if not k.startswith("float32")}
    rss: list[int] = []
    health_ms: list[float] = []
    answers: dict[str, int] = {}
    lock = threading.Lock()
    with local_server(args.threads) as (url, _key):
        proc = server_process()
        idle_rss = proc.memory_info().rss
        # the refused one first: its answer and that it costs no memory
        refused = httpx.post(url + "/v1/detect", timeout=60,
                             files={"image": ("f.tif", images["float32_7000x7000.tif"], "image/tiff")})
        idle_health = []
        for _ in range(20):
            t0 = time.perf_counter()
            httpx.get(url + "/v1/health", timeout=30)
            idle_health.append((time.perf_counter() - t0) * 1000)
        stop = threading.Event()
        stop_at = time.perf_counter() + args.seconds

        def sampler():
            while not stop.is_set():
                try:
                    rss.append(proc.memory_info().rss)
                except psutil.Error:
                    return
                time.sleep(0.05)

        def health():
            with httpx.Client(base_url=url, timeout=60) as http:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    http.get("/v1/health")
                    with lock:
                        health_ms.append((time.perf_counter() - t0) * 1000)
                    time.sleep(0.1)

        def hostile(n: int):
            names = list(allowed)
            with httpx.Client(base_url=url, timeout=600) as http:
                i = n
                while time.perf_counter() < stop_at:
                    name = names[i % len(names)]
                    i += 1
                    try:
                        r = http.post("/v1/detect", files={"image": (name, allowed[name], "image/png")})
                        key = f"{name}: HTTP {r.status_code}"
                    except httpx.HTTPError as exc:
                        key = f"{name}: {type(exc).__name__}"
                    with lock:
                        answers[key] = answers.get(key, 0) + 1

        watchers = [threading.Thread(target=sampler), threading.Thread(target=health)]
        clients = [threading.Thread(target=hostile, args=(n,)) for n in range(args.clients)]
        started = time.perf_counter()
        for t in watchers + clients:
            t.start()
        for t in clients:
            t.join()
        elapsed = time.perf_counter() - started
        stop.set()
        for t in watchers:
            t.join()
    return {
        "clients": args.clients, "seconds": round(elapsed, 1), "endpoint": "/v1/detect",
        "images": {k: {"bytes": len(v)} for k, v in images.items()},
        "refused_float_tiff": {"status": refused.status_code, "answer": refused.json()},
        "answers": answers,
        "server_rss_mib": {"idle": round(idle_rss / 2**20), "peak": round(max(rss) / 2**20) if rss else None,
                          "p95": round(np.percentile(rss, 95) / 2**20) if rss else None, "samples": len(rss)},
        "health_ms": {"idle_p95": pct(idle_health, 0.95), "p50": pct(health_ms, 0.5), "p95": pct(health_ms, 0.95),
                      "max": round(max(health_ms), 1) if health_ms else None, "requests": len(health_ms),
                      "mean": round(statistics.fmean(health_ms), 1) if health_ms else None},
    }


def hostile_input_counts() -> dict:
    """Run the fuzzers and the regression tests once; count what they tried and what failed."""
    with tempfile.TemporaryDirectory() as tmp:
        counts, junit = Path(tmp) / "fuzz.json", Path(tmp) / "junit.xml"
        env = {**os.environ, "FACELAB_FUZZ_COUNTS": str(counts)}
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                              "tests/test_fuzz.py", "tests/test_hardening.py"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        took = time.perf_counter() - started
        fuzz = json.loads(counts.read_text()) if counts.exists() else {}
        suites = ET.parse(junit).getroot()
        cases = list(suites.iter("testcase"))
        hardening = [c for c in cases if "test_hardening" in c.get("classname", "")]
        failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    return {"fuzz_inputs": fuzz, "regression_tests": len(hardening), "failures": len(failed), "failed": failed,
            "hostile_inputs_total": fuzz.get("total", 0) + len(hardening), "pytest_exit": run.returncode,
            "seconds": round(took, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=None, help="server inference threads (default: CPU count)")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the fuzzers for the input counts")
    ap.add_argument("--out", default=str(RESULTS / "hostile_load.json"))
    args = ap.parse_args()
    load_before = machine()
    result = {"load": measure(args)}
    if not args.skip_tests:
        result["hostile_inputs"] = hostile_input_counts()
    load = result["load"]
    result["targets"] = {"server_rss_below_1gb": (load["server_rss_mib"]["peak"] or 0) < 1024,
                         "health_p95_below_200ms": (load["health_ms"]["p95"] or 1e9) < 200}
    result["machine"] = {**load_before, "load_average_1min_after": machine()["load_average_1min"]}
    result["command"] = (f"benchmarks/hostile_load.py --clients {args.clients} --seconds {args.seconds:g}"
                         + (" --skip-tests" if args.skip_tests else ""))
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
