"""Pack FER2013 image folders into one npz for training off-machine: the original JPEG bytes (smaller than the
decoded pixels), their offsets and labels; `train_expression.py` decodes them with OpenCV.

    python -m training.attributes.pack_fer --data ../shared/data/expressions --out .devdata/fer.npz
"""
import argparse
from pathlib import Path

import numpy as np

from ..paths import DEVDATA, SHARED_DATA

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # FER2013 label ids 0..6


def load_split(folder: Path):
    blobs, labels = [], []
    for label, name in enumerate(CLASSES):
        for path in sorted((folder / name).glob("*.jpg")):
            blobs.append(path.read_bytes())
            labels.append(label)
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets, np.asarray(labels, dtype=np.uint8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(SHARED_DATA / "expressions"), help="default: %(default)s")
    parser.add_argument("--out", default=str(DEVDATA / "fer.npz"), help="default: %(default)s")
    parser.add_argument("--splits", default="train,publictest")
    args = parser.parse_args()
    arrays = {}
    for split in args.splits.split(","):
        blob, offsets, y = load_split(Path(args.data) / f"fer2013_{split}")
        arrays[f"jpeg_{split}"], arrays[f"offsets_{split}"], arrays[f"y_{split}"] = blob, offsets, y
        print(split, len(y), blob.nbytes, np.bincount(y))
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
