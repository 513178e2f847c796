"""Every error the API returns is JSON: {"error": {"code": "...", "message": "..."}} (the CLI's --json shape).

`code` is stable and machine-readable; `message` is one line for people. A stack trace never leaves the
process: unexpected exceptions are logged and answered with a generic 500.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FacelabError
from ..extras import from_import_error

log = logging.getLogger("facelab.server")

# FacelabError.code -> HTTP status. Codes not listed (a subclass added later) answer 400.
FACELAB_STATUS = {
    "bad_image": 400,
    "no_face": 422,
    "model_unavailable": 503,
    "store_error": 409,
    "not_found": 404,
    "conflict": 409,
    "missing_extra": 501,  # e.g. a postgresql:// gallery without facelab[postgres]
    "error": 400,
}

HTTP_CODES = {400: "bad_request", 401: "auth_required", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
              422: "invalid_request", 501: "not_available", 503: "unavailable"}


class ApiError(Exception):
    """An error raised by the server layer itself (auth, limits, unknown gallery...)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class NotAvailable(ApiError):
    """The feature's code is not installed in this build (another area's module not merged yet)."""

    def __init__(self, feature: str):
        super().__init__(501, "not_available", f"{feature} is not available in this build of facelab")


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def status_and_code(err: FacelabError) -> tuple[int, str]:
    """The HTTP status of a facelab error, from its class's code (errors.NotFound is a 404, errors.Conflict a 409)."""
    code = getattr(err, "code", "error")
    return FACELAB_STATUS.get(code, 400), code


def status_for(err: FacelabError) -> int:
    return status_and_code(err)[0]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(error_body(err.code, err.message), status_code=err.status, headers=headers)

    @app.exception_handler(FacelabError)
    async def _facelab_error(request: Request, err: FacelabError):
        status, code = status_and_code(err)
        return JSONResponse(error_body(code, _one_line(str(err))), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse(error_body("invalid_request", _one_line(msg)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        code = HTTP_CODES.get(err.status_code, "error")
        detail = err.detail if isinstance(err.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, _one_line(detail)), status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        missing = from_import_error(err, f"{request.method} {request.url.path}") if isinstance(err, ImportError) \
            else None
        if missing is not None:  # an optional package this install lacks: say which extra brings it
            status, code = status_and_code(missing)
            return JSONResponse(error_body(code, _one_line(str(missing))), status_code=status)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error (details are in the server log)"),
                            status_code=500)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]
