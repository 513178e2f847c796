"""Does `facelab gallery calibrate` keep its promise? Requested FPIR vs FPIR measured on never-enrolled people.

    .venv/bin/python benchmarks/calibrate_gallery.py [--models sface,...] [--repeats 5] [--no-write]

LFW galleries (vectors from out/lfw_cache/all_images.npz, facelab's pipeline; no re-detection) of 100, 1,000 and
all 1,560 people with >= 2 photos (each enrolled with up to 10 photos). Each gallery is calibrated exactly as
`Gallery.calibrate` does (facelab.gallery.calibrate: every person left out in turn plays a stranger, up to 5 of
their photos searched, each person weighing 1) for FPIR 1 %. The threshold is then tried on people the gallery
never saw: every other LFW person (up to 5 photos each, each person weighing 1). Target: measured FPIR within a
factor 1.5 of the requested 1 %. Galleries of 100 and 1,000 are drawn `--repeats` times (different people).

It also re-derives identify's default "unknown" threshold (facelab/gallery/open_set.json) the same way the 1:1
default is derived, from many strangers: the gallery of all 1,560 people with >= 2 photos (up to 5 photos each),
the threshold that names 1 % of the 2,721 never-enrolled people (one photo each), per model and scoring.
Writes benchmarks/results/calibrate_gallery.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def one_gallery(x: np.ndarray, person: np.ndarray, enrolled: list[str], strangers: list[str], by_person: dict,
                scoring: str, fpir: float, seed: int) -> dict:
    from facelab.gallery.calibrate import MAX_PROBES_PER_PERSON, measured_fpir, stranger_scores, threshold_for_fpir

    rng = np.random.default_rng(seed)
    g_rows = np.concatenate([by_person[p][:ENROL_PHOTOS] for p in enrolled])
    t0 = time.perf_counter()
    s_in, w_in = stranger_scores(x[g_rows], person[g_rows], scoring, seed=seed)
    threshold, share = threshold_for_fpir(s_in, w_in, fpir)
    took = time.perf_counter() - t0
    probe_rows = np.concatenate([rng.permutation(by_person[p])[:MAX_PROBES_PER_PERSON] for p in strangers])
    s_out, w_out = stranger_scores(x[probe_rows], person[probe_rows], scoring, max_probes=MAX_PROBES_PER_PERSON,
                                   gallery_vectors=x[g_rows], gallery_person=person[g_rows], max_people=10 ** 9)
    measured = measured_fpir(s_out, w_out, threshold)
    probe_person = person[probe_rows]
    return {"people": len(enrolled), "photos": int(len(g_rows)), "threshold": threshold,
            "fpir_requested": fpir, "fpir_leave_one_out": round(share, 5),
            "never_enrolled_people": len(strangers), "fpir_never_enrolled": sig(measured),
            "fpir_never_enrolled_ci95": fpir_interval(s_out, w_out, probe_person, threshold),
            "ratio": round(measured / fpir, 3), "within_factor_1.5": bool(1 / 1.5 <= measured / fpir <= 1.5),
            "calibrate_seconds": round(took, 2)}


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


def write_open_set(defaults: dict) -> None:
    from facelab.gallery.store import model_info

    table = json.loads(OPEN_SET.read_text()) if OPEN_SET.exists() else {}
    for model, by_scoring in defaults.items():
        any_row = next(iter(by_scoring.values()))
        entry = {sc: {"threshold": r["threshold"], "fpir": r["fpir"], "fpir_measured": r["fpir_measured"],
                      "fpir_ci95": r["fpir_ci95"]} for sc, r in by_scoring.items()}
        entry["fingerprint"] = model_info(model).fingerprint
        entry["source"] = (f"LFW: gallery of {any_row['gallery_people']:,} people x up to 5 photos, "
                           f"{any_row['never_enrolled_people']:,} never-enrolled people "
                           f"(benchmarks/calibrate_gallery.py)")
        table[model] = entry
    OPEN_SET.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--calibrate-models", default="sface,fused", help="models for the calibrate check")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="do not update facelab/gallery/open_set.json")
    ap.add_argument("--vectors", type=Path, help="another file of the same layout (default out/lfw_cache/all_images.npz)")
    args = ap.parse_args()

    from facelab.gallery.identify import SCORINGS

    data = load_vectors(args.vectors)
    person = data["person"]
    by_person = photos_of(person)
    multi = sorted(p for p, rows in by_person.items() if len(rows) >= 2)
    print(f"LFW: {len(person)} images, {len(by_person)} people, {len(multi)} with >= 2 photos", flush=True)
    doc = {"command": "benchmarks/calibrate_gallery.py",
           "vectors": str(args.vectors or "out/lfw_cache/all_images.npz"),
           "fpir_requested": FPIR, "enrol_photos_max": ENROL_PHOTOS,
           "target": "FPIR measured on never-enrolled people within a factor 1.5 of the requested",
           "calibrate": {}, "open_set_default": {}}
    for model in args.calibrate_models.split(","):
        x = embedder_vectors(data, model).astype(np.float32)
        rows = []
        for size in (100, 1000, len(multi)):
            for rep in range(args.repeats if size < len(multi) else 1):
                rng = np.random.default_rng(100 + rep)
                enrolled = sorted(rng.choice(multi, size, replace=False)) if size < len(multi) else multi
                chosen = set(enrolled)
                strangers = [p for p in by_person if p not in chosen]
                r = one_gallery(x, person, enrolled, strangers, by_person, "mean", FPIR, seed=rep)
                r["repeat"] = rep
                rows.append(r)
                print(f"  {model} {size:5d} people (draw {rep}): threshold {r['threshold']:.4f}, leave-one-out "
                      f"{r['fpir_leave_one_out']:.4f}, never-enrolled {r['fpir_never_enrolled']:.4f} "
                      f"{r['fpir_never_enrolled_ci95']} (x{r['ratio']}) in {r['calibrate_seconds']} s", flush=True)
        doc["calibrate"][model] = rows
    defaults = {}
    for model in args.models.split(","):
        x = embedder_vectors(data, model).astype(np.float32)
        defaults[model] = {sc: open_set_default(x, person, by_person, sc, FPIR) for sc in SCORINGS}
        print(f"  open-set default {model}: " + ", ".join(f"{sc} {r['threshold']:.4f} (FPIR {r['fpir_measured']:.4f} "
                                                         f"{r['fpir_ci95']})" for sc, r in defaults[model].items()),
              flush=True)
    doc["open_set_default"] = defaults
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {RESULTS}")
    if not args.no_write:
        write_open_set(defaults)
        print(f"wrote {OPEN_SET}")


if __name__ == "__main__":
    main()
