"""Train the small eyewear and mask CNNs on facelab's aligned face crops. Standalone: torch + numpy + OpenCV.

    python training/attributes/train_crops.py --data crops.npz --out OUT [--epochs 40]

`crops.npz` comes from `pack_crops.py` (64x64 ArcFace-aligned RGB crops, labels, group-disjoint folds 0-4).
For each task: 5 trainings leaving one fold out give out-of-fold predictions (the reported accuracy, never
measured on training images), then one training on all data is exported to ONNX (`<task>_cnn.onnx`).
The mask task here is the earlier aligned-crop mask model (88.1 % on held-out fold 0), superseded by train_mask.py
(the face box); it stays so that the recorded eyewear command still runs as written.
"""
import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CropNet(nn.Module):
    """Input [N,3,64,64] RGB 0..255 (the aligned crop), output class logits. ~0.3 M parameters."""

    def __init__(self, classes):
        super().__init__()
        layers = conv_bn(3, 16) + [nn.MaxPool2d(2)]
        cin = 16
        for w in (32, 64, 128):
            layers += conv_bn(cin, w) + conv_bn(w, w) + [nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers[:-1])
        self.fc = nn.Linear(cin, classes)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x):
        x = self.features(x / 127.5 - 1.0)
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


def decode(npz, task):
    blob, off = npz[f"{task}_jpeg"], npz[f"{task}_offsets"]
    imgs = [cv2.cvtColor(cv2.imdecode(blob[off[i]:off[i + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for i in range(len(off) - 1)]
    return np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)


def augment(x):
    n, dev = x.shape[0], x.device
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, device=dev) * 2 - 1) * 0.1
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * 0.12
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    x = F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), padding_mode="border",
                      align_corners=False)
    # low resolution (small / blurred faces): down to 10-40 px and back, for half the batch
    lowres = torch.rand(n, device=dev) < 0.5
    if lowres.any():
        full = x.shape[-1]  # 10-40 px at 64, scaled for smaller inputs
        side = int(torch.randint(10 * full // 64, 40 * full // 64, (1,)).item())
        small = F.interpolate(x[lowres], size=(side, side), mode="area")
        x[lowres] = F.interpolate(small, size=(full, full), mode="bilinear", align_corners=False)
    grey = x.mean(1, keepdim=True)
    sat = 1 + (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 0.4
    x = grey + (x - grey) * sat
    contrast = 1 + (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 0.3
    bright = (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 30
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + bright).clamp(0, 255)


def train(x, y, classes, epochs, dev, seed=0, batch=128):
    torch.manual_seed(seed)
    model = CropNet(classes).to(dev)
    counts = torch.bincount(y, minlength=classes).float()
    weight = (counts.sum() / (classes * counts.clamp(min=1))).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps = epochs * math.ceil(len(y) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), device=dev)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(augment(x[idx])), y[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model, x):
    return torch.cat([model(x[i:i + 512]).softmax(1) for i in range(0, len(x), 512)])


def report(y, pred, classes, sel=None):
    if sel is not None:
        y, pred = y[sel], pred[sel]
    out = {"n": int(len(y)), "accuracy": round(float((y == pred).mean()), 4), "recall": {}}
    for k, c in enumerate(classes):
        m = y == k
        out["recall"][c] = round(float((pred[m] == k).mean()), 4) if m.any() else None
    out["confusion"] = [[int(((y == i) & (pred == j)).sum()) for j in range(len(classes))] for i in range(len(classes))]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="crops.npz")
    ap.add_argument("--out", default="out")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--tasks", default="eyewear,mask")
    ap.add_argument("--limit", type=int, default=None, help="smoke test: first N images")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    npz = np.load(args.data)
    log = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
           "args": vars(args)}
    for task in args.tasks.split(","):
        t0 = time.time()
        classes = [str(c) for c in npz[f"{task}_classes"]]
        x = torch.from_numpy(decode(npz, task)).to(dev)
        y_np, folds = npz[f"{task}_label"], npz[f"{task}_fold"]
        if args.limit:
            x, y_np, folds = x[:args.limit], y_np[:args.limit], folds[:args.limit]
        y = torch.from_numpy(y_np).to(dev)
        pred = np.zeros(len(y_np), dtype=np.int64)
        for k in range(5):
            tr = torch.from_numpy(folds != k).to(dev)
            te = folds == k
            if not te.any():
                continue
            model = train(x[tr], y[tr], len(classes), args.epochs, dev, seed=k)
            pred[te] = predict(model, x[torch.from_numpy(te).to(dev)]).argmax(1).cpu().numpy()
            print(task, "fold", k, round(float((pred[te] == y_np[te]).mean()), 4), f"{time.time() - t0:.0f}s",
                  flush=True)
        res = {"classes": classes, "held_out_fold0": report(y_np, pred, classes, folds == 0),
               "cv5_out_of_fold": report(y_np, pred, classes)}
        if task == "eyewear" and "eyewear_source" in npz:
            lfw = npz["eyewear_source"][:len(y_np)] == "lfw"
            res["held_out_fold0_lfw_only"] = report(y_np, pred, classes, (folds == 0) & lfw)
            res["cv5_lfw_only"] = report(y_np, pred, classes, lfw)
        if task == "mask":
            two = np.minimum(y_np, 1), np.minimum(pred, 1)
            res["held_out_fold0_mask_vs_none"] = report(two[0], two[1], ["none", "mask"], folds == 0)
            res["cv5_mask_vs_none"] = report(two[0], two[1], ["none", "mask"])
        np.save(out / f"{task}_oof_pred.npy", pred)
        model = train(x, y, len(classes), args.epochs, dev, seed=99).cpu().float()
        torch.save(model.state_dict(), out / f"{task}_cnn.pt")
        try:
            torch.onnx.export(model, torch.zeros(1, 3, 64, 64), out / f"{task}_cnn.onnx", input_names=["rgb64"],
                              output_names=["logits"], dynamic_axes={"rgb64": {0: "n"}, "logits": {0: "n"}},
                              opset_version=17, dynamo=False)
        except Exception as exc:  # noqa: BLE001
            print("onnx export failed:", exc)
        res["seconds"] = round(time.time() - t0, 1)
        log[task] = res
        print(task, json.dumps({k: v["accuracy"] for k, v in res.items() if isinstance(v, dict)}), flush=True)
        (out / "crops_log.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
