"""`facelab train classifier`: two ways to learn classes of faces.

- method "head": a linear (or one-hidden-layer) head on frozen features of a pretrained network (`features`:
  SFace embeddings by default, or the penultimate layer of the gender_v1 / age_v1 networks, see frozen_features.py).
  Features are computed once and cached in the dataset folder, so training takes seconds on a CPU. SFace suits
  identity classes (it was trained to separate people); a head on gender_v1 is transfer from a gender model.
- method "cnn": a small CNN (ResNet-ish or MobileFaceNet-like) trained on the aligned crops with
  augmentation, optionally initialised from an embedder run (`init`: fine-tuning). Slower, learns what the
  embedding does not keep (expression, eyewear...).

Both: class weights for imbalance, early stopping on validation accuracy, checkpoints and resume, fixed seed,
CPU or CUDA (mixed precision), ONNX export checked against PyTorch, test-split evaluation of that export, a
model card.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import DatasetError, TrainingError
from .data import check_trainable, labels_of, open_dataset
from .frozen_features import dataset_features, feature_spec
from .runs import Run, default_run_dir

if TYPE_CHECKING:  # torch loads when training starts, not on import
    from torch import nn

METHODS = ("head", "cnn")


def train_classifier(dataset: str | Path, out: str | Path | None = None, method: str = "head",
                     backbone: str = "resnet", input_size: int = 56, width: int | None = None, hidden: int = 0,
                     cfg=None, resume: bool = False, init: str | Path | None = None, progress: bool = True,
                     min_train_per_class: int = 2, features: str = "sface") -> dict[str, Any]:
    import torch
    from torch import nn

    from .cards import write_card
    from .evaluate import evaluate_arrays
    from .export import export_onnx
    from .loop import TrainConfig, fit, load_checkpoint, pick_device
    from .nets import BACKBONES, EmbeddingHead, WithSoftmax, build_model, count_parameters

    cfg = cfg or TrainConfig()
    if method not in METHODS:
        raise TrainingError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    spec = feature_spec(features)
    if method == "cnn" and features != "sface":
        raise TrainingError(f"features {features!r} are for --method head; the CNN learns its own from the crops")
    if method == "cnn" and backbone not in BACKBONES:
        raise TrainingError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    ds = open_dataset(dataset)
    warnings = check_trainable(ds, min_train=min_train_per_class)
    classes = ds.classes
    run = Run(out or default_run_dir(f"classifier-{method}", ds.root))
    if resume:
        old = run.config()
        if old["arch"].get("crop_size", ds.crop_size) != ds.crop_size:
            raise DatasetError(f"the run was trained on {old['arch']['crop_size']}px crops; dataset {ds.root} has "
                               f"{ds.crop_size}px crops")
    run.create(resume)
    rows = {s: ds.split(s) for s in ("train", "val", "test")}
    bar = _embed_bar(spec.name) if progress else None
    if method == "head":
        arch = {"kind": "head", "embedding_model": spec.name, "embedding_dim": spec.dim, "hidden": hidden,
                "num_classes": len(classes), "classes": classes, "crop_size": ds.crop_size}
        data = {s: dataset_features(ds, r, spec.name, bar) for s, r in rows.items()}
        if spec.name == "sface":  # unchanged since before --features: SFace heads trained earlier still load
            input_kind, input_name = "sface_embedding", "embedding"
        else:
            arch.update(standardize=True, feature_layer=spec.layer)
            input_kind, input_name = "features", "features"
    else:
        arch = {"kind": "cnn", "backbone": backbone, "input_size": input_size, "crop_size": ds.crop_size,
                "width": width or (32 if backbone == "resnet" else 64), "num_classes": len(classes),
                "classes": classes}
        data = {s: ds.load_crops(r) for s, r in rows.items()}
        input_kind, input_name = "aligned_crop", "crop"
    labels = {s: labels_of(r, classes) for s, r in rows.items()}
    if method == "cnn" and not cfg.augment:
        cfg.augment = "brightness,contrast,crop,flip"
    model = build_model(arch)
    if arch.get("standardize") and isinstance(model, EmbeddingHead):  # only heads standardise their features
        model.set_standardization(data["train"])  # resume: the checkpoint's buffers replace these
    if init and not resume:
        _init_backbone(model, init, arch)
    counts = np.bincount(labels["train"], minlength=len(classes)).astype(np.float64)
    weights = torch.tensor(counts.sum() / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32)
    config = {"task": "classifier", "method": method, "dataset": str(ds.root.resolve()), "arch": arch,
              "train": cfg.to_dict(), "init": str(init) if init else None, "input_kind": input_kind,
              "features": spec.to_dict() if method == "head" else None,
              "counts": {s: ds.counts(s) for s in ("train", "val", "test")}, "warnings": warnings,
              "parameters": count_parameters(model), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if resume:  # refuse another architecture before touching the run's files
        load_checkpoint(run.last, arch)
        config["export"] = run.config().get("export")  # the previous export stays described until replaced
    run.write_json("config.json", config)
    device = pick_device(cfg.device)
    ce_val = nn.CrossEntropyLoss()

    def validate(module) -> dict[str, float]:
        if not len(data["val"]):
            return {}
        logits = _predict_logits(module, data["val"], device, cfg.batch_size)
        yv = torch.from_numpy(labels["val"])
        loss = ce_val(logits, yv).item()
        acc = (logits.argmax(1) == yv).float().mean().item()
        return {"val_loss": loss, "val_acc": acc, "score": acc - 1e-3 * loss}

    state = fit(run, _supervised(model), data["train"], labels["train"], cfg, arch,
                nn.CrossEntropyLoss(weight=weights), validate, resume, progress)
    best = load_checkpoint(run.best, arch)
    _supervised(model).load_state_dict(best["model"])
    model.eval()
    sample = np.concatenate([data["test"][:16], data["val"][:16], data["train"][:16]])[:16]
    if sample.dtype == np.uint8:  # NHWC crops -> the NCHW float the graph takes
        sample = sample.transpose(0, 3, 1, 2).astype(np.float32)
    feature_meta = spec.to_dict() if method == "head" else {}
    export = export_onnx(WithSoftmax(model), sample, run.onnx, input_name, "probabilities",
                         {"facelab_task": "classifier", "labels": ",".join(classes), "input_kind": input_kind,
                          **feature_meta})
    from .predict import OnnxClassifier

    onnx_model = OnnxClassifier(run.onnx, classes, input_kind, features=feature_meta)
    test = None
    if len(data["test"]):
        probs = onnx_model.run(data["test"])
        test = evaluate_arrays(probs, labels["test"], classes, [r["file"] for r in rows["test"]])
    summary = _summary(state, export, test, labels, classes, device)
    run.write_json("summary.json", summary)
    config["export"] = {**export, "labels": classes, "input_kind": input_kind, "crop_size": ds.crop_size,
                        **feature_meta}
    run.write_json("config.json", config)
    run.plot_curves(state["history"])
    if test:
        from .runs import plot_confusion

        plot_confusion(test["confusion"], classes, run.path / "confusion.png",
                       f"test split: accuracy {100 * test['accuracy']:.1f} %")
    write_card(run)
    return {"run": str(run.path), **summary}


def _supervised(model: nn.Module) -> nn.Module:
    """Adapter: the loop calls forward(x, y); a classifier ignores y. Built as nn.Module lazily (torch import)."""
    from torch import nn

    class Supervised(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, y=None):
            return self.net(x)

    return Supervised(model)


def _predict_logits(module, x: np.ndarray, device, batch_size: int):
    import torch

    from .loop import to_input

    net = getattr(module, "net", module)
    outs = [net(to_input(x[i:i + batch_size * 2], device)).float().cpu() for i in range(0, len(x), batch_size * 2)]
    return torch.cat(outs) if outs else torch.zeros(0)


def _init_backbone(model, init: str | Path, arch: dict[str, Any]) -> None:
    """Fine-tuning: start the CNN's backbone from an embedder run's best weights (same backbone and sizes)."""
    from .loop import load_checkpoint

    src = Path(init)
    ckpt = load_checkpoint(src / "checkpoints" / "best.pt" if src.is_dir() else src)
    theirs = ckpt["arch"]
    for key in ("backbone", "input_size", "crop_size", "width"):
        if theirs.get(key) != arch.get(key):
            raise TrainingError(f"--init {init}: its {key} is {theirs.get(key)!r}, this model's is {arch.get(key)!r}")
    backbone = {k.split("backbone.", 1)[1]: v for k, v in ckpt["model"].items() if ".backbone." in f".{k}"}
    model.backbone.load_state_dict(backbone)


def _summary(state, export, test, labels, classes, device) -> dict[str, Any]:
    best_row = next(r for r in state["history"] if r["epoch"] == state["best_epoch"])
    majority = float(np.bincount(labels["train"]).max() / len(labels["train"]))
    out = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "best": best_row,
           "device": str(device), "export": export, "classes": len(classes),
           "mean_images_per_s": round(float(np.mean([r["images_per_s"] for r in state["history"]])), 1),
           "majority_share": round(majority, 4), "test": None, "warnings": []}
    if test:
        out["test"] = {k: test[k] for k in ("accuracy", "top5", "balanced_accuracy", "n")}
    measured = (test or {}).get("accuracy", best_row.get("val_acc"))
    if measured is not None and measured <= majority + 0.02:
        out["warnings"].append(f"the model is no better than always answering the commonest class "
                               f"({100 * measured:.1f} % vs {100 * majority:.1f} %): do not use it")
    return out


def _embed_bar(name: str):
    def bar(items):
        from tqdm import tqdm

        return tqdm(items, desc=f"{name} features (cached)", unit="batch", leave=False, disable=None)

    return bar
