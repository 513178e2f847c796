"""Webcam stream: WebSocket /v1/stream.

The page sends a JSON text message to configure ({"gallery": "default", "attributes": true, "identify": true,
"key": "..."}) and then JPEG frames as binary messages. Each answer is a JSON text message with the faces of
the newest frame. Frames that arrive while one is being processed replace each other: only the latest waits,
so a slow server drops frames instead of falling behind (the page also waits for each answer before sending).

Every frame is detected, cheaply (live.py: boxes follow the face). Who the faces are and their attributes change
slowly and cost more, so they are computed in the background (a gallery search at most every
IDENTIFY_INTERVAL_S, attributes at most every ATTRIBUTE_INTERVAL_S) and carried to the faces of the frames in
between by box overlap. The first frame waits for both, so the first answer is complete.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import FacelabError
from . import capabilities
from .auth import KeyStore
from .errors import ApiError
from .galleries import NAME
from .live import live_faces
from .recognize import find_faces, iou, recognize
from .uploads import Upload, _sniff, release_reserved

IDENTIFY_INTERVAL_S = 0.5
ATTRIBUTE_INTERVAL_S = 1.0
BACKGROUND_DUTY = 3.0
log = logging.getLogger("facelab.server")

# A background job turns a frame into (face records carrying the job's key, an error record or None).
Job = Callable[[object], Awaitable[tuple[list[dict], dict | None]]]


class Background:
    """The newest result of one slow analysis of the stream, computed off the frame loop."""

    def __init__(self, name: str, interval_s: float):
        self.name, self.interval_s = name, interval_s
        self.faces: list[dict] = []
        self.error: dict | None = None
        self.ran = False
        self.task: asyncio.Task | None = None
        self.started_at = float("-inf")
        self.duration_s = 0.0

    def reset(self) -> None:
        self.cancel()
        self.faces, self.error, self.ran, self.started_at = [], None, False, float("-inf")

    async def update(self, job: Job, rgb) -> None:
        """Start a run if one is due; the first time, wait for it."""
        # Wait at least the interval, and 3x the last run's duration: on a busy CPU the slow analyses take at
        # most about a third of a core, and the live boxes keep the rest.
        gap = max(self.interval_s, BACKGROUND_DUTY * self.duration_s)
        if (self.task is None or self.task.done()) and time.monotonic() - self.started_at >= gap:
            self.started_at = time.monotonic()
            self.task = asyncio.create_task(self._run(job, rgb))
        if not self.ran and self.task is not None:
            await asyncio.shield(self.task)

    async def _run(self, job: Job, rgb) -> None:
        started = time.monotonic()
        try:
            self.faces, self.error = await job(rgb)
        except FacelabError as err:
            self.faces, self.error = [], {"code": err.code, "message": str(err)}
        except Exception:  # a background task has nobody to raise to: log it, tell the page in one line
            log.exception("%s failed", self.name)
            self.faces, self.error = [], {"code": "internal_error", "message": f"{self.name} failed"}
        self.duration_s = time.monotonic() - started
        self.ran = True

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def carry(faces: list[dict], previous: list[dict], key: str, min_iou: float = 0.3) -> None:
    """Give each face `key` from the most overlapping face of an earlier frame."""
    for face in faces:
        candidates = [p for p in previous if p.get(key)]
        if not candidates:
            return
        best = max(candidates, key=lambda p: iou(p["box"], face["box"]))
        if iou(best["box"], face["box"]) > min_iou:
            face[key] = best[key]


def _same_origin(ws: WebSocket) -> bool:
    # Browsers send Origin on WebSocket handshakes; refuse other sites' pages (no CORS applies to WebSockets).
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser (scripts, tests)
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


async def stream_endpoint(ws: WebSocket):
    if not _same_origin(ws):
        await ws.close(code=1008)
        return
    await ws.accept()
    app = ws.app
    settings = app.state.settings
    infer = app.state.infer
    keys: KeyStore = app.state.keys
    config = {"gallery": "default", "attributes": True, "identify": True}
    authorised = not settings.require_key_for_all
    latest: list[bytes | None] = [None]
    state: dict[str, Any] = {"dropped": 0, "closed": False}
    wake = asyncio.Event()

    async def receive():
        nonlocal authorised
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    if latest[0] is not None:
                        state["dropped"] += 1
                    latest[0] = message["bytes"]
                    wake.set()
                elif message.get("text"):
                    try:
                        update = json.loads(message["text"])
                    except ValueError:
                        update = {}
                    if isinstance(update, dict):
                        if "key" in update:
                            if not isinstance(update["key"], str):  # a protocol error: say so and close
                                state["close"] = (1008, "key must be a string")
                                break
                            authorised = authorised or keys.valid(update["key"])
                        for name in ("gallery", "attributes", "identify"):
                            if name in update:
                                config[name] = update[name]
        except WebSocketDisconnect:
            pass
        except Exception:  # a message nobody foresaw: close with "internal error" rather than drop the socket
            log.exception("stream: receiving failed")
            state["close"] = (1011, "internal error")
        finally:
            state["closed"] = True
            wake.set()

    identities = Background("gallery search", IDENTIFY_INTERVAL_S)
    attributes = Background("attribute analysis", ATTRIBUTE_INTERVAL_S)
    searched_gallery = None

    async def identify_job(rgb):
        result = await recognize(rgb, infer=infer, galleries=app.state.galleries, gallery=searched_gallery,
                                 attributes=False, identify=True, top_k=1)
        return result["faces"], result.get("identify_error")

    async def attributes_job(rgb):
        found, note = await infer(find_faces, rgb, True)
        return [capabilities.plain(f.to_dict()) for f in found], note

    receiver = asyncio.create_task(receive())
    frame_no = 0
    try:
        while True:
            await wake.wait()
            wake.clear()
            if state["closed"]:
                break
            frame, latest[0] = latest[0], None
            if frame is None:
                continue
            frame_no += 1
            started = time.perf_counter()
            frame_scope: dict = {}  # this frame's share of the server's image memory, given back below
            try:
                if not authorised:
                    raise ApiError(401, "auth_required", "send {\"key\": \"<API key>\"} first")
                (rgb,) = await app.state.decode(frame_scope, Upload("frame", frame, _sniff(frame), None))
                gallery = config.get("gallery") or None
                if gallery is not None and not NAME.match(str(gallery)):
                    gallery = None
                want_identity = bool(config.get("identify") and gallery and capabilities.has("identify")
                                     and capabilities.has("galleries") and app.state.galleries.exists(gallery))
                if gallery != searched_gallery:
                    identities.reset()
                    searched_gallery = gallery
                want_attributes = bool(config.get("attributes")) and capabilities.has("analyze")
                if want_identity:
                    await identities.update(identify_job, rgb)
                if want_attributes:
                    await attributes.update(attributes_job, rgb)
                faces = await infer(live_faces, rgb)
                result = {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "faces": faces,
                          "gallery": gallery if want_identity else None}
                if want_identity:
                    carry(faces, identities.faces, "identity")
                    if identities.error:
                        result["identify_error"] = identities.error
                if want_attributes:
                    carry(faces, attributes.faces, "attributes")
                    if attributes.error:
                        result["attributes_error"] = attributes.error
                result.update(type="result", frame=frame_no, dropped=state["dropped"],
                              used={"identify": want_identity and not identities.error,
                                    "attributes": any(f.get("attributes") for f in faces)},
                              ms=round((time.perf_counter() - started) * 1000, 1))
            except ApiError as err:
                result = {"type": "error", "frame": frame_no, "error": {"code": err.code, "message": err.message}}
            except FacelabError as err:
                result = {"type": "error", "frame": frame_no, "error": {"code": err.code, "message": str(err)}}
            finally:
                await release_reserved(frame_scope, app.state.pixel_budget)
            await ws.send_json(result)
        if state.get("close"):
            code, reason = state["close"]
            await ws.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the page went away mid-answer
    finally:
        receiver.cancel()
        identities.cancel()
        attributes.cancel()


router = APIRouter()
router.add_api_websocket_route("/v1/stream", stream_endpoint)
