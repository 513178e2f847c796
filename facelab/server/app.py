"""The FastAPI application: REST API under /v1, the web page at /, OpenAPI at /docs (served offline).

`create_app(settings)` builds a fresh app; models are loaded once per process (facelab's own caches) and
inference runs in worker threads, at most `settings.inference_threads` at a time, so the event loop stays free.
"""
from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

import facelab

from ..errors import NotFound
from . import capabilities, schemas
from .auth import KeyStore, require_read_key, require_write_key
from .errors import ApiError, install_error_handlers
from .galleries import DEFAULT, Galleries
from .recognize import recognize
from .settings import Settings
from .stream import stream_endpoint
from .uploads import BodyLimit, PixelBudget, decode_uploads, keep_uploads_in_memory, read_images, release_reserved

log = logging.getLogger("facelab.server")
STATIC = Path(__file__).parent / "static"
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (400, 401, 403, 413, 415, 422, 501, 503)}


def image_body(*names: str) -> dict:
    """OpenAPI text for routes that read images themselves (multipart or base64 JSON)."""
    files = {n: {"type": "string", "format": "binary"} for n in names}
    b64 = {n: {"type": "string", "description": "base64 or data: URL"} for n in names}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": list(names), "properties": files}},
        "application/json": {"schema": {"type": "object", "required": list(names), "properties": b64}}}}}


SETTINGS_ENV = "FACELAB_SERVE_SETTINGS"


def create_app_from_env() -> FastAPI:
    """The app for `uvicorn --factory facelab.server.app:create_app_from_env`: `facelab serve --workers N` hands
    its settings to each worker process as JSON in FACELAB_SERVE_SETTINGS (workers are new interpreters, so an app
    object cannot be passed; an import string and the environment can)."""
    import json
    import os

    raw = os.environ.get(SETTINGS_ENV)
    return create_app(Settings(**json.loads(raw)) if raw else Settings())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    galleries = Galleries(settings)
    limiter = anyio.CapacityLimiter(settings.inference_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.preload_models:
            from ..pipeline import shared_analysis

            analysis = shared_analysis(embedder=settings.model)
            await anyio.to_thread.run_sync(lambda: (analysis.detector, analysis.embedder))
        yield
        galleries.close()

    app = FastAPI(title="facelab", version=facelab.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Faces found, compared, named and described, offline. Images go in as multipart "
                              "uploads or base64 JSON; errors are `{\"error\": {\"code\", \"message\"}}`.")
    app.state.settings = settings
    app.state.keys = KeyStore(settings.keys_file)
    app.state.galleries = galleries
    keep_uploads_in_memory(settings.max_body_bytes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    if settings.allowed_hosts:  # outermost: a request for another host name is refused before anything else
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    install_error_handlers(app)
    budget = PixelBudget(settings.image_memory_bytes)
    decoders = anyio.CapacityLimiter(settings.decode_threads)

    async def infer(fn, *args, **kwargs):
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)

    async def decode(scope: dict, *uploads) -> list:
        return await decode_uploads(list(uploads), settings, budget, scope, decoders)

    app.state.infer = infer
    app.state.decode = decode
    app.state.pixel_budget = budget

    async def images(request: Request, *names: str) -> list:
        uploads, _ = await read_images(request, names, settings)
        return await decode(request.scope, *(uploads[n] for n in names))

    read = [Depends(require_read_key)]
    write = [Depends(require_read_key), Depends(require_write_key)]

    # ---- page and docs --------------------------------------------------------------------------------------
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    _mount_docs(app)

    @app.middleware("http")
    async def give_back_image_memory(request: Request, call_next):
        try:
            return await call_next(request)
        finally:
            await release_reserved(request.scope, budget)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path == "/" or request.url.path.startswith("/static"):
            response.headers.setdefault("Content-Security-Policy",
                                        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                        "connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'")
        return response

    # ---- service --------------------------------------------------------------------------------------------
    @app.get("/v1/health", response_model=schemas.Health, tags=["service"])
    def health():
        """What this server offers: features present in this build, auth rules, limits."""
        return {"status": "ok", "version": facelab.__version__, "features": capabilities.available(),
                "attributes": capabilities.attribute_names(),
                "auth": {"gallery_changes": "api_key", "everything_else": "api_key" if settings.require_key_for_all
                         else "open"},
                "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels}}

    # ---- faces ----------------------------------------------------------------------------------------------
    @app.post("/v1/detect", response_model=schemas.DetectResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["faces"])
    async def detect(request: Request, min_size: float | None = Query(None, ge=0),
                     min_score: float | None = Query(None, ge=0, le=1)):
        """Every face: box, score, 5 landmarks, head pose, quality (left to right)."""
        (rgb,) = await images(request, "image")
        faces = await infer(facelab.detect, rgb, min_size=min_size, min_score=min_score)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [f.to_dict() for f in faces]}

    @app.post("/v1/embed", response_model=schemas.EmbedResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["faces"])
    async def embed(request: Request, model: str = Query("sface", pattern="^(sface|dlib_resnet|fused)$")):
        """Every face with its embedding (unit vector; compare by dot product) and the model that made it."""
        (rgb,) = await images(request, "image")
        faces = await infer(facelab.embed, rgb, model=model)
        dim = len(faces[0].embedding) if faces else None
        return {"model": faces[0].embedding_model if faces else model, "dim": dim, "width": rgb.shape[1],
                "height": rgb.shape[0], "faces": [f.to_dict(with_embedding=True) for f in faces]}

    @app.post("/v1/verify", response_model=schemas.VerifyResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image_a", "image_b"), tags=["faces"])
    async def verify(request: Request, model: str = Query("sface", pattern="^(sface|dlib_resnet|fused)$"),
                     threshold: float | None = Query(None, ge=-1, le=1),
                     far: float | None = Query(None, gt=0, lt=1),
                     face_a: int | None = Query(None, ge=0), face_b: int | None = Query(None, ge=0)):
        """Same person or not: the main face of each photo (or face_a / face_b), similarity and threshold."""
        from ..pipeline import shared_analysis

        rgb_a, rgb_b = await images(request, "image_a", "image_b")
        result = await infer(shared_analysis(embedder=model).verify, rgb_a, rgb_b, threshold=threshold, far=far,
                             face_a=face_a, face_b=face_b, names=("image_a", "image_b"))
        return result.to_dict()

    @app.post("/v1/analyze", response_model=schemas.DetectResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["faces"])
    async def analyze(request: Request, attributes: str | None = Query(
            None, pattern=r"^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$", max_length=200,
            description="comma-separated subset, e.g. age,gender or a registered user classifier's name "
                        "(default: all; see /v1/health)")):
        """Every face with its attributes (age, gender, expression, eyewear, mask, skin tone, emoticon, and the
        classifiers registered with `facelab models add`, each under its model name)."""
        analyze_fn = capabilities.api("analyze")
        (rgb,) = await images(request, "image")
        faces = await infer(analyze_fn, rgb, attributes.split(",") if attributes else None)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "faces": [capabilities.plain(f.to_dict()) for f in faces]}

    @app.post("/v1/emoticon", response_model=schemas.EmoticonResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["faces"])
    async def emoticon(request: Request):
        """One SVG emoticon per face, left to right."""
        emoticon_fn = capabilities.api("emoticon")
        (rgb,) = await images(request, "image")
        svgs = await infer(emoticon_fn, rgb)
        return {"width": rgb.shape[1], "height": rgb.shape[0], "emoticons": [str(s) for s in svgs]}

    @app.post("/v1/identify", response_model=schemas.IdentifyResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["galleries"])
    async def identify(request: Request, gallery: str = Query(DEFAULT), top_k: int = Query(5, ge=1, le=100),
                       threshold: float | None = Query(None, ge=-1, le=1),
                       far: float | None = Query(None, gt=0, lt=1)):
        """Who each face is in the gallery (best match or unknown, and the top_k nearest)."""
        identify_fn = capabilities.api("identify")
        capabilities.api("galleries")
        (rgb,) = await images(request, "image")
        found = await galleries.run(gallery, lambda g: capabilities.plain(
            identify_fn(rgb, gallery=g, top_k=top_k, threshold=threshold, far=far)))
        return {"gallery": gallery, "width": rgb.shape[1], "height": rgb.shape[0], "faces": found}

    @app.post("/v1/lookalike", response_model=schemas.LookalikeResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["galleries"])
    async def lookalike(request: Request, gallery: str = Query(DEFAULT)):
        """The nearest person and photo in the gallery for each face, however far."""
        lookalike_fn = capabilities.api("lookalike")
        capabilities.api("galleries")
        (rgb,) = await images(request, "image")
        found = await galleries.run(gallery, lambda g: capabilities.plain(lookalike_fn(rgb, gallery=g)))
        return {"gallery": gallery, "width": rgb.shape[1], "height": rgb.shape[0], "faces": found}

    @app.post("/v1/recognize", response_model=schemas.RecognizeResponse, dependencies=read, responses=ERRORS,
              openapi_extra=image_body("image"), tags=["faces"])
    async def recognize_photo(request: Request, gallery: str | None = Query(DEFAULT),
                              attributes: bool = True, identify: bool = True, top_k: int = Query(3, ge=1, le=20)):
        """Everything the page shows for a photo in one call: faces, attributes and identities, each when this
        build offers it (`used` says which ran)."""
        (rgb,) = await images(request, "image")
        if gallery:
            galleries.check_name(gallery)
        return await recognize(rgb, infer=infer, galleries=galleries, gallery=gallery, attributes=attributes,
                               identify=identify, top_k=top_k)

    # ---- galleries ------------------------------------------------------------------------------------------
    @app.get("/v1/galleries", response_model=schemas.GalleryList, dependencies=read, responses=ERRORS,
             tags=["galleries"])
    async def list_galleries():
        capabilities.api("galleries")
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

    @app.post("/v1/galleries", response_model=schemas.GalleryOut, status_code=201, dependencies=write,
              responses=ERRORS, tags=["galleries"])
    async def create_gallery(body: schemas.GalleryCreate):
        capabilities.api("galleries")
        if galleries.exists(body.name):
            raise ApiError(409, "conflict", f"gallery {body.name!r} already exists")
        stats = await galleries.run(body.name, lambda g: capabilities.plain(g.stats()), create=True)
        return {"name": body.name, "stats": stats}

    @app.get("/v1/galleries/{gallery}", response_model=schemas.GalleryOut, dependencies=read, responses=ERRORS,
             tags=["galleries"])
    async def get_gallery(gallery: str):
        capabilities.api("galleries")
        stats = await galleries.run(gallery, lambda g: capabilities.plain(g.stats()), create=gallery == DEFAULT)
        return {"name": gallery, "stats": stats}

    @app.delete("/v1/galleries/{gallery}", response_model=schemas.Deleted, dependencies=write, responses=ERRORS,
                tags=["galleries"])
    async def delete_gallery(gallery: str):
        capabilities.api("galleries")
        await galleries.delete(gallery)
        return {"deleted": gallery}

    @app.get("/v1/galleries/{gallery}/people", response_model=schemas.PeopleList, dependencies=read,
             responses=ERRORS, tags=["galleries"])
    async def list_people(gallery: str):
        capabilities.api("galleries")
        people = await galleries.run(gallery, lambda g: capabilities.plain(g.people()), create=gallery == DEFAULT)
        return {"gallery": gallery, "people": people}

    @app.get("/v1/galleries/{gallery}/check", response_model=schemas.GalleryCheckOut, dependencies=read,
             responses=ERRORS, tags=["galleries"])
    async def check_gallery(gallery: str, far: float = Query(0.001, gt=0, le=0.1)):
        """Labelling mistakes worth a look (`facelab gallery check`): photos unlike their person's other photos
        and people who may be one person under two names. Changes nothing."""
        capabilities.api("galleries")
        report = await galleries.run(gallery, lambda g: g.check(far=far).to_dict())
        return {"gallery": gallery, **report}

    @app.post("/v1/galleries/{gallery}/calibrate", response_model=schemas.CalibrationOut, dependencies=write,
              responses=ERRORS, tags=["galleries"])
    async def calibrate_gallery(gallery: str, fpir: float = Query(0.01, gt=0, lt=1),
                                scoring: str = Query("mean", pattern="^(max|mean|both)$")):
        """Measure the "unknown" threshold on this gallery (`facelab gallery calibrate`): each person plays a
        stranger in turn; the threshold names at most `fpir` of them. Stored in the gallery; identify uses it."""
        capabilities.api("galleries")
        result = await galleries.run(gallery, lambda g: g.calibrate(fpir=fpir, scoring=scoring).to_dict())
        return {"gallery": gallery, **result}

    @app.get("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.PersonOut, dependencies=read,
             responses=ERRORS, tags=["galleries"])
    async def get_person(gallery: str, person: str):
        capabilities.api("galleries")
        return await galleries.run(gallery, lambda g: capabilities.plain(_person(g, person)))

    @app.post("/v1/galleries/{gallery}/people/{person}/photos", response_model=schemas.PhotoOut,
              status_code=201, dependencies=write, responses=ERRORS, openapi_extra=image_body("image"),
              tags=["galleries"])
    async def add_photo(request: Request, gallery: str, person: str,
                        source: str | None = Query(None, max_length=200,
                                                      description="a label kept with the photo, e.g. 'webcam'"),
                        keep_face: bool = Query(False, description="also keep a small JPEG crop of the face")):
        """Enrol a photo of `person` (created if new). The only route that keeps anything from an upload: the
        face's embedding and record, and with `keep_face` a crop of the face (never the photo).
        In a group photo, the one face that matches the person's stored photos is taken, else the main face."""
        capabilities.api("galleries")
        _check_person_name(person)
        uploads, _ = await read_images(request, ("image",), settings)
        (rgb,) = await decode(request.scope, uploads["image"])
        label = source or _safe_label(uploads["image"].filename) or "upload"
        record = await galleries.run(gallery, lambda g: capabilities.plain(g.add_photo(person, rgb, source=label,
                                                                                  keep_face=keep_face)),
                                     create=gallery == DEFAULT)
        return record

    @app.patch("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.PersonOut, dependencies=write,
               responses=ERRORS, tags=["galleries"])
    async def rename_person(gallery: str, person: str, body: schemas.PersonRename):
        capabilities.api("galleries")
        _check_person_name(body.name)

        def job(g):
            _person(g, person)
            g.rename_person(person, body.name)
            return capabilities.plain(_person(g, body.name))

        return await galleries.run(gallery, job)

    @app.post("/v1/galleries/{gallery}/people/{person}/merge", response_model=schemas.PersonOut,
              dependencies=write, responses=ERRORS, tags=["galleries"])
    async def merge_person(gallery: str, person: str, body: schemas.PersonMerge):
        """Move every photo of `person` to `into` and remove `person`."""
        capabilities.api("galleries")

        def job(g):
            _person(g, person)
            _person(g, body.into)
            g.merge_people(person, body.into)
            return capabilities.plain(_person(g, body.into))

        return await galleries.run(gallery, job)

    @app.delete("/v1/galleries/{gallery}/people/{person:path}", response_model=schemas.Deleted, dependencies=write,
                responses=ERRORS, tags=["galleries"])
    async def delete_person(gallery: str, person: str):
        capabilities.api("galleries")

        def job(g):
            _person(g, person)
            g.delete_person(person)

        await galleries.run(gallery, job)
        return {"deleted": person}

    @app.delete("/v1/galleries/{gallery}/photos/{photo_id}", response_model=schemas.Deleted, dependencies=write,
                responses=ERRORS, tags=["galleries"])
    async def delete_photo(gallery: str, photo_id: str):
        capabilities.api("galleries")
        from ..gallery import photo_id_or_none

        key = photo_id_or_none(photo_id)
        if key is None:  # "1e3", "-1", 2**70: no such photo can exist
            raise ApiError(404, "not_found", f"no photo with id {photo_id[:40]!r}")
        await galleries.run(gallery, lambda g: g.remove_photo(key))
        return {"deleted": photo_id}

    @app.get("/v1/galleries/{gallery}/photos/{photo_id}/face", dependencies=read, tags=["galleries"],
             responses={**ERRORS, 404: {"model": schemas.ErrorResponse},
                        200: {"content": {"image/jpeg": {}}, "description": "the kept face crop"}},
             response_class=Response)
    async def photo_face(gallery: str, photo_id: int):
        """The face crop kept with a photo (added with `keep_face`), e.g. to show a look-alike's photo."""
        capabilities.api("galleries")
        jpeg = await galleries.run(gallery, lambda g: g.face_image(photo_id))
        if not jpeg:
            raise ApiError(404, "not_found", f"photo {photo_id}: no face image kept (no such photo, or it was added "
                                             f"without keep_face)")
        return Response(content=jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # ---- photo libraries (facelab/server/library.py) -----------------------------------------------------------
    from .library import router as library_router

    app.include_router(library_router, responses=ERRORS)

    # ---- webcam ---------------------------------------------------------------------------------------------
    app.add_api_websocket_route("/v1/stream", stream_endpoint)
    return app


def _person(g, name: str):
    """The person record, or 404 (errors.NotFound) whether the gallery returns None or raises NotFound."""
    try:
        record = g.person(name)
    except NotFound:
        record = None
    if record is None:
        raise ApiError(404, "not_found", f"no person named {name!r} in this gallery")
    return record


def _check_person_name(name: str) -> None:
    from ..gallery.vectors import checked_person_name

    try:
        checked_person_name(name)
    except facelab.FacelabError as err:
        raise ApiError(422, "invalid_request", str(err)) from None


def _safe_label(filename: str | None) -> str | None:
    """The upload's base name, as a label only (never used as a path)."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:200] or None


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the fastapi-offline wheel's copy of its files, so /docs works with no internet."""
    try:
        assets = Path(str(resources.files("fastapi_offline") / "static"))
        assert (assets / "swagger-ui-bundle.js").is_file()
    except Exception:  # package absent: FastAPI's default page (loads Swagger UI from a CDN)
        assets = None
    if assets is not None:
        app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs():
        if assets is None:
            return get_swagger_ui_html(openapi_url=app.openapi_url, title="facelab API")
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="facelab API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")
