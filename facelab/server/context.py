"""What every request of one app shares: its settings, API keys, galleries, and the limits on inference, image
decoding and image memory. `create_app` makes one `ServerContext`; routes reach it through `deps.py`."""
from __future__ import annotations

import functools
from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import numpy as np
from fastapi import Request

from .auth import KeyStore
from .galleries import Galleries
from .settings import Settings
from .uploads import PixelBudget, Upload, decode_uploads, read_images


class ServerContext:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = KeyStore(settings.keys_file)
        self.galleries = Galleries(settings)
        # Inference runs in worker threads, at most `inference_threads` at a time, so the event loop stays free.
        self.inference = anyio.CapacityLimiter(settings.inference_threads)
        self.decoders = anyio.CapacityLimiter(settings.decode_threads)
        self.pixel_budget = PixelBudget(settings.image_memory_bytes)

    async def infer(self, fn: Callable, *args, **kwargs) -> Any:
        """fn(*args, **kwargs) in a worker thread, within the inference limit."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.inference)

    async def decode(self, scope: MutableMapping[str, Any], *uploads: Upload) -> list[np.ndarray]:
        """Check, reserve image memory for (recorded in the request's scope) and decode uploads."""
        return await decode_uploads(list(uploads), self.settings, self.pixel_budget, scope, self.decoders)

    async def images(self, request: Request, *names: str) -> list[np.ndarray]:
        """The request's images named `names` (multipart or base64 JSON), decoded, in that order."""
        uploads, _ = await read_images(request, names, self.settings)
        return await self.decode(request.scope, *(uploads[n] for n in names))
