"""Training lab: dataset build, classifier and embedder training, export, evaluation, registration, bad input.

Runs on a few real LFW photos (3 people); every training run is 1-3 tiny epochs on CPU.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

PEOPLE = {"Colin_Powell": 7, "Tony_Blair": 7, "Serena_Williams": 7}


def _raw(lfw: Path, root: Path, people=PEOPLE) -> Path:
    for person, n in people.items():
        (root / person).mkdir(parents=True, exist_ok=True)
        for f in sorted((lfw / "images" / person).glob("*.jpg"))[:n]:
            (root / person / f.name).symlink_to(f.resolve())
    return root


@pytest.fixture(scope="module")
def built(lfw, tmp_path_factory):
    """A raw folder with bad input mixed in, and the dataset built from it."""
    base = tmp_path_factory.mktemp("lab")
    raw = _raw(lfw, base / "raw")
    (raw / "Nobody").mkdir()  # an empty class folder
    good = raw / "Colin_Powell" / sorted(p.name for p in (raw / "Colin_Powell").iterdir())[0]
    (raw / "Tony_Blair" / "corrupt.jpg").write_bytes(good.read_bytes()[:400])
    shutil.copyfile(good, raw / "Serena_Williams" / "copy_of_powell.jpg")  # an exact duplicate across classes
    out = run_cli("dataset", "build", raw, base / "ds", "--largest", "--json", "--val", "0.15", "--test", "0.15")
    assert out.returncode == 0, out.stderr
    return raw, base / "ds", json.loads(out.stdout)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("facelab_home")


def test_dataset_build_drops_bad_photos_and_reports_why(built):
    raw, ds, report = built
    assert report["empty_classes"] == ["Nobody"]
    assert report["dropped_counts"]["unreadable"] == 1
    assert report["dropped_counts"]["exact_duplicate"] == 1
    assert report["cross_class_duplicates"][0]["dropped"] == "Serena_Williams/copy_of_powell.jpg"
    assert set(report["classes"]) == set(PEOPLE)

    rows = list(csv.DictReader(open(ds / "manifest.csv")))
    assert len(rows) == report["kept"] >= 18
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(float(r["size"]) >= 40 and abs(float(r["yaw"])) <= 45 for r in rows)
    from PIL import Image

    assert Image.open(ds / rows[0]["file"]).size == (112, 112)
    # Every class has photos in each split (stratified).
    for person in PEOPLE:
        assert {r["split"] for r in rows if r["class"] == person} == {"train", "val", "test"}


def test_dataset_check_finds_a_namesake_and_a_person_in_two_folders(lfw, tmp_path):
    raw = _raw(lfw, tmp_path / "raw", {"Colin_Powell": 6, "Tony_Blair": 6})
    (raw / "Tony_Blair" / "George_W_Bush_0001.jpg").symlink_to(lfw / "images" / "George_W_Bush" /
                                                               "George_W_Bush_0001.jpg")  # a namesake, say
    (raw / "T_Blair").mkdir()
    for n in (7, 8, 9, 10):  # more photos of Blair, in a second folder
        (raw / "T_Blair" / f"Tony_Blair_{n:04d}.jpg").symlink_to(lfw / "images" / "Tony_Blair" /
                                                                 f"Tony_Blair_{n:04d}.jpg")
    assert run_cli("dataset", "build", raw, tmp_path / "ds", "--largest").returncode == 0
    r = run_cli("dataset", "check", tmp_path / "ds", "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert [s["source"] for s in report["suspect_crops"]] == ["Tony_Blair/George_W_Bush_0001.jpg"]
    assert report["suspect_crops"][0]["class"] == "Tony_Blair"
    assert [{p["a"], p["b"]} for p in report["similar_classes"]] == [{"T_Blair", "Tony_Blair"}]
    assert (tmp_path / "ds" / "embeddings" / "sface.npz").exists()  # cached for `train classifier --method head`
    r = run_cli("dataset", "check", tmp_path / "ds", "--exclude")
    assert r.returncode == 1 and "excluded 1 crops" in r.stdout, r.stderr
    sources = [row["source"] for row in csv.DictReader(open(tmp_path / "ds" / "manifest.csv"))]
    assert "Tony_Blair/George_W_Bush_0001.jpg" not in sources and len(sources) == report["crops_checked"] - 1
    built = json.loads((tmp_path / "ds" / "report.json").read_text())
    assert built["dropped_counts"]["label_suspect"] == 1
    assert run_cli("dataset", "build", raw, tmp_path / "ds", "--largest").returncode == 0  # a rebuild keeps it out
    r = run_cli("dataset", "check", tmp_path / "ds", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["suspect_crops"] == []  # only the two Blair folders remain


def test_dataset_build_resumes_from_its_log(built, tmp_path):
    raw, ds, report = built
    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    log = (copy / "progress.jsonl").read_text().splitlines()
    (copy / "progress.jsonl").write_text("\n".join(log[:5]) + "\n" + log[5][:20])  # cut mid-line
    out = run_cli("dataset", "build", raw, copy, "--largest", "--json", "--val", "0.15", "--test", "0.15")
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)
    assert again["resumed_from_log"] == 5
    assert (copy / "manifest.csv").read_text() == (ds / "manifest.csv").read_text()


def test_group_split_keeps_each_person_on_one_side(lfw, tmp_path):
    from facelab.train.dataset import BuildOptions, build_dataset

    raw = tmp_path / "raw"
    for cls, people in {"a": ["Colin_Powell", "Tony_Blair"], "b": ["Serena_Williams", "Jennifer_Capriati"]}.items():
        for person in people:
            for f in sorted((lfw / "images" / person).glob("*.jpg"))[:3]:
                (raw / cls).mkdir(parents=True, exist_ok=True)
                (raw / cls / f.name).symlink_to(f.resolve())
    build_dataset(raw, tmp_path / "ds", BuildOptions(largest=True, group=r"^(.+)_\d{4}", val=0, test=0.5))

    rows = list(csv.DictReader(open(tmp_path / "ds" / "manifest.csv")))
    sides = {}
    for r in rows:
        sides.setdefault(r["group"], set()).add(r["split"])
    assert len(sides) == 4 and all(len(s) == 1 for s in sides.values())


def test_head_classifier_trains_exports_and_registers(built, home, tmp_path):
    raw, ds, _ = built
    run = tmp_path / "run_head"
    out = run_cli("train", "classifier", ds, "--out", run, "--epochs", "15", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["test"]["accuracy"] >= 0.8  # three well-separated people on SFace embeddings
    assert result["export"]["max_abs_diff"] < 1e-4
    for name in ("config.json", "metrics.csv", "metrics.json", "curves.png", "confusion.png", "model.onnx",
                 "model_card.md", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert len((run / "metrics.csv").read_text().splitlines()) == result["epochs_run"] + 1
    env = {"FACELAB_HOME": str(home)}
    out = run_cli("models", "add", run, "--name", "three_people", "--json", env=env)
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout)
    assert entry["labels"] == sorted(PEOPLE) and entry["input_kind"] == "sface_embedding"
    listed = json.loads(run_cli("models", "--json", env=env).stdout)
    assert any(m["name"] == "three_people" and m["status"] == "ok" for m in listed)
    photo = sorted((raw / "Tony_Blair").glob("Tony_Blair_*.jpg"))[-1]  # the ranking must say Blair
    out = run_cli("train", "predict", "three_people", photo, "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ranking"][0]["class"] == "Tony_Blair"
    assert run_cli("models", "add", run, "--name", "three_people", env=env).returncode == 5  # no silent overwrite


def test_cnn_trains_resumes_and_refuses_another_architecture(built, tmp_path):
    from facelab.train import TrainingError
    from facelab.train.classifier import train_classifier
    from facelab.train.loop import TrainConfig

    _, ds, _ = built
    run = tmp_path / "run_cnn"
    small = dict(method="cnn", width=8, input_size=32, progress=False)
    first = train_classifier(ds, run, cfg=TrainConfig(epochs=1, batch_size=8), **small)
    assert first["export"]["max_abs_diff"] < 1e-4
    result = train_classifier(ds, run, cfg=TrainConfig(epochs=2, batch_size=8), resume=True, **small)
    assert result["epochs_run"] == 2 and len(json.loads((run / "metrics.json").read_text())) == 2
    args = ["train", "classifier", ds, "--method", "cnn", "--out", run, "--batch-size", "8", "--width", "8",
            "--input-size", "32"]
    out = run_cli(*args, "--epochs", "3", "--resume", "--backbone", "mobilefacenet")
    assert out.returncode == 9 and "another architecture" in out.stderr and "Traceback" not in out.stderr
    report = run_cli("eval", "classifier", run, ds, "--split", "all", "--json")  # the run is still intact
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert sum(map(sum, doc["confusion"])) == doc["n"] and set(doc["per_class"]) == set(PEOPLE)
    assert Path(doc["files"][0]).is_file()
    with pytest.raises(TrainingError, match="--resume"):  # a second run into the same folder
        train_classifier(ds, run, cfg=TrainConfig(epochs=1, batch_size=8), **small)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="unreadable"):
        train_classifier(ds, run, cfg=TrainConfig(epochs=3, batch_size=8), resume=True, **small)


def test_bad_datasets_are_refused_with_a_clear_message(built, lfw, tmp_path):
    from facelab.train import DatasetError
    from facelab.train.classifier import train_classifier
    from facelab.train.dataset import BuildOptions, build_dataset

    raw, ds, _ = built
    build_dataset(_raw(lfw, tmp_path / "one", {"Colin_Powell": 5}), tmp_path / "one_ds", BuildOptions(largest=True))
    out = run_cli("train", "classifier", tmp_path / "one_ds")
    assert out.returncode == 11 and "one class" in out.stderr and "Traceback" not in out.stderr
    few = build_dataset(_raw(lfw, tmp_path / "few", {"Colin_Powell": 5, "Tony_Blair": 1}), tmp_path / "few_ds",
                        BuildOptions(largest=True))
    assert few.to_dict()["dropped_counts"]["class_too_small"] == 1
    with pytest.raises(DatasetError, match="one class"):
        train_classifier(tmp_path / "few_ds", tmp_path / "r1", progress=False)
    with pytest.raises(DatasetError, match="fewer than 9 training photos"):
        train_classifier(ds, tmp_path / "r2", min_train_per_class=9, progress=False)
    with pytest.raises(DatasetError, match="not a facelab dataset"):
        train_classifier(tmp_path / "nowhere", progress=False)
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "a.jpg").write_bytes(b"garbage")
    out = run_cli("dataset", "build", tmp_path / "bad", tmp_path / "bad_ds")
    assert out.returncode == 11 and "no class has enough photos" in out.stderr
    # A dataset of another crop size: the SFace head needs 112 crops.
    build_dataset(raw, tmp_path / "small_ds", BuildOptions(largest=True, size=64))
    with pytest.raises(DatasetError, match=r"64x64.*--size 112"):
        train_classifier(tmp_path / "small_ds", tmp_path / "r3", progress=False)
    out = run_cli("dataset", "check", tmp_path / "small_ds")  # the check embeds 112 crops too
    assert out.returncode == 11 and "--size 112" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("dataset", "check", tmp_path / "nowhere")
    assert out.returncode == 11 and "not a facelab dataset" in out.stderr


def test_out_of_memory_leaves_a_resumable_run(built, tmp_path, monkeypatch):
    import torch

    from facelab.train import TrainingError
    from facelab.train.classifier import train_classifier
    from facelab.train.loop import TrainConfig

    _, ds, _ = built
    run = tmp_path / "run"
    train_classifier(ds, run, cfg=TrainConfig(epochs=1, batch_size=8), progress=False)
    real = torch.nn.Linear.forward

    def exploding(self, x):
        if x.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", exploding)
    with pytest.raises(TrainingError, match=r"--resume --batch-size 4"):
        train_classifier(ds, run, cfg=TrainConfig(epochs=3, batch_size=8), resume=True, progress=False)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 1  # the finished epoch is intact
    monkeypatch.setattr(torch.nn.Linear, "forward", real)
    result = train_classifier(ds, run, cfg=TrainConfig(epochs=2, batch_size=4), resume=True, progress=False)
    assert result["epochs_run"] == 2


def test_embedder_with_lfw_pairs_becomes_a_verify_model(built, lfw, home, tmp_path):
    _, ds, _ = built
    # A 1-fold pairs file over the test people: enough to calibrate a threshold end to end.
    imgs = {p: sorted((lfw / "images" / p).glob("*.jpg")) for p in PEOPLE}
    mini = tmp_path / "lfw"
    (mini / "images").mkdir(parents=True)
    for p in PEOPLE:
        (mini / "images" / p).symlink_to((lfw / "images" / p).resolve())
    n = lambda f: int(f.stem.rsplit("_", 1)[1])  # noqa: E731
    lines = ["1 3"] + [f"{p} {n(imgs[p][0])} {n(imgs[p][1])}" for p in PEOPLE] + [
        f"Colin_Powell {n(imgs['Colin_Powell'][2])} Tony_Blair {n(imgs['Tony_Blair'][2])}",
        f"Tony_Blair {n(imgs['Tony_Blair'][3])} Serena_Williams {n(imgs['Serena_Williams'][3])}",
        f"Serena_Williams {n(imgs['Serena_Williams'][4])} Colin_Powell {n(imgs['Colin_Powell'][4])}"]
    (mini / "pairs.txt").write_text("\n".join(lines) + "\n")
    run = tmp_path / "emb"
    env = {"FACELAB_HOME": str(home)}
    out = run_cli("train", "embedder", ds, "--out", run, "--epochs", "2", "--batch-size", "8", "--width", "8",
                  "--input-size", "32", "--lfw", mini, "--lfw-pairs", "6", "--loss", "cosface", "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["best"]["lfw_pairs"] == 6 and 0 <= result["best"]["lfw_auc"] <= 1
    assert result["export"]["verification"]["default"]["threshold"] is not None
    assert run_cli("models", "add", run, "--name", "tiny_face", env=env).returncode == 0
    a, b = imgs["Colin_Powell"][0], imgs["Tony_Blair"][0]
    out = run_cli("verify", a, b, "--model", "tiny_face", "--json", env=env)
    assert out.returncode in (0, 1), out.stderr  # same or different: a decision, with the run's threshold
    doc = json.loads(out.stdout)
    assert doc["model"] == "tiny_face" and doc["source"].startswith("LFW View 2")
    assert run_cli("verify", a, b, "--model", "no_such_model").returncode == 2
    # ... and a gallery model: enrol with it, then identify (the gallery remembers its model)
    g = tmp_path / "tiny.db"
    out = run_cli("gallery", "add", "Colin_Powell", imgs["Colin_Powell"][0], "--gallery", g, "--model", "tiny_face",
                  env=env)
    assert out.returncode == 0, out.stderr
    out = run_cli("identify", imgs["Colin_Powell"][1], "--gallery", g, "--json", env=env)
    assert out.returncode in (0, 1), out.stderr
    assert "tiny_face" in run_cli("gallery", "stats", "--gallery", g, "--json", env=env).stdout


def test_augmentations_keep_range_and_shape_and_change_pixels():
    import torch

    from facelab.train.augment import AUGMENTATIONS, augment_batch

    x = torch.rand(64, 3, 56, 56) * 255
    g = torch.Generator().manual_seed(0)
    for name in AUGMENTATIONS:
        y = augment_batch(x.clone(), (name,), g)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 255
        assert not torch.equal(y, x), name


def test_arcface_margin_lowers_only_the_target_logit():
    import torch

    from facelab.train.embedder import margin_head

    head = margin_head(5, 16, "arcface", 0.5, 32.0)
    emb, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    plain, margined = head(emb), head(emb, y)
    target = torch.arange(4), y
    assert (margined[target] < plain[target]).all()
    mask = torch.ones_like(plain, dtype=torch.bool)
    mask[target] = False
    assert torch.allclose(margined[mask], plain[mask])


def test_nets_export_to_onnx_identically():
    from facelab.train.export import export_onnx
    from facelab.train.nets import WithSoftmax, build_model

    for backbone in ("resnet", "mobilefacenet"):
        arch = {"kind": "cnn", "backbone": backbone, "input_size": 48, "crop_size": 112, "width": 8, "num_classes": 3}
        model = build_model(arch).eval()
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            info = export_onnx(WithSoftmax(model), np.random.rand(2, 3, 112, 112).astype(np.float32) * 255,
                               Path(d) / "m.onnx", "crop", "probabilities")
        assert info["max_abs_diff"] < 1e-4
