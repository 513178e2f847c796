"""What a gallery stores, and the interface every storage backend implements (SQLite, PostgreSQL).

A gallery holds people; each person has photos; each photo has exactly one face's record (box, pose, quality)
and one embedding made by the gallery's model. A gallery is bound to one embedding model: its id and a
fingerprint of its weights (and fusion parameters) are stored when it is created and checked every time it is
opened, because vectors of two models (or of one model with other parameters) must never be compared.

Photos are referenced by path and content hash (sha256), never copied; only when the user asks (`keep_faces`)
is a small JPEG crop of each face kept in the gallery (table `faces`, created on first use, so galleries made
before it existed open unchanged), and it goes with its photo. The `files` ledger remembers every file
an enrolment looked at (added or skipped, with its size and mtime), so a re-run only reads new or changed files.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..models.registry import file_sha256  # noqa: F401  (re-exported: enrolment hashes photos with it)

SCHEMA_VERSION = 1
DEFAULT_MODEL = "sface"


@dataclass
class PersonRecord:
    id: int
    name: str
    photos: int
    created: float
    sources: list[str] = field(default_factory=list)  # filled by Gallery.person()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "photos": self.photos,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}
        if self.sources:
            out["sources"] = self.sources
        return out


@dataclass
class PhotoRecord:
    id: int
    person: str
    source: str | None          # where the photo was read from (path), None for in-memory images
    sha256: str
    face_index: int             # which face of the photo (faces numbered left to right)
    n_faces: int                # how many faces the photo had
    box: dict[str, float]
    pose: dict[str, float] | None
    quality: dict[str, float] | None
    added: float
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "person": self.person, "source": self.source, "sha256": self.sha256,
                "face_index": self.face_index, "n_faces": self.n_faces, "box": self.box, "pose": self.pose,
                "quality": self.quality, "model": self.model,
                "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.added))}


@dataclass
class NewPhoto:
    """A photo ready to store: its face's metadata and embedding."""

    person: str
    source: str | None
    sha256: str
    face_index: int
    n_faces: int
    box: dict[str, float]
    pose: dict[str, float] | None
    quality: dict[str, float] | None
    vector: np.ndarray
    face_jpeg: bytes | None = None  # a small crop of the face, kept only when the user asks (keep_faces)


@dataclass
class FileEntry:
    """The enrolment ledger's memory of one file: what it was (size, mtime, hash) and what became of it."""

    source: str
    size: int
    mtime: float
    sha256: str | None
    status: str          # "added" or "skipped"
    reason: str | None   # why skipped (a category: "no face", "duplicate", ...)
    detail: str | None   # the full message
    photo_id: int | None


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model a gallery is bound to."""

    name: str          # embedder name, e.g. "sface", "fused", "sface+flip"
    dim: int
    fingerprint: str   # sha256 over the model files' hashes and any fusion parameters

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "fingerprint": self.fingerprint[:16]}


def model_info(name: str) -> ModelInfo:
    """Identify an embedder without loading it: name, dimension and a fingerprint of what produces its vectors."""
    from ..embedders import DLIB_CHIP, EMBEDDERS, read_fusion_file, registered_embedder_names
    from ..errors import ModelError
    from ..models.registry import get_model

    base = name.split("+")[0].split("/")[0]
    user = registered_embedder_names() if base not in EMBEDDERS else []
    if base not in EMBEDDERS and base not in user:
        raise ModelError(f"unknown embedding model {name!r}; known: {', '.join([*EMBEDDERS, *user])}")
    parts: dict[str, Any] = {"name": name}
    if base in ("dlib_resnet", "fused"):
        parts["dlib_chip"] = DLIB_CHIP  # how dlib's face box is placed changes its vectors
    if base == "fused":
        parts["sface"] = get_model("sface").sha256
        parts["dlib_resnet"] = get_model("dlib_resnet").sha256
        # The fusion weights (and a dlib mean, if one is fitted) change the vectors: a gallery made with other
        # parameters is another model.
        parts["fusion"] = hashlib.sha256(read_fusion_file()).hexdigest()
        dim = 256
    else:
        spec = get_model(base)
        parts[base] = spec.sha256
        dim = int(spec.dim or 128)
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return ModelInfo(name, dim, digest)


def split_model_name(name: str) -> tuple[str, bool]:
    """'sface+flip' -> ('sface', True): the embedder to load and whether to flip-average."""
    flip = name.endswith("+flip")
    return (name[: -len("+flip")] if flip else name), flip


class Store(ABC):
    """A gallery's storage. Every method that writes runs in one transaction: all of it happens or none."""

    location: str
    model: ModelInfo

    # -- people and photos ---------------------------------------------------------------------------------
    @abstractmethod
    def add_photos(self, photos: Iterable[NewPhoto], files: Iterable[FileEntry] = ()) -> list[PhotoRecord | str]:
        """Store photos (creating people as needed) and ledger entries in one transaction.

        Returns, per photo, its record, or the message "duplicate of photo N (person)" if a photo with the same
        content hash is already stored (checked inside the transaction, so two processes cannot both add it).
        """

    @abstractmethod
    def record_files(self, files: Iterable[FileEntry]) -> None:
        """Remember skipped files (so a re-run does not read them again unless they change)."""

    @abstractmethod
    def file_entries(self, sources: list[str]) -> dict[str, FileEntry]: ...

    @abstractmethod
    def forget_files(self, sources: list[str]) -> None: ...

    @abstractmethod
    def photo(self, photo_id: int) -> PhotoRecord | None: ...

    @abstractmethod
    def photos_of(self, name: str) -> list[PhotoRecord]: ...

    @abstractmethod
    def photo_by_hash(self, sha256: str) -> PhotoRecord | None: ...

    @abstractmethod
    def face_image(self, photo_id: int) -> bytes | None:
        """The JPEG face crop kept with a photo (enrolled with keep_faces), or None."""

    @abstractmethod
    def remove_photos(self, photo_ids: list[int]) -> int:
        """Delete photos, their embeddings and ledger entries; people left with no photo are deleted too."""

    @abstractmethod
    def people(self) -> list[PersonRecord]: ...

    @abstractmethod
    def person(self, name: str) -> PersonRecord | None: ...

    @abstractmethod
    def rename_person(self, old: str, new: str) -> None: ...

    @abstractmethod
    def merge_people(self, src: str, dst: str) -> int: ...

    @abstractmethod
    def delete_person(self, name: str) -> int:
        """Delete a person with every photo record, embedding and ledger entry (biometric data), including the
        ledger's memory of their skipped files (see `person_folders`)."""

    # -- vectors -------------------------------------------------------------------------------------------
    @abstractmethod
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every embedding: (photo ids int64, person ids int64, float32 matrix n x dim)."""

    @abstractmethod
    def vectors_of(self, photo_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids found, their vectors)."""

    @abstractmethod
    def vectors_of_people(self, person_ids: list[int]) -> dict[int, np.ndarray]:
        """person id -> matrix of that person's embeddings."""

    @abstractmethod
    def vector_count(self) -> int: ...

    @abstractmethod
    def version(self) -> int:
        """A number that changes whenever people or photos change (for caches)."""

    @abstractmethod
    def person_names(self) -> dict[int, str]: ...

    @abstractmethod
    def search(self, query: np.ndarray, k: int) -> list[list[tuple[int, int, float]]]:
        """Top-k photos per query row: (photo id, person id, cosine), best first."""

    @abstractmethod
    def stats(self) -> dict[str, Any]: ...

    # -- settings kept with the gallery (the `meta` table: e.g. a calibrated threshold) ------------------------
    def get_meta(self, key: str) -> str | None:
        raise StoreError(f"{self.location}: this gallery store cannot keep settings")

    def set_meta(self, key: str, value: str) -> None:
        raise StoreError(f"{self.location}: this gallery store cannot keep settings")

    @abstractmethod
    def close(self) -> None: ...

    # -- shared checks -------------------------------------------------------------------------------------
    def check_model(self, stored: dict[str, str], wanted: ModelInfo | None) -> ModelInfo:
        """The stored model, after checking it against the one asked for; a clear error if they differ."""
        version = stored.get("schema_version")
        if version is None or "model" not in stored:
            raise StoreError(f"{self.location}: not a facelab gallery (no gallery metadata)")
        if int(version) != SCHEMA_VERSION:
            raise StoreError(f"{self.location}: gallery schema version {version}, this facelab reads version "
                             f"{SCHEMA_VERSION}; open it with the facelab that made it and `gallery export` it")
        try:
            have = ModelInfo(stored["model"], int(stored["dim"]), stored["fingerprint"])
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"{self.location}: gallery metadata is damaged (model, dim or fingerprint missing or "
                             f"unreadable); restore it from a backup or `gallery export` it with an older "
                             f"copy") from None
        if wanted is not None and wanted.name != have.name:
            raise StoreError(f"{self.location}: gallery holds {have.name} embeddings, not {wanted.name}; "
                             f"embeddings of different models cannot be compared (open it with "
                             f"--model {have.name}, or enrol into a new gallery)")
        current = model_info(have.name)
        if have.dim != current.dim:
            raise StoreError(f"{self.location}: gallery metadata is damaged (dim {have.dim}, but {have.name} makes "
                             f"{current.dim}-value embeddings)")
        if current.fingerprint != have.fingerprint:
            raise StoreError(f"{self.location}: gallery was built with another version of {have.name} (its weights "
                             f"or fusion parameters changed since); its embeddings no longer match: re-enrol the "
                             f"photos into a new gallery")
        return have


def person_folders(name: str, sources: Iterable[str | None]) -> list[str]:
    """The folders a person's photos were enrolled from (ROOT/<name>/, else each photo's own folder), each ending
    in a separator: deleting the person also forgets the files skipped there (a group photo's ledger entry names
    them). The ledger is only a cache of what was read, so forgetting another file there just means re-reading it."""
    folders = set()
    for source in sources:
        if source:
            path = Path(source)
            folder = next((p for p in path.parents if p.name == name), path.parent)
            folders.add(os.path.join(str(folder), ""))  # sources are this OS's paths, as enrolment wrote them
    return sorted(folders)

