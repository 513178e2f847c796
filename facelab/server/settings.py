"""Server settings: one dataclass, filled from defaults, then the environment, then `facelab serve` options.

    FACELAB_SERVE_THREADS          requests analysed at once (inference worker threads; `--threads`)
    FACELAB_SERVE_DECODE_THREADS   images decoded at once (worker threads off the event loop)
    FACELAB_SERVE_MAX_UPLOAD_MB    largest accepted upload, MiB (`--max-upload-mb`)
    FACELAB_SERVE_MAX_MEGAPIXELS   largest accepted image, megapixels (`--max-megapixels`)
    FACELAB_SERVE_IMAGE_MEMORY_MB  image memory all requests together may hold, MiB

`Settings.from_env(**options)` reads them the way facelab/settings.py reads FACELAB_THREADS (the CPU threads
one model call may use): a variable that is set must be a valid value, else a one-line error; an option given
on the command line wins over the variable. Tests build `Settings(...)` directly and read no environment.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import images
from ..errors import FacelabError
from ..settings import parse_count, usable_cpus

# A web upload larger than this is refused before it is read; facelab.images' own cap (100 MiB, for local
# files) is far more than any photo a browser sends.
DEFAULT_MAX_UPLOAD_BYTES = min(images.MAX_BYTES, 20 * 1024 * 1024)


@dataclass
class Settings:
    data_dir: Path = Path("data")            # API keys, named galleries; never a path taken from a request
    gallery: str | None = None               # the "default" gallery: SQLite path or postgresql:// URL
    require_key_for_all: bool = False        # True: every /v1 call needs a key, not only gallery changes
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = images.MAX_PIXELS
    inference_threads: int = field(default_factory=usable_cpus)  # one request's models per CPU at a time
    model: str = "sface"                     # embedding model of the galleries the server opens
    preload_models: bool = False             # load detector + embedder at start-up instead of on first use
    max_decoded_bytes: int | None = None     # decoded pixel bytes (channels x bit depth) per image; None: 3 per
                                             # allowed pixel (an 8-bit RGB image of max_pixels)
    # Image memory all requests together may hold (decoded pixels + working copies, see uploads.memory_needed):
    # one worst-case 50 MP image at a time; ordinary photos (a few MB each) hardly count.
    image_memory_bytes: int = 768 * 2**20
    # Images decoded at once, in worker threads off the event loop: one per CPU (the image memory above, not
    # this, is what keeps large images from piling up).
    decode_threads: int = field(default_factory=usable_cpus)
    # Host header check (DNS rebinding): None = any host; `facelab serve` on a local address sets the local
    # names and the bound host. Configurable with `facelab serve --allowed-host`.
    allowed_hosts: list[str] | None = None

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        if self.max_decoded_bytes is None:
            self.max_decoded_bytes = min(images.MAX_DECODED_BYTES, 3 * self.max_pixels)
        if self.gallery is None:
            self.gallery = str(self.data_dir / "gallery.db")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Settings:
        """Defaults, then the FACELAB_SERVE_* variables of `environ` (default: os.environ), then `options` (a
        field's value; None = not given, as click passes an option left out)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (field_name, parse) in ENVIRONMENT.items():
            raw = environ.get(name, "").strip()
            if raw:
                values[field_name] = parse(raw, name)
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"not a server setting: {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in options.items() if v is not None})
        return cls(**values)

    @property
    def keys_file(self) -> Path:
        return self.data_dir / "api_keys.json"

    @property
    def galleries_dir(self) -> Path:
        return self.data_dir / "galleries"

    @property
    def max_body_bytes(self) -> int:
        # Two images (verify) as base64 (4/3 larger) plus form/JSON framing.
        return self.max_upload_bytes * 3 + 64 * 1024


def _amount(unit: float, low: float, high: float) -> Callable[[str, str], int]:
    """A parser for a number of `unit`s between low and high (the bounds of the matching CLI option)."""

    def parse(raw: str, source: str) -> int:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN fails too
            raise FacelabError(f"{source} must be a number from {low:g} to {high:g}, got {raw!r}")
        return int(value * unit)

    return parse


# environment variable -> (Settings field, parser taking (text, variable name))
ENVIRONMENT: dict[str, tuple[str, Callable[[str, str], int]]] = {
    "FACELAB_SERVE_THREADS": ("inference_threads", parse_count),
    "FACELAB_SERVE_DECODE_THREADS": ("decode_threads", parse_count),
    "FACELAB_SERVE_MAX_UPLOAD_MB": ("max_upload_bytes", _amount(2**20, 0.01, 100)),
    "FACELAB_SERVE_MAX_MEGAPIXELS": ("max_pixels", _amount(1e6, 0.01, 50)),
    "FACELAB_SERVE_IMAGE_MEMORY_MB": ("image_memory_bytes", _amount(2**20, 1, 2**20)),
}
