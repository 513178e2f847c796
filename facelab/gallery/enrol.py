"""Enrol a folder tree, one sub-folder per person (`ROOT/<person>/*.jpg`), into a gallery.

For each file: ledger check (unchanged since the last run: nothing to do), content hash (an identical photo is
already stored: "duplicate"), decode ("unreadable"), detect, choose the face, filter ("no face", "several
faces", "too small", "too turned"), embed, store. Results are written in batches, each in one transaction
together with the ledger entries of its files: a crash (even kill -9) loses at most the batch in flight, and
a re-run picks up exactly the files that are not in the ledger yet. Skipped files are remembered too, so a
re-run does not decode them again unless they change (or `retry_skipped=True`).

A photo with several faces (a group photo, a crawled news photo) is decided last: its faces are compared with
the person's other photos (stored earlier or in this run), and the one face that verifies against them at a strict
1:1 point (FAR 0.1 % on LFW) is stored. When none or several do, the size rule decides: the largest face if it is
twice the next in area, else "several faces", with the similarities in the reason.

Detection and embedding can run in worker processes (`workers=N`); the parent does all the writing.
"""
from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FacelabError, StoreError
from .store import FileEntry, NewPhoto, file_sha256
from .workers import analysis as worker_analysis
from .workers import run_jobs

if TYPE_CHECKING:  # pragma: no cover
    from ..faces import Face
    from . import Gallery

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
BATCH = 32


def skipped_summary(skipped: dict[str, list]) -> str:
    """'skipped 3 (no face: 2, unreadable: 1)': a folder run's skips by reason (enrol and library scan)."""
    total = sum(len(v) for v in skipped.values())
    return f"skipped {total} (" + ", ".join(f"{r}: {len(v)}" for r, v in sorted(skipped.items())) + ")"


@dataclass
class EnrolOptions:
    min_size: float = 40.0     # px, shorter side of the face box; smaller faces embed poorly
    max_yaw: float = 45.0      # degrees; more turned faces are poor references
    max_pitch: float = 40.0
    dominance: float = 2.0     # a photo with several faces is used if its largest face is this much larger
                               # (in area) than the next one; otherwise it is ambiguous whose photo it is
    match_far: float = 0.001   # ...unless exactly one of its faces verifies against the person's other photos at
                               # this 1:1 false accept rate (0 turns the matching off)
    keep_faces: bool = False   # keep a small JPEG crop of each stored face in the gallery (photos are otherwise
                               # only referenced by path)

    def to_dict(self) -> dict[str, float | bool]:
        return dict(self.__dict__)


@dataclass
class EnrolReport:
    root: str
    gallery: str
    added: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    unchanged: int = 0
    replaced: int = 0
    matched: int = 0           # photos with several faces stored with the one face that matched the person's others
    seconds: float = 0.0
    workers: int = 1

    @property
    def processed(self) -> int:
        return len(self.added) + sum(len(v) for v in self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        per_person: dict[str, int] = defaultdict(int)
        for a in self.added:
            per_person[a["person"]] += 1
        return {"root": self.root, "gallery": self.gallery, "added": len(self.added),
                "added_per_person": dict(sorted(per_person.items())),
                "skipped": {reason: [s["file"] for s in items] for reason, items in sorted(self.skipped.items())},
                "skipped_detail": {reason: items for reason, items in sorted(self.skipped.items())},
                "matched_in_group_photos": self.matched,
                "unchanged": self.unchanged, "replaced": self.replaced, "seconds": round(self.seconds, 2),
                "photos_per_second": round(self.processed / self.seconds, 2) if self.seconds else None,
                "workers": self.workers}

    def summary(self) -> str:
        parts = [f"added {len(self.added)}" + (f" ({self.matched} with the face, among several, that matches the "
                                                  f"person's other photos)" if self.matched else "")]
        if any(self.skipped.values()):
            parts.append(skipped_summary(self.skipped))
        if self.unchanged:
            parts.append(f"unchanged {self.unchanged}")
        if self.replaced:
            parts.append(f"replaced {self.replaced} changed")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


def walk(root: Path) -> list[tuple[str, Path]]:
    """(person, file) for every image under ROOT/<person>/ (any depth), sorted for a stable order."""
    if not root.is_dir():
        raise FacelabError(f"{root}: not a folder (expected ROOT/<person>/<photos>)")
    out = []
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for dirpath, dirnames, filenames in os.walk(person_dir, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if Path(fn).suffix.lower() in IMAGE_SUFFIXES and not fn.startswith("."):
                    out.append((person_dir.name, Path(dirpath) / fn))
    return out


def loose_photos(root: Path) -> list[Path]:
    """Images directly in ROOT: not in a person's folder, so nobody to enrol them as (reported, never guessed)."""
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


# -- the per-photo work (runs in the parent or in worker processes) --------------------------------------------
def analyse_photo(job: tuple[str, str, str, dict]) -> dict[str, Any]:
    """Detect, choose, filter and embed the face of one photo. Never raises: a failure is a skip reason."""
    from ..images import load_image
    from ..pipeline import FaceFilter

    person, source, sha, opts = job
    try:
        rgb = load_image(source)
    except FacelabError as err:
        return {"skip": "unreadable", "detail": str(err)}
    except Exception as err:  # decoder crash on a damaged file
        return {"skip": "unreadable", "detail": f"{source}: {err}"}
    analysis = worker_analysis()
    faces = analysis.detect_rgb(rgb)
    if not faces:
        return {"skip": "no face", "detail": "no face found"}
    big = sorted((f for f in faces if _face_size(f) >= opts["min_size"]), key=lambda f: -f.area)
    if not big:
        largest = max(_face_size(f) for f in faces)
        return {"skip": "too small", "detail": f"largest face {largest:.0f} px < {opts['min_size']:g}"}
    face_filter = FaceFilter(max_yaw=opts["max_yaw"], max_pitch=opts["max_pitch"])
    keep = rgb if opts.get("keep_faces") else None
    # the old rule: the largest face if it is `dominance` times the next one in area, else no choice
    if len(big) == 1 or big[0].area >= opts["dominance"] * big[1].area:
        reason = face_filter.reason(big[0])
        if reason:
            rule: dict[str, Any] = {"skip": "too turned", "detail": reason}
        else:
            analysis.embed_faces(rgb, [big[0]])
            rule = {"photo": _new_photo(person, source, sha, big[0], len(faces), keep)}
    else:
        rule = {"skip": "several faces", "detail": f"{len(big)} faces of similar size" + HOW_TO_CHOOSE}
    if len(big) == 1 or not opts["match_far"]:
        return rule
    # Several faces: decided later against the person's other photos; the old rule is the fallback.
    usable = [f for f in big[:MAX_CANDIDATES] if not face_filter.reason(f)]
    if not usable:
        return rule
    analysis.embed_faces(rgb, [f for f in usable if f.embedding is None])
    return {"candidates": [_new_photo(person, source, sha, f, len(faces), keep) for f in usable], "fallback": rule}


def _face_size(face: Face) -> float:
    """The shorter side of the face box, pixels (what detection's Quality.size records)."""
    return face.quality.size if face.quality is not None else float(min(face.box[2], face.box[3]))


MAX_CANDIDATES = 8  # faces of a group photo compared with the person's other photos (the largest ones)
HOW_TO_CHOOSE = "; crop the photo to one person or use `gallery add --face N`"


def _new_photo(person: str, source: str, sha: str, face, n_faces: int, rgb: np.ndarray | None = None) -> NewPhoto:
    """The record to store for `face`; with `rgb`, a crop of the face is kept too."""
    from ..images import face_jpeg

    d = face.to_dict()
    crop = face_jpeg(rgb, d["box"]) if rgb is not None else None
    return NewPhoto(person, source, sha, face.index, n_faces, d["box"], d.get("pose"), d.get("quality"),
                    face.embedding, crop)


def choose_face(vectors: np.ndarray, references: np.ndarray | None, threshold: float,
                person: str) -> tuple[int | None, str]:
    """Which of a photo's face embeddings is `person`'s: the one whose similarity to their mean template (the
    mean of `references`, their stored embeddings) reaches `threshold`; or None and why not. Two or more faces
    above it are as ambiguous as none."""
    if references is None or not len(references):
        return None, f"no other photo of {person} to tell which face is theirs" + HOW_TO_CHOOSE
    # the person's mean template, not the best single photo: with many photos, "any photo above the threshold"
    # would let a stranger through far more often than the 1:1 FAR says
    template = references.mean(axis=0)
    template /= np.linalg.norm(template)
    scores = np.asarray(vectors) @ template
    above = np.flatnonzero(scores >= threshold)
    if len(above) != 1:
        said = ", ".join(f"{s:.2f}" for s in sorted(scores, reverse=True))
        return None, (f"{len(above)} of its faces match {person}'s other photos (similarities {said} to their mean; "
                      f"threshold {threshold:.2f})" + HOW_TO_CHOOSE)
    return int(above[0]), f"matched {person}'s other photos ({scores[above[0]]:.2f})"


def person_references(store, person: str) -> np.ndarray | None:
    """The stored embeddings of `person` (None for someone not in the gallery)."""
    record = store.person(person)
    return store.vectors_of_people([record.id]).get(record.id) if record else None


def match_threshold(model: str, far: float) -> float:
    """The 1:1 threshold a face must reach against a person's template (LFW-calibrated, at `far`)."""
    from ..verification import operating_point

    return operating_point(model, None, far).threshold


def _results(jobs: list, n_workers: int, model: str) -> Iterator[dict[str, Any]]:
    return run_jobs(analyse_photo, jobs, n_workers, model, chunksize=4)


def enrol_folder(gallery: Gallery, root, progress: bool = True, workers: int = 1,
                 options: EnrolOptions | None = None, retry_skipped: bool = False, batch: int = BATCH,
                 analyse: Callable[[list, str], Iterator[dict[str, Any]]] | None = None) -> EnrolReport:
    """analyse(jobs, model): yields analyse_photo(job) for each job, in order, computed elsewhere (Ray); the
    default runs it here or in `workers` processes. Writing stays here either way."""
    opts = options or EnrolOptions()
    root = Path(root).resolve()  # the ledger knows files by absolute path: a re-run from elsewhere finds them
    report = EnrolReport(str(root), gallery.location, workers=workers)
    t0 = time.perf_counter()
    files = walk(root)
    for path in loose_photos(root):
        report.skipped["not in a person folder"].append(
            {"file": str(path), "detail": f"photos go in {root}/<person>/, the folder named after the person"})
    store = gallery.store
    ledger = store.file_entries([str(p) for _, p in files])

    # 1. What needs reading: new files, changed files (their old photo is replaced), skipped ones on request.
    jobs: list[tuple[str, str, str, dict[str, Any]]] = []
    entries: dict[str, FileEntry] = {}
    seen_hashes: dict[str, str] = {}  # sha256 -> the file of this run that has it
    replaced_ids: list[int] = []
    for person, path in files:
        src = str(path)
        try:
            st = path.stat()
        except OSError as err:
            report.skipped["unreadable"].append({"file": src, "detail": str(err)})
            continue
        old = ledger.get(src)
        if old and old.size == st.st_size and abs(old.mtime - st.st_mtime) < 1e-6 and \
                not (retry_skipped and old.status == "skipped"):
            report.unchanged += 1
            continue
        try:
            sha = file_sha256(path)
        except OSError as err:
            report.skipped["unreadable"].append({"file": src, "detail": str(err)})
            continue
        if old and old.photo_id is not None and old.sha256 != sha:
            replaced_ids.append(old.photo_id)  # the file changed: its old face goes
        entry = FileEntry(src, st.st_size, st.st_mtime, sha, "added", None, None, None)
        dup = seen_hashes.get(sha) or (store.photo_by_hash(sha) if not (old and old.sha256 == sha and
                                                                          old.photo_id) else None)
        if old and old.sha256 == sha and old.photo_id is not None:
            entry.photo_id = old.photo_id  # touched but identical: keep, just refresh the ledger
            store.record_files([entry])
            report.unchanged += 1
            continue
        if dup is not None:
            where = dup if isinstance(dup, str) else f"photo {dup.id} ({dup.person}, {dup.source})"
            detail = f"same content as {where}"
            entry.status, entry.reason, entry.detail = "skipped", "duplicate", detail
            store.record_files([entry])
            report.skipped["duplicate"].append({"file": src, "detail": detail})
            continue
        seen_hashes[sha] = src
        entries[src] = entry
        jobs.append((person, src, sha, opts.to_dict()))
    if replaced_ids:
        store.remove_photos(replaced_ids)
        report.replaced = len(replaced_ids)

    # 2. Detect / embed (in workers if asked), write in batches of BATCH photos, each batch one transaction.
    bar = _progress_bar(len(jobs), progress)
    pending_photos: list[NewPhoto] = []
    pending_files: list[FileEntry] = []

    def flush() -> None:
        results = store.add_photos(pending_photos, pending_files)
        for photo, res in zip(pending_photos, results):
            source = str(photo.source)  # enrolment's photos all come from files: never None here
            if isinstance(res, str) and entries[source].status == "added":
                report.unchanged += 1  # this very file was enrolled meanwhile by another process
            elif isinstance(res, str):  # the same photo under another path, stored meanwhile by another process
                report.skipped["duplicate"].append({"file": source, "detail": res})
            else:
                report.added.append({"person": photo.person, "file": photo.source, "photo_id": res.id})
        pending_photos.clear()
        pending_files.clear()

    group_photos: list[tuple[FileEntry, dict[str, Any]]] = []  # decided once the person's other photos are in
    try:
        results = analyse(jobs, gallery.model.name) if analyse else _results(jobs, workers, gallery.model.name)
        for job, res in zip(jobs, results):
            entry = entries[job[1]]
            if "photo" in res:
                pending_photos.append(res["photo"])
            elif "candidates" in res:
                group_photos.append((entry, res))
                if bar is not None:
                    bar.update(1)
                continue  # not in the ledger yet: a crash before the decision leaves it for the re-run
            else:
                entry.status, entry.reason, entry.detail = "skipped", res["skip"], res["detail"]
                report.skipped[res["skip"]].append({"file": job[1], "detail": res["detail"]})
            pending_files.append(entry)
            if len(pending_files) >= batch:
                flush()
            if bar is not None:
                bar.update(1)
        flush()
        if group_photos:
            _decide_group_photos(gallery, group_photos, opts, report, pending_photos, pending_files)
            flush()
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _decide_group_photos(gallery: Gallery, group_photos: list, opts: EnrolOptions, report: EnrolReport,
                         photos: list[NewPhoto], files: list[FileEntry]) -> None:
    """Queue each group photo's matching face for storage, or record why none was chosen."""
    threshold = match_threshold(gallery.model.name, opts.match_far)
    references: dict[str, np.ndarray | None] = {}
    for entry, res in group_photos:
        candidates = res["candidates"]
        person = candidates[0].person
        if person not in references:
            references[person] = person_references(gallery.store, person)
        k, why = choose_face(np.stack([c.vector for c in candidates]), references[person], threshold, person)
        fallback = res["fallback"]
        if k is not None:
            chosen = candidates[k]
            entry.detail = f"face {chosen.face_index} {why}"  # the ledger remembers which face, and how well
            photos.append(chosen)
            report.matched += 1
        elif "photo" in fallback:  # one face dominates and no other face is a better match: the old rule
            photos.append(fallback["photo"])
        else:
            detail = fallback["detail"]
            if fallback["skip"] == "several faces":
                detail = detail.replace(HOW_TO_CHOOSE, "") + f"; {why}"
            entry.status, entry.reason, entry.detail = "skipped", fallback["skip"], detail
            report.skipped[fallback["skip"]].append({"file": entry.source, "detail": detail})
        files.append(entry)


def _progress_bar(total: int, wanted: bool):
    if not wanted or total == 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="photo", desc="enrolling", file=sys.stderr, dynamic_ncols=True)


__all__ = ["EnrolOptions", "EnrolReport", "enrol_folder", "walk", "StoreError"]
