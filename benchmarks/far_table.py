"""False-accept / true-accept rates from every pair of LFW images: ~60 million impostor pairs, not 3,000.

    .venv/bin/python benchmarks/far_table.py [--boot 200] [--models sface,...] [--no-write]
    FACELAB_HOME=... .venv/bin/python benchmarks/far_table.py --models NAME --no-write   # a user-trained embedder

For each embedder (sface, sface+flip, dlib_resnet, dlib_resnet+flip, fused, fused+flip, sface/bgr) every image with
a detected face (out/lfw_cache/all_images.npz, benchmarks/lfw_all_images.py; sface/bgr: sface_bgr_pipeline.npz,
made here from the stage caches) is scored against every other image:
pairs of two different people are impostor pairs, pairs of one person genuine pairs. Scores are computed in
blocks of matrix products; a histogram on a 1e-4 grid gives the whole FAR curve, and the impostor pairs above
the FAR 0.15 point are kept so that thresholds are exact order statistics (not grid edges).

For each target FAR (1e-1 .. 1e-6) the threshold is the lowest 5-decimal cosine whose measured FAR is <= the
target. Its 95 % intervals come from a bootstrap over PEOPLE (people resampled with replacement, every pair
follows its two people: an impostor pair counts m_p * m_q times, a genuine pair of p m_p times), because pairs of
one person are not independent. Same-gender impostors (lfw/gender_*.txt; the harder, realistic case) get their
own FAR at each threshold and their own thresholds.

Writes benchmarks/results/far_table.json and (unless --no-write) the operating points in
facelab/models/thresholds.json: each model's `far_table` and `default` (the FAR-chosen operating point, see
DEFAULT_FAR) come from here; LFW View 2 accuracy (benchmarks/lfw_verify.py) stays as the protocol figure.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

LFW = ROOT.parent / "shared" / "data" / "lfw"
RESULTS = ROOT / "benchmarks" / "results" / "far_table.json"
EMBEDDERS = ("sface", "sface+flip", "dlib_resnet", "dlib_resnet+flip", "fused", "fused+flip", "sface/bgr")
TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# The default 1:1 operating point: FAR 1e-4 for every embedder (docs/thresholds.md says why).
DEFAULT_FAR = 1e-4
GRID = 1e-4            # histogram bin width (cosine)
KEEP_FAR = 0.15        # impostor pairs above this FAR's score are kept for exact thresholds and the bootstrap
BLOCK = 512            # rows per matrix-product block


# -- data ------------------------------------------------------------------------------------------------------
def lfw_root() -> Path:
    if (LFW / "images_wanted.txt").exists():
        return LFW
    sys.exit(f"no LFW at {LFW} (../shared/data/lfw beside the checkout)")


def load_vectors(path: Path | None = None) -> dict:
    """all_images.npz, with images that had no face dropped (facelab verify refuses them: 'no face')."""
    from lfw_all_images import OUT, load

    data = load(path or OUT)
    keep = data["found"].astype(bool)
    out = {k: v[keep] for k, v in data.items() if len(v) == len(keep)}
    out["dropped_no_face"] = int((~keep).sum())
    return out


def embedder_vectors(data: dict, name: str) -> np.ndarray:
    """The vectors `facelab verify --model X [--flip]` produces, rebuilt with the embedders' own functions."""
    from facelab.embedders import FusedEmbedder, _unit, flip_average

    if name == "sface":
        return _unit(data["sface"])
    if name == "sface+flip":
        return flip_average(data["sface"], data["sface_mirror"])
    if name == "dlib_resnet":
        return _unit(data["dlib"])
    if name == "dlib_resnet+flip":
        return flip_average(data["dlib"], data["dlib_mirror"])
    if name == "sface/bgr":
        return sface_bgr_vectors(data)
    if name in ("fused", "fused+flip"):
        flip = name == "fused+flip"
        s = flip_average(data["sface"], data["sface_mirror"]) if flip else data["sface"]
        return FusedEmbedder(flip=flip, load_models=False).combine(s, data["dlib"])  # flips the SFace half only
    return registered_vectors(data, name)


def sface_bgr_vectors(data: dict) -> np.ndarray:
    """`sface/bgr` (SFace fed BGR) on every image, on the pipeline's landmarks, cached in a file of its own
    (out/lfw_cache/sface_bgr_pipeline.npz; all_images.npz is left as it is).

    lfw_cache's stage sface_raw already holds the BGR vector of every image on YuNet's own landmarks; only the
    images whose landmarks the detector's roll refinement replaces (about 600) are embedded again here."""
    from lfw_cache import CACHE

    cache = CACHE / "sface_bgr_pipeline.npz"
    names = [str(n) for n in data["names"]]
    if not cache.exists():
        from facelab.align import align_face
        from facelab.embedders import SFaceEmbedder
        from facelab.images import load_image
        from facelab.pipeline import get_detector
        from lfw_verify import pipeline_landmarks

        raw = np.load(CACHE / "sface_raw.npz")
        det = np.load(CACHE / "det.npz")
        det = {k: det[k] for k in det.files}
        all_names = [str(n) for n in raw["names"]]
        if all_names != [str(n) for n in det["names"]]:
            raise SystemExit("sface_raw.npz and det.npz list different images: rerun benchmarks/lfw_all_images.py")
        landmarks, refined = pipeline_landmarks(det, get_detector())
        vectors = raw["bgr"].astype(np.float32).copy()
        net, root = SFaceEmbedder(order="bgr"), lfw_root()
        for i in np.nonzero(refined)[0]:
            crop = align_face(load_image(root / "images" / all_names[i]), landmarks[i])[None]
            vectors[i] = net.embed_crops(crop)[0]
        np.savez(cache, names=np.array(all_names), bgr=vectors, refined=refined)
        print(f"    wrote {cache} ({int(refined.sum())} images re-embedded on refined landmarks)", flush=True)
    stored = np.load(cache)
    index = {str(n): i for i, n in enumerate(stored["names"])}
    return np.asarray(stored["bgr"][[index[n] for n in names]], np.float32)


def registered_vectors(data: dict, name: str) -> np.ndarray:
    """A user-trained embedder (`facelab models add`): every image embedded on the pipeline's landmarks (the
    cached detections), cached in out/far_table/<name>.npz."""
    from facelab.embedders import OnnxEmbedder, registered_embedder_names

    base, flip = (name[:-5], True) if name.endswith("+flip") else (name, False)
    if base not in registered_embedder_names():
        raise SystemExit(f"{name!r} is neither a shipped embedder ({', '.join(EMBEDDERS)}) nor a registered one")
    cache = ROOT / "out" / "far_table" / f"{name.replace('+', '_')}.npz"
    names = [str(n) for n in data["names"]]
    if cache.exists() and list(np.load(cache)["names"]) == names:
        return np.load(cache)["vectors"]
    from facelab.align import align_face
    from facelab.images import load_image
    from facelab.pipeline import get_detector
    from lfw_cache import CACHE
    from lfw_verify import pipeline_landmarks

    det = np.load(CACHE / "det.npz")
    det = {k: det[k] for k in det.files}
    index = {n: i for i, n in enumerate(det["names"])}
    landmarks = pipeline_landmarks(det, get_detector())[0]
    emb = OnnxEmbedder(base, flip=flip)
    root = lfw_root()
    out = np.zeros((len(names), emb.dim), np.float32)
    for i0 in range(0, len(names), 64):
        batch = names[i0:i0 + 64]
        crops = np.stack([align_face(load_image(root / "images" / n), landmarks[index[n]], emb.size) for n in batch])
        out[i0:i0 + len(batch)] = emb.embed_crops(crops)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=np.array(names), vectors=out)
    return out


def genders(images: np.ndarray, root: Path) -> dict[str, int]:
    """person -> 0 male, 1 female (from LFW's per-image gender lists; a person's first listed image decides)."""
    out: dict[str, int] = {}
    for code, fname in ((0, "gender_male.txt"), (1, "gender_female.txt")):
        for line in (root / fname).read_text().split():
            out.setdefault(line.rsplit("_", 1)[0], code)
    return out


class Population:
    """Images sorted by person, with person and gender indices (what the pair loops need)."""

    def __init__(self, person_names: np.ndarray, gender_of: dict[str, int]):
        self.order = np.argsort(person_names, kind="stable")
        names = person_names[self.order]
        self.people, self.pid = np.unique(names, return_inverse=True)
        self.pid = self.pid.astype(np.int32)
        self.n_img = np.bincount(self.pid, minlength=len(self.people)).astype(np.float64)
        self.gender = np.array([gender_of.get(p, -1) for p in self.people], np.int8)
        self.start = np.r_[0, np.cumsum(self.n_img).astype(int)]

    @property
    def impostor_pairs(self) -> int:
        n = self.n_img
        return int((n.sum() ** 2 - (n ** 2).sum()) / 2)

    def same_gender_pairs(self) -> int:
        total = 0
        for g in (0, 1):
            n = self.n_img[self.gender == g]
            total += (n.sum() ** 2 - (n ** 2).sum()) / 2
        return int(total)


# -- scoring ---------------------------------------------------------------------------------------------------
def score_pairs(x: np.ndarray, pop: Population, keep_above: float | None, log=print, with_images: bool = False
                ) -> dict:
    """Every impostor pair (histogram, and the pairs >= keep_above) and every genuine pair (all scores).

    x: unit vectors in `pop.order`. Only pairs i < j are scored. with_images: also the image indices of the
    kept and genuine pairs (kept_i/kept_j, genuine_i/genuine_j)."""
    n = len(x)
    bins = int(round(2 / GRID)) + 1
    hist_all = np.zeros(bins, np.int64)
    hist_sg = np.zeros(bins, np.int64)
    kept: dict[str, list[np.ndarray]] = {"a": [], "b": [], "s": [], "i": [], "j": []}
    genuine: dict[str, list[np.ndarray]] = {"p": [], "s": [], "i": [], "j": []}
    gender = pop.gender[pop.pid]
    t0 = time.perf_counter()
    for i0 in range(0, n, BLOCK):
        i1 = min(n, i0 + BLOCK)
        s = x[i0:i1] @ x[i0:].T                       # rows i0..i1, columns i0..n
        rows = np.arange(i0, i1)[:, None]
        cols = np.arange(i0, n)[None, :]
        upper = cols > rows
        same_person = pop.pid[i0:i1, None] == pop.pid[None, i0:]
        imp = upper & ~same_person
        gen = upper & same_person
        vals = s[imp]
        idx = np.clip(((vals + 1) / GRID).astype(np.int64), 0, bins - 1)
        hist_all += np.bincount(idx, minlength=bins)
        sg = (gender[i0:i1, None] == gender[None, i0:]) & (gender[i0:i1, None] >= 0)
        hist_sg += np.bincount(np.clip(((s[imp & sg] + 1) / GRID).astype(np.int64), 0, bins - 1), minlength=bins)
        if keep_above is not None:
            r, c = np.nonzero(imp & (s >= keep_above))
            kept["a"].append(pop.pid[i0 + r])
            kept["b"].append(pop.pid[i0 + c])
            kept["s"].append(s[r, c].astype(np.float32))
            if with_images:
                kept["i"].append((i0 + r).astype(np.int32))
                kept["j"].append((i0 + c).astype(np.int32))
        r, c = np.nonzero(gen)
        genuine["p"].append(pop.pid[i0 + r])
        genuine["s"].append(s[r, c].astype(np.float32))
        if with_images:
            genuine["i"].append((i0 + r).astype(np.int32))
            genuine["j"].append((i0 + c).astype(np.int32))
    log(f"    scored {n} images in {time.perf_counter() - t0:.0f} s")
    out = {"hist_all": hist_all, "hist_same_gender": hist_sg,
           "genuine_person": np.concatenate(genuine["p"]), "genuine_score": np.concatenate(genuine["s"])}
    if keep_above is not None:
        out.update(kept_a=np.concatenate(kept["a"]), kept_b=np.concatenate(kept["b"]), kept_s=np.concatenate(kept["s"]))
    if with_images:
        out.update(genuine_i=np.concatenate(genuine["i"]), genuine_j=np.concatenate(genuine["j"]))
        if keep_above is not None:
            out.update(kept_i=np.concatenate(kept["i"]), kept_j=np.concatenate(kept["j"]))
    return out


def sample_threshold(x: np.ndarray, pop: Population, far: float, n: int = 2_000_000, seed: int = 0) -> float:
    """A cosine safely below the FAR `far` point, from a random sample of impostor pairs (so that one pass keeps
    every pair the table needs)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(x), n), rng.integers(0, len(x), n)
    ok = pop.pid[a] != pop.pid[b]
    s = np.einsum("ij,ij->i", x[a[ok]], x[b[ok]])
    return float(np.quantile(s, 1 - far * 1.5))


def exact_threshold(scores_desc: np.ndarray, total: int, far: float) -> float:
    """The lowest 5-decimal cosine t with (#scores >= t) / total <= far. scores_desc: the top scores, sorted."""
    k = int(math.floor(far * total))            # at most k pairs may pass
    if k >= len(scores_desc):
        raise ValueError("not enough kept pairs for this FAR")
    t = math.ceil(float(scores_desc[k]) * 1e5) / 1e5
    if t <= float(scores_desc[k]):
        t += 1e-5
    while k > 0 and np.count_nonzero(scores_desc >= t) > k:   # float rounding guard
        t += 1e-5
    return round(t, 5)


# -- bootstrap over people ----------------------------------------------------------------------------------
def person_pair_counts(a: np.ndarray, b: np.ndarray, n_people: int):
    """Symmetric sparse matrix: impostor pairs per (person, person) (each pair in both halves)."""
    from scipy.sparse import coo_matrix

    data = np.ones(len(a) * 2, np.float64)
    return coo_matrix((data, (np.r_[a, b], np.r_[b, a])), shape=(n_people, n_people)).tocsr()


def impostor_totals(m: np.ndarray, n_img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Impostor pairs in each bootstrap sample (rows of m: person multiplicities). mask: people of one group."""
    if mask is not None:
        m, n_img = m[:, mask], n_img[mask]
    w = m * n_img
    return (w.sum(1) ** 2 - (w ** 2).sum(1)) / 2


def bootstrap(m: np.ndarray, pop: Population, res: dict, thresholds: list[float]) -> dict:
    """95 % intervals (2.5th, 97.5th percentile over resampled people) of FAR, same-gender FAR and TAR."""
    n_people = len(pop.people)
    denom_all = impostor_totals(m, pop.n_img)
    denom_sg = sum(impostor_totals(m, pop.n_img, pop.gender == g) for g in (0, 1))
    gp, gs = res["genuine_person"], res["genuine_score"]
    gen_total = np.bincount(gp, minlength=n_people).astype(np.float64)
    same_g = pop.gender[res["kept_a"]] == pop.gender[res["kept_b"]]
    same_g &= pop.gender[res["kept_a"]] >= 0
    out = {}
    for t in thresholds:
        above = res["kept_s"] >= t
        c = person_pair_counts(res["kept_a"][above], res["kept_b"][above], n_people)
        num = np.einsum("bp,pb->b", m, c @ m.T) / 2
        sel = above & same_g
        c_sg = person_pair_counts(res["kept_a"][sel], res["kept_b"][sel], n_people)
        num_sg = np.einsum("bp,pb->b", m, c_sg @ m.T) / 2
        gen_above = np.bincount(gp[gs >= t], minlength=n_people).astype(np.float64)
        tar = (m @ gen_above) / np.maximum(m @ gen_total, 1)
        out[t] = {"far": np.percentile(num / denom_all, [2.5, 97.5]),
                  "far_same_gender": np.percentile(num_sg / denom_sg, [2.5, 97.5]),
                  "tar": np.percentile(tar, [2.5, 97.5])}
    return out


def sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def ci(pair) -> list[float]:
    return [sig(float(pair[0])), sig(float(pair[1]))]


# -- one embedder --------------------------------------------------------------------------------------------
def far_curve(hist: np.ndarray, total: int) -> list[dict]:
    """(threshold, FAR) at log-spaced FARs, from the histogram (grid edges: for plotting, not for thresholds)."""
    above = np.cumsum(hist[::-1])[::-1]  # pairs with score >= bin's lower edge
    out = []
    for far in np.logspace(-1, -7, 25):
        k = np.nonzero(above / total <= far)[0]
        if len(k):
            out.append({"threshold": round(-1 + int(k[0]) * GRID, 4), "far": sig(above[k[0]] / total)})
    return out


def evaluate(name: str, data: dict, pop: Population, boots: int, log=print) -> dict:
    x = embedder_vectors(data, name)[pop.order].astype(np.float32)
    keep_above = sample_threshold(x, pop, KEEP_FAR)
    res = score_pairs(x, pop, keep_above, log)
    n_imp, n_sg = pop.impostor_pairs, pop.same_gender_pairs()
    assert int(res["hist_all"].sum()) == n_imp, (int(res["hist_all"].sum()), n_imp)
    kept_desc = np.sort(res["kept_s"])[::-1]
    same_g = (pop.gender[res["kept_a"]] == pop.gender[res["kept_b"]]) & (pop.gender[res["kept_a"]] >= 0)
    kept_sg_desc = np.sort(res["kept_s"][same_g])[::-1]
    gs = res["genuine_score"]
    thresholds = [exact_threshold(kept_desc, n_imp, f) for f in TARGETS]
    sg_thresholds = [exact_threshold(kept_sg_desc, n_sg, f) for f in TARGETS]
    rng = np.random.default_rng(1)
    m = rng.multinomial(len(pop.people), np.full(len(pop.people), 1 / len(pop.people)), size=boots).astype(np.float64)
    intervals = bootstrap(m, pop, res, thresholds)
    table = []
    for f, t, t_sg in zip(TARGETS, thresholds, sg_thresholds):
        n_above = int(np.count_nonzero(kept_desc >= t))
        n_above_sg = int(np.count_nonzero(kept_sg_desc >= t))
        iv = intervals[t]
        table.append({
            "far": f, "threshold": t,
            "far_measured": sig(n_above / n_imp), "impostors_accepted": n_above, "far_ci95": ci(iv["far"]),
            "tar": round(float((gs >= t).mean()), 5), "tar_ci95": [round(float(v), 5) for v in iv["tar"]],
            "far_same_gender": sig(n_above_sg / n_sg), "far_same_gender_ci95": ci(iv["far_same_gender"]),
            "same_gender_threshold": t_sg, "tar_at_same_gender_threshold": round(float((gs >= t_sg).mean()), 5),
        })
    # TAR per person first, then averaged over people: George W Bush alone has 530 photos (~140,000 of the genuine
    # pairs), so the pair-weighted TAR is mostly his.
    gp = res["genuine_person"]
    per_person_total = np.bincount(gp, minlength=len(pop.people))
    has = per_person_total > 0
    for row in table:
        acc = np.bincount(gp[gs >= row["threshold"]], minlength=len(pop.people))
        row["tar_person_mean"] = round(float((acc[has] / per_person_total[has]).mean()), 5)
    return {"model": name, "impostor_pairs": n_imp, "same_gender_impostor_pairs": n_sg,
            "genuine_pairs": int(len(gs)), "people_with_genuine_pairs": int(has.sum()),
            "far_table": table, "curve": far_curve(res["hist_all"], n_imp),
            "curve_same_gender": far_curve(res["hist_same_gender"], n_sg),
            "genuine_score_percentiles": {str(q): round(float(np.percentile(gs, q)), 4) for q in (0.1, 1, 5, 50)}}


# -- thresholds.json ---------------------------------------------------------------------------------------
def write_thresholds(results: dict, how: dict, path: Path | None = None) -> None:
    """Each model's FAR table and FAR-chosen default; the View 2 figures (lfw_verify.py) are kept beside them."""
    from facelab.verification import THRESHOLDS_FILE

    path = path or THRESHOLDS_FILE
    table = json.loads(path.read_text()) if path.exists() else {}
    for name, r in results.items():
        if name not in EMBEDDERS:
            continue  # a user's model: its figures stay in the results JSON, not in the shipped table
        entry = table.get(name, {})
        view2 = entry.get("view2") or {k: entry[k] for k in ("source", "default", "far_table") if k in entry}
        if view2.get("default", {}).get("note", "").startswith("threshold of best accuracy"):
            view2["best_accuracy"] = view2.pop("default")
        rows = [{k: row[k] for k in ("far", "threshold", "far_measured", "far_ci95", "tar", "tar_ci95",
                                       "far_same_gender")} for row in r["far_table"]]
        default = dict(next(row for row in rows if row["far"] == DEFAULT_FAR))
        default["note"] = (f"chosen by false-accept rate: the lowest threshold whose FAR on "
                           f"{r['impostor_pairs']:,} LFW impostor pairs is <= {DEFAULT_FAR:g}")
        table[name] = {"source": "LFW all pairs", "default": default, "far_table": rows,
                       "measured": {**how, "impostor_pairs": r["impostor_pairs"],
                                    "genuine_pairs": r["genuine_pairs"]},
                       "lfw_accuracy": entry.get("lfw_accuracy"), "view2": view2}
    for name, entry in table.items():
        if name not in results and "view2" not in entry and "far_table" in entry:
            # a model without all-pairs vectors (sface/bgr): View 2's strictest FAR row, never best accuracy
            best = entry["default"]
            strictest = min(entry["far_table"], key=lambda p: p["far"])
            entry["view2"] = {"source": entry.get("source"), "far_table": entry["far_table"],
                              "best_accuracy": best}
            entry["default"] = {**strictest, "note": "View 2's strictest FAR row (no all-pairs vectors)"}
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boot", type=int, default=200, help="bootstrap samples over people")
    ap.add_argument("--models", default=",".join(EMBEDDERS),
                    help="comma-separated; a registered embedder (`facelab models add`) is embedded on every image "
                         "first and its figures go to benchmarks/results/far_table_NAME.json")
    ap.add_argument("--no-write", action="store_true", help="do not update facelab/models/thresholds.json")
    ap.add_argument("--vectors", type=Path,
                    help="another file of the same layout (default out/lfw_cache/all_images.npz)")
    args = ap.parse_args()

    data = load_vectors(args.vectors)
    root = lfw_root()
    pop = Population(data["person"], genders(data["person"], root))
    print(f"LFW: {len(pop.pid)} images with a face ({data['dropped_no_face']} without), {len(pop.people)} people; "
          f"{pop.impostor_pairs:,} impostor pairs ({pop.same_gender_pairs():,} same gender)", flush=True)
    results = {}
    for name in args.models.split(","):
        print(f"  {name}", flush=True)
        t0 = time.perf_counter()
        results[name] = r = evaluate(name, data, pop, args.boot)
        r["seconds"] = round(time.perf_counter() - t0, 1)  # scoring + bootstrap, on a shared 2-core machine
        print(f"    {'FAR':>7s} {'threshold':>9s} {'measured':>9s} {'FAR 95% CI':>20s} {'TAR':>7s} {'TAR 95% CI':>17s}"
              f" {'same-gender FAR':>15s} {'sg threshold':>12s}")
        for row in r["far_table"]:
            print(f"    {row['far']:7.0e} {row['threshold']:9.5f} {row['far_measured']:9.2e} "
                  f"[{row['far_ci95'][0]:8.2e}, {row['far_ci95'][1]:8.2e}] {row['tar']:7.4f} "
                  f"[{row['tar_ci95'][0]:.4f}, {row['tar_ci95'][1]:.4f}] {row['far_same_gender']:15.2e} "
                  f"{row['same_gender_threshold']:12.5f}", flush=True)
    how = {"data": f"LFW deep-funneled, all {len(pop.pid)} images with a detected face "
                   f"({data['dropped_no_face']} without a face left out), {len(pop.people)} people",
           "vectors": f"{args.vectors or 'out/lfw_cache/all_images.npz'} (benchmarks/lfw_all_images.py's stage "
                      f"caches: facelab's pipeline; sface/bgr: out/lfw_cache/sface_bgr_pipeline.npz, a user's "
                      f"model: out/far_table/NAME.npz)",
           "threshold_rule": "lowest 5-decimal cosine whose FAR over every impostor pair is <= the target",
           "intervals": f"95 % bootstrap over people ({args.boot} samples; pairs follow their people)",
           "command": "benchmarks/far_table.py"}
    doc = {**how, "default_far": DEFAULT_FAR, "gender_source": "lfw/gender_male.txt, lfw/gender_female.txt",
           "people_by_gender": {"male": int((pop.gender == 0).sum()), "female": int((pop.gender == 1).sum()),
                                "unknown": int((pop.gender < 0).sum())},
           "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    shipped = {k: v for k, v in results.items() if k in EMBEDDERS}
    if shipped:
        if RESULTS.exists():  # a run of some models (`--models sface/bgr`) keeps the others' figures
            kept = json.loads(RESULTS.read_text()).get("results", {})
            shipped = {**{k: v for k, v in kept.items() if k not in shipped and k in EMBEDDERS}, **shipped}
        RESULTS.write_text(json.dumps({**doc, "results": shipped}, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    for name, r in results.items():
        if name not in EMBEDDERS:  # a user's model: its own file, never the shipped table
            path = RESULTS.with_name(f"far_table_{name.replace('+', '_').replace('/', '_')}.json")
            path.write_text(json.dumps({**doc, "results": {name: r}}, indent=1) + "\n")
            print(f"wrote {path}")
    if not args.no_write:
        write_thresholds(results, how)
        print("wrote facelab/models/thresholds.json")


if __name__ == "__main__":
    main()
