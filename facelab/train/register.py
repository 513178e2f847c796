"""`facelab models add RUN`: a run's ONNX export becomes a user model in $FACELAB_HOME/models.toml.

The file is copied to $FACELAB_HOME/models/<name>.onnx (the entry names it relative to the TOML, so the whole
folder can be moved), with its sha256 and size, so `facelab models` checks it like any built-in model.
Classifiers carry their labels and input spec, and become attributes of `facelab analyze` under their name (so
a built-in attribute's name is refused like a built-in model's); embedders carry their LFW-calibrated
verification threshold, which `facelab verify --model NAME` uses.
"""
from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..models.registry import file_sha256
from . import TrainingError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


def register_run(run_dir: str | Path, name: str | None = None, task: str | None = None,
                 licence: str = "unspecified (trained by the user on their own data)",
                 replace: bool = False) -> dict[str, Any]:
    from ..models.registry import _builtin_registry, facelab_home, user_registry_file
    from .runs import Run

    run = Run(run_dir)
    config = run.config()
    export = config.get("export")
    if not export or not run.onnx.is_file():
        raise TrainingError(f"{run_dir}: no exported model.onnx (did the run finish?)")
    name = name or re.sub(r"[^a-z0-9_]", "_", run.path.name.lower()).strip("_")[:40]
    if not NAME_RE.match(name):
        raise ModelError(f"model name {name!r}: use 2-41 lower-case letters, digits and _ , starting with a letter")
    if name in _builtin_registry():
        raise ModelError(f"{name!r} is a built-in model; choose another --name")
    from ..attributes import REGISTRY as ATTRIBUTES

    if name in ATTRIBUTES:  # a classifier becomes an attribute of `facelab analyze` under its name
        raise ModelError(f"{name!r} is a built-in attribute of facelab analyze; choose another --name")
    toml_file = user_registry_file()
    existing = _read(toml_file)
    if name in existing and not replace:
        raise ModelError(f"a user model {name!r} is already registered in {toml_file}; pass --replace")
    dest_dir = facelab_home() / "models"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{name}.onnx"
    shutil.copyfile(run.onnx, dest)
    if (run.path / "model_card.md").exists():
        shutil.copyfile(run.path / "model_card.md", dest_dir / f"{name}.md")
    summary = run.read_json("summary.json")
    counts = config.get("counts", {})
    split_sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
    entry: dict[str, Any] = {
        "task": task or ("embedding" if config["task"] == "embedder" else "classification"),
        "file": f"models/{name}.onnx", "sha256": file_sha256(dest), "bytes": dest.stat().st_size,
        "licence": licence, "licence_source": "user-trained with facelab train",
        "training_data": f"{config['dataset']} ({split_sizes} photos)",
        "default_ok": False, "description": f"trained by facelab train ({config['task']}, run {run.path.resolve()})",
        "card": f"models/{name}.md", "run": str(run.path.resolve()), "crop_size": export["crop_size"],
    }
    if config["task"] == "embedder":
        arch = config["arch"]
        entry.update(dim=arch["embedding_dim"], input_kind="aligned_crop",
                     input=f"{export['crop_size']}x{export['crop_size']} ArcFace-aligned crop, RGB 0-255 float32 NCHW")
        if export.get("verification"):
            entry["verification"] = export["verification"]
    else:
        entry.update(labels=export["labels"], input_kind=export["input_kind"], input=_input_text(export))
        # A head must name the frozen features it reads, so prediction computes them as training did.
        entry.update({k: v for k, v in export.items() if k.startswith("feature")})
        if summary.get("test"):
            entry["test_accuracy"] = summary["test"]["accuracy"]
    existing[name] = entry
    toml_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = toml_file.with_suffix(".tmp")
    tmp.write_text("# User models registered with `facelab models add` (facelab rewrites this file).\n\n"
                   + "\n".join(_table(n, e) for n, e in existing.items()))
    tmp.replace(toml_file)
    return {"name": name, "registry": str(toml_file), **entry}


def _input_text(export: dict[str, Any]) -> str:
    if export["input_kind"] == "sface_embedding":
        return "128-d SFace unit vector of the 112x112 aligned crop"
    if export["input_kind"] == "features":
        return (f"{export['feature_dim']}-d {export['feature_layer']} of {export['feature_model']} (trained for "
                f"{export['feature_pretrained_for']}), from the 112x112 aligned crop (facelab.train.frozen_features)")
    return f"{export['crop_size']}x{export['crop_size']} ArcFace-aligned crop, RGB 0-255 float32 NCHW"


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path} is not valid TOML ({exc}); fix or remove it") from None



def _table(name: str, entry: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in entry.items()) + "\n"


def _value(v: Any) -> str:
    """A minimal TOML writer for the value types an entry holds (tomllib reads, nothing in the stdlib writes)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else _value(k)
