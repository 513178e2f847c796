"""Facial attributes: a small registry of analysers. Each name maps to a class (module:Class) whose
`run(rgb, faces)` fills face.attributes[name]; only the requested analysers are imported and load models.

A new attribute is one module with an `Analyser` subclass plus one line in REGISTRY.

Classifiers the user registered (`facelab models add RUN`, see user.py) are attributes too, named as their model
and run after the built-in ones; they are looked up in the user registry only when a name is not built in or
when all attributes are asked for.
"""
from __future__ import annotations

import importlib
from functools import cache

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


USER = "user:UserClassifier"


def user_names() -> list[str]:
    from .user import user_classifiers

    return list(user_classifiers(reserved=REGISTRY))


def available() -> list[str]:
    """Built-in attributes, then the registered user classifiers."""
    return [*REGISTRY, *user_names()]


def analyser_class(name: str):
    module, cls = REGISTRY.get(name, USER).split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def resolve(names) -> list[str]:
    """Requested names plus what they need: built-ins in registry order, then user classifiers in the order
    asked (all of them when names is None). Unknown names raise FacelabError."""
    from ..errors import FacelabError

    wanted = available() if names is None else list(dict.fromkeys(n.strip() for n in names if n.strip()))
    extra = [n for n in wanted if n not in REGISTRY]
    if names is not None and extra:
        users = user_names()
        unknown = [n for n in extra if n not in users]
        if unknown:
            raise FacelabError(f"unknown attribute(s) {', '.join(unknown)}; available: "
                               f"{', '.join([*REGISTRY, *users])}")
    todo = set(wanted)
    for n in wanted:
        if n in REGISTRY:
            todo.update(analyser_class(n).needs)
    return [n for n in REGISTRY if n in todo] + extra


@cache
def get_analyser(key: str, wanted: tuple[str, ...]):
    return analyser_class(wanted[0])(wanted)


def _user_key(name: str) -> str:
    """Cache key of a user classifier: its file's registered hash too, so a model replaced with
    `facelab models add --replace` (or another FACELAB_HOME) is loaded afresh by a long-running process."""
    from ..models.registry import get_model

    spec = get_model(name)
    return f"{USER}:{name}:{spec.origin}:{spec.sha256}"


def plan(names) -> list:
    """One analyser instance per class, each told which of its names to fill."""
    order = resolve(names)
    groups: dict[str, list[str]] = {}
    for n in order:
        groups.setdefault(REGISTRY[n] if n in REGISTRY else _user_key(n), []).append(n)
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
