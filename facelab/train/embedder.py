"""`facelab train embedder`: a face embedder learned from identities with a margin softmax.

ArcFace (Deng et al. 2019) adds an angular margin m to the angle between an embedding and its class centre,
CosFace (Wang et al. 2018) subtracts m from the cosine; both on logits scaled by s. Only the backbone and its
embedding layer are exported; the class centres are thrown away, so the model works on people it never saw.
Every epoch it is scored on LFW View 2 pairs (folds kept whole; each fold's threshold chosen on the others).

Multi-GPU: under `torchrun` (WORLD_SIZE > 1) each process trains on its share of every epoch with
DistributedDataParallel (NCCL on CUDA, gloo on CPU); rank 0 writes the checkpoints and the export.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import TrainingError
from .data import check_trainable, labels_of, open_dataset
from .runs import Run, default_run_dir

LOSSES = {"arcface": 0.5, "cosface": 0.35}  # default margins from the papers


def margin_head(num_classes: int, dim: int, loss: str, margin: float, scale: float):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MarginHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(num_classes, dim))
            nn.init.xavier_uniform_(self.weight)
            self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
            self.th, self.mm = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin

        def forward(self, emb, y=None):
            with torch.autocast(device_type=emb.device.type, enabled=False):  # margins need float32 angles
                return self._logits(emb.float(), y)

        def _logits(self, emb, y):
            cos = F.linear(F.normalize(emb), F.normalize(self.weight.float())).clamp(-1, 1)
            if y is None:
                return scale * cos
            target = cos.gather(1, y[:, None])
            if loss == "arcface":
                sin = (1 - target ** 2).clamp_min(1e-7).sqrt()
                phi = target * self.cos_m - sin * self.sin_m             # cos(theta + m)
                phi = torch.where(target > self.th, phi, target - self.mm)  # keep it monotonic past pi - m
            else:
                phi = target - margin
            return scale * cos.scatter(1, y[:, None], phi)

    return MarginHead()


def maybe_relaunch_distributed(device: str) -> None:
    """More than one CUDA GPU and not under torchrun yet: re-run this very command under torchrun."""
    if "WORLD_SIZE" in os.environ or device not in ("auto", "cuda"):
        return
    try:
        import torch
    except ImportError:
        return
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n > 1:
        print(f"facelab: {n} GPUs: relaunching under torchrun (DistributedDataParallel)", file=sys.stderr)
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                "-m", "facelab", *sys.argv[1:]]
        os.execv(sys.executable, args)


def _distributed(cfg):
    """(Distributed info, cfg with the right device) under torchrun; single process otherwise."""
    import torch
    import torch.distributed as tdist

    from .loop import Distributed

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), cfg
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and cfg.device in ("auto", "cuda") or cfg.device.startswith("cuda")
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        cfg.device = f"cuda:{local}"
    else:
        cfg.device = "cpu"
    cfg.seed = cfg.seed  # same seed everywhere: identical initial weights, the per-epoch permutation is shared
    return Distributed(rank=rank, world=world), cfg


def train_embedder(dataset: str | Path, out: str | Path | None = None, loss: str = "arcface",
                   margin: float | None = None, scale: float = 32.0, backbone: str = "mobilefacenet",
                   input_size: int = 56, width: int | None = None, dim: int = 128,
                   lfw_root: str | Path | None = None, lfw_pairs: int = 1200, cfg=None, resume: bool = False,
                   progress: bool = True) -> dict[str, Any] | None:
    import torch
    from torch import nn

    from .cards import write_card
    from .export import export_onnx
    from .loop import TrainConfig, fit, load_checkpoint, pick_device, to_input
    from .nets import WithL2Norm, build_model, count_parameters

    cfg = cfg or TrainConfig(epochs=10, lr=2e-3)
    if loss not in LOSSES:
        raise TrainingError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    margin = LOSSES[loss] if margin is None else margin
    dist, cfg = _distributed(cfg)
    ds = open_dataset(dataset)
    warnings = check_trainable(ds, min_train=2)
    classes = ds.classes
    run = Run(out or default_run_dir("embedder", ds.root))
    if dist.main:
        run.create(resume)
    if not cfg.augment:
        cfg.augment = "brightness,contrast,crop,flip"
    arch = {"kind": "embedder", "backbone": backbone, "input_size": input_size, "crop_size": ds.crop_size,
            "width": width or (32 if backbone == "resnet" else 64), "embedding_dim": dim,
            "num_classes": len(classes), "loss": loss, "margin": margin, "scale": scale}
    rows = {s: ds.split(s) for s in ("train", "val")}
    x = {s: ds.load_crops(r) for s, r in rows.items()}
    y = {s: labels_of(r, classes) for s, r in rows.items()}
    net = build_model(arch)
    head = margin_head(len(classes), dim, loss, margin, scale)

    class MarginModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.head = net, head

        def forward(self, xb, yb=None):
            return self.head(self.net(xb), yb)

    module = MarginModel()
    lfw = _lfw_set(lfw_root, lfw_pairs, ds.crop_size, progress and dist.main) if lfw_root and lfw_pairs else None
    device = pick_device(cfg.device)
    ce = nn.CrossEntropyLoss()

    def validate(m) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if len(x["val"]):
            logits = torch.cat([m.head(m.net(to_input(x["val"][i:i + 256], device))).float().cpu()
                                for i in range(0, len(x["val"]), 256)])
            yv = torch.from_numpy(y["val"])
            out.update(val_loss=ce(logits, yv).item(), val_acc=(logits.argmax(1) == yv).float().mean().item())
        if lfw is not None:
            emb = _embed(m.net, lfw["crops"], device)
            out.update(_lfw_scores(emb, lfw))
        out["score"] = out.get("lfw_acc", out.get("val_acc", -math.inf))
        return out

    config = {"task": "embedder", "dataset": str(ds.root.resolve()), "arch": arch, "train": cfg.to_dict(),
              "lfw": {"root": str(lfw_root), "pairs": lfw_pairs} if lfw else None, "world_size": dist.world,
              "counts": {s: ds.counts(s) for s in ("train", "val", "test")}, "warnings": warnings,
              "parameters": count_parameters(net), "input_kind": "aligned_crop"}
    if resume:  # refuse another architecture before touching the run's files
        load_checkpoint(run.last, arch)
        config["export"] = run.config().get("export")
    if dist.main:
        run.write_json("config.json", config)
    state = fit(run, module, x["train"], y["train"], cfg, arch, ce, validate, resume, progress, dist)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()  # no collective after training: rank 0 exports alone
    if not dist.main:
        return None
    best = load_checkpoint(run.best, arch)
    module.load_state_dict(best["model"])
    net.eval()
    sample = np.concatenate([x["val"][:8], x["train"][:8]])[:16].transpose(0, 3, 1, 2).astype(np.float32)
    export = export_onnx(WithL2Norm(net), sample, run.onnx, "crop", "embedding",
                         {"facelab_task": "embedding", "dim": str(dim)})
    best_row = next(r for r in state["history"] if r["epoch"] == state["best_epoch"])
    export.update(crop_size=ds.crop_size, dim=dim)
    warnings_out = []
    if lfw is not None:
        emb = _embed_onnx(run.onnx, lfw["crops"])  # the operating point of what is shipped
        scores = _lfw_scores(emb, lfw)
        export["verification"] = _operating_points(emb, lfw, scores)
        if scores["lfw_acc"] < 0.6:
            warnings_out.append(f"LFW accuracy {100 * scores['lfw_acc']:.1f} % is near chance (50 %): not a usable "
                                f"face embedder yet (more identities / epochs)")
    else:
        warnings_out.append("not measured on LFW (--lfw-pairs 0 or no LFW folder): its verification accuracy is "
                            "unknown and it has no calibrated threshold (verify needs --threshold)")
    config["export"] = export
    run.write_json("config.json", config)
    summary = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "best": best_row,
               "device": str(device), "export": export, "classes": len(classes), "world_size": dist.world,
               "mean_images_per_s": round(float(np.mean([r["images_per_s"] for r in state["history"]])), 1),
               "test": None, "warnings": warnings_out}
    run.write_json("summary.json", summary)
    run.plot_curves(state["history"])
    write_card(run)
    return {"run": str(run.path), **summary}


def _embed(net, crops: np.ndarray, device) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from .loop import to_input

    outs = [F.normalize(net(to_input(crops[i:i + 256], device)).float(), dim=1).cpu()
            for i in range(0, len(crops), 256)]
    return torch.cat(outs).numpy()


def _embed_onnx(path: Path, crops: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    return np.concatenate([s.run(None, {"crop": x[i:i + 256]})[0] for i in range(0, len(x), 256)])


def _lfw_set(root, n_pairs: int, crop_size: int, progress: bool) -> dict[str, Any]:
    """The first `n_pairs` View 2 pairs (whole folds of 600), their images' aligned crops (cached on disk)."""
    from ..models.registry import facelab_home

    root = Path(root)
    pairs = _read_pairs(root / "pairs.txt")[:max(n_pairs, 1)]
    files = sorted({p for a, b, _, _ in pairs for p in (a, b)})
    cache = facelab_home() / "cache" / f"lfw_crops_{crop_size}.npz"
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            known = dict(zip(z["files"].tolist(), z["crops"]))
    missing = [f for f in files if f not in known]
    if missing:
        from ..align import align_face
        from ..errors import FacelabError
        from ..pipeline import shared_analysis

        analysis = shared_analysis()
        it = missing
        if progress:
            from tqdm import tqdm

            it = tqdm(missing, desc="aligning LFW pair images (once)", unit="img", leave=False, disable=None)
        for f in it:
            try:
                face, _ = analysis.main_face(root / "images" / f)
                crop = face.aligned if face.aligned is not None and face.aligned.shape[0] == crop_size else None
                if crop is None:
                    from ..images import load_image

                    crop = align_face(load_image(root / "images" / f), face.landmarks, crop_size)
            except FacelabError:
                crop = np.zeros((crop_size, crop_size, 3), np.uint8)  # no face: an empty crop, scored as such
            known[f] = crop
        cache.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(known)
        np.savez(cache, files=np.array(names), crops=np.stack([known[n] for n in names]))
    index = {f: i for i, f in enumerate(files)}
    return {"crops": np.stack([known[f] for f in files]), "a": np.array([index[a] for a, _, _, _ in pairs]),
            "b": np.array([index[b] for _, b, _, _ in pairs]), "same": np.array([s for _, _, s, _ in pairs]),
            "fold": np.array([k for _, _, _, k in pairs])}


def _read_pairs(path: Path) -> list[tuple[str, str, bool, int]]:
    """pairs.txt: header 'folds n', then per fold n matched (name i j) and n mismatched (name i name j)."""
    lines = path.read_text().split("\n")
    folds, n = map(int, lines[0].split())
    out = []
    for i, line in enumerate(text for text in lines[1:] if text.strip()):
        p = line.split()
        if len(p) == 3:
            a, b, same = f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[0]}/{p[0]}_{int(p[2]):04d}.jpg", True
        else:
            a, b, same = f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[2]}/{p[2]}_{int(p[3]):04d}.jpg", False
        out.append((a, b, same, i // (2 * n)))
    return out


def _best_threshold(sims: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    cands = np.unique(sims)
    accs = [((sims >= t) == same).mean() for t in cands]
    i = int(np.argmax(accs))
    return float(cands[i]), float(accs[i])


def _lfw_scores(emb: np.ndarray, lfw: dict[str, Any]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    sims = (emb[lfw["a"]] * emb[lfw["b"]]).sum(1)
    same, folds = lfw["same"], lfw["fold"]
    threshold, fit_acc = _best_threshold(sims, same)
    if len(np.unique(folds)) > 1:  # each fold scored at the threshold chosen on the other folds
        correct = 0
        for k in np.unique(folds):
            t, _ = _best_threshold(sims[folds != k], same[folds != k])
            correct += ((sims[folds == k] >= t) == same[folds == k]).sum()
        acc = correct / len(sims)
    else:
        acc = fit_acc
    return {"lfw_acc": float(acc), "lfw_auc": float(roc_auc_score(same, sims)), "lfw_threshold": threshold,
            "lfw_pairs": int(len(sims))}


def _operating_points(emb: np.ndarray, lfw: dict[str, Any], scores: dict[str, Any]) -> dict[str, Any]:
    """The same shape as facelab/models/thresholds.json entries, so `facelab verify --model` can use it."""
    sims = (emb[lfw["a"]] * emb[lfw["b"]]).sum(1)
    impostor = np.sort(sims[~lfw["same"]])
    table = []
    for far in (0.1, 0.01, 0.001):
        k = int(np.ceil(len(impostor) * (1 - far)))
        t = float(impostor[min(k, len(impostor) - 1)]) + 1e-6
        table.append({"far": float((impostor >= t).mean()), "threshold": round(t, 4)})
    t = scores["lfw_threshold"]
    return {"source": f"LFW View 2, first {scores['lfw_pairs']} pairs (training run)",
            "default": {"threshold": round(t, 4), "far": round(float((impostor >= t).mean()), 4)},
            "far_table": table}
