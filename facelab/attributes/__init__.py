"""Facial attributes: a small registry of analysers. Each name maps to a class (module:Class) whose
`run(rgb, faces)` fills face.attributes[name]; only the requested analysers are imported and load models.

A new attribute is one module with an `Analyser` subclass plus one line in REGISTRY.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

import numpy as np

# name -> "module:Class", in the order they run (expression and skin tone read the mask, the emoticon reads all).
REGISTRY = {
    "age": "age_gender:AgeGender",
    "gender": "age_gender:AgeGender",
    "mask": "mask:Mask",
    "expression": "expression:Expression",
    "eyewear": "eyewear:Eyewear",
    "skin_tone": "skin_tone:SkinTone",
    "emoticon": "emoticon:Emoticon",
}


def available() -> list[str]:
    return list(REGISTRY)


def analyser_class(name: str):
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def resolve(names) -> list[str]:
    """Requested names plus what they need, in registry order. Unknown names raise ValueError."""
    from ..errors import FacelabError

    wanted = list(REGISTRY) if names is None else [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown:
        raise FacelabError(f"unknown attribute(s) {', '.join(unknown)}; available: {', '.join(REGISTRY)}")
    todo = set(wanted)
    for n in wanted:
        todo.update(analyser_class(n).needs)
    return [n for n in REGISTRY if n in todo]


@lru_cache(maxsize=None)
def get_analyser(key: str, wanted: tuple[str, ...]):
    return analyser_class(wanted[0])(wanted)


def plan(names) -> list:
    """One analyser instance per class, each told which of its names to fill."""
    order = resolve(names)
    groups: dict[str, list[str]] = {}
    for n in order:
        groups.setdefault(REGISTRY[n], []).append(n)
    return [get_analyser(key, tuple(ns)) for key, ns in groups.items()]


def analyse_faces(rgb: np.ndarray, faces, names=None, embed=None):
    """Fill attributes on already-detected faces. `embed(rgb, faces)` is called first if an analyser needs the
    identity embedding and the faces lack it."""
    analysers = plan(names)
    if embed is not None and any(a.uses_embedding for a in analysers):
        missing = [f for f in faces if f.embedding is None]
        if missing:
            embed(rgb, missing)
    for analyser in analysers:
        analyser.run(rgb, faces)
    return faces
