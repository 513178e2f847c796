"""Dependencies shared by the routes (FastAPI `Depends`): keys, the server's context, galleries, uploads, and
the check of an embedding model's name.

None of them reads the request body or does model work when FastAPI resolves it, so parameter validation (a 422)
still comes before any image is decoded; the image reader is called by the route itself.
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from . import capabilities
from .auth import require_read_key, require_write_key
from .context import ServerContext
from .errors import ApiError
from .galleries import Galleries

# Route-level dependencies: reading needs a key only under --require-key; any change needs the write key.
READ = [Depends(require_read_key)]
WRITE = [Depends(require_read_key), Depends(require_write_key)]


def server_context(request: Request) -> ServerContext:
    return request.app.state.context


def gallery_access(request: Request) -> Galleries:
    """The app's galleries, or 501 when this build has no gallery code."""
    capabilities.api("galleries")
    return request.app.state.context.galleries


class ImageReader:
    """`await images("image_a", "image_b")`: the request's images, decoded (the route calls it when it is ready)."""

    def __init__(self, request: Request, context: ServerContext):
        self.request, self.context = request, context

    async def __call__(self, *names: str) -> list[np.ndarray]:
        return await self.context.images(self.request, *names)


def image_reader(request: Request) -> ImageReader:
    return ImageReader(request, server_context(request))


MODEL_HELP = ("an embedding model `facelab verify --model` accepts: sface, dlib_resnet, fused, or a user model "
              "registered with `facelab models add`; `NAME+flip` is NAME with flip=true")


def embedding_model(model: str, flip: bool) -> tuple[str, bool]:
    """(embedder name, flip) for a requested model, or 422 naming the known ones. Read at each request, as the CLI
    reads them at each run: a model added with `facelab models add` is served without a restart."""
    from ..embedders import EMBEDDERS, registered_embedder_names

    name, plus, variant = model.partition("+")
    known = [*EMBEDDERS, *registered_embedder_names()]
    if name not in known or (plus and variant != "flip"):
        raise ApiError(422, "invalid_request", f"model: {model!r} is not an embedding model; known: "
                                               f"{', '.join(known)} (each also as NAME+flip)")
    return name, flip or bool(plus)


Context = Annotated[ServerContext, Depends(server_context)]
GalleriesDep = Annotated[Galleries, Depends(gallery_access)]
Images = Annotated[ImageReader, Depends(image_reader)]
