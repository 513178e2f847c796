"""A classifier registered with `facelab models add` is an attribute of `facelab analyze` / facelab.analyze() /
POST /v1/analyze under its model name, predicted by the same code as `facelab train predict`.

One tiny head on gender_v1 features is trained on 16 real LFW photos (8 women, 8 men, different people) and
registered in a temporary FACELAB_HOME; it is asked about the astronaut (Eileen Collins)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib

import pytest

from .conftest import run_cli
from .test_train_features import _gender_raw

NAME = "gender_lfw_head"


@pytest.fixture(scope="module")
def registered(lfw, tmp_path_factory):
    """(FACELAB_HOME with the head registered as NAME, the run's labels)."""
    tmp = tmp_path_factory.mktemp("user_attr")
    raw, ds, run, home = tmp / "raw", tmp / "ds", tmp / "run", tmp / "home"
    out = run_cli("dataset", "build", _gender_raw(lfw, raw, per_class=8), ds, "--largest", "--val", "0.25",
                  "--test", "0.25", "--json")
    assert out.returncode == 0, out.stderr
    out = run_cli("train", "classifier", ds, "--features", "gender_v1", "--epochs", "30", "--lr", "0.05",
                  "--out", run, "--json")
    assert out.returncode == 0, out.stderr
    labels = json.loads((run / "config.json").read_text())["export"]["labels"]
    out = run_cli("models", "add", run, "--name", NAME, "--json", env={"FACELAB_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert "facelab analyze" in run_cli("models", "add", run, "--name", "gender_lfw_head2",
                                        env={"FACELAB_HOME": str(tmp / "other")}).stdout
    return home, labels


@pytest.fixture
def broken_home(registered, tmp_path):
    """A copy of the registered home whose model file is gone."""
    home = tmp_path / "home"
    shutil.copytree(registered[0], home)
    (home / "models" / f"{NAME}.onnx").unlink()
    return home


def test_registered_classifier_is_an_attribute_reported_like_train_predict(registered, astronaut, monkeypatch):
    import facelab
    from facelab.attributes import available, resolve
    from facelab.errors import FacelabError
    from facelab.train.predict import load_classifier

    home, labels = registered
    monkeypatch.setenv("FACELAB_HOME", str(home))
    assert available()[-1] == NAME and facelab.attributes_available() == available()
    assert resolve(None)[-1] == NAME  # runs by default, after the built-ins
    with pytest.raises(FacelabError, match=NAME):  # the unknown-name error lists it
        resolve(["no_such_attribute"])

    (face,) = facelab.analyze(astronaut, [NAME])
    assert set(face.attributes) == {NAME}  # only what was asked ran
    got = face.attributes[NAME]
    assert got["model"] == NAME and list(got["probabilities"]) == labels == ["female", "male"]
    assert got["value"] == "female" and got["probability"] == max(got["probabilities"].values())  # Eileen Collins
    assert abs(sum(got["probabilities"].values()) - 1) < 1e-3
    # the same numbers as `facelab train predict NAME PHOTO`
    ranking = load_classifier(NAME).rank_image(astronaut)["ranking"]
    assert {r["class"]: r["probability"] for r in ranking} == got["probabilities"]


def test_user_attribute_is_withheld_below_the_quality_floor(registered, astronaut, monkeypatch):
    import facelab
    from facelab.attributes import plan

    monkeypatch.setenv("FACELAB_HOME", str(registered[0]))
    (face,) = facelab.detect(astronaut)
    face.quality = dataclasses.replace(face.quality, size=20.0)
    (analyser,) = plan([NAME])
    analyser.run(astronaut, [face])
    assert face.attributes[NAME] == {"value": None, "reason": "face too small (20 px < 32)"}


def test_cli_analyze_reports_the_user_attribute(registered, astronaut_jpg):
    home, labels = registered
    env = {"FACELAB_HOME": str(home)}
    out = run_cli("analyze", astronaut_jpg, "--json", "--attributes", NAME, env=env)
    assert out.returncode == 0, out.stderr
    attrs = json.loads(out.stdout)["faces"][0]["attributes"]
    assert set(attrs) == {NAME} and attrs[NAME]["value"] == "female"
    assert list(attrs[NAME]["probabilities"]) == labels
    out = run_cli("analyze", astronaut_jpg, env=env)  # all attributes: the built-ins and the user's
    assert out.returncode == 0, out.stderr
    assert "gender=female" in out.stdout and f"{NAME}=female (" in out.stdout


def test_missing_user_model_is_a_one_line_model_error(broken_home, astronaut, astronaut_jpg, monkeypatch):
    import facelab
    from facelab.errors import ModelError

    env = {"FACELAB_HOME": str(broken_home)}
    for args in ((), ("--attributes", NAME), ("--attributes", f"gender,{NAME}")):
        out = run_cli("analyze", astronaut_jpg, *args, env=env)
        assert out.returncode == 5, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and f"model {NAME!r}" in lines[0] and "missing" in lines[0], out.stderr
        assert "facelab models add" in lines[0] and "--replace" in lines[0]  # how to fix it
    # a built-in asked by name does not need the broken user model
    out = run_cli("analyze", astronaut_jpg, "--json", "--attributes", "gender", env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["faces"][0]["attributes"]["gender"]["value"] == "female"
    monkeypatch.setenv("FACELAB_HOME", str(broken_home))
    with pytest.raises(ModelError, match=NAME):
        facelab.analyze(astronaut, [NAME])


def test_corrupt_user_model_is_refused(registered, astronaut, tmp_path, monkeypatch):
    import facelab
    from facelab.errors import ModelError

    home = tmp_path / "home"
    shutil.copytree(registered[0], home)
    onnx = home / "models" / f"{NAME}.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    monkeypatch.setenv("FACELAB_HOME", str(home))
    with pytest.raises(ModelError, match=f"{NAME}.*corrupted"):
        facelab.analyze(astronaut, [NAME])


def test_rest_analyze_reports_the_user_attribute(registered, broken_home, astronaut, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from PIL import Image

    from facelab.server import Settings, create_app

    buf = __import__("io").BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=90)
    files = {"image": ("photo.jpg", buf.getvalue(), "image/jpeg")}
    monkeypatch.setenv("FACELAB_HOME", str(registered[0]))
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", preload_models=False)),
                    raise_server_exceptions=False) as client:
        assert NAME in client.get("/v1/health").json()["attributes"]
        r = client.post("/v1/analyze", params={"attributes": NAME}, files=files)
        assert r.status_code == 200, r.text
        assert r.json()["faces"][0]["attributes"][NAME]["value"] == "female"
        monkeypatch.setenv("FACELAB_HOME", str(broken_home))
        r = client.post("/v1/analyze", params={"attributes": NAME}, files=files)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        assert NAME in r.json()["error"]["message"]


@pytest.mark.parametrize("name", ["gender", "emoticon", "sface"])
def test_models_add_refuses_built_in_attribute_and_model_names(registered, tmp_path, name):
    run = tomllib.loads((registered[0] / "models.toml").read_text())[NAME]["run"]
    out = run_cli("models", "add", run, "--name", name, env={"FACELAB_HOME": str(tmp_path / "home")})
    assert out.returncode == 5 and "built-in" in out.stderr and name in out.stderr
    assert not (tmp_path / "home" / "models.toml").exists()
