"""One photo -> every face with its box, attributes (when the build has them) and identity (when a gallery is
searched). Used by POST /v1/recognize (the page's upload view) and the webcam stream."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

import facelab

from ..errors import FacelabError
from . import capabilities
from .galleries import Galleries


def iou(a: dict, b: dict) -> float:
    ax2, ay2 = a["x"] + a["width"], a["y"] + a["height"]
    bx2, by2 = b["x"] + b["width"], b["y"] + b["height"]
    w = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    h = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = w * h
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def without_face(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "face"}  # the face is already the enclosing record


def attach_identities(faces: list[dict], identities: list[dict]) -> None:
    """identify() detects again on its own; pair its records with our faces by box overlap."""
    for record in identities:
        box = (record.get("face") or {}).get("box")
        if not box or not faces:
            continue
        best = max(faces, key=lambda f: iou(f["box"], box))
        if iou(best["box"], box) > 0.5:
            best["identity"] = without_face(record)


# analyze function -> the attribute names that work with it, learnt when the full set failed once (e.g. one
# attribute's model is missing): the page then still shows the others instead of none.
_usable: dict[Any, tuple[list[str], dict]] = {}
_usable_lock = threading.Lock()


def find_faces(rgb: np.ndarray, with_attributes: bool):
    """Faces with attributes when asked and possible; if attribute models fail, what works and a note why."""
    if not with_attributes:
        return facelab.detect(rgb), None
    analyze = capabilities.api("analyze")
    if analyze not in _usable:
        try:
            return analyze(rgb), None
        except FacelabError as err:
            if not facelab.detect(rgb):
                return [], {"code": err.code, "message": str(err)}  # no face to learn which models work
            with _usable_lock:
                if analyze not in _usable:
                    works = [n for n in capabilities.attribute_names() if _works(analyze, rgb, n)]
                    _usable[analyze] = works, {"code": err.code, "message": str(err)}
    usable, first_error = _usable[analyze]
    missing = [n for n in capabilities.attribute_names() if n not in usable]
    note = {"code": "model_unavailable", "message": f"not available: {', '.join(missing)}"} if missing else first_error
    if not usable:
        return facelab.detect(rgb), first_error
    try:
        return analyze(rgb, usable), note
    except FacelabError as err:
        return facelab.detect(rgb), {"code": err.code, "message": str(err)}


def _works(analyze, rgb: np.ndarray, name: str) -> bool:
    try:
        analyze(rgb, [name])
        return True
    except FacelabError:
        return False


async def recognize(rgb: np.ndarray, *, infer, galleries: Galleries, gallery: str | None,
                    attributes: bool = True, identify: bool = True, top_k: int = 3) -> dict[str, Any]:
    started = time.perf_counter()
    use_attributes = attributes and capabilities.has("analyze")
    use_identify = bool(identify and gallery and capabilities.has("identify") and capabilities.has("galleries")
                        and galleries.exists(gallery))
    errors: dict[str, Any] = {}
    identities: Any = []
    if use_identify and gallery:
        identify_fn = capabilities.api("identify")
        id_job = galleries.run(gallery, lambda g: capabilities.plain(identify_fn(rgb, gallery=g, top_k=top_k)))
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
                face["identity"] = without_face(record)
                faces.append(face)
            return _finish(rgb, gallery, faces, {"attributes": False, "identify": True}, started, errors)
        found = await infer(find_faces, rgb, False)
    elif use_identify:
        found, identities = await asyncio.gather(infer(find_faces, rgb, True), id_job, return_exceptions=True)
    else:
        found = await infer(find_faces, rgb, use_attributes)
    if isinstance(found, BaseException):
        raise found
    found, attributes_error = found
    if attributes_error:
        # A broken attribute model must not hide the faces or the other attributes: say which are missing.
        errors["attributes_error"] = attributes_error
        use_attributes = any(f.attributes for f in found)
    faces = [capabilities.plain(f.to_dict()) for f in found]
    if isinstance(identities, FacelabError):
        errors["identify_error"] = {"code": identities.code, "message": str(identities)}
        use_identify = False
    elif isinstance(identities, BaseException):
        raise identities
    else:
        attach_identities(faces, identities)
    return _finish(rgb, gallery if use_identify else None, faces,
                   {"attributes": use_attributes, "identify": use_identify}, started, errors)


def _finish(rgb, gallery, faces, used, started, errors) -> dict[str, Any]:
    return {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "gallery": gallery, "faces": faces,
            "used": used, "ms": round((time.perf_counter() - started) * 1000, 1), **errors}
