"""facelab's web service: REST API under /v1 and the demo page. Start it with `facelab serve`."""
from .app import create_app
from .settings import Settings

__all__ = ["create_app", "Settings"]
