"""The one check every embedding passes before a store keeps it, and the one reader of stored embedding bytes.

Search scores are dot products of unit vectors, so a single stored vector that is not one poisons every answer:
a norm of 1e6 makes every probe "that person, similarity 308756", a NaN makes a person unknowable and NaN reach
the JSON output. Every path into a store (enrolment, `add_photo`, `add_embeddings`, import; SQLite and PostgreSQL)
goes through `Store.add_photos`, and both backends call `checked_vector` there, so a bad vector is refused with
a one-line StoreError whichever way it came.
"""
from __future__ import annotations

import numpy as np

from ..errors import StoreError

# Embedders return float32 unit vectors (norm error ~1e-7; the fused model's two halves ~1e-6). A vector further
# than this from unit length was not made by the gallery's model, or was damaged on the way.
UNIT_NORM_TOLERANCE = 1e-3


def checked_vector(vector, model, where: str) -> np.ndarray:
    """`vector` as a float32 array of the model's dimension, or StoreError naming what is wrong with it.

    model: the gallery's ModelInfo (name, dim). where: what the vector belongs to, for the message."""
    try:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise StoreError(f"{where}: embedding is not a list of numbers") from None
    if len(vec) != model.dim:
        raise StoreError(f"{where}: embedding has {len(vec)} values, gallery expects {model.dim} ({model.name})")
    if not np.isfinite(vec).all():
        raise StoreError(f"{where}: embedding holds NaN or infinite values; refused")
    norm = float(np.linalg.norm(vec.astype(np.float64)))
    if abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
        raise StoreError(f"{where}: embedding has length {norm:.6g}, not 1 (facelab embeddings are unit vectors; "
                         f"this one was not made by {model.name} or was altered); refused")
    return vec


def stored_vector(blob: bytes, dim: int, where: str) -> np.ndarray:
    """A float32 vector read back from a store's bytes; a short or long blob is a StoreError, not a crash."""
    if blob is None or len(blob) != 4 * dim:
        size = "no" if blob is None else len(blob)
        raise StoreError(f"{where}: stored embedding is damaged ({size} bytes, expected {4 * dim}); "
                         f"remove the photo or restore the gallery from a backup")
    return np.frombuffer(blob, np.float32)


# Characters a person's name may not hold: control characters (newlines, escapes: they forge lines in logs and
# terminals), line/paragraph separators, and the bidirectional overrides and isolates that make a name display
# as another ("Trojan Source"). Joiners (U+200C/U+200D) stay allowed: Persian and Indic names need them.
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_NAME_LENGTH = 200


def checked_person_name(name, where: str = "") -> str:
    """`name` if it can name a person; otherwise StoreError saying why (the same rule for every store and route)."""
    import unicodedata

    prefix = f"{where}: " if where else ""
    if not isinstance(name, str) or not name.strip():
        raise StoreError(f"{prefix}a person's name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise StoreError(f"{prefix}a person's name is at most {MAX_NAME_LENGTH} characters")
    for ch in name:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
            raise StoreError(f"{prefix}a person's name cannot hold control or text-direction characters "
                             f"(U+{ord(ch):04X})")
    return name
