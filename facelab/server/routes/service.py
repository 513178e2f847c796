"""GET /v1/health: what this server offers."""
from __future__ import annotations

from fastapi import APIRouter

import facelab

from .. import capabilities, schemas
from ..deps import Context

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=schemas.Health)
def health(context: Context):
    """What this server offers: features present in this build, auth rules, limits."""
    settings = context.settings
    return {"status": "ok", "version": facelab.__version__, "features": capabilities.available(),
            "attributes": capabilities.attribute_names(),
            "auth": {"gallery_changes": "api_key", "everything_else": "api_key" if settings.require_key_for_all
                     else "open"},
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels}}
