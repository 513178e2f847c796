"""Galleries by name: search one (identify, lookalike), list, create, show, delete, check and calibrate."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Query

import facelab

from ...errors import Conflict, FacelabError, NotFound
from ...gallery.calibrate import CalibrationError
from .. import capabilities, schemas
from ..deps import READ, WRITE, GalleriesDep, Images
from ..galleries import DEFAULT, hide_location
from .openapi import ERRORS, image_body

log = logging.getLogger("facelab.server")
router = APIRouter(tags=["galleries"], responses=ERRORS)


@router.post("/v1/identify", response_model=schemas.IdentifyResponse, dependencies=READ,
             openapi_extra=image_body("image"))
async def identify(galleries: GalleriesDep, images: Images, gallery: str = Query(DEFAULT),
                   top_k: int = Query(5, ge=1, le=100), threshold: float | None = Query(None, ge=-1, le=1),
                   far: float | None = Query(None, gt=0, lt=1)):
    """Who each face is in the gallery (best match or unknown, and the top_k nearest)."""
    identify_fn = capabilities.api("identify")
    (rgb,) = await images("image")
    found = await galleries.run(gallery, lambda g: capabilities.plain(
        identify_fn(rgb, gallery=g, top_k=top_k, threshold=threshold, far=far)))
    return {"gallery": gallery, "width": rgb.shape[1], "height": rgb.shape[0], "faces": found}


@router.post("/v1/lookalike", response_model=schemas.LookalikeResponse, dependencies=READ,
             openapi_extra=image_body("image"))
async def lookalike(galleries: GalleriesDep, images: Images, gallery: str = Query(DEFAULT)):
    """The nearest person and photo in the gallery for each face, however far."""
    lookalike_fn = capabilities.api("lookalike")
    (rgb,) = await images("image")
    found = await galleries.run(gallery, lambda g: capabilities.plain(lookalike_fn(rgb, gallery=g)))
    return {"gallery": gallery, "width": rgb.shape[1], "height": rgb.shape[0], "faces": found}


@router.get("/v1/galleries", response_model=schemas.GalleryList, dependencies=READ)
async def list_galleries(galleries: GalleriesDep):
    out = []
    for name in galleries.names():
        try:
            stats = await galleries.run(name, lambda g: capabilities.plain(g.stats()), create=name == DEFAULT)
            out.append({"name": name, "stats": stats})
        except facelab.FacelabError as err:  # one unreadable gallery must not hide the others
            out.append({"name": name, "stats": None, "error": {"code": err.code, "message": str(err)}})
        except Exception:  # nor one that fails in a way nobody foresaw: logged, named, the others listed
            log.exception("gallery %s: stats failed", name)
            out.append({"name": name, "stats": None,
                        "error": {"code": "internal_error", "message": "gallery could not be read (see the "
                                                                       "server log)"}})
    return {"galleries": out}


@router.post("/v1/galleries", response_model=schemas.GalleryOut, status_code=201, dependencies=WRITE)
async def create_gallery(galleries: GalleriesDep, body: schemas.GalleryCreate):
    if galleries.exists(body.name):
        raise Conflict(f"gallery {body.name!r} already exists")
    stats = await galleries.run(body.name, lambda g: capabilities.plain(g.stats()), create=True)
    return {"name": body.name, "stats": stats}


@router.get("/v1/galleries/{gallery}", response_model=schemas.GalleryOut, dependencies=READ)
async def get_gallery(galleries: GalleriesDep, gallery: str):
    stats = await galleries.run(gallery, lambda g: capabilities.plain(g.stats()), create=gallery == DEFAULT)
    return {"name": gallery, "stats": stats}


@router.delete("/v1/galleries/{gallery}", response_model=schemas.Deleted, dependencies=WRITE)
async def delete_gallery(galleries: GalleriesDep, gallery: str):
    await galleries.delete(gallery)
    return {"deleted": gallery}


@router.get("/v1/galleries/{gallery}/check", response_model=schemas.GalleryCheckOut, dependencies=READ)
async def check_gallery(galleries: GalleriesDep, gallery: str, far: float = Query(0.001, gt=0, le=0.1)):
    """Labelling mistakes worth a look (`facelab gallery check`): photos unlike their person's other photos
    and people who may be one person under two names. Changes nothing."""
    report = await galleries.run(gallery, lambda g: g.check(far=far).to_dict())
    return {"gallery": gallery, **report}


@router.post("/v1/galleries/{gallery}/calibrate", response_model=schemas.CalibrationOut, dependencies=WRITE)
async def calibrate_gallery(galleries: GalleriesDep, gallery: str, fpir: float = Query(0.01, gt=0, lt=1),
                            scoring: str = Query("mean", pattern="^(max|mean|both)$"),
                            strangers: str | None = Query(None, description="Another gallery of this server, of "
                                                          "people who are not in this one (`--strangers`)")):
    """Measure the "unknown" threshold on this gallery (`facelab gallery calibrate`): each person plays a
    stranger in turn, with the people of the `strangers` gallery if given; the threshold names at most `fpir` of
    them. Stored in the gallery; identify uses it."""
    others = None
    if strangers is not None:
        if strangers == gallery:
            raise CalibrationError("a gallery cannot be its own strangers: name another gallery of its model")
        if not galleries.exists(strangers):
            raise NotFound(f"no gallery named {strangers!r} to take strangers from")
        others = galleries.location(strangers)
    try:
        result = await galleries.run(gallery, lambda g: g.calibrate(fpir=fpir, scoring=scoring,
                                                                    strangers=others).to_dict())
    except FacelabError as err:  # the strangers' file stays on the server too
        if others:
            err.args = (hide_location(str(err), others, f"gallery {strangers!r}"),)
        raise
    return {"gallery": gallery, **result}
