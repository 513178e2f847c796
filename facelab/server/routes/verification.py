"""POST /v1/verify: same person or not, as `facelab verify` answers it (same models, same answer fields)."""
from __future__ import annotations

from fastapi import APIRouter, Query

from .. import schemas
from ..deps import READ, Context, Images
from ..errors import ApiError
from .openapi import ERRORS, image_body

router = APIRouter(tags=["faces"], dependencies=READ, responses=ERRORS)

MODEL_HELP = ("an embedding model `facelab verify --model` accepts: sface, dlib_resnet, fused, or a user model "
              "registered with `facelab models add`; `NAME+flip` is NAME with flip=true")


def embedding_model(model: str, flip: bool) -> tuple[str, bool]:
    """(embedder name, flip) for a requested model, or 422 naming the known ones. Read at each request, as the CLI
    reads them at each run: a model added with `facelab models add` is served without a restart."""
    from ...embedders import EMBEDDERS, registered_embedder_names

    name, plus, variant = model.partition("+")
    known = [*EMBEDDERS, *registered_embedder_names()]
    if name not in known or (plus and variant != "flip"):
        raise ApiError(422, "invalid_request", f"model: {model!r} is not an embedding model; known: "
                                               f"{', '.join(known)} (each also as NAME+flip)")
    return name, flip or bool(plus)


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
