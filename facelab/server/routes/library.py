"""REST routes of photo libraries: /v1/galleries/{gallery}/library/... (a library is a gallery).

Reading needs what every other read needs; every change (name, merge, split, move, "not this person", forget,
regroup) needs the write key. Scanning is not offered here: a request never names a server path
(`facelab library scan` does it). A person or group is written as in the CLI: a name, or "group:N".
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .. import capabilities
from ..auth import require_read_key, require_write_key
from ..errors import ApiError

router = APIRouter(prefix="/v1/galleries/{gallery}/library", tags=["library"])
read = [Depends(require_read_key)]
write = [Depends(require_read_key), Depends(require_write_key)]


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


async def _run(request: Request, gallery: str, job):
    capabilities.api("galleries")
    return await request.app.state.galleries.run(gallery, lambda g: capabilities.plain(job(_library(g))))


@router.get("/people", dependencies=read)
async def people(request: Request, gallery: str, min_faces: int = Query(1, ge=1)):
    """Named people and unnamed groups with face and photo counts and a cover face id; unsorted count."""
    return await _run(request, gallery, lambda lib: lib.people(min_faces=min_faces))


@router.get("/stats", dependencies=read)
async def stats(request: Request, gallery: str):
    return await _run(request, gallery, lambda lib: lib.stats())


@router.get("/faces", dependencies=read)
async def faces(request: Request, gallery: str, who: str = Query(..., max_length=200),
                limit: int | None = Query(None, ge=1, le=10_000)):
    """The faces of a person, a group (group:N) or `unsorted`."""
    return await _run(request, gallery, lambda lib: {"who": who, "faces": lib.faces_of(who, limit=limit)})


@router.get("/faces/{face_id}/thumb", dependencies=read, response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the face's thumbnail"}})
async def thumb(request: Request, gallery: str, face_id: int):
    capabilities.api("galleries")
    jpeg = await request.app.state.galleries.run(gallery, lambda g: _library(g).thumbnail(face_id))
    return Response(content=jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/photos", dependencies=read)
async def photos(request: Request, gallery: str, with_: Annotated[list[str], Query(alias="with")],
                 without: Annotated[list[str], Query()] = []):  # noqa: B006 (FastAPI copies defaults)
    """Photos in which every `with` person appears and no `without` person does (paths on the server)."""
    return await _run(request, gallery, lambda lib: {"photos": lib.photos_with(with_, without)})


@router.post("/cluster", dependencies=write)
async def cluster(request: Request, gallery: str, body: ClusterBody):
    return await _run(request, gallery, lambda lib: lib.group(full=body.full))


@router.post("/name", dependencies=write)
async def name(request: Request, gallery: str, body: NameBody):
    return await _run(request, gallery, lambda lib: lib.name(body.who, body.name))


@router.post("/merge", dependencies=write)
async def merge(request: Request, gallery: str, body: MergeBody):
    return await _run(request, gallery, lambda lib: lib.merge(body.source, body.into))


@router.post("/split", dependencies=write)
async def split(request: Request, gallery: str, body: SplitBody):
    return await _run(request, gallery, lambda lib: lib.split(body.who, body.faces))


@router.post("/move", dependencies=write)
async def move(request: Request, gallery: str, body: MoveBody):
    return await _run(request, gallery, lambda lib: lib.move(body.face, body.to))


@router.post("/reject", dependencies=write)
async def reject(request: Request, gallery: str, body: FaceBody):
    """"Not this person": the face leaves its person or group for unsorted, and is never put back there."""
    return await _run(request, gallery, lambda lib: lib.reject(body.face))


@router.delete("/people/{who}", dependencies=write)
async def forget(request: Request, gallery: str, who: str):
    """Delete a person or group with every face, thumbnail and embedding."""
    if not who.strip():
        raise ApiError(422, "invalid_request", "name a person or group:N")
    return await _run(request, gallery, lambda lib: lib.forget(who))
