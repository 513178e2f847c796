"""Errors facelab raises, each with a one-line message and the CLI exit code it maps to.

Exit codes are stable and documented in the README:
0 ok, 1 a negative answer (different person, nobody known), 2 usage error,
3 unreadable image, 4 no usable face, 5 model missing or corrupt, 6 gallery/store error,
7 a batch where some inputs failed (the rest were processed).
"""
from __future__ import annotations


class FacelabError(Exception):
    """Base class: `str(err)` is the one-line message shown to users."""

    exit_code = 2
    code = "error"  # stable machine-readable code (used by --json and the REST API)


class ImageError(FacelabError):
    exit_code = 3
    code = "bad_image"


class NoFaceError(FacelabError):
    exit_code = 4
    code = "no_face"


class ModelError(FacelabError):
    exit_code = 5
    code = "model_unavailable"


class StoreError(FacelabError):
    exit_code = 6
    code = "store_error"


class NotFound(StoreError):
    """A person, photo, face, group or gallery that does not exist (HTTP 404; CLI exit code 6 like any store error)."""

    code = "not_found"


class Conflict(StoreError):
    """The change contradicts what is stored (a name already taken, a group that changed meanwhile): HTTP 409."""

    code = "conflict"


EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 7
