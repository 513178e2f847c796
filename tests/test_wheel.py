"""The wheel as users get it: built from this tree, installed with only its declared dependencies into a fresh
virtualenv outside the source tree, and run from there (no editable install, no PYTHONPATH).

Versions come from requirements.lock as constraints (`-c`), which pins without adding packages, and pip's cache
makes a re-run quick. The core install must detect, verify and identify with the calibrated open-set threshold;
`facelab serve` must answer /v1/health once [server] is added; a missing extra is one line naming it.
"""
from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"

pytestmark = pytest.mark.slow


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def git_package_files() -> set[str]:
    """Every file of the facelab package that git tracks and the code may read: all but Python sources."""
    out = run(["git", "ls-files", "facelab"], cwd=ROOT)
    if out.returncode != 0:
        pytest.skip("not a git checkout: cannot list the package's files")
    return {f for f in out.stdout.split() if not f.endswith(".py")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    out = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT])
    assert out.returncode == 0, out.stderr
    (whl,) = dist.glob("facelab-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> dict:
    """A fresh virtualenv with the core install (no extras); paths and an environment that sees only it."""
    home = tmp_path_factory.mktemp("wheel_venv")
    path = home / "venv"
    out = run([sys.executable, "-m", "venv", path])
    assert out.returncode == 0, out.stderr
    bin_dir = path / "bin"
    out = run([bin_dir / "pip", "install", "-q", f"{wheel}", "-c", LOCK])
    assert out.returncode == 0, out.stdout + out.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["FACELAB_HOME"] = str(home / "facelab_home")
    work = home / "work"  # outside the source tree: `import facelab` cannot find ./facelab
    work.mkdir()
    return {"bin": bin_dir, "env": env, "cwd": work, "wheel": wheel}


def facelab(venv, *args, timeout=300) -> subprocess.CompletedProcess:
    return run([venv["bin"] / "facelab", *args], env=venv["env"], cwd=venv["cwd"], timeout=timeout)


def py(venv, code: str) -> subprocess.CompletedProcess:
    return run([venv["bin"] / "python", "-c", code], env=venv["env"], cwd=venv["cwd"], timeout=120)


def test_wheel_holds_every_package_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(git_package_files() - names)
    assert not missing, f"runtime files missing from the wheel (pyproject.toml package-data): {missing}"
    assert "facelab/gallery/open_set.json" in names


def test_sdist_holds_the_package_data_and_no_part_of_the_test_suite(tmp_path):
    """Without MANIFEST.in setuptools put tests/test_*.py in the sdist but not the conftest.py they import."""
    build = f"from setuptools import build_meta as b; b.build_sdist({str(tmp_path)!r})"
    out = run([sys.executable, "-c", build], cwd=ROOT)
    assert out.returncode == 0, out.stderr
    (sdist,) = tmp_path.glob("facelab-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert not (git_package_files() - names), f"runtime files missing from the sdist: {git_package_files() - names}"
    assert not [n for n in names if n.startswith("tests/")]


def test_core_install_is_from_the_wheel_and_small(venv):
    heavy = "('torch', 'fastapi', 'uvicorn', 'psycopg', 'sklearn', 'matplotlib', 'cv2')"
    out = py(venv, "import sys, facelab; print(facelab.__file__); "
                   f"print(' '.join(m for m in {heavy} if m in sys.modules)); print(facelab.__version__)")
    assert out.returncode == 0, out.stderr
    where, loaded, version = out.stdout.splitlines()
    assert "site-packages" in where and not where.startswith(str(ROOT))
    assert loaded == ""  # import facelab loads no heavy library, and none of the extras
    assert py(venv, "import torch").returncode != 0, "the core install must not bring torch"
    assert py(venv, "import fastapi").returncode != 0
    cli = facelab(venv, "--version")
    assert cli.returncode == 0 and cli.stdout.strip() == f"facelab, version {version}"


def test_verify_two_photos(venv, astronaut_jpg, lfw):
    powell = lfw / "images" / "Colin_Powell"
    same = facelab(venv, "verify", powell / "Colin_Powell_0001.jpg", powell / "Colin_Powell_0002.jpg", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["same"] is True
    other = facelab(venv, "verify", astronaut_jpg, powell / "Colin_Powell_0001.jpg", "--json")
    assert other.returncode == 1, other.stderr
    assert json.loads(other.stdout)["same"] is False
    code = (f"import facelab; r = facelab.verify({str(powell / 'Colin_Powell_0001.jpg')!r}, "
            f"{str(powell / 'Colin_Powell_0003.jpg')!r}); print(r.same)")
    assert py(venv, code).stdout.strip() == "True"


def test_identify_uses_the_calibrated_open_set_threshold(venv, astronaut_jpg, lfw):
    people = venv["cwd"] / "people"
    for name in ("Colin_Powell", "Tony_Blair", "Gerhard_Schroeder"):
        (people / name).mkdir(parents=True)
        for i in (1, 2, 3):
            (people / name / f"{name}_{i:04d}.jpg").symlink_to(lfw / "images" / name / f"{name}_{i:04d}.jpg")
    enrol = facelab(venv, "gallery", "enrol", people, "-g", "g.db")
    assert enrol.returncode == 0, enrol.stderr
    known = facelab(venv, "identify", lfw / "images" / "Tony_Blair" / "Tony_Blair_0010.jpg", "-g", "g.db", "--json")
    assert known.returncode == 0, known.stderr
    face = json.loads(known.stdout)["faces"][0]
    assert face["best"]["person"] == "Tony_Blair"
    calibrated = json.loads((ROOT / "facelab" / "gallery" / "open_set.json").read_text())["sface"]["mean"]["threshold"]
    assert face["threshold"] == pytest.approx(calibrated, abs=1e-4), "not the open-set threshold: open_set.json lost?"
    assert face["threshold_source"].startswith("open-set")
    stranger = facelab(venv, "identify", astronaut_jpg, "-g", "g.db", "--json")
    assert stranger.returncode == 1, stranger.stderr
    assert json.loads(stranger.stdout)["faces"][0]["best"] is None


def test_analyze_runs_on_the_core_install(venv, astronaut_jpg):
    out = facelab(venv, "analyze", astronaut_jpg, "--json")
    assert out.returncode == 0, out.stderr
    assert "expression" in out.stdout and "age" in out.stdout


def test_library_scan_groups_on_the_core_install(venv, lfw):
    """`library scan` once needed fasteners, which only a dev tool brought: ModuleNotFoundError from the wheel."""
    photos = venv["cwd"] / "photos"
    photos.mkdir()
    for name in ("Colin_Powell", "Tony_Blair"):
        for i in (1, 2, 3):
            (photos / f"{name}_{i:04d}.jpg").symlink_to(lfw / "images" / name / f"{name}_{i:04d}.jpg")
    scan = facelab(venv, "library", "scan", photos, "-l", "lib.db")
    assert scan.returncode == 0, scan.stdout + scan.stderr
    people = facelab(venv, "library", "people", "-l", "lib.db")
    assert people.returncode == 0 and "group:1: 3 faces" in people.stdout and "group:2: 3 faces" in people.stdout
    # the fused models group with scipy (scikit-learn's dependency): not in the core, so one line naming [eval]
    fused = facelab(venv, "library", "scan", photos, "-l", "fused.db", "--model", "fused+flip")
    assert fused.returncode == 10, fused.stdout + fused.stderr
    lines = fused.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'facelab[eval]'" in lines[0], fused.stderr


@pytest.mark.parametrize("args, extra", [
    (["serve", "--port", "1"], "server"),
    (["train", "classifier", "nowhere"], "train"),
    (["train", "classifier", "nowhere", "--augment", "flip"], "train"),
    (["eval", "lfw", "--root", "nowhere"], "eval"),
    (["identify", "x.jpg", "-g", "postgresql://nobody@127.0.0.1:1/none"], "postgres"),
])
def test_a_missing_extra_is_one_line_naming_it(venv, args, extra):
    out = facelab(venv, *args, timeout=60)
    assert out.returncode == 10, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'facelab[{extra}]'" in lines[0], out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_with_the_server_extra(venv):
    # Runs after the core tests above (file order): adding [server] changes this virtualenv.
    out = run([venv["bin"] / "pip", "install", "-q", f"{venv['wheel']}[server]", "-c", LOCK], env=venv["env"])
    assert out.returncode == 0, out.stdout + out.stderr
    port = free_port()
    proc = subprocess.Popen([str(venv["bin"] / "facelab"), "serve", "--port", str(port), "--data", "data"],
                            env=venv["env"], cwd=venv["cwd"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as resp:
                    health = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.5)
        server_output = proc.stdout.read() if proc.poll() is not None else ""
        assert health is not None, f"no answer from facelab serve: {server_output}"
        assert health["status"] == "ok" and health["features"]["verify"] is True, health
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_lost_fusion_file_is_an_error_not_equal_weights(monkeypatch, tmp_path):
    """Like open_set.json: without models/fusion.json the fused embedder silently used weights of 0.5."""
    from facelab import embedders
    from facelab.errors import ModelError
    from facelab.gallery.store import model_info

    monkeypatch.setattr(embedders, "FUSION_FILE", tmp_path / "fusion.json")
    with pytest.raises(ModelError, match="fusion.json is missing"):
        embedders.FusedEmbedder(load_models=False)
    with pytest.raises(ModelError, match="fusion.json is missing"):
        model_info("fused+flip")


def test_a_lost_open_set_file_is_an_error_not_the_1to1_threshold(monkeypatch, tmp_path):
    """What a wheel without package data did: identify silently fell back to the lax 1:1 threshold."""
    from facelab.errors import ModelError
    identify = importlib.import_module("facelab.gallery.identify")  # the package shadows it with a function

    monkeypatch.setattr(identify, "OPEN_SET_FILE", tmp_path / "open_set.json")
    with pytest.raises(ModelError, match="open_set.json is missing"):
        identify.default_threshold("sface", "mean")


def test_a_lost_thresholds_file_says_reinstall(monkeypatch, tmp_path):
    """Without thresholds.json verify said "no calibrated threshold for model 'sface'" as if the model were new."""
    from facelab import verification
    from facelab.errors import ModelError

    monkeypatch.setattr(verification, "THRESHOLDS_FILE", tmp_path / "thresholds.json")
    verification._table.cache_clear()  # an earlier test has read the real file (an error is never cached)
    try:
        with pytest.raises(ModelError, match="thresholds.json is missing .*reinstall facelab"):
            verification.operating_point("sface")
        (tmp_path / "thresholds.json").write_text("{not json")
        with pytest.raises(ModelError, match="thresholds.json is damaged .*reinstall facelab"):
            verification.operating_point("sface")
    finally:
        verification._table.cache_clear()
