"""Pack the mask CNN's training inputs: 64x64 crops of the face box widened by 20 % (heads.box_crop), cut the
way the Kaggle crops were made, with labels and folds by source image; plus unmasked LFW/web faces as "none".

    python -m training.attributes.pack_mask [--data ../shared/data] [--cache out/attributes-cache] \
        [--out out/mask_crops.npz]

Mask crops: the annotated box (crops.csv), and, for evaluation as the pipeline sees it, the YuNet box mapped by
heads.annotation_box where extract_faces.py found the face (`--cache`/masks.npz; the annotated box otherwise).
Unmasked faces: every face of `--cache`/eyewear.npz (LFW + web photos, YuNet boxes) as "none", with its
person-disjoint fold. Folds: folds.folds_for (sha256 of the source image / the LFW fold, mod 5).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from facelab.attributes.heads import annotation_box, box_crop
from facelab.images import load_image

from ..paths import ATTRIBUTE_CACHE, REPO, SHARED_DATA
from .extract_faces import MASK
from .folds import folds_for


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(SHARED_DATA), help="the labelled data sets (default: %(default)s)")
    ap.add_argument("--cache", default=str(ATTRIBUTE_CACHE), help="extract_faces.py's output (default: %(default)s)")
    ap.add_argument("--out", default=str(REPO / "out" / "mask_crops.npz"), help="default: %(default)s")
    args = ap.parse_args(argv)
    root, cache = Path(args.data), Path(args.cache)
    rows = list(csv.DictReader(open(root / "masks/crops.csv")))
    found = np.load(cache / "masks.npz") if (cache / "masks.npz").is_file() else None
    x, x_yunet, labels = [], [], []
    for i, row in enumerate(rows):
        rgb = load_image(root / "masks" / row["file"])
        ox, oy = int(row["crop_xmin"]), int(row["crop_ymin"])
        box = [int(row["box_xmin"]) - ox, int(row["box_ymin"]) - oy, int(row["box_xmax"]) - ox,
               int(row["box_ymax"]) - oy]
        x.append(box_crop(rgb, box))
        if found is not None:
            assert found["path"][i].endswith(row["file"]), "masks.npz is not in crops.csv order"
        if found is not None and found["detected"][i]:
            x_yunet.append(box_crop(rgb, annotation_box(found["box"][i])))
        else:
            x_yunet.append(x[-1])
        labels.append(MASK[row["label"]])
    groups = np.array([r["source_image"] for r in rows])
    arrays = {"mask_x": np.stack(x), "mask_x_yunet": np.stack(x_yunet), "mask_label": np.array(labels, np.int64),
              "mask_fold": folds_for("mask", {"group": groups}).astype(np.int64),
              "mask_detected": found["detected"] if found is not None else np.zeros(len(rows), bool),
              # YuNet's face size (quality.size): the mask analyser answers from 24 px (its quality floor)
              "mask_size": found["size"] if found is not None else np.zeros(len(rows)),
              "mask_group": groups}
    if (cache / "eyewear.npz").is_file():
        eye = np.load(cache / "eyewear.npz")
        extra = []
        for path, b in zip(eye["path"], eye["box"]):
            extra.append(box_crop(load_image(path), annotation_box(b)))
        arrays.update(none_x=np.stack(extra), none_fold=folds_for("eyewear", eye).astype(np.int64),
                      none_source=eye["source"])
    for key in [k for k in arrays if k.endswith("_x") or k.endswith("_x_yunet")]:
        arrays[key + "_jpeg"], arrays[key + "_offsets"] = jpeg_pack(arrays.pop(key))
    np.savez(args.out, **arrays)
    print({k: v.shape for k, v in arrays.items()})


def jpeg_pack(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JPEG quality 95 bytes + offsets: small enough to carry to a training machine."""
    import cv2

    blobs = [cv2.imencode(".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
             for c in images]
    return np.frombuffer(b"".join(blobs), np.uint8), np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)


if __name__ == "__main__":
    main()
