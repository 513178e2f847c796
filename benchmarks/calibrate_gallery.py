"""Does `facelab gallery calibrate` keep its promise? Requested FPIR vs FPIR measured on never-enrolled people.

    .venv/bin/python benchmarks/calibrate_gallery.py [--models sface,...] [--draws 20] [--no-write] [--calibrate-only]

LFW galleries (vectors from out/lfw_cache/all_images.npz, facelab's pipeline; no re-detection), each person enrolled
with up to 10 photos, calibrated exactly as `Gallery.calibrate` does (facelab.gallery.calibrate: every person left
out in turn plays a stranger, up to 5 of their photos searched, each person weighing 1; combined with LFW's curve
counting as K = K0 * min(1, c / (S * FPIR)) strangers). The threshold is then tried on people the gallery never saw
(up to 5 photos each, each person weighing 1). Target: measured FPIR within a factor 1.5 of the requested.

Development and report are kept apart by person: LFW's people sorted by name, even index = development, odd =
report. The rule's K0 and c (PRIOR_STRANGERS, PRIOR_UNTIL) are chosen on development draws: galleries of 100, 300
and 700 even-index people (plain), 100 (women only), 100 and 300 (one photo per person: a gallery unlike LFW's
curve), strangers the other even-index people, LFW's curve made from odd-index people only. The report draws swap
the halves: galleries of 100 odd-index people (strangers: other odd-index people; curve: even-index people only),
then 1,000 and all people with >= 2 photos (strangers: every other LFW person; curve still even-index people only,
who now overlap the gallery), at FPIR 1 % and, where 1/FPIR people allow, 0.1 %.

It also writes what the library ships in facelab/gallery/open_set.json, per model and scoring:
- "reference": LFW's curves made from ALL its people: the FPIR of a gallery of N LFW people (N from 10 to
  1,000,000; the exact expectation over random N-person galleries drawn from the people with >= 2 photos,
  hypergeometric, binomial beyond them) and the cross-person false-match curve (probe photo x other person);
- identify's default "unknown" threshold, derived as the 1:1 default is, from many strangers: the gallery of all
  people with >= 2 photos (up to 5 photos each), the threshold that names 1 % of the never-enrolled one-photo
  people.
Writes benchmarks/results/calibrate_gallery.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from far_table import embedder_vectors, load_vectors, sig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "calibrate_gallery.json"
OPEN_SET = ROOT / "facelab" / "gallery" / "open_set.json"
FPIR = 0.01
ENROL_PHOTOS = 10
DEFAULT_MODELS = "sface,sface+flip,dlib_resnet,dlib_resnet+flip,fused,fused+flip"


def photos_of(person: np.ndarray) -> dict[str, np.ndarray]:
    names, inverse = np.unique(person, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(inverse))]
    return {n: order[starts[i]:starts[i + 1]] for i, n in enumerate(names)}


def fpir_interval(scores: np.ndarray, weights: np.ndarray, person: np.ndarray, threshold: float, boots: int = 500,
                  seed: int = 3) -> list[float]:
    """95 % bootstrap interval over the stranger people of the FPIR at `threshold`."""
    rng = np.random.default_rng(seed)
    ids, inv = np.unique(person, return_inverse=True)
    hit_w = np.bincount(inv, weights=weights * (scores >= threshold), minlength=len(ids))
    all_w = np.bincount(inv, weights=weights, minlength=len(ids))
    out = []
    for _ in range(boots):
        m = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
        out.append((m @ hit_w) / (m @ all_w))
    return [sig(v) for v in np.percentile(out, [2.5, 97.5])]


# -- LFW's curve (what calibrate leans on in a small gallery) ------------------------------------------------------
SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 1_000_000)
FPIR_LEVELS = np.logspace(np.log10(0.5), -5, 37)
FMR_LEVELS = np.logspace(-1, -4, 31)


def no_hit_probability(c: np.ndarray, m: np.ndarray, n: int) -> np.ndarray:
    """P(none of c 'hit' people among m is drawn when n of the m are drawn): hypergeometric, binomial for n > m."""
    from scipy.special import gammaln

    c, m = c.astype(np.float64), np.broadcast_to(m.astype(np.float64), c.shape)
    out = np.zeros_like(c)
    if n > m.min():
        return (1 - c / m) ** n
    ok = c <= m - n
    out[ok] = np.exp(gammaln(m - c + 1) - gammaln(m - c - n + 1) - gammaln(m + 1) + gammaln(m - n + 1))[ok]
    return out


def reference_curve(x: np.ndarray, person: np.ndarray, by_person: dict, people: list[str], scoring: str) -> dict:
    """LFW's curves from `people`: every one searched (up to 5 photos) against the templates of those with >= 2
    photos (up to ENROL_PHOTOS each), their own left out; the FPIR of an N-person gallery drawn from them at each
    threshold, and the thresholds of the cross-person false-match curve."""
    from facelab.gallery.calibrate import MAX_PROBES_PER_PERSON, PersonScorer, score_strangers

    enrolled = [p for p in people if len(by_person[p]) >= 2]
    g_rows = np.concatenate([by_person[p][:ENROL_PHOTOS] for p in enrolled])
    p_rows = np.concatenate([by_person[p] for p in people])
    found = score_strangers(x[p_rows], person[p_rows], scoring, max_people=10 ** 9, seed=7,
                            gallery_vectors=x[g_rows], gallery_person=person[g_rows])
    # per probe: how many gallery people score >= t, on a 0.0005 grid
    scorer = PersonScorer(x[g_rows], person[g_rows], scoring)
    rng = np.random.default_rng(7)
    probes = np.concatenate([rng.permutation(by_person[p])[:MAX_PROBES_PER_PERSON] for p in people])
    weights = np.concatenate([np.full(min(len(by_person[p]), MAX_PROBES_PER_PERSON),
                                      1 / min(len(by_person[p]), MAX_PROBES_PER_PERSON)) for p in people])
    own = scorer.own_column(person[probes])
    lo = found.fmr_threshold(0.3)  # FPIR 0.5 in a 10-person gallery needs no lower threshold than this
    grid = np.round(np.arange(lo, 1.00001, 0.0005), 4)
    counts = np.empty((len(probes), len(grid)), np.int32)
    for b0 in range(0, len(probes), scorer.block):
        s = np.sort(scorer.scores(x[probes[b0:b0 + scorer.block]], own[b0:b0 + scorer.block]), axis=1)
        counts[b0:b0 + len(s)] = s.shape[1] - np.stack([np.searchsorted(row, grid) for row in s])
    m = np.where(own >= 0, len(enrolled) - 1, len(enrolled))[:, None]
    rows = []
    for n in SIZES:
        fpir = ((1 - no_hit_probability(counts, m, n)) * weights[:, None]).sum(0) / weights.sum()
        rows.append([float(grid[min(int(np.argmax(fpir <= lv)) if (fpir <= lv).any() else len(grid) - 1,
                                    len(grid) - 1)]) for lv in FPIR_LEVELS])
    return {"gallery_sizes": list(SIZES), "fpir": [sig(v, 4) for v in FPIR_LEVELS], "fpir_threshold": rows,
            "fmr": [sig(v, 4) for v in FMR_LEVELS],
            "fmr_threshold": [found.fmr_threshold(float(v)) for v in FMR_LEVELS],
            "people": len(people), "gallery_people": len(enrolled), "probes": int(len(probes)),
            "comparisons": found.comparisons}


# -- galleries calibrated and tried on strangers ----------------------------------------------------------------
def stranger_fpir(x, person, by_person, g_rows, strangers, threshold_rows, scoring, seed):
    """FPIR measured on never-enrolled people (up to 5 photos each, each weighing 1) at each threshold."""
    from facelab.gallery.calibrate import MAX_PROBES_PER_PERSON, score_strangers

    rng = np.random.default_rng(1000 + seed)
    probe_rows = np.concatenate([rng.permutation(by_person[p])[:MAX_PROBES_PER_PERSON] for p in strangers])
    out = score_strangers(x[probe_rows], person[probe_rows], scoring, max_people=10 ** 9,
                          gallery_vectors=x[g_rows], gallery_person=person[g_rows])
    return out, [float((out.weights * (out.best >= t)).sum() / out.weights.sum()) for t in threshold_rows]


SUPPLIED_LABEL = " + supplied strangers"
ORACLE = "oracle: half the test strangers"


def one_gallery(x, person, by_person, enrolled, strangers, curve, fpirs, ks, seed, enrol=ENROL_PHOTOS,
                scoring="mean", supplied: list[str] | None = None) -> list[dict]:
    """Calibrate one gallery (each K, each FPIR; with `supplied` stranger people also each K with them, as
    `calibrate --strangers` does) and measure every threshold on the never-enrolled `strangers`. Each row also
    carries the measurement's own 95 % interval (bootstrap over the stranger people), and an ORACLE row shows
    what the best threshold there is reaches through that noise: set on half the test strangers (by person),
    measured on the other half."""
    from facelab.gallery.calibrate import estimate_threshold, score_strangers, threshold_for_fpir

    g_rows = np.concatenate([by_person[p][:enrol] for p in enrolled])
    t0 = time.perf_counter()
    own = score_strangers(x[g_rows], person[g_rows], scoring, seed=seed)
    took = time.perf_counter() - t0
    outside = None
    if supplied:
        s_rows = np.concatenate([np.random.default_rng(2000 + seed).permutation(by_person[p])[:5] for p in supplied])
        outside = score_strangers(x[s_rows], person[s_rows], scoring, max_people=10 ** 9,
                                  gallery_vectors=x[g_rows], gallery_person=person[g_rows])
    rows = []
    for fpir in fpirs:
        for k in ks:
            k0, until = (0, math.inf) if k == 0 else (10 ** 9, math.inf) if k == "curve" else k
            for scores, label in ((own, rule_label(k)), (own + outside if outside else None,
                                                         rule_label(k) + SUPPLIED_LABEL)):
                if scores is None:
                    continue
                est = estimate_threshold(scores, fpir, len(enrolled), curve, k0=k0, until=until)
                rows.append({"fpir_requested": fpir, "k": label, "threshold": est.threshold, "method": est.method,
                             "shift": est.shift, "prior_weight": est.prior_weight,
                             "prior_strangers": est.prior_strangers, "fpir_estimate": sig(est.fpir_estimate),
                             "fpir_left_out": sig(est.fpir_left_out),
                             "supplied_strangers": outside.people if scores is not own and outside else 0})
    probe, measured = stranger_fpir(x, person, by_person, g_rows, strangers, [r["threshold"] for r in rows],
                                    scoring, seed)
    ids = np.unique(probe.probe_person)
    half_a = np.isin(probe.probe_person, np.random.default_rng(seed).choice(ids, len(ids) // 2, replace=False))
    for fpir in fpirs:
        t, _ = threshold_for_fpir(probe.best[half_a], probe.weights[half_a], fpir)
        b = ~half_a
        m = float((probe.weights[b] * (probe.best[b] >= t)).sum() / probe.weights[b].sum())
        rows.append({"fpir_requested": fpir, "k": ORACLE, "threshold": t, "method": ORACLE, "oracle_fpir": sig(m)})
        measured.append(m)
    for r, m in zip(rows, measured):
        ratio = m / r["fpir_requested"]
        r.update(people=len(enrolled), photos=int(len(g_rows)), never_enrolled_people=len(strangers),
                 fpir_never_enrolled=sig(m), ratio=round(ratio, 3), within=bool(1 / 1.5 <= ratio <= 1.5),
                 calibrate_seconds=round(took, 2))
        if r["k"] != ORACLE:
            lo, hi = fpir_interval(probe.best, probe.weights, probe.probe_person, r["threshold"])
            asked = r["fpir_requested"]
            r.update(ratio_ci95_low=round(lo / asked, 3), ratio_ci95_high=round(hi / asked, 3),
                     consistent=bool(lo <= 1.5 * asked and hi >= asked / 1.5))
    return rows


def summary(rows: list[dict]) -> dict:
    """Draws within x1.5; those whose measurement's 95 % interval reaches into [1/1.5, 1.5] (a miss that the
    test's own noise can explain); and the pooled ratio: every draw's named strangers over every draw's asked."""
    ratios = np.array([r["ratio"] for r in rows])
    worst = ratios[np.argmax(np.abs(np.log(np.maximum(ratios, 1e-6))))]
    out = {"draws": len(rows), "within_x1.5": int(sum(r["within"] for r in rows)),
           "share_within": round(float(np.mean([r["within"] for r in rows])), 3),
           "ratio_median": round(float(np.median(ratios)), 3), "ratio_min": round(float(ratios.min()), 3),
           "ratio_max": round(float(ratios.max()), 3), "ratio_worst": round(float(worst), 3),
           "ratio_pooled": round(float(ratios.mean()), 3)}
    if all("consistent" in r for r in rows):
        out["consistent_with_x1.5"] = int(sum(r["consistent"] for r in rows))
    return out


def open_set_default(x: np.ndarray, person: np.ndarray, by_person: dict, scoring: str, fpir: float) -> dict:
    """The gallery of every person with >= 2 photos (up to 5 each) against the never-enrolled one-photo people."""
    from facelab.gallery.calibrate import stranger_scores, threshold_for_fpir

    enrolled = [p for p, rows in by_person.items() if len(rows) >= 2]
    strangers = [p for p, rows in by_person.items() if len(rows) == 1]
    g_rows = np.concatenate([by_person[p][:5] for p in enrolled])
    probe_rows = np.concatenate([by_person[p] for p in strangers])
    s, w = stranger_scores(x[probe_rows], person[probe_rows], scoring, gallery_vectors=x[g_rows],
                           gallery_person=person[g_rows], max_people=10 ** 9)
    threshold, share = threshold_for_fpir(s, w, fpir)
    return {"threshold": threshold, "fpir": fpir, "fpir_measured": round(share, 5),
            "fpir_ci95": fpir_interval(s, w, person[probe_rows], threshold), "gallery_people": len(enrolled),
            "gallery_photos": int(len(g_rows)), "never_enrolled_people": len(strangers)}


def compact_json(doc) -> str:
    """Indented JSON with every flat list and flat object on one line (the curves and draws stay readable)."""
    import re

    text = json.dumps(doc, indent=1, sort_keys=True)
    flat = re.compile(r"(\[[^\[\]{}]*\]|\{[^\[\]{}]*\})")
    return flat.sub(lambda m: re.sub(r"\s*\n\s*", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]")
                    .replace("{ ", "{").replace(" }", "}"), text) + "\n"


def write_open_set(defaults: dict, references: dict) -> None:
    from facelab.gallery.store import model_info

    table = json.loads(OPEN_SET.read_text()) if OPEN_SET.exists() else {}
    for model, by_scoring in defaults.items():
        any_row = next(iter(by_scoring.values()))
        entry: dict[str, Any] = {sc: {k: r[k] for k in ("threshold", "fpir", "fpir_measured", "fpir_ci95")}
                                 for sc, r in by_scoring.items()}
        entry["fingerprint"] = model_info(model).fingerprint
        entry["source"] = (f"LFW: gallery of {any_row['gallery_people']:,} people x up to 5 photos, "
                           f"{any_row['never_enrolled_people']:,} never-enrolled people "
                           f"(benchmarks/calibrate_gallery.py)")
        entry["reference"] = references[model]
        table[model] = entry
    OPEN_SET.write_text(compact_json(table))


# the rules tried: K = K0 * min(1, c / (S * FPIR)) for each (K0, c); c = inf is a constant K. Shown next to them, not
# chosen from: 0 = leave-people-out alone, "curve" = LFW's shifted curve alone.
RULES: tuple[Any, ...] = tuple((k0, c) for k0 in (300, 1000, 3000) for c in (1.0, 2.0, 3.0, 5.0, 10.0, math.inf))
ENDS: tuple[Any, ...] = (0, "curve")
FORMER_RULE = (1000, math.inf)  # K = 1,000 whatever the gallery (the rule before K depended on S * FPIR)


def rule_label(k: Any) -> str:
    return str(k) if k in ENDS else f"K0={k[0]:g},c={k[1]:g}"


def pick_rule(rows: list[dict]) -> tuple[Any, dict]:
    """The rule whose development draws land within x1.5 most often, each set (kind x gallery size) weighing the
    same so the few big galleries count as much as the many small ones (ties: the smaller worst miss)."""
    sets = sorted({r["set"] for r in rows})
    table = {}
    for k in ENDS + RULES:
        mine = [r for r in rows if r["k"] == rule_label(k)]
        t = summary(mine)
        t["share_within_per_set"] = round(float(np.mean([np.mean([r["within"] for r in mine if r["set"] == s])
                                                         for s in sets])), 3)
        table[rule_label(k)] = t
    best = max(RULES, key=lambda k: (table[rule_label(k)]["share_within_per_set"],
                                     -abs(np.log(max(table[rule_label(k)]["ratio_worst"], 1e-6)))))
    return best, table


def draws_of(pool: list[str], size: int, n: int, seed0: int) -> list[list[str]]:
    if size >= len(pool):
        return [sorted(pool)]
    return [sorted(np.random.default_rng(seed0 + d).choice(pool, size, replace=False)) for d in range(n)]


VARIANTS = {"plain": (None, ENROL_PHOTOS), "women only": (1, ENROL_PHOTOS), "one photo each": (None, 1)}


class Check:
    """One model's galleries: development draws (to choose K) and report draws, mean scoring."""

    def __init__(self, model, x, person, by_person, gender, draws, log):
        self.model, self.x, self.person, self.by_person, self.gender = model, x, person, by_person, gender
        self.draws, self.log = draws, log
        self.names = sorted(by_person)
        self.half = {p: i % 2 for i, p in enumerate(self.names)}
        self.multi = [p for p in self.names if len(by_person[p]) >= 2]
        self.curves = {h: reference_curve(x, person, by_person, [p for p in self.names if self.half[p] == h],
                                          "mean") for h in (0, 1)}

    def keep(self, variant: str, p: str, h: int) -> bool:
        g = VARIANTS[variant][0]
        return self.half[p] == h and (g is None or self.gender.get(p) == g)

    def run(self, pool_people, stranger_people, size, n, seed0, curve, fpirs, ks, enrol, label,
            supplied_people=None) -> list[dict]:
        rows = []
        for d, enrolled in enumerate(draws_of(pool_people, size, n, seed0)):
            chosen = set(enrolled)
            strangers = [p for p in stranger_people if p not in chosen]
            supplied = [p for p in supplied_people if p not in chosen] if supplied_people else None
            for r in one_gallery(self.x, self.person, self.by_person, enrolled, strangers, curve, fpirs, ks,
                                 seed0 + d, enrol, supplied=supplied):
                rows.append({**r, "draw": d, "set": label})
        return rows

    def development(self) -> list[dict]:
        """Galleries of even-index people, strangers other even-index people, LFW's curve from odd-index people."""
        rows = []
        for variant, (_, enrol) in VARIANTS.items():
            pool = [p for p in self.multi if self.keep(variant, p, 0)]
            others = [p for p in self.names if self.keep(variant, p, 0)]
            sizes = {"plain": (100, 300, 700), "women only": (100,), "one photo each": (100, 300)}[variant]
            for size in sizes:
                n = self.draws if size == 100 else max(1, self.draws // 2)
                rows += self.run(pool, others, size, n, 500, self.curves[1], [FPIR], ENDS + RULES, enrol,
                                 f"{variant}, {size}")
        return rows

    def report(self, ks: tuple) -> list[dict]:
        """The halves swapped for 100 people; 1,000 and all people from everyone (curve: even-index people).
        Supplied strangers (`calibrate --strangers`) are the even-index people outside the gallery: for 100
        people the test strangers stay the odd-index ones; the sets marked "split" test 1,000 and all people on
        the odd-index people outside the gallery only (the even-index ones are supplied)."""
        rows = []
        for variant, (_, enrol) in VARIANTS.items():
            pool = [p for p in self.multi if self.keep(variant, p, 1)]
            others = [p for p in self.names if self.keep(variant, p, 1)]
            supplied = [p for p in self.names if self.keep(variant, p, 0)]
            rows += self.run(pool, others, 100, self.draws, 0, self.curves[0], [FPIR], ks, enrol,
                             f"{variant}, 100", supplied)
        rows += self.run(self.multi, self.names, 1000, max(1, self.draws // 2), 0, self.curves[0],
                         [FPIR, FPIR / 10], ks, ENROL_PHOTOS, "plain, 1000")
        rows += self.run(self.multi, self.names, len(self.multi), 1, 0, self.curves[0], [FPIR, FPIR / 10], ks,
                         ENROL_PHOTOS, f"plain, all {len(self.multi)}")
        odd, even = ([p for p in self.names if self.half[p] == h] for h in (1, 0))
        rows += self.run(self.multi, odd, 1000, max(1, self.draws // 2), 0, self.curves[0], [FPIR, FPIR / 10], ks,
                         ENROL_PHOTOS, "plain, 1000, split", even)
        rows += self.run(self.multi, odd, len(self.multi), 1, 0, self.curves[0], [FPIR, FPIR / 10], ks,
                         ENROL_PHOTOS, f"plain, all {len(self.multi)}, split", even)
        return rows


def grouped(rows: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r['set']} | FPIR {r['fpir_requested']:g} | K={r['k']}", []).append(r)
    return {g: summary(rs) for g, rs in groups.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--calibrate-models", default="sface,fused", help="models for the calibrate check")
    ap.add_argument("--draws", type=int, default=20, help="draws of 100 people (half as many of 300 and 1,000)")
    ap.add_argument("--no-write", action="store_true", help="do not update facelab/gallery/open_set.json")
    ap.add_argument("--calibrate-only", action="store_true",
                    help="only the calibrate check; keep the open-set defaults and curves already written")
    ap.add_argument("--vectors", type=Path,
                    help="another file of the same layout (default out/lfw_cache/all_images.npz)")
    args = ap.parse_args()

    from facelab.gallery.calibrate import PRIOR_STRANGERS, PRIOR_UNTIL
    from facelab.gallery.identify import SCORINGS
    from far_table import genders, lfw_root

    data = load_vectors(args.vectors)
    person = data["person"]
    by_person = photos_of(person)
    multi = sorted(p for p, rows in by_person.items() if len(rows) >= 2)
    gender = genders(person, lfw_root())
    print(f"LFW: {len(person)} images, {len(by_person)} people, {len(multi)} with >= 2 photos", flush=True)
    doc: dict[str, Any] = {"command": "benchmarks/calibrate_gallery.py",
           "vectors": str(args.vectors or "out/lfw_cache/all_images.npz"),
           "fpir_requested": FPIR, "enrol_photos_max": ENROL_PHOTOS,
           "target": "FPIR measured on never-enrolled people within a factor 1.5 of the requested",
           "protocol": "people sorted by name: K0 and c chosen on even-index galleries (curve from odd-index people), "
                       "reported on odd-index galleries of 100 (curve from even-index people); 1,000 and all "
                       "people drawn from everyone (curve still from even-index people)",
           "calibrate": {}, "open_set_default": {}}
    checks = [Check(m, embedder_vectors(data, m).astype(np.float32), person, by_person, gender, args.draws,
                    lambda msg: print(msg, flush=True)) for m in args.calibrate_models.split(",")]
    dev = {c.model: c.development() for c in checks}
    chosen, dev_table = pick_rule([r for rows in dev.values() for r in rows])
    used = (PRIOR_STRANGERS, PRIOR_UNTIL)
    print(f"  development draws ({', '.join(dev)}, pooled) choose K = {rule_label(chosen)}; the library uses "
          f"{rule_label(used)}", flush=True)
    for k, t in dev_table.items():
        print(f"    K={k:>18s}: {t['share_within_per_set']:.3f} per set, {t['within_x1.5']}/{t['draws']} within x1.5, "
              f"median x{t['ratio_median']}, range x{t['ratio_min']}-x{t['ratio_max']}", flush=True)
    if chosen != used:
        print(f"  WARNING: set PRIOR_STRANGERS, PRIOR_UNTIL = {chosen} in facelab/gallery/calibrate.py, run again",
              flush=True)
    doc["k_chosen_on_development"], doc["k_used"] = rule_label(chosen), rule_label(used)
    doc["k_rule"] = "K = K0 * min(1, c / (S * FPIR)) (S: people left out in turn; c = inf: a constant K)"
    doc["development"] = dev_table
    for c in checks:
        # leave-people-out alone, the former constant K = 1,000, the library's rule (and the chosen one if it differs)
        report = c.report(tuple(dict.fromkeys((0, FORMER_RULE, used, chosen))))
        table = grouped(report)
        for g, t in table.items():
            said = (f", {t['consistent_with_x1.5']}/{t['draws']} consistent with it"
                    if "consistent_with_x1.5" in t else "")
            print(f"    {c.model} {g}: {t['within_x1.5']}/{t['draws']} within x1.5{said}, median x{t['ratio_median']}, "
                  f"pooled x{t['ratio_pooled']}, range x{t['ratio_min']}-x{t['ratio_max']}", flush=True)
        doc["calibrate"][c.model] = {
            "development": grouped(dev[c.model]), "report": table, "report_draws": report,
            "curves": {"development (odd-index people)": {k: c.curves[1][k] for k in ("people", "gallery_people")},
                       "report (even-index people)": {k: c.curves[0][k] for k in ("people", "gallery_people")}}}
    if args.calibrate_only:
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        doc["open_set_default"] = old.get("open_set_default", {})
        RESULTS.write_text(compact_json(doc))
        print(f"wrote {RESULTS} (open-set defaults kept)")
        return
    defaults, references = {}, {}
    names = sorted(by_person)
    for model in args.models.split(","):
        x = embedder_vectors(data, model).astype(np.float32)
        defaults[model] = {sc: open_set_default(x, person, by_person, sc, FPIR) for sc in SCORINGS}
        references[model] = {sc: reference_curve(x, person, by_person, names, sc) for sc in SCORINGS}
        print(f"  open-set default {model}: " + ", ".join(f"{sc} {r['threshold']:.4f} (FPIR {r['fpir_measured']:.4f} "
                                                         f"{r['fpir_ci95']})" for sc, r in defaults[model].items()),
              flush=True)
    doc["open_set_default"] = defaults
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(compact_json(doc))
    print(f"wrote {RESULTS}")
    if not args.no_write:
        write_open_set(defaults, references)
        print(f"wrote {OPEN_SET}")


if __name__ == "__main__":
    main()
