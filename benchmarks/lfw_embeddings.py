"""Embed (once) every image of the 158 LFW people with >= 10 images; cache under out/gallery/ (git-ignored).

The gallery benchmarks read this cache instead of re-embedding. Each image goes through facelab's own pipeline
(YuNet detection, main face, ArcFace alignment); SFace and dlib vectors are both kept, so the "fused" embedder's
vector can be rebuilt from them with the current fusion parameters (FusedEmbedder.combine).

    .venv/bin/python benchmarks/lfw_embeddings.py                  # ~4,300 images of the 158 people
    .venv/bin/python benchmarks/lfw_embeddings.py --impostors 1000  # first image of 1,000 people with < 10 images
    .venv/bin/python benchmarks/lfw_embeddings.py --face-recognition  # the face_recognition package's own encodings
    .venv/bin/python benchmarks/lfw_embeddings.py --centre-faces   # photos with several faces: the centred one
    .venv/bin/python benchmarks/lfw_embeddings.py --add-flip       # + "sface+flip" in each cache above (same faces)

LFW labels the person at the centre of each (deep-funneled, 250x250) photo. facelab's main-face rule
(`pick_main_face`: the largest, favouring the centre) picks another face in some photos with several faces;
`--centre-faces` also embeds, for those photos, the face nearest the centre, so the benchmark can report both.

Impostors are people who are never enrolled: the non-mated probes of the open-set figures. The face_recognition
run uses that package end to end (its HOG detector, its 5-point encodings, raw descriptors), for the comparison.
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
IMPOSTOR_CACHE = ROOT / "out" / "gallery" / "lfw_impostors.npz"
FR_CACHE = ROOT / "out" / "gallery" / "lfw_face_recognition.npz"
CENTRE_CACHE = ROOT / "out" / "gallery" / "lfw_centre_faces.npz"
FR_PER_PERSON, FR_IMPOSTORS = 5, 150


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
    ap.add_argument("--impostors", type=int, default=0, help="embed the first image of N people with < 10 images")
    ap.add_argument("--face-recognition", action="store_true", help="encode with the face_recognition package")
    ap.add_argument("--centre-faces", action="store_true", help="embed the centred face of multi-face photos")
    ap.add_argument("--add-flip", action="store_true",
                    help="add SFace flip-averaged vectors ('sface+flip') to the caches written above")
    args = ap.parse_args()
    if args.add_flip:
        return add_flip()
    if args.impostors:
        return embed_impostors(args.impostors)
    if args.face_recognition:
        return encode_face_recognition()
    if args.centre_faces:
        return embed_centre_faces()
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


def impostor_people(n: int, lfw: Path = LFW) -> list[str]:
    """People with fewer than 10 images whose first image is here, in a fixed pseudo-random order."""
    rows = [line.split("\t") for line in (lfw / "lfw-names.txt").read_text().splitlines() if line.strip()]
    names = [name for name, count in rows if int(count) < 10 and image_path(name, 1, lfw).exists()]
    order = np.random.default_rng(0).permutation(len(names))
    return [names[i] for i in order[:n]]


def embed_impostors(n: int) -> None:
    from facelab.images import load_image
    from facelab.pipeline import get_embedder, pick_main_face, shared_analysis

    analysis = shared_analysis()
    sface, dlib = get_embedder("sface"), get_embedder("dlib_resnet")
    names, s_vecs, d_vecs, n_faces = [], [], [], []
    t0 = time.perf_counter()
    for i, name in enumerate(impostor_people(n)):
        rgb = load_image(image_path(name, 1))
        faces = analysis.detect_rgb(rgb)
        n_faces.append(len(faces))
        names.append(name)
        if faces:
            face = pick_main_face(faces, rgb.shape)
            s_vecs.append(sface.embed(rgb, [face])[0])
            d_vecs.append(dlib.embed(rgb, [face])[0])
        else:
            s_vecs.append(np.zeros(128, np.float32))
            d_vecs.append(np.zeros(128, np.float32))
        print(f"\r{i + 1}/{n} impostors, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    print()
    np.savez(IMPOSTOR_CACHE, name=np.array(names), n_faces=np.array(n_faces), sface=np.array(s_vecs, np.float32),
             dlib_resnet=np.array(d_vecs, np.float32))
    print(f"wrote {IMPOSTOR_CACHE}")


def embed_centre_faces() -> None:
    from facelab.images import load_image
    from facelab.pipeline import get_embedder, shared_analysis

    cache = load_cache()
    analysis = shared_analysis()
    sface, dlib = get_embedder("sface"), get_embedder("dlib_resnet")
    idx = np.flatnonzero(cache["n_faces"] >= 2)
    s_vecs, d_vecs = [], []
    t0 = time.perf_counter()
    for n, i in enumerate(idx):
        rgb = load_image(LFW / "images" / str(cache["files"][i]))
        faces = analysis.detect_rgb(rgb)
        face = centre_face(faces, rgb.shape)
        s_vecs.append(sface.embed(rgb, [face])[0])
        d_vecs.append(dlib.embed(rgb, [face])[0])
        print(f"\r{n + 1}/{len(idx)} photos with several faces, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    print()
    np.savez(CENTRE_CACHE, index=idx, sface=np.array(s_vecs, np.float32), dlib_resnet=np.array(d_vecs, np.float32))
    print(f"wrote {CENTRE_CACHE}")


def encode_face_recognition() -> None:
    """face_recognition end to end: load_image_file, HOG face_locations, face_encodings (5-point, raw)."""
    import face_recognition

    people = people_with()
    # a subset (CPU time): each person's first FR_PER_PERSON images and FR_IMPOSTORS never-enrolled people
    rows = [(name, k) for name, count in people for k in range(1, min(count, FR_PER_PERSON) + 1)]
    rows += [(name, 1) for name in impostor_people(1000)[:FR_IMPOSTORS]]
    enc, found = [], []
    t0 = time.perf_counter()
    for i, (name, k) in enumerate(rows):
        img = face_recognition.load_image_file(image_path(name, k))
        boxes = face_recognition.face_locations(img)  # HOG, upsample 1: the package's defaults
        if boxes:
            # the largest face (an LFW photo's subject); face_recognition users usually take encodings[0]
            box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
            enc.append(face_recognition.face_encodings(img, [box])[0])
        else:
            enc.append(np.zeros(128))
        found.append(len(boxes))
        if i % 50 == 0:
            print(f"\r{i + 1}/{len(rows)}, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    print()
    np.savez(FR_CACHE, name=np.array([r[0] for r in rows]), number=np.array([r[1] for r in rows]),
             n_faces=np.array(found), encoding=np.array(enc, np.float64))
    print(f"wrote {FR_CACHE}: {len(rows)} images, {sum(1 for f in found if f == 0)} without a face, "
          f"{time.perf_counter() - t0:.0f} s")


def centre_face(faces, shape):
    """The face nearest the photo's centre: the person LFW labels."""
    h, w = shape[:2]
    return min(faces, key=lambda f: (f.center[0] - w / 2) ** 2 + (f.center[1] - h / 2) ** 2)


def add_flip() -> None:
    """Add "sface+flip" (SFace on the face and its mirror image, averaged: `embedders.flip_average`) to every
    cache present, for the very faces its other vectors came from (main face; centre face in the centre cache)."""
    from facelab.images import load_image
    from facelab.pipeline import get_embedder, pick_main_face, shared_analysis

    analysis, sface_flip = shared_analysis(), get_embedder("sface", flip=True)
    impostor_files = None
    if IMPOSTOR_CACHE.exists():
        impostor_files = [image_path(str(n), 1) for n in np.load(IMPOSTOR_CACHE)["name"]]
    main_files = [LFW / "images" / str(f) for f in load_cache()["files"]]
    jobs = [(CACHE, main_files, pick_main_face)]
    if impostor_files is not None:
        jobs.append((IMPOSTOR_CACHE, impostor_files, pick_main_face))
    if CENTRE_CACHE.exists():
        jobs.append((CENTRE_CACHE, [main_files[i] for i in np.load(CENTRE_CACHE)["index"]], centre_face))
    t0 = time.perf_counter()
    for path, files, choose in jobs:
        vecs = []
        for n, file in enumerate(files):
            rgb = load_image(file)
            faces = analysis.detect_rgb(rgb)
            vecs.append(sface_flip.embed(rgb, [choose(faces, rgb.shape)])[0] if faces else np.zeros(128, np.float32))
            print(f"\r{path.name}: {n + 1}/{len(files)}, {time.perf_counter() - t0:.0f} s", end="", flush=True)
        print()
        data = dict(np.load(path, allow_pickle=False))
        data["sface+flip"] = np.array(vecs, np.float32)
        np.savez(path, **data)
        print(f"wrote {path} (+ sface+flip)")


if __name__ == "__main__":
    main()
