"""Frozen features for `facelab train classifier --method head --features NAME`.

- "sface": the 128-d SFace identity embedding of the 112x112 aligned crop (the default, as before);
- "gender_v1", "age_v1": the penultimate layer of the CC0 dlib/Cydral networks (registry models, loaded through
  facelab's registry; the ONNX graph gets that layer as an extra output, in memory, the file is untouched).
  Note: gender_v1 was itself trained for gender, so a gender head on it is transfer learning from a gender
  model, not gender learned from the training photos; age_v1 was trained for age only.

The dlib networks want their own chip (dlib 5-point shape, `get_face_chip_details(size, padding 0.2)`, as in
facelab/attributes/age_gender.py). Datasets keep only the 112x112 ArcFace-aligned crop, so the chip is cut from
that crop: the dlib shape predictor runs in a fixed box (where YuNet's face box lands in the aligned crop,
measured on 100 LFW and UTKFace photos), on the crop padded by edge replication because the padded chip reaches
a few pixels below the crop. Features are the mean of the chip's and its mirror image's (the attribute averages
the two as well). Everything is deterministic: same crop, same vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import numpy as np

from . import DatasetError, TrainingError


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    model: str            # registry name of the network
    layer: str            # ONNX tensor exposed as the feature vector ("" for SFace: its output)
    dim: int
    chip: int             # dlib chip side (0: the 112 aligned crop itself)
    pretrained_for: str   # what the network was trained to predict (said in cards and README)

    @property
    def key(self) -> str:
        """Names the cache file; changes whenever the vectors would."""
        return self.name if self.name == "sface" else f"{self.name}.{self.layer}.flip"

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.name, "feature_model": self.model, "feature_layer": self.layer,
                "feature_dim": self.dim, "feature_chip": self.chip, "feature_pretrained_for": self.pretrained_for}


FEATURES = {
    "sface": FeatureSpec("sface", "sface", "", 128, 0, "face identity (SFace loss)"),
    "gender_v1": FeatureSpec("gender_v1", "gender_v1", "layer_1_flatten", 16, 32, "gender"),
    "age_v1": FeatureSpec("age_v1", "age_v1", "layer_1_flatten", 256, 64, "age (81 classes)"),
}

# dlib's shape predictor box inside the 112x112 aligned crop (median of YuNet boxes mapped into it), and the
# edge padding added around the crop before the chip is cut.
CROP_FACE_BOX = (17, 20, 99, 119)
PAD = 24


def feature_spec(name: str) -> FeatureSpec:
    if name not in FEATURES:
        raise TrainingError(f"unknown features {name!r}; known: {', '.join(FEATURES)}")
    return FEATURES[name]


def check_spec(stored: dict[str, Any]) -> FeatureSpec:
    """The spec a trained head names, refused if facelab now computes those features differently."""
    spec = feature_spec(stored.get("features", "sface"))
    layer = stored.get("feature_layer", spec.layer)
    if layer != spec.layer or int(stored.get("feature_dim", spec.dim)) != spec.dim:
        raise TrainingError(f"the model was trained on {spec.name} features {layer!r} ({stored.get('feature_dim')}-d); "
                            f"this facelab computes {spec.layer!r} ({spec.dim}-d): retrain it")
    return spec


def chips_from_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) RGB uint8 dlib chips cut from (N, 112, 112, 3) aligned crops."""
    import cv2
    import dlib

    from ..attributes.age_gender import CHIP_PADDING, _shape_predictor

    if crops.ndim != 4 or crops.shape[1:] != (112, 112, 3) or crops.dtype != np.uint8:
        raise DatasetError(f"features need 112x112 RGB uint8 aligned crops, got {crops.shape} {crops.dtype}")
    predictor = _shape_predictor()
    x0, y0, x1, y1 = (v + PAD for v in CROP_FACE_BOX)
    box = dlib.rectangle(x0, y0, x1, y1)
    out = np.empty((len(crops), size, size, 3), np.uint8)
    for i, crop in enumerate(crops):
        padded = np.ascontiguousarray(cv2.copyMakeBorder(crop, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE))
        shape = predictor(padded, box)
        out[i] = dlib.extract_image_chip(padded, dlib.get_face_chip_details(shape, size, CHIP_PADDING))
    return out


class FeatureExtractor:
    """Aligned crops -> frozen feature vectors (float32, N x dim)."""

    def __init__(self, name: str):
        self.spec = feature_spec(name)
        if self.spec.name == "sface":
            from ..embedders import SFaceEmbedder
            from ..pipeline import get_embedder

            self._sface = cast(SFaceEmbedder, get_embedder("sface"))  # embed_crops: SFace on the aligned crops
        else:
            self._session = _session_with_layer(self.spec.model, self.spec.layer)

    def run_chips(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features, the network's own probabilities) for dlib chips, no flip."""
        from ..attributes.age_gender import prepare

        feats, probs = self._session.run([self.spec.layer, "probabilities"], {"images": prepare(list(chips))})
        return feats.reshape(len(chips), -1).astype(np.float32), probs

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, self.spec.dim), np.float32)
        if self.spec.name == "sface":
            return self._sface.embed_crops(crops).astype(np.float32)
        chips = chips_from_crops(crops, self.spec.chip)
        both, _ = self.run_chips(np.concatenate([chips, chips[:, :, ::-1]]))  # one batch: face + mirror image
        n = len(crops)
        return (both[:n] + both[n:]) / 2


@lru_cache(maxsize=4)
def _session_with_layer(model: str, layer: str):
    """An onnxruntime session of a registry model with `layer` added as a graph output (in memory)."""
    import onnx
    import onnxruntime as ort

    from ..models.registry import verify_model
    from ..settings import onnx_session_options

    proto = onnx.load(str(verify_model(model)))
    if layer not in {o for node in proto.graph.node for o in node.output}:
        raise TrainingError(f"{model}: no tensor {layer!r} in its ONNX graph")
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(layer))
    return ort.InferenceSession(proto.SerializeToString(), sess_options=onnx_session_options(),
                                providers=["CPUExecutionProvider"])


def dataset_features(ds, rows: list[dict[str, Any]], name: str, progress=None) -> np.ndarray:
    """Feature vectors of the dataset's crops, cached in DATASET/embeddings/<key>.npz (keyed by crop file)."""
    from .data import check_crop_size

    spec = feature_spec(name)
    check_crop_size(ds, 112, f"the {spec.name} features")
    cache_file = ds.root / "embeddings" / f"{spec.key}.npz"
    cache: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as z:
            cache = dict(zip(z["files"].tolist(), z["vectors"]))
    missing = [r for r in rows if r["file"] not in cache]
    if missing:
        extract = FeatureExtractor(name)
        chunks = [missing[i:i + 64] for i in range(0, len(missing), 64)]
        for chunk in (progress(chunks) if progress else chunks):
            cache.update(zip((r["file"] for r in chunk), extract(ds.load_crops(chunk))))
        cache_file.parent.mkdir(exist_ok=True)
        files = sorted(cache)
        np.savez(cache_file, files=np.array(files), vectors=np.stack([cache[f] for f in files]))
    if not rows:
        return np.zeros((0, spec.dim), np.float32)
    return np.stack([cache[r["file"]] for r in rows]).astype(np.float32)
