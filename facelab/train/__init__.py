"""The training lab: raw photos -> a cleaned face dataset -> a trained, evaluated, exported model.

    dataset.py     detect, align, filter, dedupe, split; manifest + report (resumable)
    data.py        read a dataset folder (crops, labels, splits) and check it is usable for training
    nets.py        small CNN backbones (ResNet-ish, MobileFaceNet-like) and the heads trained on top
    augment.py     batch augmentations in torch (brightness, contrast, crop, flip, grayscale, rotate)
    loop.py        the shared epoch loop: devices, mixed precision, early stopping, checkpoints, resume
    frozen_features.py  SFace / gender_v1 / age_v1 vectors of the aligned crops, cached, for heads
    classifier.py  a head on frozen facelab embeddings, or a CNN trained on the aligned crops
    embedder.py    metric learning with ArcFace / CosFace margins, DDP under torchrun
    export.py      ONNX export checked against PyTorch outputs
    predict.py     run an exported model (classification, look-alike ranking)
    evaluate.py    accuracy, per-class precision/recall, confusion matrix, worst images
    runs.py        the run folder (config, metrics, curves, checkpoints)
    cards.py       model cards
    register.py    `facelab models add`: a run's export becomes a user model

torch is imported only inside these modules, never by `import facelab`.
"""
from __future__ import annotations

from ..errors import FacelabError


class DatasetError(FacelabError):
    """The dataset cannot be built or used as asked (empty, one class, too few images, wrong crop size)."""

    exit_code = 11  # not 8: that is the CLI's "internal error" (a bug), which this is not
    code = "bad_dataset"


class TrainingError(FacelabError):
    """Training cannot go on (out of memory, incompatible checkpoint, diverged). The run folder keeps the
    last good state; the message says how to resume."""

    exit_code = 9
    code = "training_failed"
