"""Serving one PostgreSQL gallery from many processes: two real `facelab serve` servers (one of them with
`--workers 2`) on one throwaway PostgreSQL; what one writes, the other sees at once."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, lfw_image
from .test_gallery_postgres import pg_uri  # noqa: F401  (the throwaway PostgreSQL fixture)

httpx = pytest.importorskip("httpx")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gallery: str, data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(data / f"serve_{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "facelab", "serve", "--port", str(port), "--data", str(data),
                             "--gallery", gallery, *extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "FACELAB_THREADS": "1"})
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, url: str, data: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"facelab serve exited: {sorted(data.glob('serve_*.log'))[0].read_text()}"
        try:
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no answer from facelab serve at {url}")


def identify_best(url: str, photo: Path) -> str | None:
    with open(photo, "rb") as f:
        r = httpx.post(f"{url}/v1/identify", files={"image": f}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["faces"][0]["best"] and r.json()["faces"][0]["best"]["person"]


def enrol(url: str, key: str, person: str, photo: Path) -> dict:
    with open(photo, "rb") as f:
        r = httpx.post(f"{url}/v1/galleries/default/people/{person}/photos", files={"image": f},
                       headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()


def test_two_servers_on_one_postgres_gallery_see_each_others_changes(pg_uri, lfw, tmp_path):  # noqa: F811
    gallery = pg_uri + "#serve_workers"
    data = tmp_path / "data"
    data.mkdir()
    key = subprocess.run([sys.executable, "-m", "facelab", "serve", "--create-key", "--data", str(data)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    servers = [start_server(gallery, data, "--workers", "2"), start_server(gallery, data, "--threads", "1")]
    try:
        for proc, url in servers:
            wait_healthy(proc, url, data)
        (_, a), (_, b) = servers
        enrol(a, key, "Colin_Powell", lfw_image(lfw, "Colin_Powell", 1))
        enrol(a, key, "Colin_Powell", lfw_image(lfw, "Colin_Powell", 2))
        enrol(a, key, "Tony_Blair", lfw_image(lfw, "Tony_Blair", 1))
        # enrolled through A (two worker processes), identified through B at once
        assert identify_best(b, lfw_image(lfw, "Colin_Powell", 6)) == "Colin_Powell"
        assert identify_best(b, lfw_image(lfw, "Tony_Blair", 5)) == "Tony_Blair"
        # and a deletion through B is seen by every worker of A (several requests reach both of its workers)
        r = httpx.delete(f"{b}/v1/galleries/default/people/Colin_Powell",
                         headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert r.status_code == 200, r.text
        for _ in range(4):
            assert identify_best(a, lfw_image(lfw, "Colin_Powell", 6)) != "Colin_Powell"
        people = httpx.get(f"{a}/v1/galleries/default/people", timeout=30).json()
        assert [p["name"] for p in people["people"]] == ["Tony_Blair"]
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
