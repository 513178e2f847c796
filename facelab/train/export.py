"""ONNX export, checked: the exported graph must give the same outputs as PyTorch on real inputs."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import TrainingError

OPSET = 17
TOLERANCE = 1e-4  # max absolute difference on probabilities / unit-vector components


def export_onnx(model: torch.nn.Module, sample: np.ndarray, path: Path, input_name: str, output_name: str,
                metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Export `model` (eval mode, CPU, float32) with a dynamic batch axis; compare with onnxruntime on `sample`."""
    import onnx
    import onnxruntime as ort

    model = model.float().cpu().eval()
    x = torch.from_numpy(np.ascontiguousarray(sample)).float()
    with torch.no_grad():
        expected = model(x).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (no onnxscript here)
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=[input_name],
                          output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    proto = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: x.numpy()})[0]
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    if got.shape != expected.shape or not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise TrainingError(f"ONNX export differs from PyTorch (max |diff| {diff:.2e} > {TOLERANCE:g}); not "
                            f"exported")
    return {"file": path.name, "opset": OPSET, "checked_on": int(len(x)), "max_abs_diff": diff,
            "input": input_name, "output": output_name, "bytes": path.stat().st_size}
