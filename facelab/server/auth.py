"""API keys: random tokens shown once, stored only as SHA-256 hashes in <data>/api_keys.json.

A key is 32 random bytes (256 bits), so a plain SHA-256 is enough: there is nothing to brute-force that a
slow password hash would protect. Clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Request

from .errors import ApiError

KEY_PREFIX = "flk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(keys_file: Path, name: str = "default") -> str:
    """Make a new key, store its hash, return the key itself (the only time it exists in clear)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    records = _read(keys_file)
    records.append({"id": secrets.token_hex(4), "name": name, "sha256": _hash(key),
                    "created": datetime.now(UTC).isoformat(timespec="seconds")})
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = keys_file.with_suffix(".tmp")
    # 0600: the hashes are not secrets, but there is no reason for other users to read or edit the list.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(records, fh, indent=2)
    os.replace(tmp, keys_file)
    return key


def list_keys(keys_file: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "sha256"} for r in _read(keys_file)]


def _read(keys_file: Path) -> list[dict]:
    try:
        return json.loads(keys_file.read_text())
    except FileNotFoundError:
        return []


class KeyStore:
    """Checks presented keys against the hash file, re-reading it when it changes (keys made while serving)."""

    def __init__(self, keys_file: Path):
        self.keys_file = keys_file
        self._hashes: list[str] = []
        self._stamp: tuple | None = None
        self._lock = threading.Lock()

    def _current(self) -> list[str]:
        try:
            st = self.keys_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._hashes = [r["sha256"] for r in _read(self.keys_file)] if stamp else []
                self._stamp = stamp
            return self._hashes

    def has_keys(self) -> bool:
        return bool(self._current())

    def valid(self, key: str | None) -> bool:
        if not key:
            return False
        digest = _hash(key)
        # compare_digest against every stored hash: no early exit that would time which one matched.
        return any([hmac.compare_digest(digest, h) for h in self._current()])


def presented_key(request_headers) -> str | None:
    auth = request_headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request_headers.get("x-api-key") or None


def check_key(store: KeyStore, key: str | None) -> None:
    if not key:
        raise ApiError(401, "auth_required", "an API key is required (Authorization: Bearer <key>); "
                                             "create one with `facelab serve --create-key`")
    if not store.valid(key):
        raise ApiError(403, "invalid_key", "the API key is not valid")


def require_write_key(request: Request) -> None:
    """Dependency for anything that changes a gallery."""
    check_key(request.app.state.keys, presented_key(request.headers))


def require_read_key(request: Request) -> None:
    """Dependency for every other /v1 route: a key only when the server was started with --require-key."""
    if request.app.state.settings.require_key_for_all:
        check_key(request.app.state.keys, presented_key(request.headers))
