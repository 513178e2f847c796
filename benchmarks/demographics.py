"""Error rates per group at facelab's default threshold, in the manner of NIST FRVT's demographic reports; and how
error rates move with the quality floor that makes verify / identify say "uncertain".

    .venv/bin/python benchmarks/demographics.py [--models sface,fused] [--utk 3000]

LFW (every image with a detected face, vectors from out/lfw_cache/all_images.npz), for each embedder at its
default threshold (facelab/models/thresholds.json, FAR 1e-4 over all impostor pairs):
- by gender (lfw/gender_*.txt): FNMR over the group's genuine pairs, FAR over impostor pairs of two people of
  that group (the within-group impostors, as FRVT reports them), and FAR for cross-gender pairs;
- by skin-tone band: facelab's own ITA measurement (facelab/attributes/skin_tone.py) on every image, a person's
  band from the median ITA of their photos; the six ITA categories (very light .. dark);
- by age band (UTKFace, the only source here with ages; it has no identities, so only FAR, among faces of one
  age band, and only for sface, the default embedder: embedding 3,000 more faces with dlib's ResNet costs ~10x);
- quality floor: FAR and FNMR at the default when images below a floor (face size, sharpness, yaw, pitch: the
  values `facelab.verification.QUALITY_FLOOR` uses) are left out, and what share of images each floor removes.
Image measurements (ITA, pose, size, sharpness from the cached detections) are cached in
out/demographics/lfw_measures.npz (one pass over the images, ~1-2 min).

Writes benchmarks/results/demographics.json. Figures are measured, with counts: small groups have wide intervals
(95 % bootstrap over people) and the text says so.
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

from far_table import Population, embedder_vectors, genders, lfw_root, load_vectors, score_pairs, sig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "demographics.json"
CACHE = ROOT / "out" / "demographics"
MEASURES = CACHE / "lfw_measures.npz"
UTK = ROOT.parent / "shared" / "data" / "utkface"
AGE_BANDS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))


# -- per-image measurements --------------------------------------------------------------------------------
def measure_images(names: np.ndarray, root: Path) -> dict[str, np.ndarray]:
    """ITA, size, sharpness, yaw, pitch for each image, on the landmarks facelab's pipeline used (cached)."""
    if MEASURES.exists():
        cached = np.load(MEASURES)
        if list(cached["names"]) == list(names):
            return {k: cached[k] for k in cached.files}
    from facelab.align import align_face
    from facelab.attributes.skin_tone import measure
    from facelab.images import load_image
    from facelab.pipeline import get_detector
    from facelab.pose import estimate_pose, estimate_quality
    from lfw_cache import CACHE as LFW_CACHE
    from lfw_verify import pipeline_landmarks

    det = np.load(LFW_CACHE / "det.npz")
    index = {n: i for i, n in enumerate(det["names"])}
    lm_all = pipeline_landmarks({k: det[k] for k in det.files}, get_detector())[0]
    out = {k: np.full(len(names), np.nan) for k in ("ita", "size", "sharpness", "yaw", "pitch")}
    t0 = time.perf_counter()
    for i, name in enumerate(names):
        j = index[str(name)]
        if not det["found"][j]:
            continue
        rgb = load_image(root / "images" / str(name))
        lm = lm_all[j]
        aligned = align_face(rgb, lm)
        q = estimate_quality(det["box"][j], lm, aligned)
        p = estimate_pose(lm, rgb.shape[:2])
        out["ita"][i] = measure(aligned)["ita"]
        out["size"][i], out["sharpness"][i], out["yaw"][i], out["pitch"][i] = q.size, q.sharpness, p.yaw, p.pitch
        if i % 2000 == 0:
            print(f"    measured {i}/{len(names)} images ({time.perf_counter() - t0:.0f} s)", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(MEASURES, names=np.asarray(names), **out)
    return out


def ita_band(ita: float) -> str:
    from facelab.attributes.skin_tone import CATEGORIES

    return next(name for lower, name, _ in CATEGORIES if ita > lower)


# -- rates at one threshold ------------------------------------------------------------------------------------
class Pairs:
    """Every genuine pair and the impostor pairs at or above the threshold, with image indices (pop order)."""

    def __init__(self, x: np.ndarray, pop: Population, threshold: float):
        res = score_pairs(x, pop, threshold, log=lambda *_: None, with_images=True)
        self.threshold = threshold
        self.imp_i, self.imp_j = res["kept_i"], res["kept_j"]
        self.gen_i, self.gen_j, self.gen_s = res["genuine_i"], res["genuine_j"], res["genuine_score"]


def group_rates(pairs: Pairs, pop: Population, group_of_person: np.ndarray, labels: list[str],
                usable: np.ndarray | None = None, boots: int = 200) -> list[dict]:
    """FNMR and within-group FAR per group (people labelled -1 are left out), with 95 % intervals over people."""
    usable = np.ones(len(pop.pid), bool) if usable is None else usable
    g_img = group_of_person[pop.pid]
    rng = np.random.default_rng(2)
    rows = []
    for g, label in enumerate(labels):
        people = np.nonzero(group_of_person == g)[0]
        n_img = np.bincount(pop.pid[usable & (g_img == g)], minlength=len(pop.people)).astype(float)
        gen = usable[pairs.gen_i] & usable[pairs.gen_j] & (g_img[pairs.gen_i] == g)
        imp = usable[pairs.imp_i] & usable[pairs.imp_j] & (g_img[pairs.imp_i] == g) & (g_img[pairs.imp_j] == g)
        gp = pop.pid[pairs.gen_i[gen]]
        miss = pairs.gen_s[gen] < pairs.threshold
        ia, ib = pop.pid[pairs.imp_i[imp]], pop.pid[pairs.imp_j[imp]]
        n_imp = (n_img.sum() ** 2 - (n_img ** 2).sum()) / 2
        row = {"group": label, "people": int(len(people)), "images": int(n_img.sum()),
               "genuine_pairs": int(gen.sum()), "fnmr": sig(miss.mean()) if gen.any() else None,
               "impostor_pairs": int(n_imp), "false_accepts": int(imp.sum()),
               "far": sig(imp.sum() / n_imp) if n_imp else None}
        if len(people) > 1 and boots:
            fnmr_b, far_b = [], []
            miss_by_p = np.bincount(gp[miss], minlength=len(pop.people)).astype(float)
            gen_by_p = np.bincount(gp, minlength=len(pop.people)).astype(float)
            for _ in range(boots):
                m = np.bincount(rng.choice(people, len(people)), minlength=len(pop.people)).astype(float)
                if gen_by_p @ m:
                    fnmr_b.append((miss_by_p @ m) / (gen_by_p @ m))
                w = m * n_img
                denom = (w.sum() ** 2 - (w ** 2).sum()) / 2
                far_b.append((m[ia] * m[ib]).sum() / denom if denom else np.nan)
            if fnmr_b:
                row["fnmr_ci95"] = [sig(v) for v in np.percentile(fnmr_b, [2.5, 97.5])]
            row["far_ci95"] = [sig(v) for v in np.nanpercentile(far_b, [2.5, 97.5])]
        rows.append(row)
    return rows


def cross_group_far(pairs: Pairs, pop: Population, group_of_person: np.ndarray) -> dict:
    """FAR for impostor pairs whose two people are in different groups (e.g. a woman and a man)."""
    g_img = group_of_person[pop.pid]
    imp = (g_img[pairs.imp_i] != g_img[pairs.imp_j]) & (g_img[pairs.imp_i] >= 0) & (g_img[pairs.imp_j] >= 0)
    sizes = np.array([pop.n_img[group_of_person == g].sum() for g in range(group_of_person.max() + 1)])
    total = (sizes.sum() ** 2 - (sizes ** 2).sum()) / 2
    return {"impostor_pairs": int(total), "false_accepts": int(imp.sum()), "far": sig(imp.sum() / total)}


def overall(pairs: Pairs, pop: Population, usable: np.ndarray) -> dict:
    gen = usable[pairs.gen_i] & usable[pairs.gen_j]
    imp = usable[pairs.imp_i] & usable[pairs.imp_j]
    n_img = np.bincount(pop.pid[usable], minlength=len(pop.people)).astype(float)
    n_imp = (n_img.sum() ** 2 - (n_img ** 2).sum()) / 2
    return {"images_kept": int(usable.sum()), "images_left_out": int((~usable).sum()),
            "share_left_out": round(float((~usable).mean()), 4),
            "fnmr": sig((pairs.gen_s[gen] < pairs.threshold).mean()), "genuine_pairs": int(gen.sum()),
            "far": sig(imp.sum() / n_imp), "false_accepts": int(imp.sum())}


def quality_sweep(pairs: Pairs, pop: Population, m: dict) -> list[dict]:
    """Error rates at the default threshold as each quality floor tightens (images below it left out)."""
    from facelab.verification import QUALITY_FLOOR

    f = QUALITY_FLOOR
    size, sharp = m["size"], m["sharpness"]
    yaw, pitch = np.abs(np.nan_to_num(m["yaw"])), np.abs(np.nan_to_num(m["pitch"]))
    default = (size >= f["min_size"]) & (sharp >= f["min_sharpness"]) & (yaw <= f["max_yaw"]) & \
              (pitch <= f["max_pitch"])
    rows = [{"floor": "none", **overall(pairs, pop, np.ones(len(size), bool))},
            {"floor": f"facelab's ({f['min_size']:g} px, sharpness {f['min_sharpness']:g}, yaw {f['max_yaw']:g}, "
                      f"pitch {f['max_pitch']:g})", **overall(pairs, pop, default)}]
    for v in (60, 80, 100):
        rows.append({"floor": f"size >= {v} px", **overall(pairs, pop, size >= v)})
    for v in (50, 100, 200, 400):
        rows.append({"floor": f"sharpness >= {v}", **overall(pairs, pop, sharp >= v)})
    for v in (30, 20, 10):
        rows.append({"floor": f"|yaw| <= {v}", **overall(pairs, pop, yaw <= v)})
    for v in (20, 10):
        rows.append({"floor": f"|pitch| <= {v}", **overall(pairs, pop, pitch <= v)})
    return rows


# -- UTKFace ages --------------------------------------------------------------------------------------------
def utk_age_far(model: str, threshold: float, limit: int) -> dict | None:
    """FAR among UTKFace faces of one age band (no identities: every pair counts as two people)."""
    import csv

    labels = UTK / "labels.csv"
    if not labels.exists():
        return None
    rows = list(csv.DictReader(labels.open()))[:limit]
    cache = CACHE / f"utk_{model.replace('+', '_')}_{len(rows)}.npz"
    if cache.exists():
        d = np.load(cache)
        vec, ages, found = d["vec"], d["age"], d["found"]
    else:
        from facelab.images import load_image
        from facelab.pipeline import pick_main_face, shared_analysis

        name, flip = (model[:-5], True) if model.endswith("+flip") else (model, False)
        analysis = shared_analysis(embedder=name, flip=flip)
        vec = np.zeros((len(rows), analysis.embedder.dim), np.float32)
        found = np.zeros(len(rows), bool)
        for i, r in enumerate(rows):
            rgb = load_image(UTK / r["file"])
            faces = analysis.detect_rgb(rgb)
            if faces:
                face = pick_main_face(faces, rgb.shape)
                vec[i] = analysis.embed_faces(rgb, [face])[0].embedding
                found[i] = True
        ages = np.array([int(r["age"]) for r in rows])
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vec=vec, age=ages, found=found)
    out = []
    for lo, hi in AGE_BANDS:
        sel = np.nonzero(found & (ages >= lo) & (ages <= hi))[0]
        s = vec[sel] @ vec[sel].T
        iu = np.triu_indices(len(sel), 1)
        scores = s[iu]
        out.append({"age_band": f"{lo}-{hi}" if hi < 200 else f"{lo}+", "faces": int(len(sel)),
                    "impostor_pairs": int(len(scores)), "false_accepts": int((scores >= threshold).sum()),
                    "far": sig((scores >= threshold).mean()) if len(scores) else None,
                    "median_impostor_cosine": round(float(np.median(scores)), 4) if len(scores) else None})
    return {"model": model, "threshold": threshold, "faces": len(rows), "no_face": int((~found).sum()),
            "note": "UTKFace has no identities and holds some duplicate or same-person photos (pairs at cosine "
                    "0.95-1.0): these FARs are upper bounds, but the median impostor cosine per band needs none",
            "bands": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sface,sface+flip,dlib_resnet,dlib_resnet+flip,fused,fused+flip")
    ap.add_argument("--utk", type=int, default=3000, help="UTKFace images for the age bands (0: skip)")
    ap.add_argument("--boots", type=int, default=200)
    ap.add_argument("--vectors", type=Path,
                    help="another file of the same layout (default out/lfw_cache/all_images.npz)")
    args = ap.parse_args()

    from facelab.verification import QUALITY_FLOOR, operating_point

    data = load_vectors(args.vectors)
    root = lfw_root()
    gender_of = genders(data["person"], root)
    pop = Population(data["person"], gender_of)
    names = data["names"][pop.order]
    print(f"measuring {len(names)} images (ITA, size, sharpness, pose)", flush=True)
    m = measure_images(names, root)

    gender_labels = ["male", "female"]
    g_person = pop.gender.astype(int)
    from facelab.attributes.skin_tone import CATEGORIES

    ita_labels = [name for _, name, _ in CATEGORIES]
    person_ita = np.array([np.nanmedian(m["ita"][pop.start[p]:pop.start[p + 1]])
                           if np.isfinite(m["ita"][pop.start[p]:pop.start[p + 1]]).any() else np.nan
                           for p in range(len(pop.people))])
    ita_person = np.array([ita_labels.index(ita_band(v)) if np.isfinite(v) else -1 for v in person_ita])

    doc = {"command": "benchmarks/demographics.py",
           "vectors": str(args.vectors or "out/lfw_cache/all_images.npz"),
           "data": "LFW deep-funneled, every image with a detected face",
           "quality_floor": QUALITY_FLOOR,
           "skin_tone": "ITA (facelab/attributes/skin_tone.py) per image; a person's band: the median of their "
                        "photos' ITA. ITA measures the photo's pixels (lighting, white balance), not a person",
           "people_per_ita_band": {lab: int((ita_person == k).sum()) for k, lab in enumerate(ita_labels)},
           "models": {}}
    for model in args.models.split(","):
        point = operating_point(model)
        print(f"  {model}: threshold {point.threshold} ({point.label})", flush=True)
        x = embedder_vectors(data, model)[pop.order].astype(np.float32)
        pairs = Pairs(x, pop, point.threshold)
        r = {"threshold": point.threshold, "operating_point": point.label,
             "all": overall(pairs, pop, np.ones(len(x), bool)),
             "gender": group_rates(pairs, pop, g_person, gender_labels, boots=args.boots),
             "cross_gender": cross_group_far(pairs, pop, g_person),
             "skin_tone": group_rates(pairs, pop, ita_person, ita_labels, boots=args.boots),
             "quality": quality_sweep(pairs, pop, m)}
        if args.utk and model == "sface":
            r["age_utkface"] = utk_age_far(model, point.threshold, args.utk)
        doc["models"][model] = r
        a = r["all"]
        print(f"    all: FNMR {a['fnmr']:.4f}  FAR {a['far']:.2e}")
        for row in r["gender"] + r["skin_tone"]:
            print(f"    {row['group']:13s} people {row['people']:5d}  FNMR {row['fnmr']}  {row.get('fnmr_ci95')}  "
                  f"FAR {row['far']}  {row.get('far_ci95')}")
        print(f"    cross-gender FAR {r['cross_gender']['far']}")
        for row in r["quality"]:
            print(f"    quality {row['floor']:55s} left out {row['share_left_out']:.3f}  FNMR {row['fnmr']:.4f}  "
                  f"FAR {row['far']:.2e}")
        for row in (r.get("age_utkface") or {}).get("bands", []):
            print(f"    UTKFace age {row['age_band']:6s} faces {row['faces']:4d}  FAR {row['far']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
