"""`facelab gallery check` on LFW: does it find labelling mistakes, and how often does it cry wolf?

A real SQLite gallery of the 158 LFW people with >= 10 images (4,324 photos, embeddings from the cache of
benchmarks/lfw_embeddings.py: YuNet, facelab's main face, alignment), checked with `Gallery.check` (the code
behind the command), three ways:

1. As LFW labels it: which photos are flagged, and which pairs of people (each flagged photo is then looked at).
   Also with the centred face of the 750 photos with several faces (LFW's labelled subject; `--centre-faces`
   cache), since facelab's main-face rule can pick a bystander.
2. Planted mislabels: per seed, 1 % of the photos (43) moved to a random other person. Recall = planted photos
   flagged; false flags = other flagged photos, not counting those flagged in (1).
3. Planted duplicates: per seed, 20 people; 10 have a third of their photos moved to a new name, 10 a single
   photo. Recall = pairs (person, new name) reported; false pairs = any other pair.

    .venv/bin/python benchmarks/gallery_check.py        # -> benchmarks/results/gallery_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from identify_lfw import with_centre_faces  # noqa: E402
from lfw_embeddings import load_cache  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gallery_check.json"


def build(folder: Path, name: str, model: str, vectors, people, files):
    import facelab

    g = facelab.open_gallery(folder / f"{name}.db", model=model)
    for person in dict.fromkeys(people):
        rows = np.flatnonzero(people == person)
        g.add_embeddings(str(person), vectors[rows], sources=[str(f) for f in files[rows]])
    return g


def check(folder, name, model, vectors, people, files, far):
    g = build(folder, name, model, vectors, people, files)
    try:
        t0 = time.perf_counter()
        report = g.check(far=far)
        return report, time.perf_counter() - t0
    finally:
        g.close()


def planted_mislabels(folder, model, vectors, people, files, far, seed, known: set[str]) -> dict:
    rng = np.random.default_rng(seed)
    names = np.unique(people)
    moved = rng.choice(len(people), size=round(0.01 * len(people)), replace=False)
    relabelled = people.copy()
    for row in moved:
        relabelled[row] = rng.choice(names[names != people[row]])
    report, _ = check(folder, f"{model}-mislabel{seed}", model, vectors, relabelled, files, far)
    flagged = {p.source for p in report.photos}
    planted = {str(files[r]) for r in moved}
    false = flagged - planted - known
    return {"seed": seed, "planted": len(planted), "found": len(flagged & planted),
            "missed": sorted(planted - flagged), "false_flags": len(false), "false_flag_files": sorted(false),
            "pairs_reported": [f"{p.a} / {p.b}" for p in report.people]}  # none expected: nobody is split


def planted_duplicates(folder, model, vectors, people, files, far, seed) -> dict:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.unique(people), size=20, replace=False)
    renamed = people.astype(object).copy()
    planted = set()
    for i, person in enumerate(chosen):
        rows = np.flatnonzero(people == person)
        k = max(1, len(rows) // 3) if i < 10 else 1
        renamed[rng.choice(rows, size=k, replace=False)] = f"{person}__dup"
        planted.add((str(person), f"{person}__dup", "a third" if i < 10 else "one photo"))
    report, _ = check(folder, f"{model}-dup{seed}", model, vectors, renamed.astype(str), files, far)
    reported = {tuple(sorted((p.a, p.b))) for p in report.people}
    found = [p for p in planted if tuple(sorted(p[:2])) in reported]
    wanted = {tuple(sorted(p[:2])) for p in planted}
    return {"seed": seed, "planted_third": 10, "found_third": sum(p[2] == "a third" for p in found),
            "planted_one_photo": 10, "found_one_photo": sum(p[2] == "one photo" for p in found),
            "false_pairs": sorted(f"{a} / {b}" for a, b in reported - wanted)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="sface,dlib_resnet")
    ap.add_argument("--far", type=float, default=0.001)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    cache = load_cache()
    centred = with_centre_faces(cache)
    found = cache["n_faces"] > 0
    people, files = cache["name"][found], cache["files"][found]
    out = {"dataset": f"LFW deep-funneled, {len(set(people))} people with >= 10 images, {len(people)} photos "
                      "with a face", "far": args.far, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for model in args.models.split(","):
            result = {}
            for face, data in (("main face", cache), ("centre face", centred)):
                if data is None:
                    continue
                report, seconds = check(folder, f"{model}-{face[0]}", model, data[model][found], people, files,
                                        args.far)
                result[face] = {"seconds": round(seconds, 3), "photos_checked": report.photos_checked,
                                "flagged_photos": [p.to_dict() for p in report.photos],
                                "similar_people": [p.to_dict() for p in report.people]}
                print(f"{model}, {face}: {len(report.photos)} photos flagged, {len(report.people)} pairs, "
                      f"{seconds:.2f} s")
                for p in report.photos:
                    print(f"    {p.source}: {p.reason}")
            known = {p["source"] for p in result["main face"]["flagged_photos"]}
            vectors = cache[model][found]
            mis = [planted_mislabels(folder, model, vectors, people, files, args.far, s, known)
                   for s in range(args.seeds)]
            dup = [planted_duplicates(folder, model, vectors, people, files, args.far, s)
                   for s in range(args.seeds)]
            result["planted_mislabels"] = {
                "runs": mis, "recall": round(sum(r["found"] for r in mis) / sum(r["planted"] for r in mis), 4),
                "false_flags_per_run": round(float(np.mean([r["false_flags"] for r in mis])), 2),
                "pairs_reported": sum(len(r["pairs_reported"]) for r in mis)}
            result["planted_duplicates"] = {
                "runs": dup,
                "recall_third": round(sum(r["found_third"] for r in dup) / (10 * len(dup)), 4),
                "recall_one_photo": round(sum(r["found_one_photo"] for r in dup) / (10 * len(dup)), 4),
                "false_pairs_per_run": round(float(np.mean([len(r["false_pairs"]) for r in dup])), 2)}
            print(f"{model}: planted mislabels recall {result['planted_mislabels']['recall']:.1%}, "
                  f"{result['planted_mislabels']['false_flags_per_run']} false flags a run, "
                  f"{result['planted_mislabels']['pairs_reported']} pairs reported; duplicates found: "
                  f"{result['planted_duplicates']['recall_third']:.0%} (a third of the photos), "
                  f"{result['planted_duplicates']['recall_one_photo']:.0%} (one photo), "
                  f"{result['planted_duplicates']['false_pairs_per_run']} false pairs a run")
            out["models"][model] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
