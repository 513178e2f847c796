"""Skin tone as the individual typology angle (ITA, Chardon et al. 1991) of the skin's colour in CIELAB.

ITA = atan((L* - 50) / b*) in degrees, measured on cheek and forehead patches of the aligned crop (mask-covered
cheeks are skipped when the mask attribute says so). It describes the *pixels* of this photo: lighting, white
balance, exposure, make-up and JPEG processing all move it, so the same person reads differently in two photos.
It is mapped to the five Unicode emoji skin-tone modifiers (Fitzpatrick-based) for the emoticon. It is a
colour measurement, not a guess at ethnicity or race, and facelab makes none.
"""
from __future__ import annotations

import numpy as np

from .base import Analyser, QualityFloor

# Patches in the 112x112 ArcFace-aligned crop (x0, y0, x1, y1): below each eye beside the nose, and mid-forehead.
CHEEK_PATCHES = ((26, 64, 42, 80), (70, 64, 86, 80))
FOREHEAD_PATCHES = ((44, 24, 68, 36),)
# ITA categories (Del Bino & Bernerd 2013) and the emoji modifier used for each.
CATEGORIES = (  # lower bound, name, modifier
    (55.0, "very light", "\U0001F3FB"),
    (41.0, "light", "\U0001F3FC"),
    (28.0, "intermediate", "\U0001F3FD"),
    (10.0, "tan", "\U0001F3FE"),
    (-30.0, "brown", "\U0001F3FF"),
    (-1e9, "dark", "\U0001F3FF"),
)


def skin_pixels(aligned: np.ndarray, cheeks: bool = True) -> np.ndarray:
    patches = (CHEEK_PATCHES if cheeks else ()) + FOREHEAD_PATCHES
    return np.concatenate([aligned[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in patches])


def measure(aligned: np.ndarray, cheeks: bool = True) -> dict:
    """ITA and colour of the skin patches. The middle 20-80 % of lightness is kept, which drops hair, shadow,
    eyebrows and specular highlights that fall in a patch."""
    import cv2

    pixels = skin_pixels(aligned, cheeks).astype(np.float32)[None] / 255.0
    lab = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[0]  # L 0..100, a/b about -127..127
    lo, hi = np.percentile(lab[:, 0], [20, 80])
    keep = (lab[:, 0] >= lo) & (lab[:, 0] <= hi)
    lab_kept, rgb_kept = lab[keep], pixels[0][keep]
    L, a, b = np.median(lab_kept, axis=0)
    ita = float(np.degrees(np.arctan2(L - 50.0, max(float(b), 1e-3))))
    name, modifier = next((n, m) for lower, n, m in CATEGORIES if ita > lower)
    colour = np.clip(np.median(rgb_kept, axis=0) * 255, 0, 255).astype(int)
    return {"ita": round(ita, 1), "category": name, "emoji_modifier": modifier,
            "lab": [round(float(L), 1), round(float(a), 1), round(float(b), 1)],
            "rgb": "#{:02x}{:02x}{:02x}".format(*colour), "patches": "cheeks+forehead" if cheeks else "forehead"}


class SkinTone(Analyser):
    names = ("skin_tone",)
    floor = QualityFloor(min_size=40.0, max_yaw=40.0)  # patches need ~8 px of cheek each

    def predict(self, rgb, faces):
        for face in faces:
            masked = face.attributes.get("mask", {}).get("value") in ("mask", "incorrect")
            result = measure(face.aligned, cheeks=not masked)
            result["value"] = result["category"]
            face.attributes["skin_tone"] = result
