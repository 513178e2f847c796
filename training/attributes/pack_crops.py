"""Pack the aligned 64x64 face crops of the eyewear and mask data (from `extract_faces.py`) with labels and
group-disjoint folds into one npz (JPEG bytes, quality 95) for `train_crops.py`.

    python -m training.attributes.pack_crops --cache out/attributes-cache --out .devdata/crops.npz
"""
import argparse
from pathlib import Path

import numpy as np

from ..paths import ATTRIBUTE_CACHE, DEVDATA
from .folds import SPECS, folds_for


def main(argv=None):
    import cv2

    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=str(ATTRIBUTE_CACHE), help="extract_faces.py's output (default: %(default)s)")
    ap.add_argument("--out", default=str(DEVDATA / "crops.npz"), help="default: %(default)s")
    ap.add_argument("--tasks", default="eyewear,mask")
    args = ap.parse_args(argv)
    arrays = {}
    ap_tasks = [t for t in args.tasks.split(",")]
    for task, spec in ((t, SPECS[t]) for t in ap_tasks):
        data = np.load(Path(args.cache) / f"{spec['cache']}.npz")
        blobs = [cv2.imencode(".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                 for c in data["crop64"]]
        arrays[f"{task}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{task}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"{task}_label"] = data["label"].astype(np.int64)
        arrays[f"{task}_fold"] = folds_for(task, data).astype(np.int64)
        arrays[f"{task}_classes"] = np.array(spec["classes"])
        if task == "eyewear":
            arrays["eyewear_source"] = data["source"]
        print(task, len(blobs), sum(len(b) for b in blobs))
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
