"""Galleries: people with photos, identification (1:N, open set) and look-alikes.

    >>> g = facelab.open_gallery("people.db")            # SQLite file (created if missing), or postgresql://...
    >>> g.enrol_folder("photos/")                         # photos/<person>/*.jpg
    >>> [r.to_dict() for r in facelab.identify("who.jpg", gallery=g)]

A gallery is bound to one embedding model (default "sface"); opening it with another model is an error.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NoFaceError, NotFound, StoreError
from ..verification import quality_concerns
from .audit import GalleryCheck, check_gallery
from .enrol import (
    MAX_CANDIDATES,
    EnrolOptions,
    EnrolReport,
    choose_face,
    enrol_folder,
    match_threshold,
    person_references,
)
from .export_format import EXPORT_FORMAT, load_export, parse_people
from .identify import DEFAULT_SCORING, Identification, Lookalike, Match, default_threshold, rank_people
from .store import ModelInfo, NewPhoto, PersonRecord, PhotoRecord, Store, model_info, split_model_name


def is_postgres(location: str) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def open_gallery(location, model: str | None = None, create: bool = True, timeout: float = 10.0,
                 **options) -> Gallery:
    """Open (or create) a gallery: a file path (SQLite) or a postgresql:// URI (PostgreSQL + pgvector).

    model: the embedder; None = the gallery's own (a new gallery gets "sface"). A different model than the
    gallery was built with raises StoreError. timeout: seconds to wait for another process's write lock.
    """
    wanted = model_info(model) if model else None
    location = str(location)
    if is_postgres(location):
        from .postgres import PostgresStore

        return Gallery(PostgresStore(location, wanted, create, timeout, **options))
    from .sqlite import SqliteStore

    return Gallery(SqliteStore(location, wanted, create, timeout, **options))


class Gallery:
    def __init__(self, store: Store):
        self.store = store
        self._templates: dict[int, np.ndarray] = {}
        self._templates_version: int | None = None
        self._names: dict[int, str] | None = None
        self._names_version: int | None = None

    # -- basics ------------------------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.store.location

    @property
    def model(self) -> ModelInfo:
        return self.store.model

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gallery({self.location!r}, model={self.model.name!r})"

    def close(self) -> None:
        self.store.close()

    def analysis(self):
        from ..pipeline import shared_analysis

        name, flip = split_model_name(self.model.name)
        return shared_analysis(embedder=name, flip=flip)

    # -- people and photos ---------------------------------------------------------------------------------
    def enrol_folder(self, root, progress: bool = True, workers: int = 1, options: EnrolOptions | None = None,
                     retry_skipped: bool = False, batch: int = 32, analyse=None) -> EnrolReport:
        """Enrol ROOT/<person>/<photos>; re-running adds only new or changed files.

        batch: photos written per transaction (a crash loses at most one batch, which a re-run redoes).
        analyse: another engine for the per-photo work, e.g. facelab.distributed.ray_engine.enrol_analyser()."""
        return enrol_folder(self, root, progress=progress, workers=workers, options=options,
                            retry_skipped=retry_skipped, batch=batch, analyse=analyse)

    def add_photo(self, person: str, image, source: str | None = None, face: int | None = None,
                  keep_face: bool = False) -> PhotoRecord:
        """Add one photo of `person`: face number `face`, else the one face that matches the person's stored photos
        (FAR 0.1 %), else the main face. keep_face: also keep a small JPEG crop of the face in the gallery.
        Raises on no face or a duplicate."""
        from ..images import face_jpeg, load_image
        from ..pipeline import pick_main_face
        from .store import file_sha256

        if not person or not str(person).strip():
            raise StoreError("a person's name cannot be empty")
        if source is None and isinstance(image, (str, Path)):
            source = str(image)
        rgb = load_image(image)
        if isinstance(image, (str, Path)) and Path(image).is_file():
            sha = file_sha256(Path(image))  # the file's bytes, as enrolment hashes them
        elif isinstance(image, (bytes, bytearray)):
            sha = hashlib.sha256(image).hexdigest()
        else:
            sha = hashlib.sha256(rgb.tobytes()).hexdigest()
        analysis = self.analysis()
        faces = analysis.detect_rgb(rgb)
        name = source or "photo"
        if not faces:
            raise NoFaceError(f"{name}: no face found")
        if face is not None:
            if not 0 <= face < len(faces):
                raise NoFaceError(f"{name}: face {face} requested, but the photo has {len(faces)}")
            chosen = faces[face]
        else:  # a group photo: the face that matches the person's other photos, else the main face
            chosen = self._face_matching(person, rgb, faces) or pick_main_face(faces, rgb.shape)
        if chosen.embedding is None:
            analysis.embed_faces(rgb, [chosen])
        d = chosen.to_dict()
        crop = face_jpeg(rgb, d["box"]) if keep_face else None
        result = self.store.add_photos([NewPhoto(str(person), source, sha, chosen.index, len(faces), d["box"],
                                                 d.get("pose"), d.get("quality"), chosen.embedding, crop)])[0]
        if isinstance(result, str):
            raise StoreError(f"{name}: already in the gallery ({result})")
        return result

    def _face_matching(self, person: str, rgb: np.ndarray, faces: list) -> Any:
        """Of a photo's several faces, the one that verifies against `person`'s stored photos (as enrolment
        decides group photos), or None: one face only, a new person, or not exactly one match."""
        if len(faces) < 2:
            return None
        references = person_references(self.store, str(person))
        if references is None:
            return None
        candidates = sorted(faces, key=lambda f: -f.area)[:MAX_CANDIDATES]
        self.analysis().embed_faces(rgb, candidates)
        k, _ = choose_face(np.stack([f.embedding for f in candidates]), references,
                           match_threshold(self.model.name, EnrolOptions().match_far), str(person))
        return None if k is None else candidates[k]

    def add_embeddings(self, person: str, vectors: np.ndarray, sources: list[str] | None = None,
                       hashes: list[str] | None = None) -> list[PhotoRecord | str]:
        """Store precomputed embeddings (made by this gallery's model) for `person`: used by benchmarks and
        imports. Each needs a distinct content hash; by default one is derived from the vector."""
        vectors = np.asarray(vectors, np.float32)
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors  # the store checks each one's size
        where: list[str | None] = list(sources) if sources else [None] * len(vectors)
        hashes = hashes or [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
        return self.store.add_photos([NewPhoto(person, s, h, 0, 1, {}, None, None, v)
                                      for v, s, h in zip(vectors, where, hashes)])

    def face_image(self, photo_id: int) -> bytes | None:
        """The JPEG crop of a photo's face, if the gallery keeps faces (enrolled with keep_faces), else None."""
        pid = photo_id_or_none(photo_id)
        return None if pid is None else self.store.face_image(pid)

    def remove_photo(self, photo_id: int) -> None:
        pid = photo_id_or_none(photo_id)
        if pid is None or not self.store.remove_photos([pid]):
            raise NotFound(f"{self.location}: no photo with id {str(photo_id)[:40]}")

    def people(self) -> list[PersonRecord]:
        return self.store.people()

    def person(self, name: str) -> PersonRecord:
        rec = self.store.person(name)
        if rec is None:
            raise NotFound(f"{self.location}: no person named {name!r}")
        rec.sources = [p.source or f"photo {p.id}" for p in self.store.photos_of(name)]
        return rec

    def photos(self, name: str) -> list[PhotoRecord]:
        return self.store.photos_of(name)

    def photo(self, photo_id: int) -> PhotoRecord | None:
        pid = photo_id_or_none(photo_id)
        return None if pid is None else self.store.photo(pid)

    def rename_person(self, old: str, new: str) -> None:
        if not new or not new.strip():
            raise StoreError("a person's name cannot be empty")
        self.store.rename_person(old, new)

    def merge_people(self, src: str, dst: str) -> int:
        """Move every photo of `src` to `dst` and delete `src`; returns how many photos moved."""
        return self.store.merge_people(src, dst)

    def delete_person(self, name: str) -> int:
        """Delete a person, their photo records and embeddings (index included); returns photos deleted."""
        return self.store.delete_person(name)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()

    def check(self, far: float = 0.001, share: float = 0.5) -> GalleryCheck:
        """Photos that look unlike their person (or like someone else) and people who may be one person;
        changes nothing (see `audit`)."""
        return check_gallery(self, far=far, share=share)

    # -- search ------------------------------------------------------------------------------------------------
    def vector_count(self) -> int:
        return self.store.vector_count()

    def person_names(self) -> dict[int, str]:
        version = self.store.version()
        if self._names is None or version != self._names_version:
            self._names, self._names_version = self.store.person_names(), version
        return self._names

    def templates(self, person_ids: list[int]) -> dict[int, np.ndarray]:
        """Each person's template: the re-normalised mean of their embeddings (cached until the gallery changes)."""
        version = self.store.version()
        if version != self._templates_version:
            self._templates, self._templates_version = {}, version
        missing = [p for p in person_ids if p not in self._templates]
        if missing:
            for pid, matrix in self.store.vectors_of_people(missing).items():
                mean = matrix.mean(axis=0)
                self._templates[pid] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return {p: self._templates[p] for p in person_ids if p in self._templates}

    def rank(self, vectors: np.ndarray, top_k: int = 5, scoring: str = DEFAULT_SCORING) -> list[list[Match]]:
        """Top-k people for each embedding (made by this gallery's model)."""
        return rank_people(self, vectors, top_k, scoring)

    def threshold(self, threshold: float | None = None, far: float | None = None,
                  scoring: str = DEFAULT_SCORING) -> tuple[float, float | None, str]:
        """(threshold, 1:1 FAR or None, where it comes from) for identification.

        threshold= wins; far= picks a 1:1 point from the LFW all-pairs table; by default the threshold
        `calibrate` measured on this gallery, else the open-set point measured on LFW, falling back to the model's
        1:1 default."""
        from ..verification import far_text, operating_point
        from .calibrate import stored_calibration

        if threshold is not None:
            return float(threshold), None, "given"
        if far is None:
            own = stored_calibration(self, scoring)
            if own is not None:
                people = len(self.person_names())
                stale = (f"; the gallery has {people} people now: re-run `gallery calibrate`"
                         if people > 1.5 * own.people else "")  # more people, more strangers named
                return own.threshold, None, own.source + stale
            calibrated = default_threshold(self.model.name, scoring)
            if calibrated is not None:
                t, fpir, source = calibrated
                return t, None, f"open-set, FPIR {fpir:g} on {source}"
        point = operating_point(self.model.name, None, far)
        far_said = far_text(point.far) if point.far is not None else "unknown"  # a table row always has its FAR
        return point.threshold, point.far, f"1:1, FAR {far_said} on {point.source}"

    def calibrate(self, fpir: float = 0.01, scoring: str = DEFAULT_SCORING, dry_run: bool = False,
                  strangers=None, workers: int = 1):
        """Measure the "unknown" threshold on this gallery (each person plays a stranger in turn) and keep it in
        the gallery; `identify` then uses it by default. strangers: people who are not in the gallery, searched
        next to them: a folder of photos, another gallery's location, or a `strangers.Strangers`. See
        `gallery.calibrate`."""
        from .calibrate import calibrate, check_fpir
        from .strangers import Strangers, load_strangers

        fpir = check_fpir(fpir)  # before reading strangers' photos: a bad request costs nothing
        if strangers is not None and not isinstance(strangers, Strangers):
            strangers = load_strangers(strangers, self, workers=workers)
        return calibrate(self, fpir=fpir, scoring=scoring, dry_run=dry_run, strangers=strangers)

    def identify(self, image, top_k: int = 5, threshold: float | None = None, far: float | None = None,
                 scoring: str = DEFAULT_SCORING, order: str = "rgb") -> list[Identification]:
        """For every face in `image`: the top_k people, and the best one if it reaches the threshold."""
        t, t_far, source = self.threshold(threshold, far, scoring)
        faces = self.analysis().get(image, order=order)
        if not faces:
            return []
        ranked = self.rank(np.stack([f.embedding for f in faces]), top_k, scoring)
        return [Identification(f, m, t, t_far, scoring, self.model.name, source, quality_concerns(f, "face"))
                for f, m in zip(faces, ranked)]

    def lookalike(self, image, order: str = "rgb") -> list[Lookalike]:
        """For every face: the most similar person and, within that person, the most similar photo."""
        faces = self.analysis().get(image, order=order)
        if not faces:
            return []
        ranked = self.rank(np.stack([f.embedding for f in faces]), 1, "max")
        out = []
        for f, matches in zip(faces, ranked):
            if not matches:
                out.append(Lookalike(f, None, None, None))
                continue
            m = matches[0]
            photo = self.store.photo(m.photo_id)
            out.append(Lookalike(f, m.person, m.similarity, {"id": m.photo_id, "source": photo.source if photo
                                                             else None, "similarity": round(m.photo_similarity, 4)}))
        return out

    # -- export / import -----------------------------------------------------------------------------------
    def export(self, path) -> dict[str, int]:
        """Write every person, photo record and embedding (and kept face crops) to a portable JSON file (.json or
        .json.gz).

        The file holds biometric data (face embeddings): store and share it accordingly."""
        path = Path(path)
        people = []
        for rec in self.store.people():
            photos = []
            ids = [p.id for p in self.store.photos_of(rec.name)]
            _, vecs = self.store.vectors_of(ids)
            for p, v in zip(self.store.photos_of(rec.name), vecs):
                d = p.to_dict()
                d["embedding"] = base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                crop = self.store.face_image(p.id)
                if crop:
                    d["face_jpeg"] = base64.b64encode(crop).decode()
                photos.append(d)
            people.append({"name": rec.name, "photos": photos})
        doc = {"format": EXPORT_FORMAT, "version": 1, "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "model": {"name": self.model.name, "dim": self.model.dim, "fingerprint": self.model.fingerprint},
               "people": people}
        data = json.dumps(doc).encode()
        if not path.parent.is_dir():
            raise StoreError(f"{path}: folder {path.parent} does not exist")
        try:
            path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write the export ({exc.strerror or exc})") from None
        return {"people": len(people), "photos": sum(len(p["photos"]) for p in people)}

    def import_file(self, path) -> dict[str, int]:
        """Add the people and photos of an exported file (same model only); photos already present are skipped.

        The file is read as untrusted (export_format.py): bounded gzip, every field and vector checked before the
        first photo is stored, so a bad file adds nothing."""
        from .vectors import checked_vector

        doc = load_export(path)
        m = doc["model"]
        if m["name"] != self.model.name or m["fingerprint"] != self.model.fingerprint:
            raise StoreError(f"{path}: exported with model {m['name']} ({m['fingerprint'][:12]}), this gallery uses "
                             f"{self.model.name} ({self.model.fingerprint[:12]}); embeddings cannot be mixed")
        people = parse_people(doc, path)
        for person in people:
            for k, p in enumerate(person.photos):
                checked_vector(p.vector, self.model, f"{path}: {person.name}, photo {k}")
        added = skipped = 0
        for person in people:
            for res in self.store.add_photos(person.photos):
                added, skipped = (added + 1, skipped) if not isinstance(res, str) else (added, skipped + 1)
        return {"people": len(people), "added": added, "skipped_duplicates": skipped}


def photo_id_or_none(value) -> int | None:
    """A photo id as the stores hold them (a positive 64-bit integer, given as int or decimal digits), or None
    for anything else ("1e3", -1, 2**70): such a photo cannot exist, so callers answer "no photo"."""
    if isinstance(value, (bool, float)):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
    try:
        pid = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return pid if 0 < pid < 2**63 else None


def _gallery_of(gallery) -> tuple[Gallery, bool]:
    if isinstance(gallery, Gallery):
        return gallery, False
    if gallery is None:
        raise StoreError("no gallery given (pass gallery=open_gallery(...) or a path)")
    return open_gallery(gallery, create=False), True


def identify(image, gallery, top_k: int = 5, threshold: float | None = None, far: float | None = None,
             scoring: str = DEFAULT_SCORING, order: str = "rgb") -> list[Identification]:
    g, owned = _gallery_of(gallery)
    try:
        return g.identify(image, top_k, threshold, far, scoring, order)
    finally:
        if owned:
            g.close()


def lookalike(image, gallery, order: str = "rgb") -> list[Lookalike]:
    g, owned = _gallery_of(gallery)
    try:
        return g.lookalike(image, order)
    finally:
        if owned:
            g.close()


__all__ = ["open_gallery", "Gallery", "identify", "lookalike", "EnrolOptions", "EnrolReport", "Identification",
           "Lookalike", "Match", "PersonRecord", "PhotoRecord", "GalleryCheck"]
