"""Train the mask CNN on the widened face box (pack_mask.py output). Standalone: torch + numpy + OpenCV.

    python training/attributes/train_mask.py --data out/mask_crops.npz --out OUT [--epochs 60] [--with-none]

Same network and augmentation as the eyewear CNN (train_crops.py: CropNet, flips, rotation, scale, low
resolution, colour). Trainings each leaving one source-image-disjoint fold out (--folds; fold 0 alone on a CPU)
give the held-out figures (3-class, per-class recall, mask-vs-none; on the annotated box and on the YuNet box where
YuNet found the face), averaging each crop with its mirror image; then one training on all data is exported to
ONNX (mask_cnn.onnx).
--with-none adds the unmasked LFW/web faces as "none" to every training (their own held-out fold is scored too).
`train_mask.py --combine DATA OUT0 OUT1 ...` pools one-fold runs into out-of-fold figures.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

try:
    from .train_crops import predict, report, train
except ImportError:  # run as a file on a training machine
    from train_crops import predict, report, train

CLASSES = ["none", "mask", "incorrect"]


def unpack(npz, key: str, size: int = 64) -> np.ndarray:
    """The packed 64x64 crops, area-resized to `size` (as heads.CropClassifier does at use)."""
    blob, off = npz[key + "_jpeg"], npz[key + "_offsets"]
    imgs = [cv2.cvtColor(cv2.imdecode(blob[off[i]:off[i + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for i in range(len(off) - 1)]
    if size != 64:
        imgs = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in imgs]
    return np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)


def flip_predict(model, x):
    return (predict(model, x) + predict(model, x.flip(3))) / 2


def summary(y, prob, sel=None, prior=None):
    """3-class and mask-vs-none figures; prior: multiply the class-balanced network's probabilities by the class
    shares of the data (what the analyser does, registry `class_prior`) before the argmax."""
    pred = (prob * prior if prior is not None else prob).argmax(1)
    r = report(y, pred, CLASSES, sel)
    two = report(np.minimum(y, 1), np.minimum(pred, 1), ["none", "mask"], sel)
    r["mask_vs_none"] = {"accuracy": two["accuracy"], "recall": two["recall"], "confusion": two["confusion"]}
    return r


def combine(data: str, dirs: list[str], tag: str = "mask_cnn") -> dict:
    """Pool the held-out predictions of one-fold runs (each OUT has its fold's rows filled) into out-of-fold
    figures over every fold run."""
    npz = np.load(data)
    y, folds, detected = npz["mask_label"], npz["mask_fold"], npz["mask_detected"]
    answered = npz["mask_size"] >= 24
    prob, prob_y, held = np.zeros((len(y), 3)), np.zeros((len(y), 3)), []
    for d in dirs:
        k = json.loads((Path(d) / f"{tag}_log.json").read_text())["held_out_folds"]
        sel = np.isin(folds, k)
        prob[sel] = np.load(Path(d) / f"{tag}_oof_prob.npy")[sel]
        prob_y[sel] = np.load(Path(d) / f"{tag}_oof_prob_yunet_box.npy")[sel]
        held += k
    scored = np.isin(folds, held)
    prior = np.bincount(y, minlength=3) / len(y)
    return {"folds": sorted(held), "out_of_fold": summary(y, prob, scored, prior),
            "out_of_fold_yunet_box": summary(y, prob_y, scored, prior),
            "out_of_fold_yunet_box_answered": summary(y, prob_y, scored & detected & answered, prior),
            "out_of_fold_no_prior": summary(y, prob, scored)}


def main():
    if sys.argv[1:2] == ["--combine"]:  # --combine DATA DIR...: pooled out-of-fold figures of one-fold runs
        print(json.dumps(combine(sys.argv[2], sys.argv[3:]), indent=1))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="out/mask_crops.npz")
    ap.add_argument("--out", default="out/mask")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--size", type=int, default=32, help="input side (most faces are ~25 px: 32 loses little)")
    ap.add_argument("--with-none", action="store_true", help="add the unmasked LFW/web faces as 'none'")
    ap.add_argument("--lfw-every", type=int, default=1, help="with --with-none: keep every k-th LFW face (CPU time)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", default="0,1,2,3,4", help="held-out folds to train and score (CPU: 0 alone; '' none)")
    ap.add_argument("--no-final", action="store_true", help="skip the training on all data (run it separately)")
    ap.add_argument("--tag", default="mask_cnn")
    ap.add_argument("--limit", type=int, default=None, help="smoke test: first N crops of each set")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    npz = np.load(args.data)
    t0 = time.time()
    n = args.limit
    x = torch.from_numpy(unpack(npz, "mask_x", args.size)[:n]).to(dev)
    xy = torch.from_numpy(unpack(npz, "mask_x_yunet", args.size)[:n]).to(dev)
    y_np, folds, detected = npz["mask_label"][:n], npz["mask_fold"][:n], npz["mask_detected"][:n]
    answered = npz["mask_size"][:n] >= 24
    y = torch.from_numpy(y_np).to(dev)
    if args.with_none:
        src = npz["none_source"]
        used = ((src != "lfw") | (np.cumsum(src == "lfw") % args.lfw_every == 0))[:n]  # trained on; all are scored
        xn = torch.from_numpy(unpack(npz, "none_x", args.size)[:n]).to(dev)
        fn, src = npz["none_fold"][:n], src[:n]
    prob = np.zeros((len(y_np), 3), np.float32)
    prob_y = np.zeros_like(prob)
    prob_n = np.zeros((len(fn), 3), np.float32) if args.with_none else None
    held = [int(k) for k in args.folds.split(",") if k.strip()]
    for k in held:
        tr = folds != k
        xt, yt = x[torch.from_numpy(tr).to(dev)], y[torch.from_numpy(tr).to(dev)]
        if args.with_none:
            keep = torch.from_numpy((fn != k) & used).to(dev)
            xt = torch.cat([xt, xn[keep]])
            yt = torch.cat([yt, torch.zeros(int(keep.sum()), dtype=yt.dtype, device=dev)])
        model = train(xt, yt, 3, args.epochs, dev, seed=k)
        te = torch.from_numpy(~tr).to(dev)
        prob[~tr] = flip_predict(model, x[te]).cpu().numpy()
        prob_y[~tr] = flip_predict(model, xy[te]).cpu().numpy()
        if args.with_none:
            prob_n[fn == k] = flip_predict(model, xn[torch.from_numpy(fn == k).to(dev)]).cpu().numpy()
        print(args.tag, "fold", k, round(float((prob[~tr].argmax(1) == y_np[~tr]).mean()), 4),
              f"{time.time() - t0:.0f}s", flush=True)
    scored = np.isin(folds, held)
    prior = np.bincount(y_np, minlength=3) / len(y_np)  # the mask data's class shares (registry class_prior)
    res = {"classes": CLASSES, "epochs": args.epochs, "size": args.size, "with_none": args.with_none,
           "lfw_every": args.lfw_every, "flip_average": True, "held_out_folds": held,
           "class_prior": [round(float(v), 4) for v in prior]}
    for tag, pr in (("", prior), ("_no_prior", None)):
        res.update({f"held_out{tag}": summary(y_np, prob, scored, pr),
                    f"held_out_yunet_box{tag}": summary(y_np, prob_y, scored, pr),
                    f"held_out_yunet_box_where_found{tag}": summary(y_np, prob_y, scored & detected, pr),
                    f"held_out_annotated_box_same_faces{tag}": summary(y_np, prob, scored & detected, pr),
                    # what the analyser answers: found by YuNet, at least its 24 px quality floor
                    f"held_out_yunet_box_answered{tag}": summary(y_np, prob_y, scored & detected & answered, pr)})
    if args.with_none:
        for s in sorted(set(src)):
            sel = (src == s) & np.isin(fn, held)
            res[f"unmasked_{s}_called_none"] = {"n": int(sel.sum()),
                                                "share": round(float(((prob_n[sel] * prior).argmax(1) == 0).mean()), 4),
                                                "share_no_prior": round(float((prob_n[sel].argmax(1) == 0).mean()), 4)}
    np.save(out / f"{args.tag}_oof_prob.npy", prob)
    np.save(out / f"{args.tag}_oof_prob_yunet_box.npy", prob_y)
    res["command"] = "python training/attributes/train_mask.py " + " ".join(sys.argv[1:])
    if held:
        (out / f"{args.tag}_log.json").write_text(json.dumps(res, indent=1))
        print(args.tag, json.dumps({k: v["accuracy"] for k, v in res.items()
                                    if isinstance(v, dict) and "accuracy" in v}))
    if args.no_final:
        return
    if args.with_none:
        xn = xn[torch.from_numpy(used).to(dev)]
    model = train(torch.cat([x, xn]) if args.with_none else x,
                  torch.cat([y, torch.zeros(len(xn), dtype=y.dtype, device=dev)]) if args.with_none else y,
                  3, args.epochs, dev, seed=99).cpu().float()
    torch.save(model.state_dict(), out / f"{args.tag}.pt")
    torch.onnx.export(model, torch.zeros(1, 3, args.size, args.size), out / f"{args.tag}.onnx", input_names=["rgb"],
                      output_names=["logits"], dynamic_axes={"rgb": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    res["seconds"] = round(time.time() - t0, 1)
    res["device"] = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    res["torch"] = torch.__version__
    (out / f"{args.tag}_final_log.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
