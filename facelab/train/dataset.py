"""`facelab dataset build RAW OUT`: a folder of raw photos per class -> a clean dataset of aligned face crops.

Steps, in order, each dropping photos with a reason that ends up in the report:
1. read the photo (corrupt / unreadable files are dropped, never fatal);
2. detect faces and keep only photos with exactly one usable face (or the main one with `largest=True`);
3. filters on that face: min size, min detector score, max yaw/pitch/roll, min sharpness;
4. exact duplicates (same bytes) and near duplicates (aligned crops whose 64-bit difference hash is within
   `near_dup_bits`), also across classes (reported separately: a label conflict a human should look at);
5. photos a `dataset check --exclude` recorded in `excluded.json` are dropped ("label_suspect"), and classes
   with fewer than `min_per_class` photos left are dropped whole;
6. a stratified train/val/test split; group-disjoint (no person on both sides) when a group is given.

Steps 1-3 are the slow ones; each photo's outcome is appended to `progress.jsonl` as soon as it is known, so an
interrupted build resumes where it stopped. Steps 4-6 are re-run from that log in a second.
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import DatasetError

FORMAT = "facelab-dataset/1"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
SPLITS = ("train", "val", "test")
MANIFEST_FIELDS = ["file", "source", "class", "group", "split", "box_x", "box_y", "box_w", "box_h", "score",
                   "yaw", "pitch", "roll", "size", "sharpness", "faces_in_photo", "sha256", "dhash"]
# Drop reasons, in the order photos meet them (the benchmark reports the share dropped by each).
PHOTO_OPTIONS = ("size", "largest", "min_size", "min_score", "max_yaw", "max_pitch", "max_roll", "min_sharpness")
REASONS = ("unreadable", "no_face", "several_faces", "too_small", "low_score", "yaw", "pitch", "roll",
           "blurred", "label_suspect", "exact_duplicate", "near_duplicate", "class_too_small")
EXCLUDED = "excluded.json"  # photos a `dataset check --exclude` took out: {source: why}, honoured by every build


@dataclass
class BuildOptions:
    size: int = 112                   # crop side, pixels (the ArcFace template scaled)
    largest: bool = False             # several faces: keep the main one instead of dropping the photo
    min_size: float | None = 40.0     # pixels, shorter side of the face box
    min_score: float | None = 0.7
    max_yaw: float | None = 45.0      # degrees
    max_pitch: float | None = 40.0
    max_roll: float | None = 45.0
    min_sharpness: float | None = 10.0
    # Near duplicates: 64-bit dHashes within `near_dup_bits` AND 16x16 grey thumbnails correlated at
    # >= `near_dup_corr`. The hash alone is too coarse on aligned faces (all faces share the same layout):
    # on LFW it paired different people; the correlation check removes those (see README).
    near_dup_bits: int = 3
    near_dup_corr: float = 0.95
    min_per_class: int = 3
    val: float = 0.1
    test: float = 0.1
    group: str | None = None          # None | "subfolder" | a regex whose group 1 names the person
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BuildReport:
    out: Path
    photos: int = 0
    kept: int = 0
    dropped: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    empty_classes: list[str] = field(default_factory=list)
    cross_class_duplicates: list[dict[str, str]] = field(default_factory=list)
    resumed: int = 0
    processed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "photos": self.photos, "kept": self.kept, "resumed_from_log": self.resumed,
                "processed": self.processed, "seconds": round(self.seconds, 2),
                "photos_per_second": round(self.processed / self.seconds, 2) if self.processed else None,
                "dropped_counts": {r: len(self.dropped.get(r, [])) for r in REASONS if self.dropped.get(r)},
                "dropped": self.dropped, "classes": self.classes, "empty_classes": self.empty_classes,
                "cross_class_duplicates": self.cross_class_duplicates}


def list_raw(raw: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(class, photo path) for every image file under RAW/<class>/ (any depth), and the empty class folders."""
    if not raw.is_dir():
        raise DatasetError(f"{raw}: not a folder (expected one sub-folder of photos per class)")
    classes = sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{raw}: no class folders (expected RAW/<class>/<photo>)")
    items: list[tuple[str, Path]] = []
    empty: list[str] = []
    for cdir in classes:
        photos = sorted(p for p in cdir.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not photos:
            empty.append(cdir.name)
        items.extend((cdir.name, p) for p in photos)
    return items, empty


def group_of(path: Path, class_dir: Path, group: str | None) -> str:
    """The person a photo shows (for a group-disjoint split); '' when unknown (split photo by photo)."""
    if not group:
        return ""
    if group == "subfolder":
        rel = path.relative_to(class_dir)
        return rel.parts[0] if len(rel.parts) > 1 else ""
    m = re.search(group, path.name)
    return m.group(1) if m and m.groups() else (m.group(0) if m else "")


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash of a grey image: robust to resizing and recompression, not to a different photo."""
    import cv2

    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _filter_reason(face, opts: BuildOptions) -> tuple[str, str] | None:
    q, p = face.quality, face.pose
    if opts.min_size is not None and q.size < opts.min_size:
        return "too_small", f"face {q.size:.0f} px < {opts.min_size:g}"
    if opts.min_score is not None and face.score < opts.min_score:
        return "low_score", f"detector score {face.score:.2f} < {opts.min_score:g}"
    for name in ("yaw", "pitch", "roll"):
        limit = getattr(opts, f"max_{name}")
        if limit is not None and abs(getattr(p, name)) > limit:
            return name, f"{name} {getattr(p, name):+.0f} > {limit:g} degrees"
    if opts.min_sharpness is not None and q.sharpness < opts.min_sharpness:
        return "blurred", f"sharpness {q.sharpness:.0f} < {opts.min_sharpness:g}"
    return None


def process_photo(path: Path, opts: BuildOptions, analysis) -> tuple[dict[str, Any], np.ndarray | None]:
    """Detect, choose and filter the face of one photo. Returns (record, aligned crop or None)."""
    from ..align import align_face
    from ..errors import ImageError
    from ..images import load_image
    from ..pipeline import pick_main_face

    try:
        data = path.read_bytes()
        rgb = load_image(data)
    except (OSError, ImageError) as exc:
        return {"status": "unreadable", "detail": str(exc).replace("<bytes>", path.name)}, None
    rec: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
    faces = analysis.detect_rgb(rgb)
    if not faces:
        return {**rec, "status": "no_face", "detail": "no face found"}, None
    # Faces that fail the filters do not count as "several faces" (a blurred face in the background is fine).
    usable = [f for f in faces if _filter_reason(f, opts) is None]
    if len(usable) > 1 and not opts.largest:
        return {**rec, "status": "several_faces", "detail": f"{len(usable)} usable faces (use --largest)"}, None
    face = pick_main_face(usable or faces, rgb.shape)
    reason = _filter_reason(face, opts)
    if reason:
        return {**rec, "status": reason[0], "detail": reason[1]}, None
    pose, quality, aligned = face.pose, face.quality, face.aligned
    if pose is None or quality is None or aligned is None:  # detect_rgb measures all three on every face
        raise DatasetError(f"{path}: the detector gave a face without its pose, quality or aligned crop")
    crop = aligned if opts.size == aligned.shape[0] else align_face(rgb, face.landmarks, opts.size)
    x, y, w, h = face.box
    rec.update(status="kept", box_x=round(x, 1), box_y=round(y, 1), box_w=round(w, 1), box_h=round(h, 1),
               score=round(face.score, 4), yaw=round(pose.yaw, 1), pitch=round(pose.pitch, 1),
               roll=round(pose.roll, 1), size=round(quality.size, 1),
               sharpness=round(quality.sharpness, 1), faces_in_photo=len(faces),
               dhash=f"{dhash(crop.mean(axis=2).astype(np.uint8)):016x}")
    return rec, crop


def _crop_name(cls: str, path: Path, raw: Path) -> str:
    rel = str(path.relative_to(raw))
    return f"crops/{cls}/{path.stem}_{hashlib.sha1(rel.encode()).hexdigest()[:8]}.jpg"


def _read_log(log: Path) -> dict[str, dict[str, Any]]:
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interruption: that photo is redone
                continue
            done[rec["source"]] = rec
    return done


def build_dataset(raw: str | Path, out: str | Path, options: BuildOptions | None = None,
                  progress: Callable[[Iterable], Iterable] | None = None, analysis=None) -> BuildReport:
    """Build (or resume building) the dataset at `out` from `raw`. Returns the report (also written to disk)."""
    from ..images import save_image

    opts = options or BuildOptions()
    raw, out = Path(raw), Path(out)
    if not 0 <= opts.val < 1 or not 0 <= opts.test <= 1 or opts.val + opts.test > 1:
        raise DatasetError(f"split fractions val={opts.val} test={opts.test} must be in [0, 1] and sum to <= 1")
    if opts.size < 32:
        raise DatasetError(f"crop size {opts.size} is too small (>= 32)")
    items, empty = list_raw(raw)
    if not items:
        raise DatasetError(f"{raw}: no photos in any class folder")
    out.mkdir(parents=True, exist_ok=True)
    meta_file = out / "dataset.json"
    log_file = out / "progress.jsonl"
    if meta_file.exists() and log_file.exists():
        # The log holds per-photo decisions made with the detection/filter options: those must not change.
        # (Dedupe, class size and split options are re-applied on every build and may change.)
        old = json.loads(meta_file.read_text()).get("build_options", {})
        changed = [k for k in PHOTO_OPTIONS if old.get(k) != getattr(opts, k)]
        if changed:
            diffs = ", ".join(f"{k} {old.get(k)} -> {getattr(opts, k)}" for k in changed)
            raise DatasetError(f"{out} was built with other photo options ({diffs}); use another OUT folder "
                               f"or delete {log_file.name} to redo every photo")
    meta_file.write_text(json.dumps({"format": FORMAT, "raw": str(raw.resolve()), "crop_size": opts.size,
                                     "build_options": opts.to_dict(), "complete": False}, indent=2))
    done = _read_log(log_file)
    report = BuildReport(out=out, photos=len(items), empty_classes=empty)
    if analysis is None:
        from ..pipeline import shared_analysis

        analysis = shared_analysis()
    start = time.perf_counter()
    todo = [(c, p) for c, p in items if str(p.relative_to(raw)) not in done]
    report.resumed, report.processed = len(items) - len(todo), len(todo)
    with open(log_file, "a") as log:
        for cls, path in (progress(todo) if progress else todo):
            rel = str(path.relative_to(raw))
            rec, crop = process_photo(path, opts, analysis)
            rec.update(source=rel, **{"class": cls}, group=group_of(path, raw / cls, opts.group))
            if crop is not None:
                rec["file"] = _crop_name(cls, path, raw)
                (out / rec["file"]).parent.mkdir(parents=True, exist_ok=True)
                save_image(crop, out / rec["file"])  # written before the log line, so a logged crop exists
            log.write(json.dumps(rec) + "\n")
            log.flush()
            done[rel] = rec
    report.seconds = time.perf_counter() - start
    records = [done[str(p.relative_to(raw))] for _, p in items]
    _finish(records, opts, report, out)
    meta = json.loads(meta_file.read_text())
    meta.update(complete=True, classes=sorted(report.classes), counts=report.classes)
    meta_file.write_text(json.dumps(meta, indent=2))
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _finish(records: list[dict[str, Any]], opts: BuildOptions, report: BuildReport, out: Path) -> None:
    """Dedupe, drop small classes, split, and write the manifest (cheap; redone on every build)."""
    for r in records:
        if r["status"] != "kept":
            report.dropped.setdefault(r["status"], []).append({"source": r["source"], "detail": r.get("detail", "")})
    excluded = read_excluded(out)
    kept = []
    for r in records:
        if r["status"] == "kept" and r["source"] in excluded:
            report.dropped.setdefault("label_suspect", []).append({"source": r["source"],
                                                                    "detail": excluded[r["source"]]})
        elif r["status"] == "kept":
            kept.append(r)
    kept = _dedupe(kept, opts, report, out)
    by_class: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in kept:
        by_class[r["class"]].append(r)
    final: list[dict[str, Any]] = []
    group_sides: dict[str, str] = {}  # person -> the split all their photos go to, across classes
    for cls, rows in sorted(by_class.items()):
        if len(rows) < opts.min_per_class:
            for r in rows:
                report.dropped.setdefault("class_too_small", []).append(
                    {"source": r["source"], "detail": f"class {cls} has {len(rows)} < {opts.min_per_class} photos"})
            continue
        _split(rows, opts, group_sides)
        final.extend(rows)
        report.classes[cls] = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    report.kept = len(final)
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(final)


def read_excluded(out: Path) -> dict[str, str]:
    path = Path(out) / EXCLUDED
    return json.loads(path.read_text()) if path.exists() else {}


def exclude_photos(out: Path, why: dict[str, str]) -> None:
    """Record photos (by source) to leave out of the dataset; the next build (or rebuild) drops them."""
    excluded = {**read_excluded(out), **why}
    (Path(out) / EXCLUDED).write_text(json.dumps(excluded, indent=1, sort_keys=True))


def rebuild(out: Path) -> BuildReport:
    """Build again from the dataset's own raw folder and options: the log makes it a re-split (seconds)."""
    meta = json.loads((Path(out) / "dataset.json").read_text())
    raw = Path(meta["raw"])
    if not raw.is_dir():
        raise DatasetError(f"{out}: its raw folder {raw} is gone; cannot rebuild the split")
    return build_dataset(raw, out, BuildOptions(**meta["build_options"]))


def _thumb(path: Path) -> np.ndarray:
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise DatasetError(f"{path}: cannot read the crop (was the dataset folder changed while building?)")
    t = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    t -= t.mean()
    return t / max(float(np.linalg.norm(t)), 1e-6)


def _dedupe(kept: list[dict[str, Any]], opts: BuildOptions, report: BuildReport, root: Path) -> list[dict[str, Any]]:
    """Keep the first of each exact (sha256) or near (dHash + thumbnail) duplicate set, in the stable raw order."""
    thumbs: dict[str, np.ndarray] = {}

    def thumb(r):
        if r["file"] not in thumbs:
            thumbs[r["file"]] = _thumb(root / r["file"])
        return thumbs[r["file"]]

    out: list[dict[str, Any]] = []
    seen_sha: dict[str, dict[str, Any]] = {}
    hashes = np.zeros(len(kept), dtype=np.uint64)  # dHashes of out's records, in order
    n = 0

    def duplicate_of(r: dict[str, Any], h: np.uint64) -> tuple[str, dict[str, Any]] | None:
        """(why, the kept record r repeats), or None when r is new."""
        if r["sha256"] in seen_sha:
            return "exact_duplicate", seen_sha[r["sha256"]]
        if n and opts.near_dup_bits >= 0:
            close = np.flatnonzero(np.bitwise_count(hashes[:n] ^ h) <= opts.near_dup_bits)
            for j in close:
                if float(thumb(r) @ thumb(out[j])) >= opts.near_dup_corr:
                    return "near_duplicate", out[j]
        return None

    for r in kept:
        h = np.uint64(int(r["dhash"], 16))
        duplicate = duplicate_of(r, h)
        if duplicate is None:
            hashes[n] = h
            n += 1
            seen_sha[r["sha256"]] = r
            out.append(r)
            continue
        reason, first = duplicate
        report.dropped.setdefault(reason, []).append({"source": r["source"], "detail": f"same as {first['source']}"})
        if first["class"] != r["class"]:
            report.cross_class_duplicates.append({"kept": first["source"], "dropped": r["source"], "kind": reason})
    return out


def _split(rows: list[dict[str, Any]], opts: BuildOptions, group_sides: dict[str, str]) -> None:
    """Assign train/val/test within one class; a named group (person) goes to one side in every class."""
    rng = random.Random(f"{opts.seed}:{rows[0]['class']}")
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["group"] or f"#photo{i}"].append(r)
    keys = sorted(groups)
    rng.shuffle(keys)
    total = len(rows)
    # At least one photo in each requested split once a class has 3 photos (a class with no test photo is
    # silently unmeasured).
    n_test = max(round(total * opts.test), int(opts.test > 0 and total >= 3))
    n_val = max(round(total * opts.val), int(opts.val > 0 and total >= 3))
    if opts.test < 1 and total > 1:  # keep at least one training photo per class unless all go to test
        n_test = min(n_test, total - 1)
        n_val = min(n_val, total - 1 - n_test)
    counts: Counter[str] = Counter()
    for k in keys:
        side = group_sides.get(k) or ("test" if counts["test"] < n_test else "val" if counts["val"] < n_val
                                       else "train")
        if not k.startswith("#photo"):
            group_sides[k] = side
        for r in groups[k]:
            r["split"] = side
        counts[side] += len(groups[k])


def read_report_summary(report: dict[str, Any]) -> list[str]:
    """Human lines for the CLI."""
    lines = [f"{report['kept']} of {report['photos']} photos kept in {len(report['classes'])} classes "
             f"({report['processed']} processed now at {report['photos_per_second'] or 0:.1f} photos/s, "
             f"{report['resumed_from_log']} from a previous run)"]
    for reason, n in report["dropped_counts"].items():
        lines.append(f"  dropped {n:5d}  {reason.replace('_', ' ')}")
    if report["empty_classes"]:
        lines.append(f"  empty class folders (ignored): {', '.join(report['empty_classes'])}")
    if report["cross_class_duplicates"]:
        lines.append(f"  {len(report['cross_class_duplicates'])} duplicates across classes (label conflicts, "
                     f"see report.json)")
    return lines
