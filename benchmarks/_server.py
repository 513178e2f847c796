"""Start `facelab serve` in a subprocess on a free local port for a benchmark, and stop it afterwards."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def local_server(threads: int | None = None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        sys.path.insert(0, str(ROOT))
        from facelab.server.auth import create_key

        key = create_key(Path(data) / "api_keys.json", "benchmark")
        cmd = [sys.executable, "-m", "facelab", "serve", "--host", "127.0.0.1", "--port", str(port), "--data", data]
        if threads:
            cmd += ["--threads", str(threads)]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            yield url, key
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2), "python": sys.version.split()[0]}
