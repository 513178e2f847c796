"""Per-image work for the LFW benchmarks, computed once and cached under out/lfw_cache/ (git-ignored).

Each stage runs facelab's own code on every image and stores one row per image (vectors, landmarks, seconds
spent), checkpointing as it goes so that an interrupted run resumes. Configurations that differ only in how
vectors are combined (flip averaging, fusion) are then scored from the cached rows without re-embedding.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: import this worktree's facelab

LFW = ROOT.parent / "shared" / "data" / "lfw"
CACHE = ROOT / "out" / "lfw_cache"


def pair_names(path: Path, available: set[str] | None = None) -> list[tuple[str, str, bool]]:
    """(a, b, same) for every pair of an LFW pairs file (View 1 files have a one-number header)."""
    lines = [x.split("\t") for x in path.read_text().split("\n")[1:] if x.strip()]
    out = []
    for p in lines:
        if len(p) == 3:
            a, b = f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[0]}/{p[0]}_{int(p[2]):04d}.jpg"
        else:
            a, b = f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[2]}/{p[2]}_{int(p[3]):04d}.jpg"
        if available is None or (a in available and b in available):
            out.append((a, b, len(p) == 3))
    return out


def view1_pairs(root: Path = LFW) -> list[tuple[str, str, bool]]:
    """View 1 (pairsDevTrain + pairsDevTest), only the pairs whose two images are in this copy of LFW."""
    have = set((root / "images_wanted.txt").read_text().split())
    return pair_names(root / "pairsDevTrain.txt", have) + pair_names(root / "pairsDevTest.txt", have)


def run_stage(name: str, names: list[str], fn: Callable[[str], dict], every: int = 400,
              progress: bool = True) -> dict[str, np.ndarray]:
    """Apply fn to every image name (fn returns a dict of arrays/floats), caching rows in out/lfw_cache/name.npz.

    Rows for names already cached are reused; new names are computed and the file is rewritten every `every`.
    Returns {"names": array, key: stacked array} in the order of `names`.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.npz"
    rows: dict[str, dict] = {}
    if path.exists():
        data = dict(np.load(path, allow_pickle=False))
        keys = [k for k in data if k != "names"]
        for i, n in enumerate(data["names"]):
            rows[str(n)] = {k: data[k][i] for k in keys}
    todo = [n for n in names if n not in rows]
    start, done = time.perf_counter(), 0

    def save() -> None:
        ordered = list(rows)
        keys = list(rows[ordered[0]])
        tmp = path.with_suffix(".tmp.npz")  # written whole, then renamed: a reader never sees half a file
        np.savez(tmp, names=np.array(ordered), **{k: np.stack([np.asarray(rows[n][k]) for n in ordered])
                                                  for k in keys})
        tmp.replace(path)

    for n in todo:
        rows[n] = fn(n)
        done += 1
        if done % every == 0 or done == len(todo):
            save()
            if progress:
                rate = done / (time.perf_counter() - start)
                print(f"  [{name}] {done}/{len(todo)} images, {rate:.1f}/s", file=sys.stderr, flush=True)
    keys = list(rows[names[0]]) if names else []
    return {"names": np.array(names), **{k: np.stack([np.asarray(rows[n][k]) for n in names]) for k in keys}}


# ---- stages -----------------------------------------------------------------------------------------------

def detect_stage(names: list[str], root: Path = LFW, tag: str = "det") -> dict[str, np.ndarray]:
    """YuNet through FaceAnalysis.detect_rgb (detect, align, pose, quality) on each image; the main face's
    box and landmarks both without and with the dlib roll refinement, and both roll estimates."""
    from facelab.detectors import Detection
    from facelab.images import load_image, to_bgr
    from facelab.pipeline import FaceAnalysis, pick_main_face

    analysis = FaceAnalysis()
    detector = analysis.detector

    def one(name: str) -> dict:
        t0 = time.perf_counter()
        rgb = load_image(root / "images" / name)
        t1 = time.perf_counter()
        saved, detector.refine_roll = detector.refine_roll, False
        try:
            faces = analysis.detect_rgb(rgb)
        finally:
            detector.refine_roll = saved
        t2 = time.perf_counter()
        if not faces:
            nan = np.full((5, 2), np.nan)
            return {"found": False, "box": np.full(4, np.nan), "lm_raw": nan, "lm_ref": nan,
                    "yunet_roll": np.nan, "dlib_roll": np.nan, "t_load": t1 - t0, "t_detect": t2 - t1,
                    "t_refine": 0.0}
        face = pick_main_face(faces, rgb.shape)
        det = Detection(box=np.asarray(face.box), score=face.score, landmarks=face.landmarks)
        bgr = to_bgr(rgb)
        t3 = time.perf_counter()
        refined = detector._fix_roll(bgr, det).landmarks
        t4 = time.perf_counter()
        d_roll = detector._dlib_roll(bgr, det)
        return {"found": True, "box": det.box, "lm_raw": det.landmarks, "lm_ref": refined,
                "yunet_roll": face.pose.roll, "dlib_roll": np.nan if d_roll is None else d_roll,
                "t_load": t1 - t0, "t_detect": t2 - t1, "t_refine": t4 - t3}

    return run_stage(tag, names, one)


def fill_missing(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Images without a face get the mean landmarks of the others (as facelab.evaluation.lfw does)."""
    lm = landmarks.copy()
    lm[~found] = landmarks[found].mean(0)
    return lm


def sface_stage(names: list[str], landmarks: dict[str, np.ndarray], tag: str, root: Path = LFW,
                bgr: bool = True) -> dict[str, np.ndarray]:
    """SFace on the aligned crop: RGB feed, its mirror image (for flip averaging) and (optionally) BGR feed.
    Vectors are unit length; flip averaging is `embedders.flip_average(rgb, rgb_mirror)`."""
    from facelab.align import align_face
    from facelab.embedders import SFaceEmbedder
    from facelab.images import load_image
    from facelab.pipeline import get_embedder

    rgb_net = get_embedder("sface")
    bgr_net = SFaceEmbedder(order="bgr") if bgr else None

    def one(name: str) -> dict:
        img = load_image(root / "images" / name)
        crop = align_face(img, landmarks[name])[None]
        t0 = time.perf_counter()
        v = rgb_net.embed_crops(crop)[0]
        t1 = time.perf_counter()
        row = {"rgb": v, "rgb_mirror": rgb_net.embed_crops(np.ascontiguousarray(crop[:, :, ::-1]))[0],
               "t_embed": t1 - t0}
        if bgr_net is not None:
            row["bgr"] = bgr_net.embed_crops(crop)[0]
        return row

    return run_stage(tag, names, one)


def dlib_stage(names: list[str], landmarks: dict[str, np.ndarray], tag: str = "dlib_v1", root: Path | None = LFW,
               mirror: bool = False) -> dict[str, np.ndarray]:
    """dlib ResNet via DlibEmbedder (its 5-point shape inside the HOG-like box placed from the face's YuNet
    landmarks, 150 px chip); unit vectors. (Tags without "_v1" cached vectors from the YuNet box.)"""
    from facelab.faces import Face
    from facelab.images import load_image
    from facelab.pipeline import get_embedder

    net = get_embedder("dlib_resnet")

    def one(name: str) -> dict:
        img = load_image(root / "images" / name if root is not None else name)
        face = Face(box=(0.0, 0.0, 1.0, 1.0), score=1.0, landmarks=landmarks[name])  # dlib uses landmarks only
        t0 = time.perf_counter()
        chips = net.chips(img, [face])
        v = np.array(net._net.compute_face_descriptor(chips), dtype=np.float32)
        t1 = time.perf_counter()
        row = {"dlib": v[0] / np.linalg.norm(v[0]), "t_embed": t1 - t0}
        if mirror:
            m = np.array(net._net.compute_face_descriptor([np.ascontiguousarray(chips[0][:, ::-1])]), np.float32)
            row["dlib_mirror"] = m[0] / np.linalg.norm(m[0])
        return row

    return run_stage(tag, names, one)


# Where dlib's HOG finds the face in a deep-funneled LFW image (Colin_Powell_0001: left 67, top 80, right 175,
# bottom 187): the box used when face_recognition finds no face, so that no image is dropped.
FALLBACK_LOCATION = (80, 175, 187, 67)  # top, right, bottom, left


def face_recognition_stage(names: list[str], root: Path = LFW, tag: str = "face_recognition"):
    """The face_recognition package as its users call it: face_locations (HOG, 1 upsample), then
    face_encodings (5-point shape, 1 jitter) of the largest face nearest the centre; its 128-d vectors are
    compared by Euclidean distance."""
    import face_recognition

    def one(name: str) -> dict:
        t0 = time.perf_counter()
        img = face_recognition.load_image_file(str(root / "images" / name))
        t1 = time.perf_counter()
        locs = face_recognition.face_locations(img)
        t2 = time.perf_counter()
        h, w = img.shape[:2]
        if locs:
            def weight(loc):
                top, right, bottom, left = loc
                cx, cy = (left + right) / 2, (top + bottom) / 2
                dist = np.hypot(cx - w / 2, cy - h / 2) / (np.hypot(w, h) / 2)
                return (right - left) * (bottom - top) * (1 - 0.5 * min(1.0, dist))
            loc = max(locs, key=weight)
        else:
            loc = FALLBACK_LOCATION
        enc = face_recognition.face_encodings(img, known_face_locations=[loc])[0]
        t3 = time.perf_counter()
        return {"vector": np.asarray(enc, np.float32), "found": bool(locs), "t_load": t1 - t0,
                "t_detect": t2 - t1, "t_embed": t3 - t2}

    return run_stage(tag, names, one)


def dlib_mirror_stage(names: list[str], landmarks: dict[str, np.ndarray], root: Path = LFW,
                      tag: str = "dlib_mirror_v1") -> dict[str, np.ndarray]:
    """dlib ResNet on the mirror image of the same chip (for `dlib_resnet+flip`); unit vectors."""
    from facelab.faces import Face
    from facelab.images import load_image
    from facelab.pipeline import get_embedder

    net = get_embedder("dlib_resnet")

    def one(name: str) -> dict:
        img = load_image(root / "images" / name)
        chip = net.chips(img, [Face(box=(0.0, 0.0, 1.0, 1.0), score=1.0, landmarks=landmarks[name])])[0]
        v = np.array(net._net.compute_face_descriptor([np.ascontiguousarray(chip[:, ::-1])]), np.float32)[0]
        return {"dlib_mirror": v / np.linalg.norm(v)}

    return run_stage(tag, names, one, every=200)
