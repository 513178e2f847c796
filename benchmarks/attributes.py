"""Attribute benchmarks: expression, gender, age, eyewear, mask, skin tone consistency, per-attribute cost.

    .venv/bin/python benchmarks/attributes.py [--data ../shared/data] [--cache out/attributes-cache] [--parts ...]

Writes benchmarks/results/attributes.json and benchmarks/results/expression_confusion.png.
- Expression: the shipped ONNX model on FER2013 PrivateTest (never used in training or model selection), with and
  without a horizontal-flip average; per-class recall; confusion matrix. LFW happy-vs-neutral agreement runs the
  whole pipeline (detection, landmark crop, model) on the photos of lfw/expressions.csv.
- Age/gender/eyewear/mask: out-of-fold figures (the heads refitted on all data are never scored on their own
  training images): run the feature extraction first (the pipeline's own detection, alignment and networks):
      python -m training.attributes.extract_faces utkface --age-gender --no-embed --out out/attributes-cache
      python -m training.attributes.extract_faces lfw_gender --age-gender --no-embed --every 4 \
          --out out/attributes-cache
- Age on LFW (a second source, never fitted on): people with >= 10 photos and a public birth year, photos taken as
  from 2002-2003 (LFW's news photos), through facelab.analyze.
- Cost: median over repeated runs on the astronaut photo (one face), per analyser, on this machine.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import facelab  # noqa: E402
from facelab.attributes import plan  # noqa: E402
from facelab.attributes.expression import CLASSES, Expression  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def expression_fer(data: Path) -> dict:
    from PIL import Image

    model = Expression()
    crops, labels = [], []
    for k, name in enumerate(CLASSES):
        for path in sorted((data / "expressions/fer2013_privatetest" / name).glob("*.jpg")):
            crops.append(np.asarray(Image.open(path).convert("L")))
            labels.append(k)
    y = np.array(labels)
    probs = np.concatenate([model.probabilities(crops[i:i + 256]) for i in range(0, len(crops), 256)])
    flipped = np.concatenate([model.probabilities([c[:, ::-1] for c in crops[i:i + 256]])
                              for i in range(0, len(crops), 256)])
    pred = probs.argmax(1)
    conf = np.array([[int(((y == i) & (pred == j)).sum()) for j in range(7)] for i in range(7)])
    plot_confusion(conf)
    return {"n": int(len(y)), "accuracy": round(float((pred == y).mean()), 4),
            "accuracy_flip_average": round(float(((probs + flipped).argmax(1) == y).mean()), 4),
            "recall": {c: round(float(conf[k, k] / conf[k].sum()), 4) for k, c in enumerate(CLASSES)},
            "confusion": conf.tolist(), "classes": list(CLASSES), "plot": "benchmarks/results/expression_confusion.png"}


def plot_confusion(conf: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = conf / conf.sum(1, keepdims=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(7):
        for j in range(7):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{conf[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(7), CLASSES, rotation=45)
    ax.set_yticks(range(7), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"expression_cnn on FER2013 PrivateTest (n={conf.sum()}), row-normalised")
    fig.tight_layout()
    fig.savefig(RESULTS / "expression_confusion.png", dpi=110)


def expression_lfw(data: Path) -> dict:
    rows = list(csv.DictReader(open(data / "lfw/expressions.csv")))
    agree, n, no_face, withheld = 0, 0, 0, 0
    table = {"happy": {}, "neutral": {}}
    for row in rows:
        faces = facelab.analyze(data / "lfw/images" / row["image"], ["expression"])
        if not faces:
            no_face += 1
            continue
        from facelab.pipeline import pick_main_face

        rgb_shape = (250, 250)
        face = pick_main_face(faces, rgb_shape)
        value = face.attributes["expression"]["value"]
        if value is None:
            withheld += 1
            continue
        table[row["label"]][value] = table[row["label"]].get(value, 0) + 1
        agree += (value == "happy") == (row["label"] == "happy")
        n += 1
    return {"n": n, "no_face": no_face, "withheld": withheld,
            "happy_vs_not_agreement": round(agree / max(n, 1), 4), "predictions_by_label": table}


# Birth years of LFW people with >= 10 photos (public record). LFW's photos are news photos from 2002-2003 (Berg et
# al., "Names and Faces in the News", 2004), so each face is taken as aged 2002.5 - birth year, +- about a year.
BIRTH_YEARS = {
    "Alvaro_Uribe": 1952, "Andre_Agassi": 1970, "Angelina_Jolie": 1975, "Anna_Kournikova": 1981, "Ariel_Sharon": 1928,
    "Arnold_Schwarzenegger": 1947, "Bill_Clinton": 1946, "Britney_Spears": 1981, "Catherine_Zeta-Jones": 1969,
    "Colin_Powell": 1937, "Condoleezza_Rice": 1954, "Dick_Cheney": 1941, "Donald_Rumsfeld": 1932, "Fidel_Castro": 1926,
    "George_W_Bush": 1946, "Gerhard_Schroeder": 1944, "Gloria_Macapagal_Arroyo": 1947, "Halle_Berry": 1966,
    "Hans_Blix": 1928, "Hillary_Clinton": 1947, "Hugo_Chavez": 1954, "Jacques_Chirac": 1932, "Jean_Chretien": 1934,
    "Jennifer_Aniston": 1969, "Jennifer_Capriati": 1976, "Jennifer_Garner": 1972, "Jennifer_Lopez": 1969,
    "John_Ashcroft": 1942, "John_Howard": 1939, "Julianne_Moore": 1960, "Junichiro_Koizumi": 1942,
    "Kim_Clijsters": 1983,
    "Kofi_Annan": 1938, "Laura_Bush": 1946, "Lleyton_Hewitt": 1981, "Luiz_Inacio_Lula_da_Silva": 1945,
    "Megawati_Sukarnoputri": 1947, "Meryl_Streep": 1949, "Michael_Schumacher": 1969, "Nicole_Kidman": 1967,
    "Pete_Sampras": 1971, "Queen_Elizabeth_II": 1926, "Ricardo_Lagos": 1938, "Roh_Moo-hyun": 1946, "Salma_Hayek": 1966,
    "Serena_Williams": 1981, "Silvio_Berlusconi": 1936, "Tiger_Woods": 1975, "Tom_Daschle": 1947, "Tom_Ridge": 1945,
    "Tony_Blair": 1953, "Venus_Williams": 1980, "Vladimir_Putin": 1952,
}
AGE_BANDS = ((0, 39), (40, 59), (60, 120))  # LFW's newsmakers: one of the 53 is under 20


def age_lfw_known(data: Path, per_person: int = 20) -> dict:
    """Age on a second source, never fitted on: the first `per_person` photos of each person in BIRTH_YEARS, through
    facelab.analyze (main face). Reports the shipped (calibrated) age and age_v1's raw output."""
    from facelab.pipeline import pick_main_face

    rows = []
    for person, born in sorted(BIRTH_YEARS.items()):
        folder = data / "lfw/images" / person
        for path in sorted(folder.glob("*.jpg"))[:per_person]:
            faces = facelab.analyze(path, ["age"])
            if faces:
                age = pick_main_face(faces, (250, 250)).attributes["age"]
                if age.get("value") is not None:
                    rows.append((person, 2002.5 - born, age["value"], age["raw"]))
    truth = np.array([r[1] for r in rows])
    out = {"people": len({r[0] for r in rows}), "faces": len(rows), "per_person": per_person,
           "photo_year_assumed": 2002.5}
    for name, col in (("shipped", 2), ("age_v1_raw", 3)):
        pred = np.array([r[col] for r in rows])
        err = pred - truth
        out[name] = {"mae": round(float(np.abs(err).mean()), 2), "bias": round(float(err.mean()), 2)}
        for lo, hi in AGE_BANDS:
            sel = (truth >= lo) & (truth < hi + 1)
            out[name][f"{lo}-{hi}"] = {"n": int(sel.sum()), "mae": round(float(np.abs(err[sel]).mean()), 2),
                                       "bias": round(float(err[sel].mean()), 2)}
    return out


def heads(cache: Path) -> dict:
    """Age calibration (out-of-fold, recomputed from the feature cache) and gender; eyewear/mask CNN out-of-fold
    figures as recorded by their training runs (train_crops.py: models/cards/crops_cnn_train_log.json; train_mask.py:
    models/cards/mask_cnn_train_log.json)."""
    import io
    import shutil
    from contextlib import redirect_stdout

    from training.attributes import train_age_gender

    out = {}
    tmp = RESULTS / "_heads_tmp"
    (tmp / "weights").mkdir(parents=True, exist_ok=True)
    (tmp / "cards").mkdir(exist_ok=True)
    if (cache / "utkface.npz").is_file():
        with redirect_stdout(io.StringIO()):
            train_age_gender.main(["--cache", str(cache), "--out", str(tmp / "weights")])
        out.update(json.loads((tmp / "cards/age_gender.json").read_text()))
    shutil.rmtree(tmp)
    log = ROOT / "facelab/models/cards/crops_cnn_train_log.json"
    if log.is_file():
        recorded = json.loads(log.read_text())
        if "eyewear" in recorded:
            out["eyewear"] = {"source": f"recorded by train_crops.py ({recorded['device']})", **recorded["eyewear"]}
    log = ROOT / "facelab/models/cards/mask_cnn_train_log.json"
    if log.is_file():
        recorded = json.loads(log.read_text())  # per-fold details stay in the log
        out["mask"] = {"source": "recorded by train_mask.py (models/cards/mask_cnn_train_log.json)",
                       "cv5": recorded.get("cv5"), "fold0": recorded.get("fold0", {}).get("held_out")}
    return out


def skin_tone_consistency(data: Path, people: int = 20, per_person: int = 8) -> dict:
    """Spread of ITA across photos of the same person: what lighting and white balance do to the measurement."""
    folders = sorted(p for p in (data / "lfw/images").iterdir() if len(list(p.glob("*.jpg"))) >= 10)[:people]
    spreads, values = [], []
    for folder in folders:
        itas = []
        for path in sorted(folder.glob("*.jpg"))[:per_person]:
            faces = facelab.analyze(path, ["skin_tone"])
            if faces and faces[0].attributes["skin_tone"].get("ita") is not None:
                itas.append(faces[0].attributes["skin_tone"]["ita"])
        if len(itas) >= 3:
            spreads.append(float(np.std(itas)))
            values.append(itas)
    cats_same = [len({_cat(v) for v in itas}) == 1 for itas in values]
    return {"people": len(spreads), "photos_per_person": per_person,
            "median_within_person_ita_std": round(float(np.median(spreads)), 1),
            "share_of_people_with_one_category_in_all_photos": round(float(np.mean(cats_same)), 3)}


def _cat(ita):
    from facelab.attributes.skin_tone import CATEGORIES

    return next(n for lower, n, _ in CATEGORIES if ita > lower)


def emoticon_sheet() -> str:
    """Every expression x accessory combination, drawn with sample skin colours (no model needed)."""
    from PIL import Image

    from facelab.attributes.emoticon import shapes, to_png

    rows = [("none", "none", "#f2c79b"), ("eyeglasses", "none", "#c68642"), ("sunglasses", "none", "#8d5524"),
            ("none", "mask", "#e0ac69"), ("none", "incorrect", "#ffdbac")]
    sheet = Image.new("RGBA", (96 * len(CLASSES), 96 * len(rows)), (255, 255, 255, 255))
    order = ["happy", "neutral", "sad", "angry", "surprise", "fear", "disgust"]
    for j, (eyewear, mask, skin) in enumerate(rows):
        for i, expression in enumerate(order):
            sheet.alpha_composite(to_png(shapes(expression, eyewear, mask, skin), 96), (96 * i, 96 * j))
    sheet.convert("RGB").save(RESULTS / "emoticon_sheet.png")
    return "benchmarks/results/emoticon_sheet.png"


def cost(repeats: int = 15) -> dict:
    from skimage import data as skdata

    from facelab.pipeline import shared_analysis

    rgb = skdata.astronaut()
    fa = shared_analysis()
    facelab.analyze(rgb)  # load every model once

    def median_ms(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return round(float(np.median(times)), 2)

    faces = fa.detect_rgb(rgb)
    out = {"detection_ms": median_ms(lambda: fa.detect_rgb(rgb)),
           "sface_embedding_ms": median_ms(lambda: fa.embed_faces(rgb, faces))}
    fa.embed_faces(rgb, faces)
    per = {}
    for analyser in plan(None):
        per["+".join(analyser.wanted)] = median_ms(functools.partial(analyser.run, rgb, faces))
    out["per_attribute_ms"] = per
    out["all_attributes_ms_excluding_detection_and_embedding"] = round(sum(per.values()), 2)
    out["all_attributes_ms_including_embedding"] = round(sum(per.values()) + out["sface_embedding_ms"], 2)
    out["analyze_all_end_to_end_ms"] = median_ms(lambda: facelab.analyze(rgb))
    import os

    out["machine"] = f"{os.cpu_count()} CPU cores (shared with other jobs during the run)"
    out["load_average_1min"] = round(os.getloadavg()[0], 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "out" / "attributes-cache"))
    ap.add_argument("--parts", default="sheet,cost,fer,heads,lfw_expressions,skin,age_lfw",
                    help="comma-separated subset; results are merged into an existing attributes.json")
    args = ap.parse_args()
    data, cache = Path(args.data), Path(args.cache)
    parts = set(args.parts.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "attributes.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("commands", {})
    t = time.time()
    if "sheet" in parts:
        results["emoticon_sheet"] = emoticon_sheet()
    if "cost" in parts:
        results["cost"] = cost()
        print("cost", json.dumps(results["cost"]), flush=True)
    if "fer" in parts:
        results["expression_fer2013_privatetest"] = expression_fer(data)
        print("fer", results["expression_fer2013_privatetest"]["accuracy"], flush=True)
    if "heads" in parts:
        results.update(heads(cache))
    if "lfw_expressions" in parts:
        results["expression_lfw_happy_neutral"] = expression_lfw(data)
        print("lfw expressions", json.dumps(results["expression_lfw_happy_neutral"]), flush=True)
    if "skin" in parts:
        results["skin_tone_lfw_consistency"] = skin_tone_consistency(data)
    if "age_lfw" in parts:
        results["age_lfw_known_birth_years"] = age_lfw_known(data)
        print("age lfw", json.dumps(results["age_lfw_known_birth_years"]), flush=True)
    for part in parts:
        results["commands"][part] = "python benchmarks/attributes.py " + " ".join(sys.argv[1:])
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=1, ensure_ascii=False), f"\n{time.time() - t:.0f}s")


if __name__ == "__main__":
    main()
