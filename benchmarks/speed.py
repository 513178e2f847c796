"""facelab's full pipeline against the face_recognition package on the same LFW images, side by side.

    .venv/bin/python benchmarks/speed.py [-n 300] [--rounds 2]

Each pipeline runs in its own subprocess (so its peak RSS is its own), on the same N images of LFW View 2
(every k-th of the sorted list), in alternating rounds (facelab, face_recognition, facelab, ...) so that
other load on the machine falls on both alike. A first image is processed before timing (model loading is
reported separately). Writes benchmarks/results/speed.json.

Wall-clock time per stage and process CPU time per image are both reported: on a busy shared machine the
CPU time is the steadier of the two (it counts both cores when cv2 runs two threads).

facelab per image: load (decode to RGB), detect (YuNet, with the dlib roll check), align (5-point similarity
warp), pose + quality, embed (SFace) - the calls FaceAnalysis.get makes, timed one by one.
face_recognition per image: load_image_file, face_locations (HOG, 1 upsample), face_encodings (5-point
shape + ResNet) of the main face - the package's documented use.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
RESULTS = ROOT / "benchmarks" / "results"


def pick_images(n: int) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from facelab.evaluation.lfw import read_pairs

    pairs = read_pairs(LFW / "pairs.txt")
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    step = max(1, len(names) // n)
    return [str(LFW / "images" / x) for x in names[::step][:n]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_facelab(paths: list[str]) -> dict:
    t0 = time.perf_counter()
    import facelab  # noqa: F401
    t_import = time.perf_counter() - t0
    from facelab.align import align_face
    from facelab.images import load_image
    from facelab.pipeline import get_detector, get_embedder
    from facelab.pose import estimate_pose, estimate_quality

    t0 = time.perf_counter()
    detector, embedder = get_detector(), get_embedder()
    t_models = time.perf_counter() - t0
    stages = {k: 0.0 for k in ("load", "detect", "align", "pose_quality", "embed")}
    faces_found, cpu = 0, 0.0
    for i, path in enumerate([paths[0]] + paths):  # the first (repeated) image warms up, untimed
        c0 = time.process_time()
        ticks = [time.perf_counter()]
        rgb = load_image(path)
        ticks.append(time.perf_counter())
        dets = detector.detect(rgb)
        ticks.append(time.perf_counter())
        crops = [align_face(rgb, d.landmarks) for d in dets]
        ticks.append(time.perf_counter())
        for d, c in zip(dets, crops):
            estimate_pose(d.landmarks, rgb.shape[:2])
            estimate_quality(d.box, d.landmarks, c)
        ticks.append(time.perf_counter())
        if crops:
            import numpy as np
            embedder.embed_crops(np.stack(crops))
        ticks.append(time.perf_counter())
        if i == 0:
            continue
        cpu += time.process_time() - c0
        faces_found += bool(dets)
        for k, a, b in zip(stages, ticks, ticks[1:]):
            stages[k] += b - a
    return {"import_s": t_import, "model_load_s": t_models, "stages_s": stages, "cpu_s": cpu, "images": len(paths),
            "images_with_face": faces_found, "peak_rss_mb": peak_rss_mb()}


def worker_face_recognition(paths: list[str]) -> dict:
    t0 = time.perf_counter()
    import face_recognition
    t_import = time.perf_counter() - t0
    stages = {k: 0.0 for k in ("load", "detect", "embed")}
    faces_found, cpu = 0, 0.0
    for i, path in enumerate([paths[0]] + paths):
        c0 = time.process_time()
        ticks = [time.perf_counter()]
        img = face_recognition.load_image_file(path)
        ticks.append(time.perf_counter())
        locs = face_recognition.face_locations(img)
        ticks.append(time.perf_counter())
        if locs:
            face_recognition.face_encodings(img, known_face_locations=locs)
        ticks.append(time.perf_counter())
        if i == 0:
            continue
        cpu += time.process_time() - c0
        faces_found += bool(locs)
        for k, a, b in zip(stages, ticks, ticks[1:]):
            stages[k] += b - a
    return {"import_s": t_import, "stages_s": stages, "cpu_s": cpu, "images": len(paths),
            "images_with_face": faces_found,
            "peak_rss_mb": peak_rss_mb()}


def run_worker(kind: str, paths: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--worker", kind], input=json.dumps(paths), text=True,
                         capture_output=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_time(repeats: int = 5) -> float:
    """Median seconds for `import facelab` in a fresh interpreter (no model loaded)."""
    code = "import time; t = time.perf_counter(); import facelab; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                  check=True).stdout) for _ in range(repeats)]
    return statistics.median(times)


def summarise(runs: list[dict]) -> dict:
    n = sum(r["images"] for r in runs)
    stages = {k: 1000 * sum(r["stages_s"][k] for r in runs) / n for k in runs[0]["stages_s"]}
    total = sum(stages.values())
    return {"ms_per_image": {**{k: round(v, 2) for k, v in stages.items()}, "total": round(total, 2)},
            "images_per_s": round(1000 / total, 1),
            "cpu_ms_per_image": round(1000 * sum(r["cpu_s"] for r in runs) / n, 2),
            "ms_per_image_by_round": [round(1000 * sum(r["stages_s"].values()) / r["images"], 2) for r in runs],
            "images_with_face": runs[0]["images_with_face"], "images": runs[0]["images"],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "import_s": round(statistics.median(r["import_s"] for r in runs), 3),
            **({"model_load_s": round(statistics.median(r["model_load_s"] for r in runs), 3)}
               if "model_load_s" in runs[0] else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="number of LFW images")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per pipeline")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        paths = json.loads(sys.stdin.read())
        fn = worker_facelab if args.worker == "facelab" else worker_face_recognition
        print(json.dumps(fn(paths)))
        return

    paths = pick_images(args.n)
    runs = {"facelab": [], "face_recognition": []}
    for r in range(args.rounds):
        for kind in runs:
            print(f"round {r + 1}: {kind} on {len(paths)} images ...", file=sys.stderr, flush=True)
            runs[kind].append(run_worker(kind, paths))
    fl, fr = summarise(runs["facelab"]), summarise(runs["face_recognition"])
    accuracy = {}
    lfw_json = RESULTS / "lfw_verify.json"
    if lfw_json.exists():
        rows = json.loads(lfw_json.read_text())["results"]
        accuracy = {k: rows[k]["mean_accuracy"] for k in ("sface", "face_recognition") if k in rows}
    report = {
        "what": "LFW deep-funneled 250x250 images, one process per pipeline, detect + align + embed per image",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                   f"(shared with other jobs; load average at start {os.getloadavg()[0]:.1f})",
        "images": len(paths), "rounds": args.rounds,
        "facelab": {**fl, "import_s_fresh_interpreter": round(import_time(), 3)},
        "face_recognition": fr,
        "speedup": round(fr["ms_per_image"]["total"] / fl["ms_per_image"]["total"], 2),
        "speedup_cpu_time": round(fr["cpu_ms_per_image"] / fl["cpu_ms_per_image"], 2),
        "lfw_accuracy": accuracy,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    for name in ("facelab", "face_recognition"):
        r = report[name]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["ms_per_image"].items() if k != "total")
        print(f"{name:17s} {r['ms_per_image']['total']:6.1f} ms/image ({r['images_per_s']:.1f} images/s; "
              f"{stages} ms; CPU {r['cpu_ms_per_image']:.1f} ms), peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"faces in {r['images_with_face']}/{r['images']}")
    print(f"speed-up {report['speedup']:.2f}x wall clock, {report['speedup_cpu_time']:.2f}x CPU time; "
          f"import facelab {report['facelab']['import_s_fresh_interpreter']:.3f} s"
          + (f"; LFW accuracy {accuracy}" if accuracy else ""))
    print(f"wrote {RESULTS / 'speed.json'}")


if __name__ == "__main__":
    main()
