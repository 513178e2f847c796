"""The FastAPI application: REST API under /v1, the web page at /, OpenAPI at /docs (served offline).

`create_app(settings)` builds a fresh app and wires it: the shared `ServerContext` (models are loaded once per
process by facelab's own caches; inference runs in worker threads, at most `settings.inference_threads` at a
time), middleware, error handlers and the routers of `routes/` (where the routes themselves live).
"""
from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from starlette.middleware.trustedhost import TrustedHostMiddleware

import facelab

from .context import ServerContext
from .errors import install_error_handlers
from .routes import ROUTERS, web
from .settings import Settings
from .uploads import BodyLimit, keep_uploads_in_memory, release_reserved

SETTINGS_ENV = "FACELAB_SERVE_SETTINGS"
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                           "connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'")


def create_app_from_env() -> FastAPI:
    """The app for `uvicorn --factory facelab.server.app:create_app_from_env`: `facelab serve --workers N` hands
    its settings to each worker process as JSON in FACELAB_SERVE_SETTINGS (workers are new interpreters, so an app
    object cannot be passed; an import string and the environment can)."""
    raw = os.environ.get(SETTINGS_ENV)
    return create_app(Settings(**json.loads(raw)) if raw else Settings())


@asynccontextmanager
async def lifespan(app: FastAPI):
    context: ServerContext = app.state.context
    if context.settings.preload_models:
        from ..gallery.store import split_model_name
        from ..pipeline import shared_analysis

        embedder, flip = split_model_name(context.settings.model)  # a library's sface+flip
        analysis = shared_analysis(embedder=embedder, flip=flip)
        await anyio.to_thread.run_sync(lambda: (analysis.detector, analysis.embedder))
    yield
    context.galleries.close()


async def give_back_image_memory(request: Request, call_next):
    """The image memory a request reserved (uploads.decode_uploads) is given back once it is answered."""
    try:
        return await call_next(request)
    finally:
        await release_reserved(request.scope, request.app.state.context.pixel_budget)


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.url.path == "/" or request.url.path.startswith("/static"):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    context = ServerContext(settings)
    app = FastAPI(title="facelab", version=facelab.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Faces found, compared, named and described, offline. Images go in as multipart "
                              "uploads or base64 JSON; errors are `{\"error\": {\"code\", \"message\"}}`.")
    app.state.context = context
    # The parts by name too: the webcam stream, the library routes and tests reach them so.
    app.state.settings, app.state.keys, app.state.galleries = settings, context.keys, context.galleries
    app.state.infer, app.state.decode, app.state.pixel_budget = context.infer, context.decode, context.pixel_budget

    keep_uploads_in_memory(settings.max_body_bytes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    if settings.allowed_hosts:  # outermost: a request for another host name is refused before anything else
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    install_error_handlers(app)
    app.middleware("http")(give_back_image_memory)
    app.middleware("http")(security_headers)

    web.mount_files(app)
    for router, responses in ROUTERS:
        app.include_router(router, responses=responses or None)
    return app
