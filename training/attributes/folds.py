"""Folds shared by the packers (pack_crops.py, pack_mask.py): every image of one group (an LFW person, a web photo,
a mask scene) is in one fold, so a model never meets at test time a person or scene it was trained on.

Eyewear: LFW's person-disjoint `fold` of glasses/lfw_eyewear.csv; web photos get a fold from a hash of their file
name. Mask: sha256 of the source image mod 5.
"""
from __future__ import annotations

import hashlib

import numpy as np

# task -> the extract_faces.py cache it reads and its classes (in label order)
SPECS = {
    "eyewear": {"cache": "eyewear", "classes": ["none", "eyeglasses", "sunglasses"]},
    "mask": {"cache": "masks", "classes": ["none", "mask", "incorrect"]},
}


def folds_for(name: str, data) -> np.ndarray:
    if name == "eyewear":
        folds = data["fold"].copy()
        web = folds < 0
        folds[web] = [int(hashlib.sha256(g.encode()).hexdigest(), 16) % 5 for g in data["group"][web]]
        return folds
    groups = data["group"]
    uniq = sorted(set(groups))
    fold_of = {g: int(hashlib.sha256(g.encode()).hexdigest(), 16) % 5 for g in uniq}
    return np.array([fold_of[g] for g in groups])
