"""Landmark variants for SFace: does another estimate of YuNet's 5 landmarks verify better? (a one-off study)

    .venv/bin/python benchmarks/landmark_variants.py base,flipavg,up1.5,ms1.5,ms0.75,base_const [N]

base: the pipeline's landmarks (roll check off); flipavg: averaged with the detection on the mirrored image;
upS: YuNet re-run at scale S; msS: average of scales 1 and S; *_const: constant instead of replicated border in
the warp. Prints LFW View 1 (development pairs, 2-fold) and View 2 (10-fold) accuracy per variant: a variant
counts as better only if View 1 agrees (View 1 is where LFW says to choose a method). Vectors go to out/.
"""
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, "benchmarks")
sys.path.insert(0, ".")
from pathlib import Path

from facelab.align import ARCFACE_TEMPLATE, similarity_transform
from facelab.evaluation.lfw import evaluate_scores, read_pairs
from facelab.images import load_image, to_bgr
from facelab.pipeline import get_detector, get_embedder

LFW = Path("../shared/data/lfw")
pairs = read_pairs(LFW / "pairs.txt")
from lfw_cache import view1_pairs

v1 = view1_pairs()
names = sorted({p.a for p in pairs} | {p.b for p in pairs} | {n for a, b, _ in v1 for n in (a, b)})
idx = {n: i for i, n in enumerate(names)}
ia = np.array([idx[p.a] for p in pairs])
ib = np.array([idx[p.b] for p in pairs])
det = get_detector()
det.refine_roll = False
emb = get_embedder("sface")
variants = sys.argv[1].split(",")
N = int(sys.argv[2]) if len(sys.argv) > 2 else len(names)

def yunet(bgr, scale):
    d = det._scaled(bgr, scale, 0, 0)
    return d

def pick(dets, ref_box):
    if not len(dets):
        return None
    b = dets[:, :4]
    x1 = np.maximum(b[:, 0], ref_box[0])
    y1 = np.maximum(b[:, 1], ref_box[1])
    x2 = np.minimum(b[:, 0] + b[:, 2], ref_box[0] + ref_box[2])
    y2 = np.minimum(b[:, 1] + b[:, 3], ref_box[1] + ref_box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iou = inter / (b[:, 2] * b[:, 3] + ref_box[2] * ref_box[3] - inter)
    j = int(np.argmax(iou))
    return dets[j] if iou[j] > 0.3 else None

def flipped_landmarks(bgr, ref_box, scale=1.0):
    w = bgr.shape[1]
    d = det._scaled(np.ascontiguousarray(bgr[:, ::-1]), scale, 0, 0)
    if not len(d):
        return None
    d = d.copy()
    # unflip boxes and points
    d[:, 0] = w - d[:, 0] - d[:, 2]
    for c in (4, 6, 8, 10, 12):
        d[:, c] = w - 1 - d[:, c]
    best = pick(d, ref_box)
    if best is None:
        return None
    lm = best[4:14].reshape(5, 2)
    return lm[[1, 0, 2, 4, 3]]  # swap left/right eyes and mouth corners

from facelab.pipeline import FaceAnalysis, pick_main_face

fa = FaceAnalysis()
fa.detector.refine_roll = False
out = {v: np.zeros((len(names), 128), np.float32) for v in variants}
t0 = time.time()
for i, n in enumerate(names[:N]):
    rgb = load_image(LFW / "images" / n)
    bgr = to_bgr(rgb)
    faces = fa.detect_rgb(rgb)
    if not faces:
        continue
    f = pick_main_face(faces, rgb.shape)
    box = np.asarray(f.box)
    base = np.asarray(f.landmarks)
    crops = {}
    for v in variants:
        lm = base
        if v.startswith("flipavg"):
            fl = flipped_landmarks(bgr, box)
            lm = base if fl is None else (base + fl) / 2
        elif v.startswith("up"):
            s = float(v[2:].split("_")[0])
            b = pick(yunet(bgr, s), box)
            lm = base if b is None else b[4:14].reshape(5, 2).astype(np.float64)
        elif v.startswith("ms"):  # mean over scales 1 and s
            s = float(v[2:])
            b = pick(yunet(bgr, s), box)
            lm = base if b is None else (base + b[4:14].reshape(5, 2)) / 2
        border = cv2.BORDER_CONSTANT if v.endswith("_const") else cv2.BORDER_REPLICATE
        m = similarity_transform(lm, ARCFACE_TEMPLATE)
        crop = cv2.warpAffine(rgb, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=border)
        out[v][i] = emb.embed_crops(crop[None])[0]
    if i % 1000 == 0:
        print(i, time.time() - t0, flush=True)
for v in variants:
    (ROOT_OUT := Path("out/landmark_variants")).mkdir(parents=True, exist_ok=True)
    np.save(ROOT_OUT / f"{v}.npy", out[v])
    vec = out[v]
    s = np.einsum("ij,ij->i", vec[ia], vec[ib])
    r = evaluate_scores(pairs, s)
    ja = np.array([idx[a] for a, b, _ in v1])
    jb = np.array([idx[b] for a, b, _ in v1])
    lab = np.array([x for _, _, x in v1])
    s1 = np.einsum("ij,ij->i", vec[ja], vec[jb])
    from facelab.evaluation.lfw import best_threshold
    folds = [np.arange(len(lab)) % 2 == k for k in (0, 1)]  # View 1 in 2 folds: threshold from one, score the other
    acc1 = np.mean([((s1[m] >= best_threshold(s1[~m], lab[~m])) == lab[m]).mean() for m in folds])
    from sklearn.metrics import roc_auc_score
    print("VIEW1", v, len(v1), round(acc1 * 100, 3), round(roc_auc_score(lab, s1), 5), flush=True)
    print(v, round(r["mean_accuracy"]*100, 3), round(r["std_accuracy"]*100, 3), r.get("auc"), flush=True)
