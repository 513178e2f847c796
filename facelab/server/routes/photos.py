"""Photos of a gallery: enrol one (the only route that keeps anything from an upload), delete one, and the face
crop kept with it."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...errors import NotFound
from .. import capabilities, schemas
from ..deps import READ, WRITE, Context, GalleriesDep
from ..galleries import DEFAULT
from ..uploads import read_images
from .openapi import ERRORS, image_body
from .people import check_person_name

router = APIRouter(tags=["galleries"], responses=ERRORS)


def safe_label(filename: str | None) -> str | None:
    """The upload's base name, as a label only (never used as a path)."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:200] or None


@router.post("/v1/galleries/{gallery}/people/{person}/photos", response_model=schemas.PhotoOut, status_code=201,
             dependencies=WRITE, openapi_extra=image_body("image"))
async def add_photo(request: Request, context: Context, galleries: GalleriesDep, gallery: str, person: str,
                    source: str | None = Query(None, max_length=200,
                                               description="a label kept with the photo, e.g. 'webcam'"),
                    keep_face: bool = Query(False, description="also keep a small JPEG crop of the face")):
    """Enrol a photo of `person` (created if new). The only route that keeps anything from an upload: the
    face's embedding and record, and with `keep_face` a crop of the face (never the photo).
    In a group photo, the one face that matches the person's stored photos is taken, else the main face."""
    check_person_name(person)
    uploads, _ = await read_images(request, ("image",), context.settings)
    (rgb,) = await context.decode(request.scope, uploads["image"])
    label = source or safe_label(uploads["image"].filename) or "upload"
    return await galleries.run(gallery, lambda g: capabilities.plain(g.add_photo(person, rgb, source=label,
                                                                                 keep_face=keep_face)),
                               create=gallery == DEFAULT)


@router.delete("/v1/galleries/{gallery}/photos/{photo_id}", response_model=schemas.Deleted, dependencies=WRITE)
async def delete_photo(galleries: GalleriesDep, gallery: str, photo_id: str):
    from ...gallery import photo_id_or_none

    key = photo_id_or_none(photo_id)
    if key is None:  # "1e3", "-1", 2**70: no such photo can exist
        raise NotFound(f"no photo with id {photo_id[:40]!r}")
    await galleries.run(gallery, lambda g: g.remove_photo(key))
    return {"deleted": photo_id}


@router.get("/v1/galleries/{gallery}/photos/{photo_id}/face", dependencies=READ, response_class=Response,
            responses={404: {"model": schemas.ErrorResponse},
                       200: {"content": {"image/jpeg": {}}, "description": "the kept face crop"}})
async def photo_face(galleries: GalleriesDep, gallery: str, photo_id: int):
    """The face crop kept with a photo (added with `keep_face`), e.g. to show a look-alike's photo."""
    jpeg = await galleries.run(gallery, lambda g: g.face_image(photo_id))
    if not jpeg:
        raise NotFound(f"photo {photo_id}: no face image kept (no such photo, or it was added without keep_face)")
    return Response(content=jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
