"""Webcam stream: WebSocket /v1/stream.

The page sends a JSON text message to configure ({"gallery": "default", "attributes": true, "identify": true,
"key": "..."}) and then JPEG frames as binary messages. Each answer is a JSON text message with the faces of
the newest frame. Frames that arrive while one is being processed replace each other: only the latest waits,
so a slow server drops frames instead of falling behind (the page also waits for each answer before sending).

Attributes change slowly and cost the most: they are computed in the background, at most every
ATTRIBUTE_INTERVAL_S, and carried to the faces of the frames in between by box overlap, so boxes and names
keep their own frame rate.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import WebSocket, WebSocketDisconnect

from ..errors import FacelabError
from .auth import KeyStore
from .errors import ApiError
from .galleries import NAME
from . import features
from .recognize import find_faces, iou, recognize
from .uploads import Upload, _sniff, check_and_decode

ATTRIBUTE_INTERVAL_S = 1.0
log = logging.getLogger("facelab.server")


class BackgroundAttributes:
    """The newest attribute analysis of the stream, computed off the frame loop."""

    def __init__(self):
        self.faces: list[dict] = []
        self.error: dict | None = None
        self.task: asyncio.Task | None = None
        self.started_at = float("-inf")

    def due(self) -> bool:
        return (self.task is None or self.task.done()) and \
            time.monotonic() - self.started_at >= ATTRIBUTE_INTERVAL_S

    def start(self, infer, rgb) -> None:
        self.started_at = time.monotonic()
        self.task = asyncio.create_task(self._run(infer, rgb))

    async def _run(self, infer, rgb) -> None:
        try:
            found, note = await infer(find_faces, rgb, True)
            self.faces = [features.plain(f.to_dict()) for f in found if f.attributes]
            self.error = note
        except FacelabError as err:
            self.faces, self.error = [], {"code": err.code, "message": str(err)}
        except Exception:  # a background task has nobody to raise to: log it, tell the page in one line
            log.exception("attribute analysis failed")
            self.faces, self.error = [], {"code": "internal_error", "message": "attribute analysis failed"}

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def carry_attributes(faces: list[dict], previous: list[dict]) -> None:
    for face in faces:
        if not previous:
            return
        best = max(previous, key=lambda p: iou(p["box"], face["box"]))
        if iou(best["box"], face["box"]) > 0.3 and best.get("attributes"):
            face["attributes"] = best["attributes"]


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
    keys: KeyStore = app.state.keys
    config = {"gallery": "default", "attributes": True, "identify": True, "top_k": 1}
    authorised = not settings.require_key_for_all
    latest: list[bytes | None] = [None]
    state = {"dropped": 0, "closed": False}
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
                            authorised = authorised or keys.valid(update.get("key"))
                        for name in ("gallery", "attributes", "identify"):
                            if name in update:
                                config[name] = update[name]
        except WebSocketDisconnect:
            pass
        finally:
            state["closed"] = True
            wake.set()

    receiver = asyncio.create_task(receive())
    frame_no = 0
    attributes = BackgroundAttributes()
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
            try:
                if not authorised:
                    raise ApiError(401, "auth_required", "send {\"key\": \"<API key>\"} first")
                rgb = check_and_decode(Upload("frame", frame, _sniff(frame), None), settings)
                gallery = config.get("gallery") or None
                if gallery is not None and not NAME.match(str(gallery)):
                    gallery = None
                want_attributes = bool(config.get("attributes")) and features.has("analyze")
                if want_attributes and attributes.due():
                    attributes.start(app.state.infer, rgb)
                    if not attributes.faces:  # the first time, wait: the first answer shows attributes too
                        await attributes.wait()
                result = await recognize(rgb, infer=app.state.infer, galleries=app.state.galleries,
                                         gallery=gallery, attributes=False,
                                         identify=bool(config.get("identify")), top_k=1)
                if want_attributes:
                    carry_attributes(result["faces"], attributes.faces)
                    result["used"]["attributes"] = any(f.get("attributes") for f in result["faces"])
                    if attributes.error:
                        result["attributes_error"] = attributes.error
                result.update(type="result", frame=frame_no, dropped=state["dropped"],
                              ms=round((time.perf_counter() - started) * 1000, 1))
            except ApiError as err:
                result = {"type": "error", "frame": frame_no, "error": {"code": err.code, "message": err.message}}
            except FacelabError as err:
                result = {"type": "error", "frame": frame_no, "error": {"code": err.code, "message": str(err)}}
            await ws.send_json(result)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the page went away mid-answer
    finally:
        receiver.cancel()
        attributes.cancel()
