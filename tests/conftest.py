"""Shared fixtures: real photos (scikit-image's astronaut, public domain) and ../shared/data when present."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACELAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
LFW = SHARED_DATA / "lfw"


@pytest.fixture(scope="session", autouse=True)
def private_facelab_home(tmp_path_factory):
    """Tests never read or write the user's real $FACELAB_HOME: its registered classifiers would become default
    attributes of analyze(). Tests that need one set their own (env= / monkeypatch)."""
    old = os.environ.get("FACELAB_HOME")
    os.environ["FACELAB_HOME"] = str(tmp_path_factory.mktemp("facelab_home"))
    yield
    if old is None:
        os.environ.pop("FACELAB_HOME", None)
    else:
        os.environ["FACELAB_HOME"] = old


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # RGB uint8, 512x512, one face (Eileen Collins)


@pytest.fixture(scope="session")
def astronaut_jpg(tmp_path_factory, astronaut) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def no_face_jpg(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path)  # a cup of coffee: no face
    return path


@pytest.fixture(scope="session")
def lfw() -> Path:
    if not (LFW / "images").is_dir():
        pytest.skip(f"LFW not found at {LFW} (../shared/data/lfw); data-dependent test skipped")
    return LFW


def lfw_image(root: Path, name: str, number: int) -> Path:
    return root / "images" / name / f"{name}_{number:04d}.jpg"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `facelab` entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "facelab", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=300)
