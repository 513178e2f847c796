"""One photo in, its faces out: detect, embed, analyze (attributes), emoticon, and recognize (all the page shows)."""
from __future__ import annotations

from fastapi import APIRouter, Query

import facelab

from .. import capabilities, schemas
from ..deps import MODEL_HELP, READ, Context, Images, embedding_model
from ..galleries import DEFAULT
from ..recognize import recognize
from .openapi import ERRORS, image_body

router = APIRouter(tags=["faces"], dependencies=READ, responses=ERRORS)


@router.post("/v1/detect", response_model=schemas.DetectResponse, openapi_extra=image_body("image"))
async def detect(context: Context, images: Images, min_size: float | None = Query(None, ge=0),
                 min_score: float | None = Query(None, ge=0, le=1)):
    """Every face: box, score, 5 landmarks, head pose, quality (left to right)."""
    (rgb,) = await images("image")
    faces = await context.infer(facelab.detect, rgb, min_size=min_size, min_score=min_score)
    return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [f.to_dict() for f in faces]}


@router.post("/v1/embed", response_model=schemas.EmbedResponse, openapi_extra=image_body("image"))
async def embed(context: Context, images: Images,
                model: str = Query("sface", min_length=1, max_length=100, description=MODEL_HELP),
                flip: bool = Query(False, description="average each face with its mirror image (`--flip`)")):
    """Every face with its embedding (unit vector; compare by dot product) and the model that made it."""
    name, flip = embedding_model(model, flip)
    (rgb,) = await images("image")
    faces = await context.infer(facelab.embed, rgb, model=name, flip=flip)
    dim = len(faces[0].embedding) if faces else None
    return {"model": faces[0].embedding_model if faces else name + ("+flip" if flip else ""), "dim": dim,
            "width": rgb.shape[1], "height": rgb.shape[0], "faces": [f.to_dict(with_embedding=True) for f in faces]}


@router.post("/v1/analyze", response_model=schemas.DetectResponse, openapi_extra=image_body("image"))
async def analyze(context: Context, images: Images, attributes: str | None = Query(
        None, pattern=r"^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$", max_length=200,
        description="comma-separated subset, e.g. age,gender or a registered user classifier's name "
                    "(default: all; see /v1/health)")):
    """Every face with its attributes (age, gender, expression, eyewear, mask, skin tone, emoticon, and the
    classifiers registered with `facelab models add`, each under its model name)."""
    analyze_fn = capabilities.api("analyze")
    (rgb,) = await images("image")
    faces = await context.infer(analyze_fn, rgb, attributes.split(",") if attributes else None)
    return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [capabilities.plain(f.to_dict()) for f in faces]}


@router.post("/v1/emoticon", response_model=schemas.EmoticonResponse, openapi_extra=image_body("image"))
async def emoticon(context: Context, images: Images):
    """One SVG emoticon per face, left to right."""
    emoticon_fn = capabilities.api("emoticon")
    (rgb,) = await images("image")
    svgs = await context.infer(emoticon_fn, rgb)
    return {"width": rgb.shape[1], "height": rgb.shape[0], "emoticons": [str(s) for s in svgs]}


@router.post("/v1/recognize", response_model=schemas.RecognizeResponse, openapi_extra=image_body("image"))
async def recognize_photo(context: Context, images: Images, gallery: str | None = Query(DEFAULT),
                          attributes: bool = True, identify: bool = True, top_k: int = Query(3, ge=1, le=20)):
    """Everything the page shows for a photo in one call: faces, attributes and identities, each when this
    build offers it (`used` says which ran)."""
    (rgb,) = await images("image")
    if gallery:
        context.galleries.check_name(gallery)
    return await recognize(rgb, infer=context.infer, galleries=context.galleries, gallery=gallery,
                           attributes=attributes, identify=identify, top_k=top_k)
