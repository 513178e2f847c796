"""POST /v1/verify: same person or not, as `facelab verify` answers it (same models, same answer fields)."""
from __future__ import annotations

from fastapi import APIRouter, Query

from .. import schemas
from ..deps import MODEL_HELP, READ, Context, Images, embedding_model
from .openapi import ERRORS, image_body

router = APIRouter(tags=["faces"], dependencies=READ, responses=ERRORS)

@router.post("/v1/verify", response_model=schemas.VerifyResponse, openapi_extra=image_body("image_a", "image_b"))
async def verify(context: Context, images: Images,
                 model: str = Query("sface", min_length=1, max_length=100, description=MODEL_HELP),
                 flip: bool = Query(False, description="average each face with its mirror image (`--flip`)"),
                 threshold: float | None = Query(None, ge=-1, le=1),
                 far: float | None = Query(None, gt=0, lt=1),
                 face_a: int | None = Query(None, ge=0), face_b: int | None = Query(None, ge=0)):
    """Same person or not: the main face of each photo (or face_a / face_b), similarity and threshold; the
    threshold's false-accept rate and source, and why a face makes the answer uncertain (`facelab verify`)."""
    from ...pipeline import shared_analysis

    name, flip = embedding_model(model, flip)
    rgb_a, rgb_b = await images("image_a", "image_b")
    result = await context.infer(shared_analysis(embedder=name, flip=flip).verify, rgb_a, rgb_b, threshold=threshold,
                                 far=far, face_a=face_a, face_b=face_b, names=("image_a", "image_b"))
    return result.to_dict()
