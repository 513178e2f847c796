"""`--engine ray` on a real local Ray cluster started here: the same gallery as a single-process enrol, and a
kill -9 of a Ray worker mid-run loses and doubles nothing.

The cluster is started by this test process (ray.init) and the commands join it with --ray-address, the code path
of a real multi-machine cluster. Small on purpose: 10 real LFW photos, 2 CPUs.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import facelab

from .conftest import ROOT, lfw_image

pytestmark = pytest.mark.slow
PHOTOS = {"Colin_Powell": [1, 2, 3, 4], "Tony_Blair": [1, 2, 3], "George_W_Bush": [1, 2, 3]}
MARKER = "FACELAB_RAY_TEST_CLUSTER"  # in the environment of every process of the cluster started here


@pytest.fixture(scope="module")
def ray_address():
    try:
        import pyarrow  # noqa: F401
        import ray
    except ImportError as exc:
        if os.environ.get("CI"):  # `make install` brings the [ray] extra: missing there is a broken install
            pytest.fail(f"the Ray tests need the [ray] extra: {exc}")
        pytest.skip(f"the Ray tests need the [ray] extra (pip install 'facelab[ray]'): {exc}")
    saved = dict(os.environ)
    os.environ[MARKER] = str(os.getpid())
    # the cluster's workers import this checkout's facelab, as the commands that join it do
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def tree(lfw, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "people"
    for person, numbers in PHOTOS.items():
        (root / person).mkdir(parents=True)
        for n in numbers:
            src = lfw_image(lfw, person, n)
            (root / person / src.name).symlink_to(src)
    return root


@pytest.fixture(scope="module")
def single_process(tree, tmp_path_factory) -> dict:
    """The reference: the same folder enrolled in this process."""
    location = str(tmp_path_factory.mktemp("ref") / "ref.db")
    with facelab.open_gallery(location) as g:
        g.enrol_folder(tree, progress=False)
    return contents(location)


@pytest.fixture(scope="module")
def big_tree(lfw, tmp_path_factory) -> Path:
    """80 photos of 8 people: long enough a job that a quiet machine cannot finish it before a worker is killed
    (the 10-photo tree ran out in well under a second on a quiet CI machine)."""
    root = tmp_path_factory.mktemp("ray_big") / "people"
    for person in ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder",
                   "Ariel_Sharon", "Hugo_Chavez", "Junichiro_Koizumi"):
        (root / person).mkdir(parents=True)
        for n in range(1, 11):
            src = lfw_image(lfw, person, n)
            (root / person / src.name).symlink_to(src)
    return root


@pytest.fixture(scope="module")
def big_single_process(big_tree, tmp_path_factory) -> dict:
    location = str(tmp_path_factory.mktemp("ref_big") / "ref.db")
    with facelab.open_gallery(location) as g:
        g.enrol_folder(big_tree, progress=False)
    return contents(location)


def contents(location: str) -> dict[str, tuple]:
    """Every stored photo by file: (person, face index, faces in the photo, box, embedding)."""
    with facelab.open_gallery(location, create=False) as g:
        photo_ids, _, matrix = g.store.vectors()
        vectors = dict(zip(photo_ids.tolist(), matrix))
        out = {}
        for person in g.people():
            for p in g.photos(person.name):
                assert p.source not in out, f"{p.source} stored twice"
                out[p.source] = (p.person, p.face_index, p.n_faces,
                                 tuple(round(v, 2) for v in p.box.values()), vectors[p.id])
        return out


def enrol_on_ray(tree: Path, location: str, address: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facelab", "gallery", "enrol", str(tree), "-g", location,
                             "--engine", "ray", "--ray-address", address, "--no-progress", "--json", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_same_gallery(location: str, reference: dict) -> None:
    got = contents(location)
    assert sorted(got) == sorted(reference), "not the same photos"
    assert len(reference) >= 10, "the reference stored too few photos to compare"
    for source, (person, face, n_faces, box, vector) in reference.items():
        assert got[source][:4] == (person, face, n_faces, box), source
        np.testing.assert_allclose(got[source][4], vector, atol=1e-5, err_msg=source)


def test_ray_enrol_equals_the_single_process_enrol(ray_address, tree, single_process, tmp_path):
    location = str(tmp_path / "ray.db")
    proc = enrol_on_ray(tree, location, ray_address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert_same_gallery(location, single_process)
    # a re-run finds every file in the gallery's ledger: nothing is sent to Ray again
    proc = enrol_on_ray(tree, location, ray_address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["added"] == 0 and report["unchanged"] == len(single_process)
    assert_same_gallery(location, single_process)


def test_ray_embed_equals_the_local_embed(ray_address, tree, tmp_path):
    photos = sorted(str(p) for p in tree.glob("*/*.jpg"))
    out = {}
    for engine in ("local", "ray"):
        out[engine] = tmp_path / f"{engine}.npy"
        done = subprocess.run([sys.executable, "-m", "facelab", "embed", *photos, "-o", str(out[engine]),
                               "--engine", engine, "--ray-address", ray_address], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    local, ray = np.load(out["local"]), np.load(out["ray"])
    assert local.shape == (len(photos), 128)
    np.testing.assert_allclose(ray, local, atol=1e-5)
    assert json.loads(out["ray"].with_suffix(".json").read_text())["faces"] == \
        json.loads(out["local"].with_suffix(".json").read_text())["faces"]


def ray_workers_of_this_cluster() -> list[int]:
    """Pids of Ray Data's actor processes (`ray::MapWorker...`) of the cluster this test started."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"ray::MapWorker" in cmdline and f"{MARKER}={os.getpid()}".encode() in environ:
            pids.append(int(proc.name))
    return pids


def test_kill_9_of_a_ray_worker_mid_run_loses_and_doubles_nothing(ray_address, big_tree, big_single_process,
                                                                   tmp_path):
    tree, single_process = big_tree, big_single_process
    location = str(tmp_path / "killed.db")
    earlier = set(ray_workers_of_this_cluster())  # actors of the other test's job may still be exiting
    proc = enrol_on_ray(tree, location, ray_address, "--batch", "1", "--workers", "2")
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        done = _ledger_size(location)
        if done >= 1:  # some photos are in, others are being worked on
            workers = sorted(set(ray_workers_of_this_cluster()) - earlier)
            if workers and proc.poll() is None and done < len(single_process):
                try:
                    os.kill(workers[0], signal.SIGKILL)
                    killed = (workers[0], done)
                except ProcessLookupError:  # it ended meanwhile: try another
                    pass
        time.sleep(0.1)
    out, err = proc.communicate(timeout=300)
    assert killed, f"no Ray worker was seen running (rc {proc.returncode}): {err[-2000:]}"
    print(f"killed Ray worker {killed[0]} with {killed[1]} files done; the run ended with exit code "
          f"{proc.returncode}")
    if proc.returncode != 0:  # the job may fail with its worker; then a re-run resumes from the ledger
        rerun = enrol_on_ray(tree, location, ray_address)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
    assert_same_gallery(location, single_process)


def _ledger_size(location: str) -> int:
    try:
        with sqlite3.connect(f"file:{location}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet, or busy


@pytest.mark.parametrize("args, what", [(["embed", "photo.jpg"], "embed --engine ray"),
                                        (["gallery", "enrol", ".", "-g", "g.db"], "gallery enrol --engine ray")])
def test_without_ray_one_line_names_the_extra(args, what, monkeypatch, tmp_path):
    import importlib.util

    from click.testing import CliRunner

    from facelab.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "ray" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*args, "--engine", "ray"])
    assert result.exit_code == 10, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"facelab: error: {what} needs the [ray] extra: pip install 'facelab[ray]'"]
    assert not (tmp_path / "g.db").exists()  # refused before anything was created
