"""Server settings: one dataclass, filled from `facelab serve` options or by tests."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import images

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
    inference_threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    model: str = "sface"                     # embedding model of the galleries the server opens
    preload_models: bool = False             # load detector + embedder at start-up instead of on first use
    max_decoded_bytes: int | None = None     # decoded pixel bytes (channels x bit depth) per image; None: 3 per
                                             # allowed pixel (an 8-bit RGB image of max_pixels)
    # Image memory all requests together may hold (decoded pixels + working copies, see uploads.memory_needed):
    # one worst-case 50 MP image at a time; ordinary photos (a few MB each) hardly count.
    image_memory_bytes: int = 768 * 2**20
    decode_threads: int = 2                  # images decoded at once, in worker threads off the event loop
    # Host header check (DNS rebinding): None = any host; `facelab serve` on a local address sets the local
    # names and the bound host. Configurable with `facelab serve --allowed-host`.
    allowed_hosts: list[str] | None = None

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        if self.max_decoded_bytes is None:
            self.max_decoded_bytes = min(images.MAX_DECODED_BYTES, 3 * self.max_pixels)
        if self.gallery is None:
            self.gallery = str(self.data_dir / "gallery.db")

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
