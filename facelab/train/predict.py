"""Use an exported classifier: from a run folder or a registered user model. Needs onnxruntime, not torch.

Input kinds (stored with the model):
- "aligned_crop": the ONNX takes (N, 3, S, S) float RGB 0-255, the ArcFace-aligned crop facelab makes;
- "sface_embedding": the ONNX takes (N, 128) SFace unit vectors, computed here from the aligned crop;
- "features": the ONNX takes frozen features of a pretrained network (`features`: gender_v1, age_v1), computed
  here from the aligned crop exactly as in training (frozen_features.py); the model stores which network and layer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import DatasetError, TrainingError

if TYPE_CHECKING:  # torch-free at import: the extractor loads only for a head on frozen features
    from .frozen_features import FeatureExtractor


class OnnxClassifier:
    def __init__(self, path: str | Path, labels: list[str], input_kind: str, crop_size: int = 112, name: str = "",
                 features: dict[str, Any] | None = None):
        import onnxruntime as ort

        from .frozen_features import check_spec

        if input_kind not in ("aligned_crop", "sface_embedding", "features"):
            raise TrainingError(f"unknown classifier input kind {input_kind!r}")
        self.labels, self.input_kind, self.crop_size = list(labels), input_kind, int(crop_size)
        # Which frozen features the head reads (None: it takes crops). Checked now, not at the first photo.
        self.features: str | None = "sface" if input_kind == "sface_embedding" else None
        if input_kind == "features":
            if not features or not features.get("features"):
                raise TrainingError(f"{path}: a head on frozen features that does not say which "
                                    "(no 'features' entry)")
            self.features = check_spec(features).name
        self._extractor: FeatureExtractor | None = None
        self.name = name or Path(path).stem
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def from_run(cls, run_dir: str | Path) -> OnnxClassifier:
        from .runs import Run

        run = Run(run_dir)
        config = run.config()
        if config.get("task") != "classifier":
            raise TrainingError(f"{run_dir} is a {config.get('task')} run, not a classifier")
        export = config.get("export")
        if not export or not run.onnx.is_file():
            raise TrainingError(f"{run_dir}: no exported model (the run did not finish)")
        return cls(run.onnx, export["labels"], export["input_kind"], export.get("crop_size", 112), run.path.name,
                   features=export)

    @classmethod
    def from_registry(cls, name: str) -> OnnxClassifier:
        from ..models.registry import get_model, verify_model

        spec = get_model(name)
        extra = spec.extra
        if "labels" not in extra or "input_kind" not in extra:
            raise TrainingError(f"model {name!r} is not a facelab-trained classifier (no labels / input_kind)")
        return cls(verify_model(spec), extra["labels"], extra["input_kind"], extra.get("crop_size", 112), name,
                   features=extra)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for crops (uint8 NHWC) or feature vectors (float N x dim), per input kind."""
        if self.input_kind == "aligned_crop":
            if inputs.dtype != np.uint8:
                raise TrainingError("this classifier takes aligned crops (uint8 images)")
            if inputs.shape[1:3] != (self.crop_size, self.crop_size):
                raise DatasetError(f"the model takes {self.crop_size}x{self.crop_size} crops, got "
                                   f"{inputs.shape[2]}x{inputs.shape[1]}")
            x = inputs.transpose(0, 3, 1, 2).astype(np.float32)
        else:
            x = inputs.astype(np.float32)
        out = [self.session.run(None, {self.input_name: x[i:i + 256]})[0] for i in range(0, len(x), 256)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities for aligned crops, whatever the model's input kind."""
        if self.features:
            from .frozen_features import FeatureExtractor

            if crops.shape[1:3] != (112, 112):
                raise DatasetError(f"the {self.features} head takes 112x112 crops, "
                                   f"got {crops.shape[2]}x{crops.shape[1]}")
            self._extractor = self._extractor or FeatureExtractor(self.features)
            return self.run(self._extractor(crops))
        return self.run(crops)

    def predict_faces(self, rgb: np.ndarray, faces) -> np.ndarray:
        """Probabilities (N, classes) for detected faces of the RGB photo they were found in: the aligned crop
        facelab made, re-cut from the photo when the model takes another size. `train predict` and the
        attribute a registered classifier becomes in `facelab analyze` both come here."""
        from ..align import align_face

        size = self.crop_size
        crops = [f.aligned if f.aligned.shape[0] == size else align_face(rgb, f.landmarks, size) for f in faces]
        if not crops:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.predict_crops(np.stack(crops))

    def rank_image(self, image, top_k: int = 5, face_index: int | None = None) -> dict[str, Any]:
        """The main face of a photo (or `face_index`), ranked against the classes (look-alike / prediction)."""
        from ..images import load_image
        from ..pipeline import shared_analysis

        rgb = load_image(image)
        face, n = shared_analysis().main_face(rgb, face_index)
        probs = self.predict_faces(rgb, [face])[0]
        order = np.argsort(-probs)[:top_k]
        return {"face": face.to_dict(), "faces_in_photo": n, "model": self.name,
                "ranking": [{"class": self.labels[i], "probability": round(float(probs[i]), 4)} for i in order]}


def load_classifier(ref: str | Path) -> OnnxClassifier:
    """A run folder or a registered model name."""
    if Path(ref).is_dir():
        return OnnxClassifier.from_run(ref)
    return OnnxClassifier.from_registry(str(ref))


def describe(model: OnnxClassifier) -> str:
    return json.dumps({"labels": model.labels, "input_kind": model.input_kind, "crop_size": model.crop_size,
                       "features": model.features})
