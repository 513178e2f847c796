"""Embed every one of the 10,956 LFW images in ../shared/data/lfw with each shipped embedder (cached).

The all-pairs benchmarks (`far_table.py`: every cross-person pair, ~60 million; the photo-library clustering)
need one vector per image for sface, sface+flip, dlib_resnet and dlib_resnet+flip; fused vectors are rebuilt from
these with `FusedEmbedder.combine`. The stages and their cache files are those of `lfw_verify.py` (out/lfw_cache/),
so rows already computed for View 1 / View 2 are reused and this run only adds the missing images.

    .venv/bin/python benchmarks/lfw_all_images.py          # writes out/lfw_cache/all_images.npz

Output: names (Person/Person_NNNN.jpg), person (name), found (a face was detected), sface, sface_mirror,
dlib, dlib_mirror (unit vectors, float32), in the order of images_wanted.txt sorted.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lfw_cache import CACHE, LFW, detect_stage, dlib_mirror_stage, dlib_stage  # noqa: E402
from lfw_verify import pipeline_landmarks, sface_vectors  # noqa: E402

OUT = CACHE / "all_images.npz"


def all_names(root: Path = LFW) -> list[str]:
    return sorted((root / "images_wanted.txt").read_text().split())


def load(path: Path = OUT) -> dict[str, np.ndarray]:
    """The cached vectors; exits with the command to run when they are missing."""
    if not path.exists():
        sys.exit(f"no vectors at {path}; run .venv/bin/python benchmarks/lfw_all_images.py first")
    data = np.load(path, allow_pickle=False)
    return {k: data[k] for k in data.files}


def main() -> None:
    from facelab.pipeline import get_detector

    names = all_names()
    t0 = time.perf_counter()
    print(f"LFW: {len(names)} images", flush=True)
    det = detect_stage(names)
    sf, _ = sface_vectors(names, det, get_detector())
    landmarks = dict(zip(names, pipeline_landmarks(det, get_detector())[0]))
    dl = dlib_stage(names, landmarks)
    dm = dlib_mirror_stage(names, landmarks)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, names=np.array(names), person=np.array([n.split("/")[0] for n in names]),
             found=det["found"].astype(bool), sface=sf["rgb"].astype(np.float32),
             sface_mirror=sf["rgb_mirror"].astype(np.float32), dlib=dl["dlib"].astype(np.float32),
             dlib_mirror=dm["dlib_mirror"].astype(np.float32))
    print(f"wrote {OUT} ({len(names)} images, {int(det['found'].sum())} with a face) "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
