"""Galleries the server may open, by name only: "default" is the one given to `facelab serve --gallery`,
others are SQLite files <data>/galleries/<name>.db created through the API. A request never names a path.

Each open gallery lives on its own single worker thread: SQLite connections belong to the thread that opened
them, and one writer at a time keeps enrolment and search consistent.
"""
from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import Conflict, FacelabError, NotFound
from .capabilities import api
from .errors import ApiError
from .settings import Settings

DEFAULT = "default"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def hide_location(value: Any, location: str, name: str) -> Any:
    """Replace the gallery's path or URL (e.g. in stats) by its name, anywhere in a JSON-ready result."""
    if isinstance(value, str):
        for form in _forms(location):
            value = value.replace(form, name)
        return value
    if isinstance(value, dict):
        return {k: hide_location(v, location, name) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_location(v, location, name) for v in value]
    return value


def _forms(location: str) -> list[str]:
    if "://" in location:
        return [location]
    return sorted({location, str(Path(location).resolve()), str(Path(location).absolute())}, key=len, reverse=True)


class _Slot:
    def __init__(self, name: str):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gallery-{name}")
        self.gallery = None


class Galleries:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def check_name(self, name: str) -> str:
        if not NAME.match(name or ""):
            raise ApiError(422, "invalid_request", "gallery names are 1-64 letters, digits, '-' or '_'")
        return name

    def location(self, name: str) -> str:
        self.check_name(name)
        if name == DEFAULT:
            return str(self.settings.gallery)
        return str(self.settings.galleries_dir / f"{name}.db")

    def exists(self, name: str) -> bool:
        self.check_name(name)
        if name == DEFAULT or name in self._slots:
            return True
        return Path(self.location(name)).is_file()

    def names(self) -> list[str]:
        found = {DEFAULT} | set(self._slots)  # open ones too: a store may not have written its file yet
        if self.settings.galleries_dir.is_dir():
            found |= {p.stem for p in self.settings.galleries_dir.glob("*.db") if NAME.match(p.stem)}
        return sorted(found, key=lambda n: (n != DEFAULT, n))

    async def run(self, name: str, job: Callable[[Any], Any], create: bool = False) -> Any:
        """Run job(gallery) on the gallery's own thread, opening it there first if needed."""
        open_gallery = api("galleries")
        if not create and not self.exists(name):
            raise NotFound(f"no gallery named {name!r}")
        location = self.location(name)
        with self._lock:
            slot = self._slots.get(name) or self._slots.setdefault(name, _Slot(name))

        def in_thread():
            try:
                if slot.gallery is None:
                    if name != DEFAULT:
                        self.settings.galleries_dir.mkdir(parents=True, exist_ok=True)
                    elif "://" not in location:
                        Path(location).parent.mkdir(parents=True, exist_ok=True)
                    slot.gallery = open_gallery(location, model=self.settings.model)
                return hide_location(job(slot.gallery), location, name)
            except FacelabError as err:
                # Clients know galleries by name; where the file or database lives stays on the server.
                err.args = (hide_location(str(err), location, f"gallery {name!r}"),)
                raise

        return await asyncio.wrap_future(slot.executor.submit(in_thread))

    async def delete(self, name: str) -> None:
        if name == DEFAULT:
            raise Conflict("the default gallery cannot be deleted (delete its people instead)")
        if not self.exists(name):
            raise NotFound(f"no gallery named {name!r}")
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is not None:
            await asyncio.wrap_future(slot.executor.submit(lambda: slot.gallery and slot.gallery.close()))
            slot.executor.shutdown(wait=False)
        from ..gallery.sqlite import SqliteStore

        for path in SqliteStore.files_of(self.location(name)):  # the vector index and journal hold faces too
            path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            if slot.gallery is not None:
                slot.executor.submit(slot.gallery.close).result(timeout=10)
            slot.executor.shutdown(wait=True)
