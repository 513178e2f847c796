"""What every attribute analyser shares: the quality floor and the withheld answer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces import Face


@dataclass(frozen=True)
class QualityFloor:
    """Below this, an attribute is withheld ({"value": None, "reason": ...}) instead of guessed.

    Sizes are the shorter side of the face box in input pixels; sharpness is the Laplacian variance of the
    aligned 112x112 grey crop (facelab.pose.estimate_quality); yaw in degrees.
    """

    min_size: float = 32.0
    max_yaw: float = 50.0
    min_sharpness: float = 8.0

    def reason(self, face: Face) -> str | None:
        q, p = face.quality, face.pose
        if q is not None and q.size < self.min_size:
            return f"face too small ({q.size:.0f} px < {self.min_size:g})"
        if p is not None and abs(p.yaw) > self.max_yaw:
            return f"face turned too far (yaw {p.yaw:+.0f} degrees, limit {self.max_yaw:g})"
        if q is not None and q.sharpness < self.min_sharpness:
            return f"face too blurred (sharpness {q.sharpness:.1f} < {self.min_sharpness:g})"
        return None


DEFAULT_FLOOR = QualityFloor()


def withheld(reason: str) -> dict:
    return {"value": None, "reason": reason}


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def onnx_session(path, extended_only: bool = False):
    """A CPU onnxruntime session with facelab's thread settings (facelab/settings.py; faces are few).
    extended_only: stop graph optimisation before the layout (NCHWc) passes, which made age_v1 2.2x slower here."""
    import onnxruntime as ort

    from ..settings import onnx_session_options

    opts = onnx_session_options()
    if extended_only:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class Analyser:
    """One attribute model (or a pair sharing inputs). Subclasses set `names` and implement `predict`.

    `run(rgb, faces)` fills face.attributes[name] for the requested names, withholding them on faces below
    `floor`. `needs` are other attributes it reads (the emoticon), `uses_embedding` asks for face.embedding.
    """

    names: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    uses_embedding = False
    floor: QualityFloor = DEFAULT_FLOOR

    def __init__(self, wanted: tuple[str, ...] | None = None):
        self.wanted = tuple(wanted or self.names)

    def run(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        usable = []
        for face in faces:
            why = self.floor.reason(face)
            if why is None:
                usable.append(face)
            else:
                for name in self.wanted:
                    face.attributes[name] = withheld(why)
        if usable:
            self.predict(rgb, usable)
        return faces

    def predict(self, rgb: np.ndarray, faces: list[Face]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
