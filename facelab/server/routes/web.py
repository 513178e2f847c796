"""The web page (/ and /static) and the API docs (/docs, Swagger UI served offline). None is in the schema."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index():
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@lru_cache(maxsize=1)
def swagger_assets() -> Path | None:
    """Swagger UI's files from the fastapi-offline wheel, so /docs works with no internet; None when absent."""
    try:
        assets = Path(str(resources.files("fastapi_offline") / "static"))
        return assets if (assets / "swagger-ui-bundle.js").is_file() else None
    except Exception:  # package absent: FastAPI's default page (loads Swagger UI from a CDN)
        return None


@router.get("/docs")
def docs():
    if swagger_assets() is None:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="facelab API")
    return get_swagger_ui_html(openapi_url="/openapi.json", title="facelab API",
                               swagger_js_url="/docs-static/swagger-ui-bundle.js",
                               swagger_css_url="/docs-static/swagger-ui.css",
                               swagger_favicon_url="/docs-static/favicon.png")


def mount_files(app: FastAPI) -> None:
    """The page's static files and Swagger UI's (a router cannot carry mounts: they go on the app)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = swagger_assets()
    if assets is not None:
        app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")
