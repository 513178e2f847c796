"""Typed request and response bodies. Field names follow the CLI's --json output (Face.to_dict and friends).

Records made by other areas (identify, lookalike, gallery people and photos) allow extra fields, so a field
they add later reaches clients without a server change.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["bad_image"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Box(BaseModel):
    x: float
    y: float
    width: float
    height: float


class Pose(BaseModel):
    yaw: float
    pitch: float
    roll: float


class Quality(BaseModel):
    size: float
    eye_distance: float
    sharpness: float


class FaceOut(Open):
    index: int
    box: Box
    score: float
    landmarks: dict[str, list[float]]
    pose: Pose | None = None
    quality: Quality | None = None
    attributes: dict[str, Any] | None = None
    embedding_model: str | None = None
    embedding: list[float] | None = None


class DetectResponse(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


class EmbedResponse(BaseModel):
    model: str | None
    dim: int | None
    width: int
    height: int
    faces: list[FaceOut]


class VerifyResponse(Open):
    same: bool
    similarity: float
    model: str
    threshold: float
    far: float | None = Field(None, description="The false-accept rate the threshold was chosen for (None: a "
                                                   "threshold the caller gave)")
    source: str
    operating_point: str = Field("", description="What the threshold stands for, e.g. 'FAR 1e-4 on LFW all pairs'")
    verdict: str = ""
    uncertain: list[str] = Field([], description="Why a face is too small, blurred or turned for a reliable answer")
    faces: list[dict[str, Any]]


class Match(Open):
    person: str | None = None
    similarity: float | None = None
    photo_id: Any = None


class IdentifiedFace(Open):
    face: FaceOut
    best: Match | None = None
    matches: list[Match] = []
    threshold: float | None = None


class IdentifyResponse(BaseModel):
    gallery: str
    width: int
    height: int
    faces: list[IdentifiedFace]


class LookalikeFace(Open):
    face: FaceOut
    person: str | None = None
    similarity: float | None = None
    photo: dict[str, Any] | None = None


class LookalikeResponse(BaseModel):
    gallery: str
    width: int
    height: int
    faces: list[LookalikeFace]


class EmoticonResponse(BaseModel):
    width: int
    height: int
    emoticons: list[str] = Field(description="One SVG document per face, left to right")


class Identity(Open):
    best: Match | None = None
    matches: list[Match] = []
    threshold: float | None = None


class RecognizedFace(FaceOut):
    identity: Identity | None = Field(None, description="identify's record for this face (best match or None "
                                                           "= unknown), when a gallery was searched")


class RecognizeResponse(BaseModel):
    width: int
    height: int
    gallery: str | None = None
    faces: list[RecognizedFace]
    used: dict[str, bool] = Field(description="Which steps ran (attributes, identify)")
    identify_error: ErrorDetail | None = Field(None, description="Why the gallery search failed, if it did")
    attributes_error: ErrorDetail | None = Field(None, description="Why attributes are missing, if they are")
    ms: float = Field(description="Server processing time, milliseconds")


class Health(BaseModel):
    status: str
    version: str
    features: dict[str, bool]
    attributes: list[str]
    auth: dict[str, str]
    limits: dict[str, int]


class GalleryCreate(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", examples=["family"])


class GalleryOut(Open):
    name: str
    stats: dict[str, Any] | None = None


class GalleryList(BaseModel):
    galleries: list[GalleryOut]


class PersonOut(Open):
    name: str


class PeopleList(BaseModel):
    gallery: str
    people: list[PersonOut]


class GalleryCheckOut(Open):
    gallery: str
    suspect_photos: list[dict[str, Any]] = Field(description="Photos unlike their person's other photos")
    similar_people: list[dict[str, Any]] = Field(description="Pairs of people who may be one person")


class CalibrationOut(Open):
    gallery: str
    threshold: float
    fpir: float
    fpir_measured: float
    scoring: str
    people: int
    probes: int
    source: str


class PersonRename(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class PersonMerge(BaseModel):
    into: str = Field(min_length=1, max_length=200)


class PhotoOut(Open):
    pass


class Deleted(BaseModel):
    deleted: str
