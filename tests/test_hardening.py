"""Regression tests for issue 17 (hostile inputs): each defect the hostile tester found, fixed at its root.

Index files bound to their database, vectors validated at the one entry of every store, image decoding bounded
by pixel memory and kept off the event loop, one CLI error path, bounded gzip, and the smaller items.
Real files throughout (scikit-image photos, real SQLite files, a real PostgreSQL server when one can start).
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import facelab
from facelab.errors import StoreError

from .conftest import run_cli
from .test_gallery import synthetic
from .test_gallery_postgres import pg_uri  # noqa: F401  (fixture: a throwaway PostgreSQL server)

SMALL_HNSW = 50  # vectors; galleries in these tests switch to the HNSW graph above this


def hnsw_gallery(path: Path, n_people: int = 60, seed: int = 0):
    """A closed gallery of n_people synthetic people (one vector each) that searched and saved an HNSW graph."""
    vecs = synthetic(n_people, 1, seed=seed)
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    for i, v in enumerate(vecs):
        g.add_embeddings(f"p{i}", v)
    assert g.rank(vecs[0, 0], 1)[0][0].person == "p0"
    assert g.stats()["index"].startswith("hnsw")
    g.close()
    assert Path(f"{path}.hnsw").exists()
    return vecs


# ---- 1. the index file is bound to its database -------------------------------------------------------------
def test_a_stale_index_file_of_a_deleted_gallery_is_not_used_and_is_deleted(tmp_path):
    path = tmp_path / "people.db"
    hnsw_gallery(path)
    for suffix in ("", "-wal", "-shm"):  # the user deletes the database, not the index next to it
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    fresh = synthetic(3, 1, seed=42)
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:
        for i, v in enumerate(fresh):
            g.add_embeddings(f"new{i}", v)
        assert [g.rank(v[0], 1)[0][0].person for v in fresh] == ["new0", "new1", "new2"]
        assert g.stats()["index"] == "exact"
        assert not Path(f"{path}.hnsw").exists()  # the old gallery's face vectors are gone from disk
    finally:
        g.close()


def test_a_damaged_index_file_is_rebuilt_and_heals(tmp_path):
    path = tmp_path / "people.db"
    vecs = hnsw_gallery(path)
    index_file = Path(f"{path}.hnsw")
    raw = bytearray(index_file.read_bytes())
    header_len = int.from_bytes(raw[:4], "little")
    start = 4 + header_len
    raw[start + 64:start + 64 + 4096] = bytes(4096)  # zero part of the graph
    index_file.write_bytes(bytes(raw))
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:
        assert [g.rank(v[0], 1)[0][0].person for v in vecs] == [f"p{i}" for i in range(len(vecs))]
    finally:
        g.close()
    header = json.loads(index_file.read_bytes()[4:4 + header_len + 64].split(b"}")[0] + b"}")
    assert header["index_id"] and header["sha256"]
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:  # the rewritten file is trusted again: loaded, not rebuilt
        g.rank(vecs[1, 0], 1)
        assert g.store._search.seq > 0 and g.store._search.index.kind == "hnsw"
    finally:
        g.close()


def test_an_index_file_that_disagrees_with_the_database_is_not_trusted(tmp_path):
    path = tmp_path / "people.db"
    vecs = hnsw_gallery(path)
    # another database's valid index file, copied over this one's: right model, wrong gallery
    other = tmp_path / "other.db"
    hnsw_gallery(other, seed=5)
    Path(f"{path}.hnsw").write_bytes(Path(f"{other}.hnsw").read_bytes())
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:
        assert g.rank(vecs[7, 0], 1)[0][0].person == "p7"
        assert g.rank(vecs[7, 0], 1)[0][0].similarity == pytest.approx(1.0, abs=1e-4)
    finally:
        g.close()


def test_gallery_stats_reports_the_index_searches_use(tmp_path):
    path = tmp_path / "people.db"
    hnsw_gallery(path)
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:
        for i in range(20):  # below the threshold again; the graph keeps serving, and stats says so
            g.delete_person(f"p{i}")
        assert g.stats()["index"] == ("hnsw (usearch)" if g.store._search.index.kind == "hnsw" else "exact")
    finally:
        g.close()


def test_rest_delete_removes_the_index_file_with_the_gallery(tmp_path):
    from facelab.server.auth import create_key

    from .test_server import make_client

    data = tmp_path / "data"
    (data / "galleries").mkdir(parents=True)
    path = data / "galleries" / "big.db"
    hnsw_gallery(path)
    key = create_key(data / "api_keys.json", "t")
    with make_client(tmp_path) as client:
        r = client.delete("/v1/galleries/big", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
    assert sorted(p.name for p in (data / "galleries").iterdir()) == []


# ---- 2. every vector entering a store is checked ----------------------------------------------------------
def _bad_vectors(dim=128):
    unit = synthetic(1, 1, dim=dim)[0, 0]
    nan = unit.copy()
    nan[3] = np.nan
    return {"huge": unit * 1e6, "nan": nan, "inf": np.full(dim, np.inf, np.float32), "zero": np.zeros(dim),
            "short": unit[:100], "half": unit * 0.5}


@pytest.mark.parametrize("kind", ["huge", "nan", "inf", "zero", "short", "half"])
def test_add_embeddings_refuses_vectors_that_are_not_unit_and_finite(tmp_path, kind):
    g = facelab.open_gallery(tmp_path / "g.db")
    try:
        with pytest.raises(StoreError, match="embedding"):
            g.add_embeddings("intruder", _bad_vectors()[kind])
        assert g.people() == []
    finally:
        g.close()


def _export_with(path: Path, tmp_path: Path, vector: np.ndarray) -> Path:
    g = facelab.open_gallery(tmp_path / "src.db")
    g.add_embeddings("honest", synthetic(1, 1)[0])
    g.export(path)
    g.close()
    doc = json.loads(path.read_bytes())
    bad = dict(doc["people"][0]["photos"][0], sha256="f" * 64,
               embedding=base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode())
    doc["people"].append({"name": "intruder", "photos": [bad]})
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("kind", ["huge", "nan"])
def test_import_refuses_a_poisoned_export_and_adds_nothing(tmp_path, kind):
    export = _export_with(tmp_path / "poison.json", tmp_path, _bad_vectors()[kind])
    g = facelab.open_gallery(tmp_path / "target.db")
    try:
        with pytest.raises(StoreError, match="embedding"):
            g.import_file(export)
        assert [p.name for p in g.people()] in ([], ["honest"])
        assert "intruder" not in [p.name for p in g.people()]
    finally:
        g.close()
    r = run_cli("gallery", "import", export, "-g", tmp_path / "cli.db")
    assert r.returncode == 6 and "embedding" in r.stderr and "Traceback" not in r.stderr


def test_postgres_refuses_the_same_bad_vectors(pg_uri):  # noqa: F811
    g = facelab.open_gallery(pg_uri + "#hardening")
    try:
        for kind, vec in _bad_vectors().items():
            with pytest.raises(StoreError, match="embedding"):
                g.add_embeddings(f"intruder_{kind}", vec)
        assert g.people() == []
    finally:
        g.close()


def test_corrupt_dim_and_short_blob_are_clear_errors(tmp_path):
    path = tmp_path / "g.db"
    g = facelab.open_gallery(path)
    g.add_embeddings("a", synthetic(1, 2)[0])
    g.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 100) WHERE photo_id = 1")
    conn.commit()
    conn.close()
    g = facelab.open_gallery(path)
    try:
        with pytest.raises(StoreError, match="damaged"):
            g.rank(synthetic(1, 1)[0, 0], 1)
    finally:
        g.close()
    r = run_cli("identify", "--json", "-g", path, str(Path(__file__).parent / "no_such.jpg"))
    assert "Traceback" not in r.stderr
    for dim in ("abc", "64"):
        conn = sqlite3.connect(path)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'dim'", (dim,))
        conn.commit()
        conn.close()
        with pytest.raises(StoreError, match="metadata is damaged"):
            facelab.open_gallery(path)
        r = run_cli("gallery", "stats", "-g", path)
        assert r.returncode == 6 and "damaged" in r.stderr and "Traceback" not in r.stderr


def test_one_bad_gallery_does_not_hide_the_others(tmp_path):
    from .test_server import make_client

    galleries = tmp_path / "data" / "galleries"
    galleries.mkdir(parents=True)
    for name in ("good", "bad"):
        facelab.open_gallery(galleries / f"{name}.db").close()
    conn = sqlite3.connect(galleries / "bad.db")
    conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'dim'")
    conn.commit()
    conn.close()
    with make_client(tmp_path) as client:
        r = client.get("/v1/galleries")
    assert r.status_code == 200, r.text
    by_name = {g["name"]: g for g in r.json()["galleries"]}
    assert by_name["good"]["stats"]["people"] == 0
    assert by_name["bad"]["stats"] is None and by_name["bad"]["error"]["code"] == "store_error"


def test_json_output_never_holds_a_bare_nan(capsys):
    from facelab.cli.common import echo_json

    echo_json({"similarity": float("nan"), "scores": [1.0, float("inf")], "ok": 0.5})
    assert json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"bare {c}")) == \
        {"similarity": None, "scores": [1.0, None], "ok": 0.5}


# ---- 3. image decoding bounded by pixel memory, off the event loop ----------------------------------------
def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def test_decoded_bytes_count_channels_and_bit_depth(monkeypatch):
    from PIL import Image

    from facelab import images
    from facelab.errors import ImageError

    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 1_000_000)
    gray16 = (np.arange(600 * 600, dtype=np.uint32).reshape(600, 600) % 65536).astype(np.uint16)
    rgb = images.load_image(_png(gray16))  # 0.72 MB decoded: allowed
    expected = np.clip(np.round(gray16.astype(np.float64) * 255 / 65535), 0, 255).astype(np.uint8)
    assert rgb.shape == (600, 600, 3) and (rgb[:, :, 0] == expected).all() and (rgb[:, :, 2] == expected).all()
    with pytest.raises(ImageError, match="decodes to"):  # same pixels, 8-bit RGB: 1.08 MB
        images.load_image(_png(np.zeros((600, 600, 3), np.uint8)))
    buf = io.BytesIO()
    Image.fromarray(np.zeros((600, 600), np.float32)).save(buf, "TIFF")
    with pytest.raises(ImageError, match="F decodes to"):  # 32-bit float: 1.44 MB
        images.load_image(buf.getvalue())


def test_float_and_nan_images_convert_without_warnings():
    from PIL import Image

    from facelab.images import load_image

    data = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    data[0, 0], data[0, 1] = np.nan, np.inf
    buf = io.BytesIO()
    Image.fromarray(data).save(buf, "TIFF")
    with np.errstate(all="raise"):
        rgb = load_image(buf.getvalue())
    assert rgb.shape == (64, 64, 3) and rgb[-1, -1, 0] == 255 and rgb[0, 0, 0] == 0


def test_a_16_bit_png_decodes_in_little_more_than_its_pixels(tmp_path):
    # 20 MP of 16-bit grey: 40 MB decoded + 60 MB RGB result. The old float64 conversion peaked near 600 MB.
    import subprocess
    import sys

    path = tmp_path / "gray16.png"
    path.write_bytes(_png(np.zeros((4000, 5000), np.uint16)))
    code = ("import resource, sys; from facelab.images import load_image; "
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; rgb = load_image(sys.argv[1]); "
            "print(rgb.shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    shape, grown_mb = out.stdout.rsplit(" ", 1)
    assert shape == "(4000, 5000, 3)", out.stderr
    assert int(grown_mb) < 200, f"decoding grew memory by {grown_mb} MB"


def test_pixel_budget_makes_big_images_wait_for_each_other():
    import asyncio

    from facelab.server.uploads import PixelBudget

    async def scenario():
        budget, order = PixelBudget(100), []

        async def job(name, need, hold):
            got = await budget.acquire(need)
            order.append(f"{name}+")
            await asyncio.sleep(hold)
            order.append(f"{name}-")
            await budget.release(got)

        await asyncio.gather(job("big1", 80, 0.05), job("big2", 500, 0.01), job("small", 10, 0.0))
        return order, budget.used

    order, used = asyncio.run(scenario())
    assert used == 0
    assert order.index("big1-") < order.index("big2+")  # a request over the whole budget waits until it is alone
    assert order.index("small+") < order.index("big1-")  # small ones pass alongside


def test_health_stays_fast_while_an_image_decodes(tmp_path, monkeypatch):
    import threading
    import time

    from facelab.server import uploads

    from .test_server import make_client

    def slow_load(data):  # a decode that takes 2 s, like a 49 MP PNG
        time.sleep(2.0)
        return np.zeros((64, 64, 3), np.uint8)

    monkeypatch.setattr(uploads, "load_image", slow_load)
    png = _png(np.zeros((64, 64, 3), np.uint8))
    with make_client(tmp_path) as client:
        worker = threading.Thread(
            target=lambda: client.post("/v1/detect", files={"image": ("a.png", png, "image/png")}))
        worker.start()
        time.sleep(0.3)
        started = time.perf_counter()
        assert client.get("/v1/health").status_code == 200
        took = time.perf_counter() - started
        worker.join()
    assert took < 0.5, f"/v1/health took {took:.2f} s while an image was decoding"


def test_uploads_over_the_limit_are_refused_before_being_read(tmp_path):
    from .test_server import make_client

    limit = 1_000_000
    with make_client(tmp_path, max_upload_bytes=limit) as client:
        body = b"x" * int(limit * 1.5)  # over one image's limit, under the old 3-image body limit
        r = client.post("/v1/detect", files={"image": ("a.jpg", body, "image/jpeg")})
        assert r.status_code == 413 and "request body is" in r.json()["error"]["message"]
        r = client.post("/v1/verify", files={"image_a": ("a.jpg", body[:limit - 10], "image/jpeg"),
                                             "image_b": ("b.jpg", body[:limit - 10], "image/jpeg")})
        assert r.status_code != 413  # two images fit verify's limit (then fail as images)


# ---- 4. one CLI error path; each crash fixed at its root ----------------------------------------------------
def _run_with_bug(*args, env=None):
    """The real CLI with one internal function replaced by one that raises what nobody foresaw."""
    import subprocess
    import sys

    code = ("import sys, facelab.pipeline as p\n"
            "def broken(*a, **k): raise RuntimeError('simulated bug\\nsecond line')\n"
            "p.shared_analysis = broken\n"
            "from facelab.cli import main\n"
            "main(sys.argv[1:], prog_name='facelab')\n")
    import os
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], env={**os.environ, **(env or {})}, timeout=120)


def test_an_unexpected_exception_is_one_line_and_exit_8(astronaut_jpg):
    r = _run_with_bug("detect", astronaut_jpg)
    assert r.returncode == 8, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["facelab: internal error: RuntimeError: simulated bug second line (run `facelab --debug ...` "
                     "for the traceback)"]
    r = _run_with_bug("detect", astronaut_jpg, "--json")
    assert r.returncode == 8 and json.loads(r.stdout)["error"]["code"] == "internal_error"
    r = _run_with_bug("--debug", "detect", astronaut_jpg)
    assert r.returncode == 8 and "Traceback" in r.stderr and "simulated bug" in r.stderr
    assert "Traceback" in _run_with_bug("detect", astronaut_jpg, env={"FACELAB_DEBUG": "1"}).stderr


def test_embed_with_no_face_writes_an_empty_matrix_and_exits_4(no_face_jpg, tmp_path):
    out = tmp_path / "v.npy"
    r = run_cli("embed", no_face_jpg, "-o", out)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert np.load(out).shape == (0, 128)


@pytest.mark.parametrize("args", [
    ("embed", "{photo}", "-o", "{tmp}/missing/v.json"),
    ("embed", "{photo}", "-o", "{tmp}/missing/v.npy"),
    ("gallery", "export", "{tmp}/missing/e.json", "-g", "{tmp}/g.db"),
    ("detect", "{photo}", "--draw", "{tmp}/missing/d.jpg"),
    ("detect", "{photo}", "--draw", "{tmp}/d.unknown"),
    ("gallery", "remove", "99999999999999999999999", "-g", "{tmp}/g.db"),
    ("gallery", "remove", "1e3", "-g", "{tmp}/g.db"),
])
def test_bad_outputs_and_ids_are_usage_errors(args, astronaut_jpg, tmp_path):
    facelab.open_gallery(tmp_path / "g.db").close()
    r = run_cli(*[a.format(photo=astronaut_jpg, tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_detect_draw_into_an_existing_folder_writes_inside_it(astronaut_jpg, tmp_path):
    r = run_cli("detect", astronaut_jpg, "--draw", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{astronaut_jpg.stem}_faces.jpg").stat().st_size > 10_000


def test_photo_ids_that_cannot_exist_are_not_found():
    from facelab.gallery import photo_id_or_none

    for bad in ("1e3", "-1", "0", "", " ", "٣", 2**70, -5, 1.5, True, None, "99999999999999999999999"):
        assert photo_id_or_none(bad) is None, bad
    assert photo_id_or_none("42") == 42 and photo_id_or_none(7) == 7


def test_rest_photo_ids_like_1e3_are_404_not_500(tmp_path):
    from facelab.server.auth import create_key

    from .test_server import make_client

    key = create_key(tmp_path / "data" / "api_keys.json", "t")
    auth = {"Authorization": f"Bearer {key}"}
    with make_client(tmp_path) as client:
        for pid in ("1e3", "-1", "99999999999999999999999", "12"):
            r = client.delete(f"/v1/galleries/default/photos/{pid}", headers=auth)
            assert r.status_code == 404, (pid, r.text)
        r = client.get("/v1/galleries/default/photos/99999999999999999999999/face")
        assert r.status_code in (404, 422), r.text


def test_identify_batch_where_every_face_is_unknown_exits_1(astronaut_jpg, tmp_path):
    gallery = tmp_path / "g.db"
    g = facelab.open_gallery(gallery)
    g.add_embeddings("stranger", synthetic(1, 1)[0])
    g.close()
    r = run_cli("identify", astronaut_jpg, astronaut_jpg, "-g", gallery)
    assert r.returncode == 1, r.stderr


def _valid_export(tmp_path: Path) -> dict:
    path = tmp_path / "valid.json"
    g = facelab.open_gallery(tmp_path / "exporter.db")
    g.add_embeddings("honest", synthetic(1, 2)[0])
    g.export(path)
    g.close()
    return json.loads(path.read_text())


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.pop("model"), "no valid model"),
    (lambda d: d["model"].pop("fingerprint"), "no valid model"),
    (lambda d: d.pop("people"), "no list of people"),
    (lambda d: d["people"][0].pop("name"), "'name' must be"),
    (lambda d: d["people"][0]["photos"][0].pop("embedding"), "'embedding' must be"),
    (lambda d: d["people"][0]["photos"][0].pop("sha256"), "'sha256' must be"),
    (lambda d: d["people"][0]["photos"][0].update(embedding="@@not base64@@"), "not valid base64"),
    (lambda d: d["people"][0]["photos"][0].update(embedding="AAAA"), "embedding has 0 values|not a whole number"),
    (lambda d: d["people"][0]["photos"][0].update(face_index="zero"), "'face_index' must be"),
    (lambda d: d["people"][0]["photos"][0].update(box=[1, 2]), "'box' must be"),
    (lambda d: d["people"][0].update(photos={"a": 1}), "'photos' must be a list"),
    (lambda d: d["people"].append("just a string"), "not an object"),
    (lambda d: d.update(people=[{"name": 5, "photos": []}]), "'name' must be"),
])
def test_a_broken_export_is_one_clear_error_and_adds_nothing(tmp_path, break_it, message):
    doc = _valid_export(tmp_path)
    break_it(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    g = facelab.open_gallery(tmp_path / "target.db")
    try:
        with pytest.raises(StoreError, match=message) as err:
            g.import_file(path)
        assert "\n" not in str(err.value)
        assert g.people() == []
    finally:
        g.close()


def test_deeply_nested_json_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"format": "facelab-gallery", "model": ' + "[" * 200_000 + "]" * 200_000 + "}")
    r = run_cli("gallery", "import", path, "-g", tmp_path / "g.db")
    assert r.returncode == 6 and "nested too deeply" in r.stderr and "Traceback" not in r.stderr, r.stderr


# ---- 5. gzip bombs are stopped while inflating ------------------------------------------------------------
def test_a_gzip_bomb_is_refused_at_the_limit_without_inflating_it(tmp_path, monkeypatch):
    import resource

    from facelab.gallery import export_format

    path = tmp_path / "bomb.json.gz"
    member = gzip.compress(bytes(2**24), 9)  # 16 MiB of zero bytes in 16 KB; gzip members may be concatenated
    with open(path, "wb") as fh:
        fh.write(gzip.compress(b'{"format": "facelab-gallery", "pad": "'))
        for _ in range(64):  # 1 GiB when inflated, about 1 MB on disk
            fh.write(member)
    assert path.stat().st_size < 10 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    monkeypatch.setattr(export_format, "MAX_IMPORT_BYTES", 16 * 2**20)
    with pytest.raises(StoreError, match="import limit"):
        export_format.load_export(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"inflating grew memory by {grown_mb:.0f} MB"
    r = run_cli("gallery", "import", path, "-g", tmp_path / "g.db", env={"FACELAB_MAX_IMPORT_BYTES": str(2**24)})
    assert r.returncode == 6 and "import limit" in r.stderr and "Traceback" not in r.stderr


def test_gzip_round_trip_and_truncated_gzip(tmp_path):
    doc = _valid_export(tmp_path)
    path = tmp_path / "ok.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    from facelab.gallery.export_format import load_export

    assert load_export(path)["people"][0]["name"] == "honest"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(StoreError, match="truncated|not a facelab"):
        load_export(path)


# ---- 6. the smaller items ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("verify", "{a}", "{a}", "--threshold", "nan"),
    ("verify", "{a}", "{a}", "--threshold", "inf"),
    ("verify", "{a}", "{a}", "--far", "0"),
    ("verify", "{a}", "{a}", "--far", "1"),
    ("verify", "{a}", "{a}", "--far", "-inf"),
    ("identify", "{a}", "-g", "{g}", "--far", "1.5"),
    ("identify", "{a}", "-g", "{g}", "--threshold", "NaN"),
    ("identify", "{a}", "-g", "{g}", "-k", "0"),
    ("gallery", "check", "-g", "{g}", "--far", "nan"),
    ("detect", "{a}", "--min-score", "nan"),
    ("detect", "{a}", "--max-yaw", "inf"),
])
def test_nan_infinite_and_out_of_range_numbers_are_usage_errors(args, astronaut_jpg, tmp_path):
    facelab.open_gallery(tmp_path / "g.db").close()
    r = run_cli(*[a.format(a=astronaut_jpg, g=tmp_path / "g.db") for a in args])
    assert r.returncode == 2 and "Invalid value" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["evil\u202eexe.jpg", "line\nbreak", "nul\x00", "bell\x07", "iso\u2066late",
                                  "sep\u2028", "", "   ", "x" * 201])
def test_names_with_control_or_direction_characters_are_refused(tmp_path, name):
    g = facelab.open_gallery(tmp_path / "g.db")
    try:
        with pytest.raises(StoreError, match="name"):
            g.add_embeddings(name, synthetic(1, 1)[0])
        g.add_embeddings("Alice", synthetic(1, 1)[0])
        with pytest.raises(StoreError, match="name"):
            g.rename_person("Alice", name)
        assert [p.name for p in g.people()] == ["Alice"]
    finally:
        g.close()


def test_names_other_scripts_need_are_accepted(tmp_path):
    g = facelab.open_gallery(tmp_path / "g.db")
    try:
        for i, name in enumerate(["Zoë O'Brien", "محمد\u200cرضا", "José/Maria", "李小龍", "👩\u200d🔬 Ada"]):
            g.add_embeddings(name, synthetic(1, 1, seed=i)[0])
        assert len(g.people()) == 5
    finally:
        g.close()


def test_a_person_whose_name_holds_a_slash_can_be_read_and_removed_over_rest(tmp_path):
    from urllib.parse import quote

    from facelab.server.auth import create_key

    from .test_server import make_client

    data = tmp_path / "data"
    data.mkdir()
    g = facelab.open_gallery(data / "gallery.db")
    g.add_embeddings("AC/DC", synthetic(1, 1)[0])
    g.add_embeddings("Queen", synthetic(1, 1, seed=1)[0])
    g.close()
    key = create_key(data / "api_keys.json", "t")
    with make_client(tmp_path) as client:
        url = f"/v1/galleries/default/people/{quote('AC/DC', safe='')}"
        assert client.get(url).json()["name"] == "AC/DC"
        r = client.delete(url, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        names = [p["name"] for p in client.get("/v1/galleries/default/people").json()["people"]]
    assert names == ["Queen"]


def test_host_header_is_checked_on_a_local_bind(tmp_path):
    from facelab.cli.serve import host_names

    from .test_server import make_client

    assert host_names("127.0.0.1") == ["127.0.0.1", "[::1]", "localhost"]
    assert host_names("::1") == ["127.0.0.1", "[::1]", "localhost"]
    assert host_names("127.0.0.1", ("face.lan",)) == ["127.0.0.1", "[::1]", "face.lan", "localhost"]
    assert host_names("0.0.0.0") is None and host_names("127.0.0.1", ("*",)) is None
    with make_client(tmp_path, allowed_hosts=host_names("127.0.0.1")) as client:
        assert client.get("/v1/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        assert client.get("/v1/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert client.get("/v1/health", headers={"Host": "[::1]:8000"}).status_code == 200
        assert client.get("/v1/health", headers={"Host": "attacker.example:8000"}).status_code == 400


def test_a_websocket_key_that_is_not_a_string_gets_a_close_frame(tmp_path):
    from starlette.websockets import WebSocketDisconnect

    from .test_server import make_client

    with make_client(tmp_path, require_key_for_all=True) as client:
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"key": 12345}))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
    assert closed.value.code == 1008


def test_a_read_only_gallery_can_be_searched(tmp_path, monkeypatch):
    from facelab.gallery import sqlite as sqlite_store

    path = tmp_path / "ro.db"
    vecs = hnsw_gallery(path)
    real_access = sqlite_store.os.access
    # read-only media: the file and its folder cannot be written (tests run as root, so access() is told so)
    monkeypatch.setattr(sqlite_store.os, "access", lambda p, mode: False if mode == sqlite_store.os.W_OK
                        else real_access(p, mode))
    before = Path(f"{path}.hnsw").read_bytes()
    g = facelab.open_gallery(path, hnsw_threshold=SMALL_HNSW)
    try:
        assert g.store.read_only
        assert g.rank(vecs[5, 0], 1)[0][0].person == "p5"
        with pytest.raises(StoreError, match="cannot write|readonly|read-only"):
            g.add_embeddings("newcomer", synthetic(1, 1, seed=77)[0])
    finally:
        g.close()
    assert Path(f"{path}.hnsw").read_bytes() == before


def test_deeply_nested_json_bodies_are_400_not_500(tmp_path):
    from facelab.server.auth import create_key

    from .test_server import make_client

    key = create_key(tmp_path / "data" / "api_keys.json", "t")
    deep = '{"image": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with make_client(tmp_path) as client:
        for method, path in (("post", "/v1/detect"), ("post", "/v1/verify"), ("post", "/v1/galleries"),
                             ("patch", "/v1/galleries/default/people/x")):
            r = getattr(client, method)(path, content=deep, headers={"content-type": "application/json",
                                                                     "Authorization": f"Bearer {key}"})
            assert r.status_code == 400, (path, r.text)


def test_a_two_image_request_reserves_its_memory_at_once(tmp_path, jpg_bytes):
    # Two images reserved one by one would wait for each other when the budget is small: verify must answer.
    from .test_server import make_client

    with make_client(tmp_path, image_memory_bytes=1000) as client:
        r = client.post("/v1/verify", files={"image_a": ("a.jpg", jpg_bytes, "image/jpeg"),
                                             "image_b": ("b.jpg", jpg_bytes, "image/jpeg")}, timeout=120)
        assert r.status_code == 200 and r.json()["same"] is True
        assert client.app.state.pixel_budget.used == 0  # given back


@pytest.fixture(scope="module")
def jpg_bytes(astronaut) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=90)
    return buf.getvalue()
