"""Photo libraries: every face of a photo collection, grouped by person, named, searched.

    >>> lib = facelab.library.open_library("lib.db")       # a gallery file; created if missing
    >>> lib.scan("Photos/")                                 # every face of every photo, then grouped
    >>> lib.people()                                        # named people and unnamed groups, with counts
    >>> lib.name("group:3", "Ann")                          # Ann is now a person of the gallery
    >>> lib.photos_with(["Ann", "Bob"], without=["Carl"])

A library is a gallery (an SQLite file, or a PostgreSQL URL as for `gallery enrol -g postgresql://...#name`; see
`store.py` for its tables): named people are the gallery's people, so `facelab identify x.jpg -g lib.db` knows
them. A person or group is referred to by name or as "group:N".
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import NotFound, StoreError
from ..gallery import Gallery, is_postgres, open_gallery
from .grouping import grouping_params, regroup
from .scan import ScanReport, scan_folder
from .store import FaceRow, LibraryConflict, LibraryNotFound, LibraryTables

DEFAULT_LIBRARY_MODEL = "sface+flip"  # the vectors the grouping was measured best with (docs/library.md)
GROUP_PREFIX = "group:"


def open_library(location, model: str | None = None, create: bool = True, timeout: float = 10.0) -> Library:
    """Open (or create) a library. A new one gets `model` (default sface+flip); an existing one keeps its own and
    opening it with another model is refused."""
    location = str(location)
    if is_postgres(location):
        try:  # an existing gallery keeps its own model
            return Library(open_gallery(location, model=model, create=False, timeout=timeout))
        except NotFound:
            if not create:
                raise LibraryNotFound(f"{location}: no such library (create one with `facelab library scan PHOTOS "
                                      f"-l {location}`)") from None
        return Library(open_gallery(location, model=model or DEFAULT_LIBRARY_MODEL, create=True, timeout=timeout))
    exists = Path(location).exists() and Path(location).stat().st_size > 0
    if not exists and not create:
        raise LibraryNotFound(f"{location}: no such library (create one with `facelab library scan PHOTOS -l "
                              f"{location}`)")
    wanted = model or (None if exists else DEFAULT_LIBRARY_MODEL)
    return Library(open_gallery(location, model=wanted, create=create, timeout=timeout))


class Library:
    def __init__(self, gallery: Gallery, owns_gallery: bool = True):
        """owns_gallery: the library closes the gallery (also when it cannot be a library); False when the
        caller keeps it open for other uses (the server)."""
        self.gallery = gallery
        try:
            self.tables = LibraryTables(gallery.store)
        except Exception:
            if owns_gallery:
                gallery.close()
            raise

    # -- basics ----------------------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.gallery.location

    @property
    def model(self):
        return self.gallery.model

    def close(self) -> None:
        self.gallery.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _grouping_lock(self):
        """One grouping at a time per library (two scans may run at once; their groupings take turns)."""
        return self.tables.store.named_lock("grouping")

    # -- scanning and grouping -------------------------------------------------------------------------------
    def scan(self, root, workers: int = 1, progress: bool = True, retry_skipped: bool = False,
             group: bool = True, analyse=None) -> ScanReport:
        """analyse: another engine for the per-photo work, e.g. facelab.distributed.ray_engine.scan_analyser()."""
        if group:
            grouping_params(self.model.name)  # a model without a measured grouping threshold: refused before scanning
        report = scan_folder(self, root, workers=workers, progress=progress, retry_skipped=retry_skipped,
                             analyse=analyse)
        if group:
            t0 = time.perf_counter()
            report.grouping = self.group()
            report.seconds += time.perf_counter() - t0
        return report

    def group(self, full: bool = False) -> dict[str, Any]:
        """Sort new faces into groups and named people (incremental), or regroup every unnamed face (full)."""
        with self._grouping_lock():
            return regroup(self.tables, grouping_params(self.model.name), full=full)

    # -- references --------------------------------------------------------------------------------------------
    def _resolve(self, ref: str) -> tuple[str, Any]:
        """("person", PersonRecord) or ("group", id) for a name or "group:N"; a clear error if it does not exist."""
        ref = str(ref).strip()
        if not ref:
            raise LibraryNotFound("an empty name")
        if ref.startswith(GROUP_PREFIX) or (ref.isdigit() and self.gallery.store.person(ref) is None):
            num = ref[len(GROUP_PREFIX):] if ref.startswith(GROUP_PREFIX) else ref
            if not num.isdigit():
                raise LibraryNotFound(f"{ref!r}: a group is written group:N (N a number)")
            gid = int(num)
            if not self.tables.read("SELECT 1 FROM library_faces WHERE group_id = ? LIMIT 1", (gid,)):
                raise LibraryNotFound(f"{self.location}: no group {gid} (it may have been named, merged or "
                                      f"regrouped since; `facelab library people` lists the groups)")
            return "group", gid
        person = self.gallery.store.person(ref)
        if person is None:
            raise LibraryNotFound(f"{self.location}: no person named {ref!r}")
        return "person", person

    def _face_ids(self, kind: str, what) -> list[int]:
        if kind == "group":
            return [r[0] for r in self.tables.read("SELECT id FROM library_faces WHERE group_id = ? ORDER BY id",
                                                   (what,))]
        return [r[0] for r in self.tables.read("SELECT library_faces.id FROM library_faces JOIN photos ON photos.id "
                                               "= library_faces.photo_id WHERE photos.person_id = ? ORDER BY "
                                               "library_faces.id", (what.id,))]

    def _need_face(self, face_id: int) -> FaceRow:
        face = self.tables.face(int(face_id))
        if face is None:
            raise LibraryNotFound(f"{self.location}: no face {face_id} (it was deleted, or never existed)")
        return face

    # -- curation ----------------------------------------------------------------------------------------------
    def name(self, ref: str, name: str) -> dict[str, Any]:
        """Name a group (it becomes a person of the gallery; an existing name takes the group's faces), or rename
        a person."""
        name = str(name).strip()
        if not name or name.startswith(GROUP_PREFIX) or name.isdigit():
            raise StoreError(f"{name!r} cannot be a person's name (empty, a number, or starting with "
                             f"{GROUP_PREFIX!r})")
        kind, what = self._resolve(ref)
        if kind == "person":
            self.gallery.rename_person(what.name, name)
            return {"renamed": what.name, "to": name}
        return {"named": f"{GROUP_PREFIX}{what}", "person": name, "faces": self._to_person(what, name)}

    def _to_person(self, group: int, name: str, faces: list[int] | None = None) -> int:
        tables = self.tables
        with tables.write() as cur:
            pid = self.tables.store.ensure_person(cur, name)
            ids = faces if faces is not None else [r[0] for r in cur.execute(
                "SELECT id FROM library_faces WHERE group_id = ?", (group,)).fetchall()]
            if not ids:
                raise LibraryNotFound(f"{self.location}: no group {group} (it changed meanwhile)")
            for face in ids:
                tables._make_photo(cur, face, pid)
            marks = ",".join("?" * len(ids))
            cur.execute(f"DELETE FROM library_rejects WHERE person_id = ? AND face_id IN ({marks})", (pid, *ids))
        return len(ids)

    def merge(self, src: str, dst: str) -> dict[str, Any]:
        """Move every face of SRC (a person or group) to DST and delete SRC."""
        (skind, swhat), (dkind, dwhat) = self._resolve(src), self._resolve(dst)
        if (skind, getattr(swhat, "id", swhat)) == (dkind, getattr(dwhat, "id", dwhat)):
            raise LibraryConflict(f"cannot merge {src!r} into itself")
        if skind == "group" and dkind == "group":
            with self.tables.write() as cur:
                n = cur.execute("UPDATE library_faces SET group_id = ? WHERE group_id = ?", (dwhat, swhat)).rowcount
        elif skind == "group":
            n = self._to_person(swhat, dwhat.name)
        elif dkind == "group":  # a named person merged into a group: the group takes the name
            n = self._to_person(dwhat, swhat.name)
        else:
            n = self.gallery.merge_people(swhat.name, dwhat.name)
        return {"merged": src, "into": dst, "faces": n}

    def split(self, ref: str, face_ids: list[int]) -> dict[str, Any]:
        """Take these faces out of a person or group into a new unnamed group."""
        kind, what = self._resolve(ref)
        members = set(self._face_ids(kind, what))
        faces = sorted({int(f) for f in face_ids})
        for f in faces:
            self._need_face(f)
            if f not in members:
                raise LibraryConflict(f"face {f} is not in {ref!r}")
        if len(faces) == len(members):
            raise LibraryConflict(f"splitting every face out of {ref!r} changes nothing; use merge or name")
        with self.tables.write() as cur:
            gid = int(cur.execute("SELECT COALESCE(MAX(group_id), 0) + 1 FROM library_faces").fetchone()[0])
            for f in faces:
                self.tables._unmake_photo(cur, f)
                cur.execute("UPDATE library_faces SET group_id = ?, grouped = 1 WHERE id = ?", (gid, f))
        return {"split": ref, "faces": faces, "new_group": f"{GROUP_PREFIX}{gid}"}

    def move(self, face_id: int, target: str) -> dict[str, Any]:
        """Move one face to a person (by name; created if new), a group, or "unsorted"."""
        face = self._need_face(face_id)
        if target == "unsorted":
            with self.tables.write() as cur:
                self.tables._unmake_photo(cur, face.id)
                cur.execute("UPDATE library_faces SET group_id = NULL, grouped = 1 WHERE id = ?", (face.id,))
            return {"face": face.id, "to": "unsorted"}
        try:
            kind, what = self._resolve(target)
        except LibraryNotFound:
            if target.startswith(GROUP_PREFIX) or target.isdigit():
                raise
            kind, what = "new person", target
        with self.tables.write() as cur:
            if kind == "group":
                self.tables._unmake_photo(cur, face.id)
                cur.execute("UPDATE library_faces SET group_id = ?, grouped = 1 WHERE id = ?", (what, face.id))
            else:
                name = what if kind == "new person" else what.name
                if face.person == name:
                    raise LibraryConflict(f"face {face.id} is already {name}'s")
                self.tables._unmake_photo(cur, face.id)
                pid = self.tables.store.ensure_person(cur, name)
                self.tables._make_photo(cur, face.id, pid)
                cur.execute("DELETE FROM library_rejects WHERE face_id = ? AND person_id = ?", (face.id, pid))
            self.tables.store.delete_empty_people(cur)
        return {"face": face.id, "to": target}

    def reject(self, face_id: int) -> dict[str, Any]:
        """"Not this person": the face leaves its person or group for unsorted, and never goes back there."""
        face = self._need_face(face_id)
        if face.person is None and face.group is None:
            raise LibraryConflict(f"face {face.id} is unsorted: it belongs to no person or group to reject")
        with self.tables.write() as cur:
            if face.person is not None:
                pid = cur.execute("SELECT person_id FROM photos JOIN library_faces ON photos.id = "
                                  "library_faces.photo_id WHERE library_faces.id = ?", (face.id,)).fetchone()[0]
                cur.execute("INSERT INTO library_rejects (face_id, person_id) VALUES (?, ?)", (face.id, pid))
                self.tables._unmake_photo(cur, face.id)
                self.tables.store.delete_empty_people(cur)
            else:
                others = [r[0] for r in cur.execute("SELECT id FROM library_faces WHERE group_id = ? AND id != ?",
                                                    (face.group, face.id)).fetchall()]
                cur.executemany("INSERT INTO library_rejects (face_id, other_face) VALUES (?, ?)",
                                [(face.id, o) for o in others])
            cur.execute("UPDATE library_faces SET group_id = NULL, grouped = 1 WHERE id = ?", (face.id,))
        return {"face": face.id, "rejected": face.person or f"{GROUP_PREFIX}{face.group}"}

    def forget(self, ref: str) -> dict[str, Any]:
        """Delete a person or group with every face, thumbnail and embedding (biometric data), everywhere."""
        kind, what = self._resolve(ref)
        if kind == "person":
            n = self.gallery.delete_person(what.name)  # library faces go with their photos (ON DELETE CASCADE)
        else:
            with self.tables.write() as cur:
                n = cur.execute("DELETE FROM library_faces WHERE group_id = ?", (what,)).rowcount
            self.tables.store.erase_residue()
        return {"forgotten": ref, "faces": n}

    # -- listing and search ------------------------------------------------------------------------------------
    def people(self, groups: bool = True, min_faces: int = 1) -> dict[str, Any]:
        """Named people and unnamed groups, each with its face count, photo count and a cover face (the largest
        face); and how many faces are unsorted."""
        t = self.tables
        size = f"COALESCE({t.store.json_number('lf.quality', 'size')}, 0)"  # the cover is the largest face
        named = t.read("SELECT people.name, COUNT(library_faces.id), COUNT(DISTINCT library_faces.source), "
                       "(SELECT lf.id FROM library_faces lf JOIN photos p ON p.id = lf.photo_id WHERE p.person_id = "
                       f"people.id ORDER BY {size} DESC, lf.id LIMIT 1), "
                       "(SELECT COUNT(*) FROM photos p WHERE p.person_id = people.id) "
                       "FROM people LEFT JOIN photos ON photos.person_id = people.id LEFT JOIN library_faces ON "
                       "library_faces.photo_id = photos.id GROUP BY people.id ORDER BY people.name")
        out: dict[str, Any] = {"people": [{"name": r[0], "faces": r[1], "photos": r[2], "cover_face": r[3],
                                           "gallery_photos": r[4]} for r in named if r[4] >= min_faces]}
        if groups:
            rows = t.read("SELECT group_id, COUNT(*), COUNT(DISTINCT source), (SELECT lf.id FROM library_faces lf "
                          f"WHERE lf.group_id = library_faces.group_id ORDER BY {size} DESC, lf.id LIMIT 1) "
                          "FROM library_faces WHERE group_id IS NOT NULL GROUP BY group_id "
                          "ORDER BY COUNT(*) DESC, group_id")
            out["groups"] = [{"group": f"{GROUP_PREFIX}{r[0]}", "id": r[0], "faces": r[1], "photos": r[2],
                              "cover_face": r[3]} for r in rows if r[1] >= min_faces]
        unsorted = t.read("SELECT COUNT(*) FROM library_faces WHERE group_id IS NULL AND photo_id IS NULL")
        out["unsorted_faces"] = unsorted[0][0]
        return out

    def faces_of(self, ref: str, limit: int | None = None) -> list[FaceRow]:
        if ref == "unsorted":
            return self.tables.faces("WHERE library_faces.group_id IS NULL AND library_faces.photo_id IS NULL",
                                     limit=limit)
        kind, what = self._resolve(ref)
        if kind == "group":
            return self.tables.faces("WHERE library_faces.group_id = ?", (what,), limit=limit)
        return self.tables.faces("WHERE photos.person_id = ?", (what.id,), limit=limit)

    def face(self, face_id: int) -> FaceRow:
        return self._need_face(face_id)

    def thumbnail(self, face_id: int) -> bytes:
        self._need_face(face_id)
        thumb = self.tables.thumb(face_id)
        if thumb is None:
            raise LibraryNotFound(f"{self.location}: face {face_id} has no thumbnail")
        return thumb

    def photos_of(self, ref: str) -> list[str]:
        return sorted({f.source for f in self.faces_of(ref)})

    def photos_with(self, with_: list[str], without: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Photos (paths) in which every person of `with_` appears and none of `without`."""
        if not with_:
            raise StoreError("name at least one person or group to look for")
        sets = [set(self.photos_of(r)) for r in with_]
        found = set.intersection(*sets)
        for r in without:
            found -= set(self.photos_of(r))
        return sorted(found)

    def export_album(self, ref: str, out_dir, mode: str = "symlink") -> dict[str, Any]:
        """An album of REF's photos: symlinks in OUT_DIR (named so two photos with one file name do not collide),
        or a JSON list (OUT_DIR is then the .json file)."""
        photos = self.photos_of(ref)
        out = Path(out_dir)
        if mode == "json":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"album": ref, "photos": photos}, indent=1))
            return {"album": ref, "photos": len(photos), "json": str(out)}
        if mode != "symlink":
            raise StoreError(f"unknown album format {mode!r} (symlink or json)")
        out.mkdir(parents=True, exist_ok=True)
        made = 0
        for i, src in enumerate(photos):
            link = out / f"{i:05d}_{Path(src).name}"
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(src, link)
            made += 1
        return {"album": ref, "photos": made, "folder": str(out)}

    def stats(self) -> dict[str, Any]:
        t = self.tables
        files = dict(t.read("SELECT status, COUNT(*) FROM library_files GROUP BY status"))
        skipped = dict(t.read("SELECT reason, COUNT(*) FROM library_files WHERE status = 'skipped' GROUP BY reason"))
        faces = t.read("SELECT COUNT(*), COUNT(photo_id), COUNT(group_id) FROM library_faces")[0]
        return {"library": self.location, "model": self.model.to_dict(), "files": sum(files.values()),
                "skipped_files": skipped, "faces": faces[0], "named_faces": faces[1] or 0,
                "grouped_faces": faces[2] or 0,
                "unsorted_faces": faces[0] - (faces[1] or 0) - (faces[2] or 0),
                "people": len(self.gallery.people()),
                "groups": t.read("SELECT COUNT(DISTINCT group_id) FROM library_faces")[0][0]}


__all__ = ["Library", "open_library", "ScanReport", "LibraryNotFound", "LibraryConflict"]
