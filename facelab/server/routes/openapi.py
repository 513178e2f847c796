"""OpenAPI text shared by the routes: the error answers every route may give, and the request body of routes that
read their images themselves (multipart or base64 JSON, see uploads.py)."""
from __future__ import annotations

from typing import Any

from .. import schemas

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse} for code in (400, 401, 403, 413, 415, 422, 501, 503)}


def image_body(*names: str) -> dict[str, Any]:
    """OpenAPI text for routes that read images themselves (multipart or base64 JSON)."""
    files = {n: {"type": "string", "format": "binary"} for n in names}
    b64 = {n: {"type": "string", "description": "base64 or data: URL"} for n in names}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": list(names), "properties": files}},
        "application/json": {"schema": {"type": "object", "required": list(names), "properties": b64}}}}}
