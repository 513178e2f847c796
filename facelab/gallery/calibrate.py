"""The "unknown" threshold measured on the user's own gallery (`facelab gallery calibrate`).

How many strangers a gallery names as someone (FPIR, the false-positive identification rate) grows with the
number of people in it: the best of N impostor scores. A threshold measured on LFW's galleries is therefore
only a starting point; this module measures it on the gallery itself by leaving people out: each enrolled
person in turn plays a stranger, searched against everyone else (exactly: their own column is masked), and the
threshold is the score that names at most `fpir` of these strangers. Every person weighs the same, however many
photos they have (their photos share 1 between them), because people, not photos, are the independent units.

The result is stored in the gallery's metadata (key "open_set_calibration") and `identify` uses it by default,
saying so ("calibrated on this gallery, FPIR 1 %").
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FacelabError

if TYPE_CHECKING:  # pragma: no cover
    from . import Gallery

META_KEY = "open_set_calibration"
MIN_PEOPLE = 10            # never calibrate on fewer people, whatever the FPIR
MAX_PROBES_PER_PERSON = 5  # photos of one person searched as a stranger (more add little: they are alike)
RELIABLE_STRANGERS = 10    # people expected above the threshold for a steady estimate (fewer: a warning)
MAX_STRANGERS = 2000       # people searched as strangers in a big gallery (a random sample; the search is exact)


class CalibrationError(FacelabError):
    """A calibration that cannot be trusted or a bad request (too few people, FPIR outside (0, 1))."""

    exit_code = 2
    code = "calibration_error"


@dataclass
class Calibration:
    threshold: float
    fpir: float             # the requested rate
    fpir_measured: float    # the share of left-out people (person-weighted) named at `threshold`
    scoring: str
    people: int             # people in the gallery when it was calibrated
    probes: int             # photos searched as strangers
    model: str
    calibrated: str         # UTC time
    warning: str = ""       # set when the estimate rests on few people

    @property
    def source(self) -> str:
        return (f"calibrated on this gallery, FPIR {self.fpir * 100:g} % ({self.people} people, "
                f"leave-one-person-out, {self.calibrated[:10]})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "source": self.source}


def min_people(fpir: float) -> int:
    """At least 1/FPIR people (so that one stranger in 1/FPIR is a person, not a fraction), and MIN_PEOPLE."""
    return max(MIN_PEOPLE, math.ceil(1 / fpir - 1e-9))


def check_fpir(fpir: Any) -> float:
    try:
        value = float(fpir)
    except (TypeError, ValueError):
        raise CalibrationError(f"fpir must be a number between 0 and 1, got {fpir!r}") from None
    if not 0 < value < 1:  # NaN fails this too
        raise CalibrationError(f"fpir must be between 0 and 1 (exclusive), e.g. 0.01 for 1 %; got {fpir!r}")
    return value


def stranger_scores(vectors: np.ndarray, person: np.ndarray, scoring: str = "mean",
                    max_probes: int = MAX_PROBES_PER_PERSON, seed: int = 0, max_people: int = MAX_STRANGERS,
                    gallery_vectors: np.ndarray | None = None, gallery_person: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's best score against every person but its own: (scores, weights; a person's weights sum to 1).

    vectors/person: the gallery's photos (unit vectors) and person ids; up to `max_probes` photos per person are
    searched as strangers against the gallery without that person (leave-one-person-out). With gallery_vectors /
    gallery_person given, vectors are outside probes searched against that gallery instead (nothing masked).
    Scoring as identify's: "max" best photo, "mean" template (re-normalised mean), "both" their average."""
    from .identify import SCORINGS

    if scoring not in SCORINGS:
        raise CalibrationError(f"scoring must be one of {', '.join(SCORINGS)}")
    outside = gallery_vectors is not None
    g_vec = np.asarray(gallery_vectors if outside else vectors, np.float32)
    g_person = np.asarray(gallery_person if outside else person)
    ids, g_idx = np.unique(g_person, return_inverse=True)
    order = np.argsort(g_idx, kind="stable")
    g_sorted, g_idx_sorted = g_vec[order], g_idx[order]
    starts = np.r_[0, np.nonzero(np.diff(g_idx_sorted))[0] + 1]
    templates = np.add.reduceat(g_sorted, starts, axis=0)
    templates /= np.maximum(np.linalg.norm(templates, axis=1, keepdims=True), 1e-12)

    rng = np.random.default_rng(seed)
    person = np.asarray(person)
    probes = []
    candidates, p_idx = np.unique(person, return_inverse=True)
    p_order = np.argsort(p_idx, kind="stable")
    p_starts = np.r_[0, np.cumsum(np.bincount(p_idx, minlength=len(candidates)))]
    chosen = np.arange(len(candidates))
    if len(chosen) > max_people:
        chosen = rng.choice(chosen, max_people, replace=False)
    for c in chosen:
        rows = p_order[p_starts[c]:p_starts[c + 1]]
        probes.extend(rng.choice(rows, max_probes, replace=False) if len(rows) > max_probes else rows)
    probes = np.sort(np.array(probes, dtype=np.int64))
    counts = {p: c for p, c in zip(*np.unique(person[probes], return_counts=True))}
    weights = np.array([1.0 / counts[p] for p in person[probes]])
    own = np.searchsorted(ids, person[probes]) if not outside else None

    best = np.empty(len(probes), np.float32)
    block = int(max(1, min(256, 20_000_000 // max(len(g_sorted), 1))))  # keep each score block near 80 MB
    for b0 in range(0, len(probes), block):
        q = np.asarray(vectors[probes[b0:b0 + block]], np.float32)
        per_person = []
        if scoring in ("mean", "both"):
            per_person.append(q @ templates.T)
        if scoring in ("max", "both"):
            per_person.append(np.maximum.reduceat(q @ g_sorted.T, starts, axis=1))
        s = per_person[0] if len(per_person) == 1 else (per_person[0] + per_person[1]) / 2
        if own is not None:
            s[np.arange(len(q)), own[b0:b0 + block]] = -np.inf  # the probe's own person is left out
        best[b0:b0 + block] = s.max(axis=1)
    return best, weights


def threshold_for_fpir(scores: np.ndarray, weights: np.ndarray, fpir: float) -> tuple[float, float]:
    """The lowest 4-decimal threshold whose (weighted) share of scores >= it is <= fpir; and that share."""
    order = np.argsort(-scores)
    s, w = scores[order], weights[order] / weights.sum()
    share = np.cumsum(w)
    k = int(np.searchsorted(share, fpir, side="right"))  # s[:k] may pass; s[k] must not
    if k >= len(s):
        return float(np.floor(s[-1] * 1e4) / 1e4), 1.0
    t = math.ceil(float(s[k]) * 1e4) / 1e4
    if t <= float(s[k]):
        t += 1e-4
    t = round(t, 4)
    return t, float(w[s >= t].sum())


def measured_fpir(scores: np.ndarray, weights: np.ndarray, threshold: float) -> float:
    return float(weights[scores >= threshold].sum() / weights.sum())


def calibrate(gallery: Gallery, fpir: float = 0.01, scoring: str = "mean", dry_run: bool = False) -> Calibration:
    """Measure the open-set threshold on this gallery (leave-one-person-out) and store it in the gallery.

    Nothing is stored when the request is bad or the gallery has too few people (CalibrationError)."""
    fpir = check_fpir(fpir)
    from .identify import SCORINGS

    if scoring not in SCORINGS:
        raise CalibrationError(f"scoring must be one of {', '.join(SCORINGS)}")
    _, person, vectors = gallery.store.vectors()
    people = len(np.unique(person))
    need = min_people(fpir)
    if people < need:
        raise CalibrationError(f"{gallery.location}: {people} people; calibrating FPIR {fpir:g} needs at least {need} "
                               f"(each plays a stranger in turn; a higher --fpir needs fewer)")
    scores, weights = stranger_scores(vectors, person, scoring)
    threshold, share = threshold_for_fpir(scores, weights, fpir)
    warning = ""
    if people * fpir < RELIABLE_STRANGERS:
        # the threshold sits among the top people*fpir strangers: with one or two of them it moves a lot from one
        # gallery to the next (benchmarks/calibrate_gallery.py, LFW galleries of 100 people at FPIR 1 %: the FPIR
        # then measured on never-enrolled people ranged from 0.13x to 3.7x the requested; with 1,000 people from
        # 0.72x to 1.54x)
        warning = (f"only {people * fpir:.3g} of {people} people are expected above an FPIR {fpir:g} threshold: "
                   f"the rate reached on strangers may be several times off either way; "
                   f"{math.ceil(RELIABLE_STRANGERS / fpir)} people (or a higher --fpir) give a steadier one")
    result = Calibration(threshold=threshold, fpir=fpir, fpir_measured=round(share, 5), scoring=scoring,
                         people=people, probes=len(scores), model=gallery.model.name,
                         calibrated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), warning=warning)
    if not dry_run:
        stored = load(gallery) or {}
        stored = stored if isinstance(stored, dict) else {}
        stored[scoring] = asdict(result)
        gallery.store.set_meta(META_KEY, json.dumps(stored, sort_keys=True))
    return result


def load(gallery: Gallery) -> dict[str, Any] | None:
    """Every stored calibration, by scoring (None if the gallery was never calibrated)."""
    raw = gallery.store.get_meta(META_KEY)
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def stored_calibration(gallery: Gallery, scoring: str) -> Calibration | None:
    """The calibration stored for this scoring and the gallery's model, or None."""
    entry = (load(gallery) or {}).get(scoring)
    if not isinstance(entry, dict) or entry.get("model") != gallery.model.name:
        return None
    try:
        return Calibration(**{k: entry[k] for k in Calibration.__dataclass_fields__ if k in entry})
    except (KeyError, TypeError):
        return None
