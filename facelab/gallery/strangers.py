"""Strangers the user supplies to `gallery calibrate --strangers`: photos of people who are not in the gallery.

Two sources:
- a folder: ROOT/<person>/<photos> (one person per sub-folder, as `gallery enrol` reads it) and loose photos in
  ROOT itself, each taken as a person of its own; every photo goes through enrolment's checks (one clear face, big
  and frontal enough) and is embedded with the gallery's model;
- another gallery of the same model (a file or a postgresql:// URI), read as it is.

A stranger folder or person with the name of someone in the gallery is that person: their photos are searched
without their own column, as a left-out person's are (counted in `same_name`). The vectors live only as long as the
calibration: nothing of them is stored.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FacelabError
from .enrol import EnrolOptions, analyse_photo, loose_photos, walk
from .workers import run_jobs

if TYPE_CHECKING:  # pragma: no cover
    from . import Gallery


class NoStrangers(FacelabError):
    """The supplied strangers gave no usable face: exit 4 (no face), HTTP 422; nothing is changed."""

    exit_code = 4
    code = "no_face"


@dataclass
class Strangers:
    vectors: np.ndarray                 # unit vectors of the gallery's model
    person: np.ndarray                  # int64: a gallery person's id (same name) or a negative id of one's own
    source: str
    same_name: list[str] = field(default_factory=list)      # stranger people named as a gallery person
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))

    @property
    def people(self) -> int:
        return len(np.unique(self.person))

    @property
    def photos(self) -> int:
        return len(self.vectors)


def stranger_files(root: Path) -> list[tuple[str, Path]]:
    """(person, file): sub-folders as `gallery enrol` reads them, then each loose photo in ROOT as its own person."""
    return walk(root) + [(f"\x00{p.name}", p) for p in loose_photos(root)]  # \x00: never a gallery person's name


def load_strangers(source: str | Path, gallery: Gallery, workers: int = 1) -> Strangers:
    """The strangers in `source` (a folder of photos or another gallery), as vectors of `gallery`'s model."""
    from . import is_postgres, open_gallery

    text = str(source)
    path = Path(text)
    if not is_postgres(text) and path.is_dir():
        labels, vectors, skipped = _embed_folder(path, gallery.model.name, workers)
    elif is_postgres(text) or path.is_file():
        if _same_gallery(text, gallery.location):
            raise FacelabError(f"{text}: a gallery cannot be its own strangers (its people are left out in turn "
                               f"already); give photos or a gallery of people who are not in it")
        with open_gallery(text, model=gallery.model.name, create=False) as other:
            _, pid, vectors = other.store.vectors()
            names = other.person_names()
        labels, skipped = [names[int(p)] for p in pid], defaultdict(list)
    else:
        raise FacelabError(f"{text}: no such folder or gallery (strangers: a folder of photos of people not in the "
                           f"gallery, or a gallery of them)")
    if not len(vectors):
        raise NoStrangers(f"{text}: no usable face among the strangers ({_skips(skipped)}); nothing changed")
    ids = {name: int(pid) for pid, name in gallery.person_names().items()}
    own: dict[str, int] = {}
    person = np.array([ids[lab] if lab in ids else own.setdefault(lab, -1 - len(own)) for lab in labels], np.int64)
    return Strangers(np.asarray(vectors, np.float32), person, text,
                     sorted({lab for lab in labels if lab in ids}), skipped)


def _same_gallery(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a == b
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _embed_folder(root: Path, model: str, workers: int) -> tuple[list[str], np.ndarray, dict[str, list]]:
    opts: dict[str, Any] = {**EnrolOptions().to_dict(), "match_far": 0}  # a photo of several faces is skipped
    files = stranger_files(root)
    jobs = [(person, str(path), "", opts) for person, path in files]
    labels, vectors = [], []
    skipped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for (person, src, _, _), res in zip(jobs, run_jobs(analyse_photo, jobs, workers, model, chunksize=4)):
        if "photo" in res:
            labels.append(person)
            vectors.append(res["photo"].vector)
        else:
            skipped[res["skip"]].append({"file": src, "detail": res["detail"]})
    return labels, np.asarray(vectors, np.float32), skipped


def _skips(skipped: dict[str, list]) -> str:
    from .enrol import skipped_summary

    return skipped_summary(skipped) if any(skipped.values()) else "no photos found"
