"""REST routes of photo libraries: /v1/galleries/{gallery}/library/... (a library is a gallery).

Reading needs what every other read needs; every change (name, merge, split, move, "not this person", forget,
regroup) needs the write key. Scanning is not offered here: a request never names a server path
(`facelab library scan` does it). A person or group is written as in the CLI: a name, or "group:N".
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .. import capabilities
from ..deps import READ, WRITE, GalleriesDep
from ..errors import ApiError
from ..galleries import Galleries

router = APIRouter(prefix="/v1/galleries/{gallery}/library", tags=["library"])


class NameBody(BaseModel):
    who: str = Field(..., min_length=1, max_length=200, description="group:N, or a person to rename")
    name: str = Field(..., min_length=1, max_length=200)


class MergeBody(BaseModel):
    source: str = Field(..., min_length=1, max_length=200)
    into: str = Field(..., min_length=1, max_length=200)


class SplitBody(BaseModel):
    who: str = Field(..., min_length=1, max_length=200)
    faces: list[int] = Field(..., min_length=1, max_length=10_000)


class MoveBody(BaseModel):
    face: int
    to: str = Field(..., min_length=1, max_length=200, description="a person (created if new), group:N or unsorted")


class FaceBody(BaseModel):
    face: int


class ClusterBody(BaseModel):
    full: bool = False


def _library(g):
    """The Library view of an open gallery, made once per gallery object (its tables are created then)."""
    from ...library import Library

    lib = getattr(g, "_library_view", None)
    if lib is None:
        lib = g._library_view = Library(g, owns_gallery=False)
    return lib


async def _run(galleries: Galleries, gallery: str, job):
    """job(library) on the gallery's own thread, its answer made JSON-ready."""
    return await galleries.run(gallery, lambda g: capabilities.plain(job(_library(g))))


@router.get("/people", dependencies=READ)
async def people(galleries: GalleriesDep, gallery: str, min_faces: int = Query(1, ge=1)):
    """Named people and unnamed groups with face and photo counts and a cover face id; unsorted count."""
    return await _run(galleries, gallery, lambda lib: lib.people(min_faces=min_faces))


@router.get("/stats", dependencies=READ)
async def stats(galleries: GalleriesDep, gallery: str):
    return await _run(galleries, gallery, lambda lib: lib.stats())


@router.get("/faces", dependencies=READ)
async def faces(galleries: GalleriesDep, gallery: str, who: str = Query(..., max_length=200),
                limit: int | None = Query(None, ge=1, le=10_000)):
    """The faces of a person, a group (group:N) or `unsorted`."""
    return await _run(galleries, gallery, lambda lib: {"who": who, "faces": lib.faces_of(who, limit=limit)})


@router.get("/faces/{face_id}/thumb", dependencies=READ, response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the face's thumbnail"}})
async def thumb(galleries: GalleriesDep, gallery: str, face_id: int):
    jpeg = await galleries.run(gallery, lambda g: _library(g).thumbnail(face_id))
    return Response(content=jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/photos", dependencies=READ)
async def photos(galleries: GalleriesDep, gallery: str, with_: Annotated[list[str], Query(alias="with")],
                 without: Annotated[list[str], Query()] = []):  # noqa: B006 (FastAPI copies defaults)
    """Photos in which every `with` person appears and no `without` person does (paths on the server)."""
    return await _run(galleries, gallery, lambda lib: {"photos": lib.photos_with(with_, without)})


@router.post("/cluster", dependencies=WRITE)
async def cluster(galleries: GalleriesDep, gallery: str, body: ClusterBody):
    return await _run(galleries, gallery, lambda lib: lib.group(full=body.full))


@router.post("/name", dependencies=WRITE)
async def name(galleries: GalleriesDep, gallery: str, body: NameBody):
    return await _run(galleries, gallery, lambda lib: lib.name(body.who, body.name))


@router.post("/merge", dependencies=WRITE)
async def merge(galleries: GalleriesDep, gallery: str, body: MergeBody):
    return await _run(galleries, gallery, lambda lib: lib.merge(body.source, body.into))


@router.post("/split", dependencies=WRITE)
async def split(galleries: GalleriesDep, gallery: str, body: SplitBody):
    return await _run(galleries, gallery, lambda lib: lib.split(body.who, body.faces))


@router.post("/move", dependencies=WRITE)
async def move(galleries: GalleriesDep, gallery: str, body: MoveBody):
    return await _run(galleries, gallery, lambda lib: lib.move(body.face, body.to))


@router.post("/reject", dependencies=WRITE)
async def reject(galleries: GalleriesDep, gallery: str, body: FaceBody):
    """"Not this person": the face leaves its person or group for unsorted, and is never put back there."""
    return await _run(galleries, gallery, lambda lib: lib.reject(body.face))


@router.delete("/people/{who}", dependencies=WRITE)
async def forget(galleries: GalleriesDep, gallery: str, who: str):
    """Delete a person or group with every face, thumbnail and embedding."""
    if not who.strip():
        raise ApiError(422, "invalid_request", "name a person or group:N")
    return await _run(galleries, gallery, lambda lib: lib.forget(who))
