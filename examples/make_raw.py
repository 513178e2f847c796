"""Lay out ../shared/data as RAW/<class>/<photo> symlink trees for `facelab dataset build` (data never copied).

    python examples/make_raw.py utkface-gender OUT          UTKFace subset: male/ female/
    python examples/make_raw.py lfw-gender OUT [--per-class N]   LFW gender labels, N random photos per class
    python examples/make_raw.py lfw-people OUT [--min-photos 20] [--max-photos K]   one class per LFW person
"""
from __future__ import annotations

import argparse
import csv
import os
import random
from pathlib import Path

DATA = Path(os.environ.get("FACELAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src.resolve())


def utkface_gender(out: Path, **_) -> int:
    n = 0
    with open(DATA / "utkface" / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            cls = {"0": "male", "1": "female"}[row["gender"]]
            src = DATA / "utkface" / row["file"]
            link(src, out / cls / src.name)
            n += 1
    return n


def lfw_gender(out: Path, per_class: int = 1000, seed: int = 0, **_) -> int:
    lfw = DATA / "lfw"
    lists = {c: set((lfw / f"gender_{c}.txt").read_text().split()) for c in ("female", "male")}
    both = lists["female"] & lists["male"]  # 5 files are in both published lists: ambiguous, left out
    n = 0
    for cls, names in lists.items():
        present = sorted(f for f in names - both if (lfw / "images" / f.rsplit("_", 1)[0] / f).exists())
        random.Random(seed).shuffle(present)
        for f in present[:per_class]:
            link(lfw / "images" / f.rsplit("_", 1)[0] / f, out / cls / f)
            n += 1
    return n


def lfw_people(out: Path, min_photos: int = 20, max_photos: int = 0, **_) -> int:
    images = DATA / "lfw" / "images"
    n = 0
    for person in sorted(p for p in images.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) < min_photos:
            continue
        for f in photos[:max_photos or None]:
            link(f, out / person.name / f.name)
            n += 1
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["utkface-gender", "lfw-gender", "lfw-people"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-class", type=int, default=1000)
    ap.add_argument("--min-photos", type=int, default=20)
    ap.add_argument("--max-photos", type=int, default=0)
    a = ap.parse_args()
    fn = {"utkface-gender": utkface_gender, "lfw-gender": lfw_gender, "lfw-people": lfw_people}[a.what]
    n = fn(a.out, per_class=a.per_class, min_photos=a.min_photos, max_photos=a.max_photos)
    print(f"{a.out}: {n} photos linked")
