"""Reading a gallery export (`gallery export` / `gallery import`): bounded, and checked field by field.

An export is a file someone may hand you, so it is read as hostile input: gzip is inflated in a stream and
stopped at MAX_IMPORT_BYTES (a 2 MB .json.gz can expand to 4 GB), JSON nested too deep is refused, and every
field is checked for its type before anything is stored; each problem is one StoreError naming the field.
The vectors themselves are checked by the store (gallery/vectors.py), all of them before the first is written.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from .store import NewPhoto

EXPORT_FORMAT = "facelab-gallery"
# 1 GiB of JSON is about a million photos; beyond that the parsed document alone would need several GB.
MAX_IMPORT_BYTES = int(os.environ.get("FACELAB_MAX_IMPORT_BYTES", 2**30))
CHUNK = 1 << 20


def read_export_bytes(path, limit: int | None = None) -> bytes:
    """The file's JSON bytes, gunzipped if it is gzip; StoreError if either form is over `limit` bytes."""
    limit = MAX_IMPORT_BYTES if limit is None else limit
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head != b"\x1f\x8b":
                data = fh.read(limit + 1)
                if len(data) > limit:
                    raise StoreError(f"{path}: export is over the {limit / 2**20:.0f} MiB import limit "
                                     f"(FACELAB_MAX_IMPORT_BYTES)")
                return data
            return _gunzip(fh, limit, path)
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a folder, not an export file") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _gunzip(fh, limit: int, path: Path) -> bytes:
    """Inflate a gzip stream (possibly several members) without ever holding more than limit + CHUNK bytes."""
    out = bytearray()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = b""
    while True:
        if not pending:
            pending = fh.read(CHUNK)
            if not pending:
                break
        out += inflater.decompress(pending, CHUNK)
        pending = inflater.unconsumed_tail
        if len(out) > limit:
            raise StoreError(f"{path}: export expands to over the {limit / 2**20:.0f} MiB import limit "
                             f"(FACELAB_MAX_IMPORT_BYTES); refused")
        if inflater.eof:  # a concatenated gzip file: the next member starts in unused_data
            rest = inflater.unused_data
            if not rest.strip(b"\x00"):
                pending = b""
                if not fh.read(1):
                    break
                raise StoreError(f"{path}: not a facelab gallery export (data after the gzip stream)")
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            pending = rest
    if not inflater.eof:
        raise StoreError(f"{path}: not a facelab gallery export (truncated gzip stream)")
    return bytes(out)


def load_export(path, limit: int | None = None) -> dict[str, Any]:
    """The export's JSON document, with its header checked (format, model)."""
    raw = read_export_bytes(path, limit)
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise StoreError(f"{path}: not a facelab gallery export (JSON nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: not a facelab gallery export ({_short(err)})") from None
    except zlib.error as err:
        raise StoreError(f"{path}: not a facelab gallery export (bad gzip data: {err})") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise StoreError(f"{path}: not a facelab gallery export")
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) \
            or not isinstance(model.get("fingerprint"), str):
        raise StoreError(f"{path}: export has no valid model (name, fingerprint)")
    if not isinstance(doc.get("people"), list):
        raise StoreError(f"{path}: export has no list of people")
    return doc


@dataclass
class ExportedPerson:
    name: str
    photos: list[NewPhoto]


def parse_people(doc: dict[str, Any], path) -> list[ExportedPerson]:
    """Every person and photo of a loaded export, as NewPhoto records; StoreError naming the first bad field."""
    out = []
    for n, person in enumerate(doc["people"]):
        where = f"{path}: people[{n}]"
        if not isinstance(person, dict):
            raise StoreError(f"{where}: not an object")
        name = person.get("name")
        if not isinstance(name, str) or not name.strip():
            raise StoreError(f"{where}: 'name' must be a non-empty string")
        photos = person.get("photos")
        if not isinstance(photos, list):
            raise StoreError(f"{where} ({name}): 'photos' must be a list")
        out.append(ExportedPerson(name, [_photo(p, name, f"{where}.photos[{k}]") for k, p in enumerate(photos)]))
    return out


def _photo(p: Any, person: str, where: str) -> NewPhoto:
    if not isinstance(p, dict):
        raise StoreError(f"{where}: not an object")
    for key in ("embedding", "sha256"):
        if not isinstance(p.get(key), str) or not p[key]:
            raise StoreError(f"{where}: '{key}' must be a non-empty string")
    raw = _b64(p["embedding"], where, "embedding")
    if len(raw) % 4:
        raise StoreError(f"{where}: 'embedding' is {len(raw)} bytes, not a whole number of float32 values")
    vec = np.frombuffer(raw, "<f4").astype(np.float32)
    crop = _b64(p["face_jpeg"], where, "face_jpeg") if p.get("face_jpeg") is not None else None
    return NewPhoto(person, _typed(p, "source", str, where), p["sha256"], _int(p, "face_index", 0, where),
                    _int(p, "n_faces", 1, where), _typed(p, "box", dict, where) or {}, _typed(p, "pose", dict, where),
                    _typed(p, "quality", dict, where), vec, crop)


def _b64(value: Any, where: str, key: str) -> bytes:
    if not isinstance(value, str):
        raise StoreError(f"{where}: '{key}' must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StoreError(f"{where}: '{key}' is not valid base64") from None


def _typed(p: dict, key: str, kind: type, where: str):
    value = p.get(key)
    if value is not None and not isinstance(value, kind):
        raise StoreError(f"{where}: '{key}' must be {'a string' if kind is str else 'an object'} or null")
    return value


def _int(p: dict, key: str, default: int, where: str) -> int:
    value = p.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10_000:
        raise StoreError(f"{where}: '{key}' must be a small non-negative integer")
    return value


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:200]
