"""Train facelab's expression CNN on FER2013 (48x48 grey faces, 7 classes). Standalone: torch + numpy + OpenCV.

    python training/attributes/train_expression.py --data fer.npz --out OUT --budget 280

`fer.npz` comes from `pack_fer.py`. Trains on FER2013 Training only, reports PublicTest (validation) accuracy; the
learning rate follows a warm-up + cosine curve over a wall-clock budget (so a run fits a fixed device slot), then
saves the weights (`expression_cnn.pt`) and an ONNX export. PrivateTest is measured afterwards by
benchmarks/attributes.py with the ONNX file, never used here.
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

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
WIDTHS = (48, 96, 192, 320)


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ExpressionNet(nn.Module):
    """VGG-style: 4 stages of two 3x3 conv-BN-ReLU, max-pool between; input [N,1,48,48] grey 0..255, output logits.

    Each image is standardised (mean 0, std 1) inside the network, so lighting/contrast of real photos matters less.
    """

    def __init__(self, widths=WIDTHS, classes=7, dropout=0.4):  # 7 = len(CLASSES)
        super().__init__()
        layers, cin = [], 1
        for i, w in enumerate(widths):
            layers += conv_bn(cin, w) + conv_bn(w, w)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True).sqrt() + 1.0
        x = self.features((x - mean) / std)
        x = x.mean(dim=(2, 3))
        return self.fc(self.dropout(x))


def decode(npz, split, limit=None):
    blob, offsets, y = npz[f"jpeg_{split}"], npz[f"offsets_{split}"], npz[f"y_{split}"]
    n = len(y) if limit is None else min(limit, len(y))
    idx = np.random.RandomState(0).permutation(len(y))[:n] if limit else np.arange(n)
    x = np.stack([cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_GRAYSCALE) for i in idx])
    return x.astype(np.float32)[:, None], y[idx].astype(np.int64)


def augment(x):
    """Batch augmentation on the device: flip, rotation +-15 deg, scale 0.85-1.15, shift +-10 %, contrast and
    brightness jitter, random erasing."""
    n = x.shape[0]
    dev = x.device
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(15)
    scale = 1 + (torch.rand(n, device=dev) * 2 - 1) * 0.15
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = 1 + (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 0.3
    bright = (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * 25
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + bright).clamp(0, 255)
    # random erasing: one rectangle (10-30 % of the side) per image, half of the images
    size = (torch.rand(n, 2, device=dev) * 0.2 + 0.1) * 48
    corner = torch.rand(n, 2, device=dev) * (48 - size)
    coords = torch.arange(48, device=dev).float()
    in_y = (coords[None] >= corner[:, :1]) & (coords[None] < corner[:, :1] + size[:, :1])
    in_x = (coords[None] >= corner[:, 1:]) & (coords[None] < corner[:, 1:] + size[:, 1:])
    erase = (in_y[:, :, None] & in_x[:, None, :]) & (torch.rand(n, 1, 1, device=dev) < 0.5)
    noise = torch.rand_like(x) * 255
    return torch.where(erase[:, None], noise, x)


@torch.no_grad()
def evaluate(model, x, y, batch=1024):
    model.eval()
    correct, probs = 0, []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        logits = model(xb).float().softmax(1) + model(torch.flip(xb, dims=[3])).float().softmax(1)
        probs.append(logits)
    p = torch.cat(probs)
    correct = (p.argmax(1) == y).float().mean().item()
    model.train()
    return correct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="fer.npz")
    ap.add_argument("--out", default="out")
    ap.add_argument("--budget", type=float, default=280, help="training wall-clock seconds")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=None, help="use only N training images (smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    npz = np.load(args.data)
    xtr, ytr = decode(npz, "train", args.limit)
    xva, yva = decode(npz, "publictest", args.limit)
    print(f"decoded {len(ytr)} train / {len(yva)} val in {time.time() - t0:.1f}s on {dev}", flush=True)
    xtr, ytr = torch.from_numpy(xtr).to(dev), torch.from_numpy(ytr).to(dev)
    xva, yva = torch.from_numpy(xva).to(dev), torch.from_numpy(yva).to(dev)

    model = ExpressionNet().to(dev).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    amp = dict(device_type="cuda", dtype=torch.bfloat16) if dev == "cuda" else dict(device_type="cpu", enabled=False)
    log = {"params": params, "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
           "torch": torch.__version__, "args": vars(args), "epochs": []}
    start, step, epoch, done = time.time(), 0, 0, False
    while not done:
        perm = torch.randperm(len(ytr), device=dev)
        total = 0.0
        for i in range(0, len(ytr) - args.batch + 1, args.batch):
            frac = (time.time() - start) / args.budget
            if frac >= 1:
                done = True
                break
            lr = args.lr * (frac / 0.05 if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * (frac - 0.05) / 0.95)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i:i + args.batch]
            xb = augment(xtr[idx]).contiguous(memory_format=torch.channels_last)
            with torch.autocast(**amp):
                loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() if step % 50 == 0 else 0
            step += 1
        epoch += 1
        if epoch % 5 == 0 or done:
            with torch.autocast(**amp):
                acc = evaluate(model, xva, yva)
            rec = {"epoch": epoch, "seconds": round(time.time() - start, 1), "lr": lr, "val_acc": round(acc, 4)}
            log["epochs"].append(rec)
            print(json.dumps(rec), flush=True)
    log["final_val_acc_flip_tta"] = log["epochs"][-1]["val_acc"]
    log["steps"] = step
    model = model.float().to(memory_format=torch.contiguous_format).cpu().eval()
    torch.save(model.state_dict(), out / "expression_cnn.pt")
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    try:  # the ONNX export is redone off-device if the exporter here needs packages that are absent
        torch.onnx.export(model, torch.zeros(1, 1, 48, 48), out / "expression_cnn.onnx", input_names=["gray48"],
                          output_names=["logits"], dynamic_axes={"gray48": {0: "n"}, "logits": {0: "n"}},
                          opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - report and keep the .pt
        print("onnx export failed:", exc)
    print(f"done: {epoch} epochs, {step} steps, {params} params, {time.time() - t0:.0f}s total", flush=True)


if __name__ == "__main__":
    main()
