"""Refit the mask CNN's last layer with unmasked everyday faces added as "none" (CPU, a minute).

The mask CNN (train_crops.py) learnt from street-scene crops only, and called 7 % of LFW portraits and 39 % of
sunglasses web photos masked. This keeps its convolutional features frozen and refits the final linear layer
(a class-balanced logistic regression) on the mask crops plus the LFW and web faces of the eyewear data (none of
which wears a mask), with group-disjoint 5-fold cross-validation, then writes the new layer into the network.

    python -m facelab.attributes.training.refit_mask_head --pt OUT/mask_cnn.pt --cache out/attributes-cache \
        --out facelab/models/weights/mask_cnn.onnx
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .train_crops import CropNet
from .train_heads import folds_for


def pooled(model, crops):
    with torch.no_grad():
        x = torch.from_numpy(crops.astype(np.float32).transpose(0, 3, 1, 2))
        return torch.cat([model.features(x[i:i + 256] / 127.5 - 1.0).mean(dim=(2, 3))
                          for i in range(0, len(x), 256)]).numpy()


def main(argv=None):
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser()
    ap.add_argument("--pt", required=True)
    ap.add_argument("--cache", default="out/attributes-cache")
    ap.add_argument("--out", default="facelab/models/weights/mask_cnn.onnx")
    ap.add_argument("--results", default="facelab/models/cards/mask_cnn_refit.json")
    args = ap.parse_args(argv)
    model = CropNet(3)
    model.load_state_dict(torch.load(args.pt, map_location="cpu"))
    model.eval()
    masks = np.load(Path(args.cache) / "masks.npz")
    eyewear = np.load(Path(args.cache) / "eyewear.npz")
    f = np.vstack([pooled(model, masks["crop64"]), pooled(model, eyewear["crop64"])])
    y = np.concatenate([masks["label"], np.zeros(len(eyewear["label"]), int)])
    source = np.concatenate([np.full(len(masks["label"]), "masks"), eyewear["source"]])
    folds = np.concatenate([folds_for("mask", masks), folds_for("eyewear", eyewear)])
    mean, scale = f.mean(0), f.std(0) + 1e-6
    z = (f - mean) / scale
    pred = np.zeros_like(y)
    for k in range(5):
        clf = LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000).fit(z[folds != k], y[folds != k])
        pred[folds == k] = clf.predict(z[folds == k])
    res = {}
    for name in ("masks", "lfw", "sunglasses_web"):
        sel = source == name
        r = {"n": int(sel.sum()), "accuracy": round(float((pred[sel] == y[sel]).mean()), 4)}
        if name == "masks":
            r["mask_vs_none"] = round(float((np.minimum(pred[sel], 1) == np.minimum(y[sel], 1)).mean()), 4)
            r["recall"] = {c: round(float((pred[sel & (y == k)] == k).mean()), 4)
                           for k, c in enumerate(("none", "mask", "incorrect"))}
            r["note"] = "optimistic: the frozen features were trained on these crops (see the CNN's own out-of-fold figure)"
        else:
            r["note"] = "share called 'none' (no one wears a mask); the frozen features never saw these images"
        res[name] = r
    print(json.dumps(res, indent=1))
    clf = LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000).fit(z, y)
    w = clf.coef_ / scale[None]  # fold the standardisation into the final layer
    b = clf.intercept_ - (clf.coef_ * (mean / scale)[None]).sum(1)
    with torch.no_grad():
        model.fc.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        model.fc.bias.copy_(torch.from_numpy(b.astype(np.float32)))
    torch.onnx.export(model, torch.zeros(1, 3, 64, 64), args.out, input_names=["rgb64"], output_names=["logits"],
                      dynamic_axes={"rgb64": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    Path(args.results).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
