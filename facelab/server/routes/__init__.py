"""The routes, one `APIRouter` per area. A new route goes into the module of its area (or a new module listed
in ROUTERS); what it needs from the server comes from `deps.py` (context, galleries, images, keys)."""
from __future__ import annotations

from fastapi import APIRouter

from ..stream import router as stream_router
from . import analysis, galleries, library, people, photos, service, verification, web
from .openapi import ERRORS

# In this order (it is the order of the OpenAPI paths and of matching): (router, responses added to its routes).
ROUTERS: list[tuple[APIRouter, dict]] = [
    (web.router, {}),
    (service.router, {}),
    (analysis.router, {}),
    (verification.router, {}),
    (galleries.router, {}),
    (people.router, {}),
    (photos.router, {}),
    (library.router, ERRORS),
    (stream_router, {}),
]
