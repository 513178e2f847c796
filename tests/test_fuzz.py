"""Fuzzing (issue 17): property-based tests that keep looking for the crashes and silent wrong answers a hostile
tester found, with bounded budgets (the whole file runs in well under a minute on 2 cores).

- the image loader: random bytes, damaged real images and odd NumPy arrays -> an RGB uint8 image or ImageError;
- the export parser: random JSON and damaged real exports -> a gallery or one StoreError, nothing half-added;
- the CLI's number options: any text -> the command runs or a usage error (exit 2), never a traceback;
- the REST API from its own OpenAPI schema (Schemathesis): no request, valid or not, gets a 500.

Each test counts the inputs it tried; with FACELAB_FUZZ_COUNTS=path set, the counts are written there as JSON
(benchmarks/hostile_load.py reports them).
"""
from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import facelab  # noqa: E402
from facelab.errors import ImageError, StoreError  # noqa: E402

from .test_gallery import synthetic  # noqa: E402

# Damaged TIFFs make Pillow warn ("Corrupt EXIF data") before the loader turns them into ImageError.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TRIED: Counter = Counter()
QUICK = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=False)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    target = os.environ.get("FACELAB_FUZZ_COUNTS")
    if target:
        Path(target).write_text(json.dumps({**TRIED, "total": sum(TRIED.values())}, indent=2))


# ---- the image loader ----------------------------------------------------------------------------------------
def _seed_images() -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for fmt, mode, arr in [("PNG", None, rng.integers(0, 255, (24, 32, 3), np.uint8)),
                           ("JPEG", None, rng.integers(0, 255, (24, 32, 3), np.uint8)),
                           ("PNG", None, rng.integers(0, 65535, (20, 20), np.uint16)),
                           ("TIFF", None, rng.random((16, 16), np.float32)),
                           ("GIF", "P", rng.integers(0, 255, (16, 16, 3), np.uint8)),
                           ("WEBP", None, rng.integers(0, 255, (16, 16, 3), np.uint8)),
                           ("BMP", None, rng.integers(0, 255, (8, 8, 3), np.uint8))]:
        img = Image.fromarray(arr)
        if mode:
            img = img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def damaged_images(draw) -> bytes:
    """A real small image with bytes flipped, cut or spliced: what a broken or hostile upload looks like."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "splice", "grow"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            data = data[:pos]
        elif action == "splice":
            data[pos:pos] = draw(st.binary(max_size=64))
        else:  # header fields that claim huge sizes
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]))
    return bytes(data)


def _check_loaded(source) -> None:
    from facelab.images import load_image

    try:
        rgb = load_image(source)
    except ImageError as err:
        assert "\n" not in str(err)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous


@settings(QUICK, max_examples=200)
@given(st.one_of(damaged_images(), st.binary(max_size=512)))
def test_image_loader_returns_rgb_or_image_error(data):
    TRIED["image bytes"] += 1
    _check_loaded(data)


@settings(QUICK, max_examples=120)
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=12)))
def test_image_loader_takes_any_array_or_says_why_not(arr):
    TRIED["image arrays"] += 1
    with np.errstate(all="ignore"):
        _check_loaded(arr)


# ---- the export parser ---------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4), max_leaves=20)


@pytest.fixture(scope="module")
def export_doc(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("export")
    g = facelab.open_gallery(folder / "src.db")
    g.add_embeddings("Ada", synthetic(1, 2)[0])
    g.add_embeddings("Grace", synthetic(1, 1, seed=3)[0])
    g.export(folder / "e.json")
    g.close()
    return json.loads((folder / "e.json").read_text())


def _paths(doc, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _import_must_be_clean(doc, folder: Path, n: int) -> None:
    path = folder / f"e{n}.json"
    path.write_text(json.dumps(doc))
    g = facelab.open_gallery(folder / f"g{n}.db")
    try:
        try:
            g.import_file(path)
        except StoreError as err:
            assert "\n" not in str(err)
            assert g.people() == []  # refused: nothing half-added
            return
        for p in g.people():  # accepted: whatever was stored is searchable and every score is a cosine
            for m in g.rank(synthetic(1, 1, seed=9)[0, 0], top_k=3)[0]:
                assert -1.0001 <= m.similarity <= 1.0001
            assert p.name.strip()
    finally:
        g.close()
        for f in folder.iterdir():
            f.unlink()


@settings(QUICK, max_examples=80)
@given(data=st.data())
def test_a_damaged_export_is_imported_whole_or_refused_whole(export_doc, tmp_path_factory, data):
    import copy

    TRIED["export files"] += 1
    doc = copy.deepcopy(export_doc)
    paths = [p for p, _ in _paths(doc) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in where[:-1]:
                parent = parent[key]
            parent[where[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    _import_must_be_clean(doc, tmp_path_factory.mktemp("imp"), 0)


@settings(QUICK, max_examples=40)
@given(JSON)
def test_any_json_is_not_an_export_or_a_clean_error(tmp_path_factory, doc):
    TRIED["export files"] += 1
    _import_must_be_clean(doc, tmp_path_factory.mktemp("imp"), 0)


# ---- the CLI's number options --------------------------------------------------------------------------------
NUMBER_TEXT = st.one_of(st.floats().map(repr), st.integers().map(str), st.text(max_size=12),
                        st.sampled_from(["nan", "-nan", "inf", "-Infinity", "1e309", "0x10", "1_000", " 0.5 ", "",
                                         "0", "1", "-1", "1e-320", "٣"]))
OPTIONS = [("verify", "--threshold"), ("verify", "--far"), ("identify", "--threshold"), ("identify", "--far"),
           ("identify", "-k"), ("detect", "--min-score"), ("detect", "--max-yaw"), ("detect", "--min-size"),
           ("gallery check", "--far"), ("gallery check", "--share"), ("gallery enrol", "--match-far"),
           ("gallery enrol", "--workers"), ("gallery add", "--face"), ("verify", "--face-a")]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    facelab.open_gallery(folder / "g.db").close()
    (folder / "people").mkdir()
    return folder


@settings(QUICK, max_examples=150)
@given(option=st.sampled_from(OPTIONS), value=NUMBER_TEXT)
def test_cli_number_options_run_or_are_usage_errors(cli_env, option, value):
    from click.testing import CliRunner

    from facelab.cli import main

    TRIED["cli numbers"] += 1
    command, flag = option
    missing = str(cli_env / "missing.jpg")  # the command fails fast after parsing: no model runs
    args = {"verify": [missing, missing], "identify": [missing, "-g", str(cli_env / "g.db")],
            "detect": [missing], "gallery check": ["-g", str(cli_env / "g.db")],
            "gallery enrol": [str(cli_env / "people"), "-g", str(cli_env / "g.db"), "--no-progress"],
            "gallery add": ["Ada", missing, "-g", str(cli_env / "g.db")]}[command]
    result = CliRunner().invoke(main, [*command.split(), *args, f"{flag}={value}"], catch_exceptions=True)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2, 3, 6, 7), (result.exit_code, result.output)
    if result.exit_code == 0 and flag != "--workers":
        number = float(value)
        assert np.isfinite(number)


# ---- the REST API, from its own OpenAPI schema ----------------------------------------------------------------
schemathesis = pytest.importorskip("schemathesis")


def _api():
    import tempfile

    from facelab.server import Settings, create_app
    from facelab.server.auth import create_key

    data = Path(tempfile.mkdtemp(prefix="facelab-fuzz-")) / "data"
    key = create_key(data / "api_keys.json", "fuzz")
    app = create_app(Settings(data_dir=data, max_upload_bytes=256 * 1024))
    return app, key


APP, KEY = _api()
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_request_gets_a_server_error(case):
    from schemathesis.checks import not_a_server_error

    TRIED["rest requests"] += 1
    # with a valid key, so that the write routes are reached too (without one they stop at 401)
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(response, checks=[not_a_server_error])
    ctype = response.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) and ctype else ctype
    if str(ctype).startswith("application/json") and response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
