"""Images from requests: multipart uploads or base64 JSON, checked before anything is decoded.

Checks, in order: body size (middleware, before reading: from Content-Length, else while streaming; the limit is
what the route's images can take), declared content type, decoded byte size, format sniffed from the bytes, pixel
count and decoded pixel bytes from the header, then the one loader (`facelab.images.load_image`).

Decoding runs in worker threads, never on the event loop (a 49 MP image takes seconds), and every request first
reserves the memory its image will need from one `PixelBudget`: large images wait for each other instead of
piling up, small ones pass, and /v1/health never waits. Uploads stay in memory and are dropped after the
request; nothing here touches the filesystem.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import re
from collections.abc import MutableMapping
from typing import Any

import numpy as np
from fastapi import Request
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ImageError
from ..images import check_header, load_image
from .errors import ApiError, error_body
from .settings import Settings

ALLOWED_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/bmp",
                 "image/x-ms-bmp", "image/gif", "image/tiff"}
ALLOWED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"}
DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.I)


def keep_uploads_in_memory(limit: int) -> None:
    # Starlette spools multipart files over 1 MB to a temporary file on disk; raise the threshold to the body
    # limit so an upload never touches the disk unless it is enrolled (and then only as the gallery stores it).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit)


class Upload:
    """One image received: raw bytes, what the client said it was, and the decoded RGB array."""

    def __init__(self, field: str, data: bytes, content_type: str | None, filename: str | None):
        self.field, self.data, self.content_type, self.filename = field, data, content_type, filename
        self.rgb: np.ndarray | None = None


# Bytes a request holds per pixel while its image is analysed: the RGB array (3), the detector's BGR copy (3) and
# its working copies (~2 measured on a 49 MP image), on top of the decoded pixels themselves.
WORKING_BYTES_PER_PIXEL = 8


def check_upload(upload: Upload, settings: Settings) -> tuple[int, int, str]:
    """Everything that can be checked without decoding: type, size, format, pixels, decoded bytes.
    Returns (width, height, Pillow mode)."""
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    if ctype not in ALLOWED_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       f"{upload.field}: content type {ctype or 'missing'!r} is not an accepted image type "
                       f"(JPEG, PNG, WebP, BMP, GIF, TIFF)")
    if not upload.data:
        raise ApiError(400, "bad_image", f"{upload.field}: empty upload")
    if len(upload.data) > settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"{upload.field}: {len(upload.data)} bytes, over the "
                                         f"{settings.max_upload_bytes} byte limit")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(upload.data)) as img:  # reads the header only
            fmt, (w, h), mode = img.format, img.size, img.mode
    except Image.DecompressionBombError:
        raise ApiError(413, "too_many_pixels", f"{upload.field}: image is too large to decode safely") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ApiError(400, "bad_image", f"{upload.field}: not an image (unrecognised format)") from None
    if fmt not in ALLOWED_FORMATS:
        raise ApiError(415, "unsupported_media_type", f"{upload.field}: {fmt} images are not accepted")
    if w * h > settings.max_pixels:
        raise ApiError(413, "too_many_pixels", f"{upload.field}: {w}x{h} is over the "
                                               f"{settings.max_pixels / 1e6:g} megapixel limit")
    try:
        check_header(upload.field, mode, w, h, settings.max_pixels, settings.max_decoded_bytes)
    except ImageError as err:
        raise ApiError(413, "too_many_pixels", str(err)) from None
    return w, h, mode


def decode_checked(upload: Upload, settings: Settings) -> np.ndarray:
    """Decode an upload that passed check_upload (blocking: call it in a worker thread)."""
    try:
        upload.rgb = load_image(upload.data)
    except ImageError as err:  # corrupt or truncated: the loader's one-line reason, without its "<bytes>" name
        raise ApiError(400, "bad_image", f"{upload.field}: {str(err).removeprefix('<bytes>: ')}") from None
    return upload.rgb


def check_and_decode(upload: Upload, settings: Settings) -> np.ndarray:
    """check_upload, then decode, in the calling thread."""
    check_upload(upload, settings)
    return decode_checked(upload, settings)


def memory_needed(width: int, height: int, mode: str) -> int:
    from ..images import decoded_bytes

    return decoded_bytes(mode, width, height) + WORKING_BYTES_PER_PIXEL * width * height


class PixelBudget:
    """Bytes of image memory the server's requests may hold at once. A request reserves what its image needs
    before decoding it and gives it back when it is answered; one that does not fit waits its turn (a request
    larger than the whole budget waits until it is alone). Counted, not measured: the reservation is an estimate
    (memory_needed) made from the image's header."""

    def __init__(self, total_bytes: int):
        self.total = int(total_bytes)
        self.used = 0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self, n: int) -> int:
        n = max(0, min(int(n), self.total))
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.used + n <= self.total)
            self.used += n
        return n

    async def release(self, n: int) -> None:
        if n <= 0:
            return
        cond = self._condition()
        async with cond:
            self.used -= n
            cond.notify_all()


RESERVED = "facelab.reserved_bytes"  # scope key: what this request holds of the PixelBudget


async def decode_uploads(uploads: list[Upload], settings: Settings, budget: PixelBudget,
                         scope: MutableMapping[str, Any], limiter) -> list[np.ndarray]:
    """Check every upload, reserve the memory they need together (at once: two requests each holding half of
    what they need would wait for each other forever), then decode them in worker threads. The reservation is
    recorded in the request's ASGI scope and given back by `release_reserved` once the request is answered."""
    import anyio

    need = sum(memory_needed(*check_upload(upload, settings)) for upload in uploads)
    got = await budget.acquire(need)
    scope[RESERVED] = scope.get(RESERVED, 0) + got
    return [await anyio.to_thread.run_sync(decode_checked, upload, settings, limiter=limiter) for upload in uploads]


async def release_reserved(scope: MutableMapping[str, Any], budget: PixelBudget) -> None:
    await budget.release(scope.pop(RESERVED, 0))


async def read_images(request: Request, names: tuple[str, ...], settings: Settings,
                      optional_fields: tuple[str, ...] = ()) -> tuple[dict[str, Upload], dict[str, str]]:
    """The images named `names` (all required) and other plain fields from a multipart or JSON request."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    uploads: dict[str, Upload] = {}
    fields: dict[str, str] = {}
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=len(names), max_fields=32,
                                      max_part_size=settings.max_upload_bytes + 1024)
        except ApiError:
            raise
        except Exception as exc:  # malformed multipart, too many parts
            raise ApiError(400, "bad_request", f"malformed multipart body ({exc})") from None
        try:
            for name in names:
                part = form.get(name)
                if part is None or isinstance(part, str):
                    raise ApiError(422, "invalid_request", f"missing image file field {name!r}")
                data = await part.read()
                uploads[name] = Upload(name, data, part.content_type, part.filename)
            for key in optional_fields:
                value = form.get(key)
                if isinstance(value, str):
                    fields[key] = value
        finally:
            await form.close()
    elif ctype == "application/json":
        body = await request.body()
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "bad_request", "body is not valid JSON") from None
        except RecursionError:
            raise ApiError(400, "bad_request", "body is JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise ApiError(422, "invalid_request", "JSON body must be an object")
        for name in names:
            uploads[name] = _from_base64(name, doc.get(name), settings)
        for key in optional_fields:
            if doc.get(key) is not None:
                fields[key] = str(doc[key])
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send the image as multipart/form-data or as base64 in application/json")
    return uploads, fields


def _from_base64(name: str, value, settings: Settings) -> Upload:
    if not isinstance(value, str) or not value:
        raise ApiError(422, "invalid_request", f"missing base64 image field {name!r}")
    content_type = None
    match = DATA_URL.match(value)
    if match:
        content_type = match.group(1).lower()
        value = value[match.end():]
    if len(value) > settings.max_upload_bytes * 4 // 3 + 8:
        raise ApiError(413, "too_large", f"{name}: over the {settings.max_upload_bytes} byte limit")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_image", f"{name}: not valid base64") from None
    if content_type is None:  # plain base64 carries no type: name the format from the bytes
        content_type = _sniff(data)
    return Upload(name, data, content_type, None)


def _sniff(data: bytes) -> str | None:
    signatures = [(b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
                  (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff")]
    for sig, ctype in signatures:
        if data.startswith(sig):
            return ctype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def body_limit(path: str, content_type: str, max_upload_bytes: int) -> int:
    """The largest body a route can need: its images (two for verify), 4/3 larger as base64 JSON, plus framing."""
    images = 2 if path.rstrip("/").endswith("/verify") else 1
    per_image = max_upload_bytes * 4 // 3 + 8 if content_type.startswith("application/json") else max_upload_bytes
    return images * per_image + 64 * 1024


class BodyLimit:
    """ASGI middleware: refuse bodies over the route's limit from Content-Length, or while streaming without it,
    so an upload over the limit is never read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None):
        self.app, self.max_bytes, self.max_upload_bytes = app, max_bytes, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        limit = self.max_bytes
        if self.max_upload_bytes is not None:
            ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
            limit = min(limit, body_limit(scope.get("path", ""), ctype, self.max_upload_bytes))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _send_json(send, 413, error_body(
                "too_large", f"request body is {int(length)} bytes, over the {limit} byte limit"))
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(413, "too_large", f"request body is over the {limit} byte limit")
            return message

        await self.app(scope, limited_receive, send)


async def _send_json(send: Send, status: int, body: dict) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})
