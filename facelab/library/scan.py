"""`library scan`: every face of every photo under a folder into the library (incremental, resumable).

For each image file: ledger check (same size and mtime as last time: nothing to do), content hash (changed size
or mtime but the same bytes: only the ledger is refreshed), decode, detect every face, embed every face, keep a
small thumbnail. Each file is written in one transaction (its faces replace the file's earlier ones, with its
ledger row), so kill -9 loses at most the file in flight and a re-run neither loses nor doubles a face. Files
that vanished since the last scan of that folder lose their faces. Detection and embedding can run in worker
processes or on Ray actors (`analyse`, facelab.distributed.ray_engine.scan_analyser); both run `analyse_file`, and
the parent does all the writing.
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

from ..errors import FacelabError
from ..gallery.enrol import IMAGE_SUFFIXES, skipped_summary
from ..gallery.store import file_sha256
from ..gallery.workers import analysis as worker_analysis
from ..gallery.workers import run_jobs
from .store import NewFace

if TYPE_CHECKING:  # pragma: no cover
    pass

THUMB_SIDE = 112  # px, longer side of a face thumbnail


@dataclass
class ScanReport:
    root: str
    library: str
    files_added: int = 0
    faces_added: int = 0
    unchanged: int = 0
    changed: int = 0
    removed_files: int = 0
    removed_faces: int = 0
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0
    workers: int | None = 1  # None: as many Ray actors as the cluster's CPUs allow
    engine: str = "local"
    grouping: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        read = self.files_added + sum(len(v) for v in self.skipped.values())
        return {"root": self.root, "library": self.library, "files_added": self.files_added,
                "faces_added": self.faces_added, "unchanged": self.unchanged, "changed": self.changed,
                "removed_files": self.removed_files, "removed_faces": self.removed_faces,
                "skipped": {r: items for r, items in sorted(self.skipped.items())},
                "seconds": round(self.seconds, 2), "workers": self.workers, "engine": self.engine,
                "photos_per_second": round(read / self.seconds, 2) if self.seconds and read else None,
                "faces_per_second": round(self.faces_added / self.seconds, 2) if self.seconds and read else None,
                "grouping": self.grouping}

    def summary(self) -> str:
        parts = [f"{self.files_added} photos read, {self.faces_added} faces added"]
        if any(self.skipped.values()):
            parts.append(skipped_summary(self.skipped))
        if self.unchanged:
            parts.append(f"unchanged {self.unchanged}")
        if self.changed:
            parts.append(f"{self.changed} changed")
        if self.removed_files:
            parts.append(f"{self.removed_files} gone ({self.removed_faces} faces removed)")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


def walk_images(root: Path) -> list[Path]:
    """Every image file under ROOT (any depth, hidden files and folders left out), sorted."""
    if not root.is_dir():
        raise FacelabError(f"{root}: not a folder")
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if Path(fn).suffix.lower() in IMAGE_SUFFIXES and not fn.startswith("."):
                out.append(Path(dirpath) / fn)
    return out


# -- the per-file work (parent, worker processes or Ray actors) -------------------------------------------------
def analyse_file(job: tuple[str, str]) -> dict[str, Any]:
    """Every face of one photo, embedded, with a thumbnail. Never raises: a failure is a skip reason.
    Needs `gallery.workers.init_worker(model)` first in this process (a pool's initializer, a Ray actor's setup)."""
    from ..images import face_jpeg, load_image

    source, sha = job
    try:
        rgb = load_image(source)
    except FacelabError as err:
        return {"skip": ("unreadable", str(err))}
    except Exception as err:  # a decoder crash on a damaged file
        return {"skip": ("unreadable", f"{source}: {err}")}
    analysis = worker_analysis()
    try:
        faces = analysis.detect_rgb(rgb)
        if not faces:
            return {"skip": ("no face", "no face found")}
        analysis.embed_faces(rgb, faces)
    except FacelabError as err:
        return {"skip": ("failed", str(err))}
    out = []
    for f in faces:
        d = f.to_dict()
        try:
            thumb = face_jpeg(rgb, d["box"], max_side=THUMB_SIDE, quality=85)
        except FacelabError:
            thumb = None
        if f.embedding is None:  # embed_faces embeds every face it is given
            return {"skip": ("failed", f"{source}: face {f.index} was not embedded")}
        out.append(NewFace(source, sha, f.index, len(faces), d["box"], d.get("landmarks"), d.get("pose"),
                           d.get("quality"), float(f.score), f.embedding, thumb))
    return {"faces": out}


def _results(jobs: list, n_workers: int, model: str) -> Iterator[dict[str, Any]]:
    return run_jobs(analyse_file, jobs, n_workers, model, chunksize=2)


Analyser = Callable[[list, str], Iterator[dict[str, Any]]]


def scan_folder(library, root, workers: int = 1, progress: bool = True, retry_skipped: bool = False,
                analyse: Analyser | None = None) -> ScanReport:
    """analyse(jobs, model): yields analyse_file(job) for each job, in order, computed elsewhere (Ray:
    facelab.distributed.ray_engine.scan_analyser()); the default runs it here or in `workers` processes."""
    tables = library.tables
    root = Path(root).resolve()
    report = ScanReport(str(root), library.location, workers=workers)
    if analyse is not None:
        report.engine = getattr(analyse, "engine", "custom")
        report.workers = getattr(analyse, "workers", None)
    t0 = time.perf_counter()
    files = walk_images(root)
    ledger = tables.ledger()

    # 1. Files gone since the last scan of this folder.
    present = {str(p) for p in files}
    prefix = os.path.join(str(root), "")
    gone = [s for s in ledger if s.startswith(prefix) and s not in present]
    if gone:
        report.removed_faces = tables.forget_files(gone)
        report.removed_files = len(gone)

    # 2. What to read: new and changed files (skipped ones again on request).
    jobs, stats = [], {}
    for path in files:
        src = str(path)
        try:
            st = path.stat()
            old = ledger.get(src)
            if old and old[0] == st.st_size and abs(old[1] - st.st_mtime) < 1e-6 and \
                    not (retry_skipped and old[3] == "skipped"):
                report.unchanged += 1
                continue
            sha = file_sha256(path)
        except OSError as err:
            report.skipped["unreadable"].append({"file": src, "detail": str(err)})
            continue
        if old and old[2] == sha and not (retry_skipped and old[3] == "skipped"):
            # touched, same bytes: keep its faces, refresh the ledger row
            tables.touch_file(src, st.st_size, st.st_mtime)
            report.unchanged += 1
            continue
        if old:
            report.changed += 1
        stats[src] = (st.st_size, st.st_mtime)
        jobs.append((src, sha))

    # 3. Detect and embed (in workers or on Ray if asked); each file written here, in its own transaction.
    bar = _progress_bar(len(jobs), progress)
    try:
        results = analyse(jobs, library.model.name) if analyse else _results(jobs, workers, library.model.name)
        for (src, sha), res in zip(jobs, results):
            size, mtime = stats[src]
            if "skip" in res:
                reason, detail = res["skip"]
                tables.store_file(src, size, mtime, sha, [], skip=(reason, detail))
                report.skipped[reason].append({"file": src, "detail": detail})
            else:
                if tables.store_file(src, size, mtime, sha, res["faces"]) == "added":
                    report.files_added += 1
                    report.faces_added += len(res["faces"])
                else:
                    report.unchanged += 1  # another scan stored this very file meanwhile
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _progress_bar(total: int, wanted: bool):
    if not wanted or total == 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="photo", desc="scanning", file=sys.stderr, dynamic_ncols=True)
