"""`--engine ray` on a real local Ray cluster started here: the same gallery as a single-process enrol, the same
library (faces, groups) as a single-process library scan, and a kill -9 of a Ray worker mid-run loses and doubles
nothing.

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
from typing import Any

import numpy as np
import pytest

import facelab

from . import pg_server
from .conftest import ROOT, lfw_image

pg_uri = pg_server.pg_uri  # the throwaway PostgreSQL server fixture (one per session)

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


# -- library scan --engine ray ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def library_tree(lfw, tmp_path_factory) -> Path:
    """Unsorted photos: LFW folders, a real group photo, two LFW faces pasted side by side, and a corrupt file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("ray_lib") / "Photos"
    for person, numbers in PHOTOS.items():
        (root / person).mkdir(parents=True)
        for n in numbers:
            (root / person / f"{person}_{n:04d}.jpg").symlink_to(lfw_image(lfw, person, n))
    (root / "together.jpg").symlink_to(lfw_image(lfw, "Laura_Bush", 2))  # Laura and George W. Bush
    left, right = (Image.open(lfw_image(lfw, *who)).convert("RGB") for who in (("Colin_Powell", 5),
                                                                              ("Tony_Blair", 4)))
    pasted = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    pasted.paste(left, (0, 0))
    pasted.paste(right, (left.width, 0))
    pasted.save(root / "pasted.jpg", quality=95)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def library_contents(location: str) -> tuple[dict, set]:
    """Every face by (file, face index): (faces in the photo, box, embedding); and the grouping as a partition of
    those keys (named people, unnamed groups; unsorted faces left out). Read through the library's API."""
    from facelab.library import open_library

    with open_library(location, create=False) as lib:
        state = lib.tables.faces_state()
        vectors = dict(zip(state["id"].tolist(), state["vector"]))
        faces: dict[tuple[str, int], tuple] = {}
        groups: dict[Any, set] = {}
        for f in lib.tables.faces():
            key = (f.source, f.face_index)
            assert key not in faces, f"{key} stored twice"
            faces[key] = (f.n_faces, f.box, vectors[f.id])
            owner = f.person or f.group
            if owner is not None:
                groups.setdefault(owner, set()).add(key)
    return faces, {frozenset(g) for g in groups.values()}


def scan_on_ray(tree: Path, location: str, address: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "facelab", "library", "scan", str(tree), "-l", location,
                           "--engine", "ray", "--ray-address", address, "--no-progress", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 7), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_ray_library_scan_equals_the_single_process_scan(ray_address, library_tree, tmp_path):
    from facelab.library import open_library

    reference = str(tmp_path / "local.db")
    with open_library(reference) as lib:
        local_report = lib.scan(library_tree, progress=False)
    ref_faces, ref_groups = library_contents(reference)
    assert ref_faces[(str(library_tree / "pasted.jpg"), 0)][0] >= 2, "the pasted photo should hold two faces"
    assert ref_faces[(str(library_tree / "together.jpg"), 0)][0] >= 2
    assert ref_groups, "the local scan formed no group to compare"

    location = str(tmp_path / "ray.db")
    rc, report = scan_on_ray(library_tree, location, ray_address)
    assert rc == 7  # a file was skipped
    assert report["engine"] == "ray"
    assert [s["file"] for s in report["skipped"]["unreadable"]] == [str(library_tree / "broken.jpg")]
    assert report["skipped"]["unreadable"][0]["detail"]
    assert report["files_added"] == local_report.files_added and report["faces_added"] == len(ref_faces)
    faces, groups = library_contents(location)
    assert sorted(faces) == sorted(ref_faces), "not the same faces"
    for key, (n_faces, box, vector) in ref_faces.items():
        assert faces[key][0] == n_faces, key
        for side in ("x", "y", "width", "height"):
            assert abs(faces[key][1][side] - box[side]) <= 1.0, (key, side)
        np.testing.assert_allclose(faces[key][2], vector, atol=1e-5, err_msg=str(key))
    assert groups == ref_groups

    # a re-run finds every file in the library's ledger (the corrupt one too): nothing is sent to Ray again
    rc, again = scan_on_ray(library_tree, location, ray_address)
    assert rc == 0 and again["files_added"] == 0 and again["skipped"] == {} and again["changed"] == 0
    assert again["unchanged"] == len(list(library_tree.rglob("*.jpg")))
    faces_after, groups_after = library_contents(location)
    assert sorted(faces_after) == sorted(faces) and groups_after == groups


def test_ray_library_scan_into_postgresql_equals_the_local_scan(ray_address, library_tree, pg_uri, tmp_path):
    """Workers on other machines write to PostgreSQL: the Ray scan into a PostgreSQL library stores what a local
    scan into a file stores (the driver writes through the library's API, so both backends get the same rules)."""
    from facelab.library import open_library

    reference = str(tmp_path / "local.db")
    with open_library(reference) as lib:
        lib.scan(library_tree, progress=False)
    ref_faces, ref_groups = library_contents(reference)
    location = pg_server.fresh_schema(pg_uri, "raylib")
    rc, report = scan_on_ray(library_tree, location, ray_address)
    assert rc == 7 and report["engine"] == "ray" and report["faces_added"] == len(ref_faces)
    faces, groups = library_contents(location)
    assert sorted(faces) == sorted(ref_faces)
    for key, (n_faces, box, vector) in ref_faces.items():
        assert faces[key][0] == n_faces and abs(faces[key][1]["x"] - box["x"]) <= 1.0, key
        np.testing.assert_allclose(faces[key][2], vector, atol=1e-5, err_msg=str(key))
    assert groups == ref_groups
    rc, again = scan_on_ray(library_tree, location, ray_address)
    assert rc == 0 and again["files_added"] == 0


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
                                        (["gallery", "enrol", ".", "-g", "g.db"], "gallery enrol --engine ray"),
                                        (["library", "scan", ".", "-l", "g.db"], "library scan --engine ray")])
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
