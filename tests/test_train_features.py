"""`train classifier --method head --features gender_v1|age_v1`: frozen features of the pretrained CC0 networks,
cut from the aligned crop; a head trained on them must export, register and predict with the same features."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    from facelab.pipeline import shared_analysis

    return shared_analysis().detect_rgb(astronaut)[0]


@pytest.mark.parametrize("name,dim", [("gender_v1", 16), ("age_v1", 256), ("sface", 128)])
def test_features_have_the_layer_shape_and_are_deterministic(astronaut_face, name, dim):
    from facelab.train.frozen_features import FeatureExtractor

    crops = np.stack([astronaut_face.aligned, astronaut_face.aligned[:, ::-1]])
    extract = FeatureExtractor(name)
    first, again = extract(crops), FeatureExtractor(name)(crops)
    assert first.shape == (2, dim) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    # face + mirror averaged: the mirrored crop lands close (not equal: dlib's landmarks are not mirror-exact)
    cos = first[0] @ first[1] / np.linalg.norm(first[0]) / np.linalg.norm(first[1])
    assert cos > 0.9


def test_chip_from_the_aligned_crop_gives_the_gender_attributes_answer(astronaut, astronaut_face):
    """The chip is cut from the 112 crop instead of the photo: gender_v1's own output must still agree."""
    from facelab.attributes.age_gender import AgeGender
    from facelab.train.frozen_features import FeatureExtractor, chips_from_crops

    chips = chips_from_crops(astronaut_face.aligned[None], 32)
    assert chips.shape == (1, 32, 32, 3) and chips.dtype == np.uint8
    _, probs = FeatureExtractor("gender_v1").run_chips(chips)
    AgeGender(["gender"]).predict(astronaut, [astronaut_face])
    assert astronaut_face.attributes["gender"]["value"] == "female"  # Eileen Collins
    assert probs[0].argmax() == 0 and probs[0, 0] > 0.9  # [female, male]


def test_unknown_features_and_features_for_a_cnn_are_refused(tmp_path):
    from facelab.train import TrainingError
    from facelab.train.frozen_features import check_spec, feature_spec

    with pytest.raises(TrainingError, match="unknown features"):
        feature_spec("vgg")
    with pytest.raises(TrainingError, match="retrain"):
        check_spec({"features": "gender_v1", "feature_layer": "layer_4_flatten", "feature_dim": 4096})
    out = run_cli("train", "classifier", tmp_path, "--features", "resnet")
    assert out.returncode == 2 and "resnet" in out.stderr


def _gender_raw(lfw: Path, root: Path, per_class: int = 16) -> Path:
    """LFW photos of different people per class, from the published gender lists."""
    for cls in ("female", "male"):
        names = sorted((lfw / f"gender_{cls}.txt").read_text().split())
        picked, people = 0, set()
        for f in names:
            person = f.rsplit("_", 1)[0]
            src = lfw / "images" / person / f
            if person in people or not src.exists():
                continue
            (root / cls).mkdir(parents=True, exist_ok=True)
            (root / cls / f).symlink_to(src.resolve())
            people.add(person)
            picked += 1
            if picked == per_class:
                break
    return root


def test_gender_v1_head_trains_registers_predicts_and_evaluates(lfw, tmp_path):
    ds = tmp_path / "ds"
    out = run_cli("dataset", "build", _gender_raw(lfw, tmp_path / "raw"), ds, "--largest", "--val", "0.2",
                  "--test", "0.3", "--json")
    assert out.returncode == 0, out.stderr
    out = run_cli("train", "classifier", ds, "--method", "cnn", "--features", "gender_v1", "--out", tmp_path / "x")
    assert out.returncode != 0 and "for --method head" in out.stderr
    run = tmp_path / "run"  # ~16 training photos: one step per epoch, hence the higher learning rate
    out = run_cli("train", "classifier", ds, "--features", "gender_v1", "--epochs", "30", "--lr", "0.05",
                  "--out", run, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["test"]["accuracy"] >= 0.75 and result["export"]["max_abs_diff"] < 1e-4
    assert (ds / "embeddings" / "gender_v1.layer_1_flatten.flip.npz").is_file()  # cached for eval
    config = json.loads((run / "config.json").read_text())
    assert config["export"]["features"] == "gender_v1" and config["export"]["feature_dim"] == 16
    assert "trained for **gender**" in (run / "model_card.md").read_text()

    env = {"FACELAB_HOME": str(tmp_path / "home")}
    out = run_cli("models", "add", run, "--name", "gender_head", "--task", "gender", "--json", env=env)
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout)
    assert entry["input_kind"] == "features" and entry["features"] == "gender_v1"
    assert entry["feature_layer"] == "layer_1_flatten"
    # Prediction from the registered copy reproduces the run's own test-split evaluation.
    evals = [json.loads(run_cli("eval", "classifier", m, ds, "--out", tmp_path / f"eval{i}", "--json",
                                env=env).stdout) for i, m in enumerate((run, "gender_head"))]
    assert evals[0]["accuracy"] == evals[1]["accuracy"] == result["test"]["accuracy"]
    photo = sorted((tmp_path / "raw" / "female").iterdir())[0]
    out = run_cli("train", "predict", "gender_head", photo, "--json", env=env)
    assert out.returncode == 0, out.stderr
    ranking = json.loads(out.stdout)["ranking"]
    assert ranking[0]["class"] == "female" and abs(sum(r["probability"] for r in ranking) - 1) < 1e-3
