"""One photo -> every face with its box, attributes (when the build has them) and identity (when a gallery is
searched). Used by POST /v1/recognize (the page's upload view) and the webcam stream."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

import facelab

from ..errors import FacelabError
from . import features
from .galleries import Galleries


def iou(a: dict, b: dict) -> float:
    ax2, ay2 = a["x"] + a["width"], a["y"] + a["height"]
    bx2, by2 = b["x"] + b["width"], b["y"] + b["height"]
    w = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    h = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = w * h
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def attach_identities(faces: list[dict], identities: list[dict]) -> None:
    """identify() detects again on its own; pair its records with our faces by box overlap."""
    for record in identities:
        box = (record.get("face") or {}).get("box")
        if not box or not faces:
            continue
        best = max(faces, key=lambda f: iou(f["box"], box))
        if iou(best["box"], box) > 0.5:
            best["identity"] = record


async def recognize(rgb: np.ndarray, *, infer, galleries: Galleries, gallery: str | None,
                    attributes: bool = True, identify: bool = True, top_k: int = 3) -> dict[str, Any]:
    started = time.perf_counter()
    use_attributes = attributes and features.has("analyze")
    use_identify = bool(identify and gallery and features.has("identify") and features.has("galleries")
                        and galleries.exists(gallery))
    if use_identify:
        identify_fn = features.api("identify")
        id_job = galleries.run(gallery, lambda g: features.plain(identify_fn(rgb, gallery=g, top_k=top_k)))
    if use_identify and not use_attributes:
        # identify already found every face: use its boxes rather than detecting a second time (the webcam's
        # frame rate depends on it). Fall back to plain detection if the gallery search fails.
        try:
            identities = await id_job
        except FacelabError as err:
            identities = err
        if not isinstance(identities, BaseException):
            faces = []
            for record in identities:
                face = dict(record.get("face") or {})
                face["identity"] = record
                faces.append(face)
            return _finish(rgb, gallery, faces, {"attributes": False, "identify": True}, started)
        found = await infer(facelab.detect, rgb)
    elif use_identify:
        found, identities = await asyncio.gather(infer(features.api("analyze"), rgb), id_job,
                                                 return_exceptions=True)
    else:
        find_faces = features.api("analyze") if use_attributes else facelab.detect
        found, identities = await infer(find_faces, rgb), []
    if isinstance(found, BaseException):
        raise found
    faces = [features.plain(f.to_dict()) for f in found]
    if isinstance(identities, FacelabError):
        # An empty or unreadable gallery must not hide the faces: report it beside them.
        error = {"code": identities.code, "message": str(identities)}
        out = _finish(rgb, None, faces, {"attributes": use_attributes, "identify": False}, started)
        out["identify_error"] = error
        return out
    if isinstance(identities, BaseException):
        raise identities
    attach_identities(faces, identities)
    return _finish(rgb, gallery if use_identify else None, faces,
                   {"attributes": use_attributes, "identify": use_identify}, started)


def _finish(rgb, gallery, faces, used, started) -> dict[str, Any]:
    return {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "gallery": gallery, "faces": faces,
            "used": used, "ms": round((time.perf_counter() - started) * 1000, 1)}
