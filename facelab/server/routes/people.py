"""The people of a gallery: list, show, rename, merge, delete (enrolling a photo is in photos.py)."""
from __future__ import annotations

from fastapi import APIRouter

import facelab

from ...errors import NotFound
from .. import capabilities, schemas
from ..deps import READ, WRITE, GalleriesDep
from ..errors import ApiError
from ..galleries import DEFAULT
from .openapi import ERRORS

router = APIRouter(tags=["galleries"], responses=ERRORS)


def person_record(g, name: str):
    """The person record, or errors.NotFound (404) whether the gallery returns None or raises NotFound."""
    try:
        record = g.person(name)
    except NotFound:
        record = None
    if record is None:
        raise NotFound(f"no person named {name!r} in this gallery")
    return record


def check_person_name(name: str) -> None:
    """A name the gallery would refuse is a 422 before anything is opened or read."""
    from ...gallery.vectors import checked_person_name

    try:
        checked_person_name(name)
    except facelab.FacelabError as err:
        raise ApiError(422, "invalid_request", str(err)) from None


@router.get("/v1/galleries/{gallery}/people", response_model=schemas.PeopleList, dependencies=READ)
async def list_people(galleries: GalleriesDep, gallery: str):
    people = await galleries.run(gallery, lambda g: capabilities.plain(g.people()), create=gallery == DEFAULT)
    return {"gallery": gallery, "people": people}


@router.get("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.PersonOut, dependencies=READ)
async def get_person(galleries: GalleriesDep, gallery: str, person: str):
    return await galleries.run(gallery, lambda g: capabilities.plain(person_record(g, person)))


@router.patch("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.PersonOut, dependencies=WRITE)
async def rename_person(galleries: GalleriesDep, gallery: str, person: str, body: schemas.PersonRename):
    check_person_name(body.name)

    def job(g):
        person_record(g, person)
        g.rename_person(person, body.name)
        return capabilities.plain(person_record(g, body.name))

    return await galleries.run(gallery, job)


@router.post("/v1/galleries/{gallery}/people/{person}/merge", response_model=schemas.PersonOut, dependencies=WRITE)
async def merge_person(galleries: GalleriesDep, gallery: str, person: str, body: schemas.PersonMerge):
    """Move every photo of `person` to `into` and remove `person`."""

    def job(g):
        person_record(g, person)
        person_record(g, body.into)
        g.merge_people(person, body.into)
        return capabilities.plain(person_record(g, body.into))

    return await galleries.run(gallery, job)


@router.delete("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.Deleted, dependencies=WRITE)
async def delete_person(galleries: GalleriesDep, gallery: str, person: str):
    def job(g):
        person_record(g, person)
        g.delete_person(person)

    await galleries.run(gallery, job)
    return {"deleted": person}
