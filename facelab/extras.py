"""Optional parts of facelab and the pip extra that installs each (pyproject.toml [project.optional-dependencies]).

The core install (`pip install facelab`) detects, verifies, identifies on SQLite galleries and describes faces.
Code that needs more asks for it here, so a missing extra is one line naming the `pip install` that brings it,
with its own exit code, rather than a traceback.
"""
from __future__ import annotations

import importlib.util

from .errors import FacelabError

# Top-level module -> the extra whose packages provide it.
EXTRA_OF_MODULE = {
    "fastapi": "server", "starlette": "server", "anyio": "server", "pydantic": "server", "uvicorn": "server",
    "multipart": "server", "python_multipart": "server", "fastapi_offline": "server",
    "psycopg": "postgres",
    "torch": "train", "onnx": "train",
    "sklearn": "eval", "matplotlib": "eval",
    # scikit-learn brings scipy; a photo library's grouping uses them for the fused models (scipy's connected
    # components) and past 30,000 faces (k-means cells)
    "scipy": "eval",
    "ray": "ray", "pyarrow": "ray",
}

EXTRA_MODULES = {
    "server": ("fastapi", "uvicorn", "multipart", "fastapi_offline"),
    "postgres": ("psycopg",),
    "train": ("torch", "onnx", "sklearn", "matplotlib"),
    "eval": ("sklearn", "matplotlib"),
    "ray": ("ray", "pyarrow"),  # pyarrow: Ray Data's blocks (ray[data])
}


class MissingExtra(FacelabError):
    """A part of facelab whose packages are not installed; the message names the extra to install."""

    exit_code = 10
    code = "missing_extra"


def message(what: str, extra: str) -> str:
    return f"{what} needs the [{extra}] extra: pip install 'facelab[{extra}]'"


def require(extra: str, what: str) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported (checked without importing them)."""
    if any(importlib.util.find_spec(m) is None for m in EXTRA_MODULES[extra]):
        raise MissingExtra(message(what, extra))


def from_import_error(exc: ImportError, what: str) -> MissingExtra | None:
    """The MissingExtra behind an ImportError of an optional package, or None when it is not one of those
    (then it is a real bug and should surface as such)."""
    name = getattr(exc, "name", None) or ""
    extra = EXTRA_OF_MODULE.get(name.split(".")[0])
    return MissingExtra(message(what, extra)) if extra else None
