"""Embed (once) every image of the 158 LFW people with >= 10 images; cache under out/gallery/ (git-ignored).

The gallery benchmarks read this cache instead of re-embedding. Each image goes through facelab's own pipeline
(YuNet detection, main face, ArcFace alignment); SFace and dlib vectors are both kept, so the "fused" embedder's
vector can be rebuilt from them with the current fusion parameters (FusedEmbedder.combine).

    .venv/bin/python benchmarks/lfw_embeddings.py            # ~4,300 images
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = ROOT.parent / "shared" / "data" / "lfw"
CACHE = ROOT / "out" / "gallery" / "lfw_embeddings.npz"


def people_with(min_images: int = 10, lfw: Path = LFW) -> list[tuple[str, int]]:
    rows = [line.split("\t") for line in (lfw / "lfw-names.txt").read_text().splitlines() if line.strip()]
    return [(name, int(n)) for name, n in rows if int(n) >= min_images]


def image_path(name: str, number: int, lfw: Path = LFW) -> Path:
    return lfw / "images" / name / f"{name}_{number:04d}.jpg"


def load_cache(path: Path = CACHE) -> dict:
    if not path.exists():
        sys.exit(f"no embedding cache at {path}; run benchmarks/lfw_embeddings.py first")
    data = np.load(path, allow_pickle=False)
    return {k: data[k] for k in data.files}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit-people", type=int, default=None, help="first N people only (smoke test)")
    args = ap.parse_args()
    from facelab.images import load_image
    from facelab.pipeline import get_embedder, pick_main_face, shared_analysis

    analysis = shared_analysis()
    sface, dlib = get_embedder("sface"), get_embedder("dlib_resnet")
    people = people_with()[: args.limit_people]
    names, numbers, files, n_faces = [], [], [], []
    sface_vecs, dlib_vecs = [], []
    t0 = time.perf_counter()
    for pi, (name, count) in enumerate(people):
        for number in range(1, count + 1):
            path = image_path(name, number)
            rgb = load_image(path)
            faces = analysis.detect_rgb(rgb)
            names.append(name)
            numbers.append(number)
            files.append(f"{name}/{path.name}")
            n_faces.append(len(faces))
            if not faces:
                sface_vecs.append(np.zeros(128, np.float32))
                dlib_vecs.append(np.zeros(128, np.float32))
                continue
            face = pick_main_face(faces, rgb.shape)
            sface_vecs.append(sface.embed(rgb, [face])[0])
            dlib_vecs.append(dlib.embed(rgb, [face])[0])
        print(f"\r{pi + 1}/{len(people)} people, {len(files)} images, {time.perf_counter() - t0:.0f} s",
              end="", flush=True)
    print()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, name=np.array(names), number=np.array(numbers), files=np.array(files),
             n_faces=np.array(n_faces), sface=np.array(sface_vecs, np.float32),
             dlib_resnet=np.array(dlib_vecs, np.float32))
    print(f"wrote {CACHE}: {len(files)} images, {sum(1 for n in n_faces if n == 0)} without a face, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
