"""The "unknown" threshold measured on the user's own gallery (`facelab gallery calibrate`).

How many strangers a gallery names as someone (FPIR, the false-positive identification rate) grows with the
number of people in it: the best of N impostor scores. A threshold measured on LFW's galleries is therefore
only a starting point; this module measures it on the gallery itself by leaving people out: each enrolled
person in turn plays a stranger, searched against everyone else (exactly: their own column is masked). Every
person weighs the same, however many photos they have (their photos share 1 between them), because people, not
photos, are the independent units.

Leaving people out alone cannot pin down a 1 % rate in a 100-person gallery: the threshold then rests on one
stranger's top score (LFW draws of 100 people: 0.13x to 3.7x the requested rate on never-enrolled people).
Every cross-person score in the gallery does not help by itself either (the FMR that matters, about FPIR/N,
is still passed by about one pair). What does is a curve with many strangers behind it: LFW's FPIR curve for a
gallery of N people (open_set.json "reference", benchmarks/calibrate_gallery.py), moved to this gallery by the
difference between the gallery's own cross-person scores and LFW's at a false-match rate both measure well
(about SHIFT_PAIRS of the gallery's person pairs pass it; galleries of one photo per person or of people more alike
than LFW's sit well away from LFW's curve). The rule:

    FPIR(t) = (S * FPIR_left_out(t) + K * FPIR_LFW,N(t - shift)) / (S + K)

with S the people left out in turn (all of them, up to MAX_STRANGERS): LFW's curve counts as K strangers, and K
depends on how much the gallery can say for itself, the count of its own strangers expected above the threshold,
S * FPIR (prior_strangers):

    K = K0 * min(1, c / (S * FPIR))      K0 = PRIOR_STRANGERS = 1,000, c = PRIOR_UNTIL = 3

At 1 %, a gallery of up to 300 people (at most 3 of its strangers above the threshold) leans on the curve with the
full K0 (100 people: 91 %); 1,000 people: K = 300, 23 %; 1,560: K = 192, 11 %. The threshold is the lowest that
keeps FPIR(t) <= the requested rate. K0 and c were chosen on development draws (galleries of even-index LFW
people, the curve made from odd-index people) and are reported on held-out ones (the other way round):
docs/thresholds.md. A model without an LFW curve (a user-trained one) gets leave-people-out alone.

Strangers the user supplies (`--strangers`: a folder of photos of people not in the gallery, or another
gallery of them) join the left-out people: each is searched against the whole gallery and weighs 1 like them. They
are the only way to know how often *this* gallery names *these* strangers; with about 2,000 of them S * FPIR is
large, K falls (to about 140 at 1 %) and the curve's say with it. Their vectors are used and dropped: only their
counts are stored.

The result is stored in the gallery's metadata (key "open_set_calibration", with the method and the counts) and
`identify` uses it by default, saying so ("calibrated on this gallery, FPIR 1 %").
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FacelabError

OPEN_SET_FILE = Path(__file__).with_name("open_set.json")

if TYPE_CHECKING:  # pragma: no cover
    from . import Gallery
    from .strangers import Strangers

META_KEY = "open_set_calibration"
MIN_PEOPLE = 10            # never calibrate on fewer people, whatever the FPIR
MAX_PROBES_PER_PERSON = 5  # photos of one person searched as a stranger (more add little: they are alike)
RELIABLE_STRANGERS = 10    # people expected above the threshold for a steady estimate (fewer: a warning)
MAX_STRANGERS = 2000       # people searched as strangers in a big gallery (a random sample; the search is exact)
PRIOR_STRANGERS = 1000     # K0: LFW's curve counts as this many strangers in a small gallery (see prior_strangers)
PRIOR_UNTIL = 3.0          # c: ... until S * FPIR > c of the gallery's own strangers are expected above the threshold
PAIR_COLUMNS = 5000        # people whose cross-person scores feed the shift in a bigger gallery (a random sample)
SHIFT_PAIRS = 50           # the shift is read at the FMR that about this many of the gallery's person pairs pass
GRID = 1e-4                # thresholds are 4-decimal cosines
METHOD = "leave-people-out + LFW curve"
METHOD_ALONE = "leave-people-out"
SUPPLIED = " + supplied strangers"  # added after "leave-people-out" when the user gave strangers
STRANGER_LABEL = "\x00stranger:"  # a loose stranger photo's person label: never a gallery person's name


class CalibrationError(FacelabError):
    """A bad calibration request (FPIR outside (0, 1) or not a number, an unknown scoring): exit 2, HTTP 400."""

    exit_code = 2
    code = "calibration_error"


class TooFewPeople(CalibrationError):
    """The gallery has too few people for the requested FPIR (nothing is changed): exit 6 (gallery), HTTP 400."""

    exit_code = 6


@dataclass
class Calibration:
    threshold: float
    fpir: float             # the requested rate
    fpir_measured: float    # the share of left-out (and supplied) strangers, person-weighted, named at `threshold`
    scoring: str
    people: int             # people in the gallery when it was calibrated
    probes: int             # photos searched as strangers
    model: str
    calibrated: str         # UTC time
    warning: str = ""       # set when the estimate rests on few people
    method: str = METHOD_ALONE
    strangers: int = 0      # people searched as strangers (S; all of them up to MAX_STRANGERS)
    comparisons: int = 0    # cross-person scores (probe photo x other person) behind the shift
    fpir_estimate: float | None = None     # the combined estimate at `threshold` (the rule above)
    prior_weight: float = 0.0              # K / (S + K): how much of the estimate is LFW's curve
    prior_strangers: float = 0.0           # K: how many strangers LFW's curve counted as (prior_strangers())
    shift: float | None = None             # this gallery's cross-person scores minus LFW's, at fmr_for_shift
    fmr_for_shift: float | None = None
    threshold_left_out: float | None = None  # the strangers (left out, supplied) alone
    threshold_lfw_curve: float | None = None  # LFW's shifted curve alone
    supplied_strangers: int = 0             # people among the strangers the user supplied (S counts them too)
    supplied_photos: int = 0                # their photos searched
    supplied_skipped: dict[str, int] = field(default_factory=dict)  # their photos skipped, by reason

    @property
    def source(self) -> str:
        return (f"calibrated on this gallery, FPIR {self.fpir * 100:g} % ({self.people} people, "
                f"{self.method}, {self.calibrated[:10]})")

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


class PersonScorer:
    """Scores of photos against every person of a gallery, as identify scores them: "max" best photo, "mean"
    template (re-normalised mean), "both" their average."""

    def __init__(self, vectors: np.ndarray, person: np.ndarray, scoring: str):
        g_vec = np.asarray(vectors, np.float32)
        self.ids, g_idx = np.unique(np.asarray(person), return_inverse=True)
        order = np.argsort(g_idx, kind="stable")
        self.g_sorted = g_vec[order]
        self.starts = np.r_[0, np.nonzero(np.diff(g_idx[order]))[0] + 1]
        templates = np.add.reduceat(self.g_sorted, self.starts, axis=0)
        self.templates = templates / np.maximum(np.linalg.norm(templates, axis=1, keepdims=True), 1e-12)
        self.scoring = scoring
        self.block = int(max(1, min(256, 20_000_000 // max(len(self.g_sorted), 1))))  # score blocks near 80 MB

    def own_column(self, names: np.ndarray) -> np.ndarray:
        """Each name's column, or -1 for a person not in the gallery."""
        pos = np.searchsorted(self.ids, names)
        hit = (pos < len(self.ids)) & (self.ids[np.minimum(pos, len(self.ids) - 1)] == names)
        return np.where(hit, pos, -1)

    def scores(self, q: np.ndarray, own: np.ndarray) -> np.ndarray:
        """(len(q), people) scores; a probe's own person (own >= 0) is left out (-inf)."""
        q = np.asarray(q, np.float32)
        per_person = []
        if self.scoring in ("mean", "both"):
            per_person.append(q @ self.templates.T)
        if self.scoring in ("max", "both"):
            per_person.append(np.maximum.reduceat(q @ self.g_sorted.T, self.starts, axis=1))
        s = per_person[0] if len(per_person) == 1 else (per_person[0] + per_person[1]) / 2
        rows = np.nonzero(own >= 0)[0]
        s[rows, own[rows]] = -np.inf
        return s


@dataclass
class StrangerScores:
    best: np.ndarray        # each probe's best score against every person but its own
    weights: np.ndarray     # a person's probes share 1
    probe_person: np.ndarray
    pair_hist: np.ndarray   # person-weighted histogram (GRID bins over [-1, 1]) of every probe x other-person score
    comparisons: int        # how many such scores

    @property
    def people(self) -> int:
        return len(np.unique(self.probe_person))

    def __add__(self, other: StrangerScores) -> StrangerScores:
        """Both sets of strangers (the gallery's left-out people and the supplied ones), each person weighing 1."""
        return StrangerScores(np.r_[self.best, other.best], np.r_[self.weights, other.weights],
                              np.r_[self.probe_person, other.probe_person], self.pair_hist + other.pair_hist,
                              self.comparisons + other.comparisons)

    def fmr_threshold(self, fmr: float) -> float:
        """The lowest grid cosine that at most `fmr` of the (person-weighted) cross-person scores reach."""
        above = np.cumsum(self.pair_hist[::-1])[::-1] / max(float(self.pair_hist.sum()), 1e-12)
        return grid_value(int(np.argmax(above <= fmr)))


def grid_value(i: int) -> float:
    return round(-1 + i * GRID, 4)


def score_strangers(vectors: np.ndarray, person: np.ndarray, scoring: str = "mean",
                    max_probes: int = MAX_PROBES_PER_PERSON, seed: int = 0, max_people: int = MAX_STRANGERS,
                    gallery_vectors: np.ndarray | None = None, gallery_person: np.ndarray | None = None
                    ) -> StrangerScores:
    """Search up to `max_probes` photos per person as strangers; keep each one's best score and a histogram of
    all its scores against the other people.

    vectors/person: the gallery's photos (unit vectors) and person ids, searched against the gallery without
    their own person (leave-one-person-out). With gallery_vectors / gallery_person given, vectors are outside
    probes searched against that gallery instead (a probe's own person, if enrolled there, is masked too).
    Scoring as identify's: "max" best photo, "mean" template (re-normalised mean), "both" their average."""
    from .identify import SCORINGS

    if scoring not in SCORINGS:
        raise CalibrationError(f"scoring must be one of {', '.join(SCORINGS)}")
    if gallery_vectors is not None and gallery_person is not None:
        scorer = PersonScorer(gallery_vectors, gallery_person, scoring)
    else:
        scorer = PersonScorer(vectors, person, scoring)

    rng = np.random.default_rng(seed)
    person = np.asarray(person)
    picked: list[int] = []
    candidates, p_idx = np.unique(person, return_inverse=True)
    p_order = np.argsort(p_idx, kind="stable")
    p_starts = np.r_[0, np.cumsum(np.bincount(p_idx, minlength=len(candidates)))]
    chosen = np.arange(len(candidates))
    if len(chosen) > max_people:
        chosen = rng.choice(chosen, max_people, replace=False)
    for c in chosen:
        rows = p_order[p_starts[c]:p_starts[c + 1]]
        picked.extend(rng.choice(rows, max_probes, replace=False) if len(rows) > max_probes else rows)
    probes = np.sort(np.array(picked, dtype=np.int64))
    counts = {p: c for p, c in zip(*np.unique(person[probes], return_counts=True))}
    weights = np.array([1.0 / counts[p] for p in person[probes]])
    own = scorer.own_column(person[probes])

    best = np.empty(len(probes), np.float32)
    bins = int(round(2 / GRID)) + 1
    hist = np.zeros(bins, np.float64)
    comparisons = 0
    block = scorer.block
    n_people = len(scorer.ids)
    # the shift reads the cross-person curve at FMR >= 0.001: a fixed sample of people is plenty in a big gallery
    columns = np.sort(rng.choice(n_people, PAIR_COLUMNS, replace=False)) if n_people > PAIR_COLUMNS else None
    for b0 in range(0, len(probes), block):
        s = scorer.scores(vectors[probes[b0:b0 + block]], own[b0:b0 + block])
        best[b0:b0 + block] = s.max(axis=1)
        if columns is not None:
            s = s[:, columns]
        valid = np.isfinite(s)
        w = np.broadcast_to(weights[b0:b0 + block, None], s.shape)[valid]
        idx = np.clip(((s[valid] + 1) / GRID).astype(np.int64), 0, bins - 1)
        hist += np.bincount(idx, weights=w, minlength=bins)
        comparisons += int(valid.sum())
    return StrangerScores(best, weights, person[probes], hist, comparisons)


def stranger_scores(vectors: np.ndarray, person: np.ndarray, scoring: str = "mean",
                    max_probes: int = MAX_PROBES_PER_PERSON, seed: int = 0, max_people: int = MAX_STRANGERS,
                    gallery_vectors: np.ndarray | None = None, gallery_person: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's best score against every person but its own: (scores, weights; a person's weights sum to 1).
    See score_strangers."""
    r = score_strangers(vectors, person, scoring, max_probes, seed, max_people, gallery_vectors, gallery_person)
    return r.best, r.weights


# -- LFW's curve (the prior) ------------------------------------------------------------------------------------
def lfw_curve(model: str, scoring: str, path: Path | None = None) -> dict[str, Any] | None:
    """LFW's reference curves for this model and scoring (open_set.json "reference"), or None when the model has
    none or its weights differ from those measured."""
    try:
        entry = json.loads((path or OPEN_SET_FILE).read_text())[model]
        from .store import model_info

        if path is None and entry.get("fingerprint") != model_info(model).fingerprint:
            return None
        return entry["reference"][scoring]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def lfw_fpir(curve: dict[str, Any], n: int, t: np.ndarray) -> np.ndarray:
    """LFW's FPIR at thresholds t for a gallery of n people: log-linear between the stored rates and sizes."""
    sizes = np.asarray(curve["gallery_sizes"], np.float64)
    log_rate = np.log(np.asarray(curve["fpir"], np.float64))      # decreasing
    rows = np.asarray(curve["fpir_threshold"], np.float64)          # per size: thresholds, increasing

    def at(k: int) -> np.ndarray:
        return np.interp(t, rows[k], log_rate)

    k = int(np.clip(np.searchsorted(sizes, n), 1, len(sizes) - 1))
    lo, hi = sizes[k - 1], sizes[k]
    a = float(np.clip((math.log(n) - math.log(lo)) / (math.log(hi) - math.log(lo)), 0.0, 1.0))
    return np.exp((1 - a) * at(k - 1) + a * at(k))


def lfw_fmr_threshold(curve: dict[str, Any], fmr: float) -> float:
    """LFW's cross-person score reached by a share `fmr` of its probe x other-person pairs."""
    levels = np.log(np.asarray(curve["fmr"], np.float64))[::-1]  # increasing
    return float(np.interp(math.log(fmr), levels, np.asarray(curve["fmr_threshold"], np.float64)[::-1]))


def shift_fmr(strangers: int) -> float:
    """The FMR at which the shift is read: about SHIFT_PAIRS of the gallery's person pairs pass it."""
    return min(0.1, max(1e-3, SHIFT_PAIRS / max(strangers * (strangers - 1), 1)))


def left_out_fpir(best: np.ndarray, weights: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The person-weighted share of left-out probes named at each threshold in t."""
    order = np.argsort(best)
    s, w = best[order], weights[order]
    above = np.r_[np.cumsum(w[::-1])[::-1], 0.0]
    return above[np.searchsorted(s, t, side="left")] / w.sum()


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


@dataclass
class Estimate:
    """The threshold the rule gives, with what went into it (see the module docstring)."""
    threshold: float
    fpir_estimate: float
    fpir_left_out: float     # the gallery's own leave-people-out share at `threshold`
    method: str
    prior_weight: float
    prior_strangers: float
    shift: float | None
    fmr_for_shift: float | None
    threshold_left_out: float
    threshold_lfw_curve: float | None


def lowest_threshold(t: np.ndarray, rate: np.ndarray, fpir: float) -> int:
    """Index of the lowest t whose rate is <= fpir (rates fall with t); the last one if none is."""
    ok = np.nonzero(rate <= fpir + 1e-12)[0]
    return int(ok[0]) if len(ok) else len(t) - 1


def prior_strangers(strangers: int, fpir: float, k0: float = PRIOR_STRANGERS, until: float = PRIOR_UNTIL) -> float:
    """K, how many strangers LFW's curve counts as: K0 while the gallery expects at most `until` (c) of its S
    left-out strangers above the threshold (S * FPIR <= c: its own estimate rests on a stranger or two), then
    K0 * c / (S * FPIR), so a gallery that can say more for itself leans less on LFW. K0 and c were chosen on
    development draws (benchmarks/calibrate_gallery.py); c = inf is a constant K."""
    return float(k0) * min(1.0, until / max(strangers * fpir, 1e-12))


def estimate_threshold(scores: StrangerScores, fpir: float, people: int, curve: dict[str, Any] | None,
                       k0: float = PRIOR_STRANGERS, until: float = PRIOR_UNTIL) -> Estimate:
    """The rule: the gallery's left-out strangers (S of them) and LFW's curve for `people`, moved by the shift,
    counting as K = prior_strangers(S, fpir, k0, until); the lowest 4-decimal threshold whose combined FPIR is
    <= fpir. k0 = 0 (or no curve): leave-people-out alone."""
    t = np.round(np.arange(-1.0, 1.0 + GRID / 2, GRID), 4)
    own = left_out_fpir(scores.best, scores.weights, t)
    i_own = lowest_threshold(t, own, fpir)
    if curve is None or k0 <= 0:
        return Estimate(float(t[i_own]), float(own[i_own]), float(own[i_own]), METHOD_ALONE, 0.0, 0.0, None, None,
                        float(t[i_own]), None)
    s = scores.people
    k = prior_strangers(s, fpir, k0, until)
    fmr = shift_fmr(s)
    shift = round(scores.fmr_threshold(fmr) - lfw_fmr_threshold(curve, fmr), 4)
    lfw = lfw_fpir(curve, people, t - shift)
    combined = (s * own + k * lfw) / (s + k)
    i = lowest_threshold(t, combined, fpir)
    return Estimate(float(t[i]), float(combined[i]), float(own[i]), METHOD, round(k / (s + k), 4), round(k, 2),
                    shift, fmr, float(t[i_own]), float(t[lowest_threshold(t, lfw, fpir)]))


def calibrate(gallery: Gallery, fpir: float = 0.01, scoring: str = "mean", dry_run: bool = False,
              strangers: Strangers | None = None) -> Calibration:
    """Measure the open-set threshold on this gallery (the rule above) and store it in the gallery.

    strangers: people not in the gallery (strangers.load_strangers), searched against all of it next to the
    left-out people. Nothing is stored when the request is bad (CalibrationError) or there are too few people
    (TooFewPeople)."""
    fpir = check_fpir(fpir)
    from .identify import SCORINGS

    if scoring not in SCORINGS:
        raise CalibrationError(f"scoring must be one of {', '.join(SCORINGS)}")
    _, person, vectors = gallery.store.vectors()
    people = len(np.unique(person))
    supplied = strangers.people if strangers is not None else 0
    need = min_people(fpir)
    if people + supplied < need or people < 2:
        raise TooFewPeople(f"{gallery.location}: {people} people" + (f" and {supplied} supplied strangers" if
                                                                   supplied else "") +
                           f"; calibrating FPIR {fpir:g} needs at least {need} (each plays a stranger in turn; "
                           f"a higher --fpir or more people with --strangers need fewer)")
    scores = score_strangers(vectors, person, scoring)
    if strangers is not None:
        scores = scores + score_strangers(strangers.vectors, strangers.person, scoring, max_people=10 ** 9,
                                          gallery_vectors=vectors, gallery_person=person)
    curve = lfw_curve(gallery.model.name, scoring)
    est = estimate_threshold(scores, fpir, people, curve)
    if supplied:
        est.method = est.method.replace(METHOD_ALONE, METHOD_ALONE + SUPPLIED, 1)
    warning = ""
    if curve is None:
        warning = (f"no LFW curve for model {gallery.model.name!r}: the threshold rests on this gallery's "
                   f"left-out people" + (" and the supplied strangers" if supplied else "") + " alone")
    if strangers is not None and strangers.same_name:
        shown = ", ".join(strangers.same_name[:3]) + (" ..." if len(strangers.same_name) > 3 else "")
        warning = "; ".join(filter(None, [warning, (
            f"{len(strangers.same_name)} of the supplied strangers have the name of someone in the gallery "
            f"({shown}): they were searched without that person, as a left-out person is")]))
    if scores.people * fpir < RELIABLE_STRANGERS:
        # about people*fpir left-out strangers pass the threshold: with one or two of them it moves a lot from one
        # gallery to the next (benchmarks/calibrate_gallery.py), so LFW's curve carries most of the estimate
        lean = (f"the threshold leans on LFW's curve ({est.prior_weight:.0%} of the estimate, moved by "
                f"{est.shift:+.4f} to this gallery's scores)" if curve is not None else
                "the rate reached on strangers may be several times off either way")
        warning = "; ".join(filter(None, [warning, (
            f"only {scores.people * fpir:.3g} of {scores.people} people are expected above an FPIR {fpir:g} "
            f"threshold: {lean}; {math.ceil(RELIABLE_STRANGERS / fpir)} people (more in the gallery or as "
            f"--strangers, or a higher --fpir) give a steadier one")]))
    result = Calibration(threshold=est.threshold, fpir=fpir, fpir_measured=round(est.fpir_left_out, 5),
                         scoring=scoring, people=people, probes=len(scores.best), model=gallery.model.name,
                         calibrated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), warning=warning,
                         method=est.method, strangers=scores.people, comparisons=scores.comparisons,
                         fpir_estimate=round(est.fpir_estimate, 5), prior_weight=est.prior_weight,
                         prior_strangers=est.prior_strangers, shift=est.shift,
                         fmr_for_shift=None if est.fmr_for_shift is None else float(f"{est.fmr_for_shift:.3g}"),
                         threshold_left_out=est.threshold_left_out, threshold_lfw_curve=est.threshold_lfw_curve,
                         supplied_strangers=supplied, supplied_photos=strangers.photos if strangers else 0,
                         supplied_skipped={r: len(v) for r, v in strangers.skipped.items() if v} if strangers else {})
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
