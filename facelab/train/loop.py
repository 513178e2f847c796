"""The epoch loop shared by the classifier and the embedder.

Devices: "auto" picks CUDA when present; on CUDA the forward pass runs in float16 autocast with a gradient
scaler (mixed precision), on CPU in float32. The same code runs on both.
State: after every epoch `last.pt` holds everything needed to continue (model, optimiser, scheduler, scaler,
epoch, history, early-stopping counters); `best.pt` the weights of the best validation score. A crash, Ctrl-C
or out-of-memory error loses at most the current epoch; `--resume` continues from `last.pt`.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import TrainingError
from .augment import augment_batch, parse_augment
from .runs import Run

OPTIMIZERS = ("adamw", "sgd", "adamax")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    patience: int = 4          # epochs without a better validation score before stopping
    seed: int = 0
    device: str = "auto"
    augment: str = ""
    amp: bool = True           # mixed precision, CUDA only
    threads: int = 0           # CPU threads for torch (0: torch's default)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked, but this torch has no usable CUDA device "
                            f"(torch {torch.__version__}); use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise TrainingError(f"bad --device {name!r}: {exc}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=weight_decay)
    raise TrainingError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError))


def to_input(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC crops -> float NCHW on the device; float vectors pass through."""
    t = torch.from_numpy(np.ascontiguousarray(batch))
    if t.dtype == torch.uint8:
        t = t.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        return t.contiguous()
    return t.to(device).float()


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def fit(run: Run, train_module: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, arch: dict[str, Any],
        loss_fn: nn.Module, validate: Callable[[nn.Module], dict[str, float]], resume: bool,
        progress: bool = True, dist: Distributed | None = None) -> dict[str, Any]:
    """Train `train_module` (forward(x, y) -> logits) on (x, y). Returns the final state summary."""
    dist = dist or Distributed()
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    augment = parse_augment(cfg.augment) if x.dtype == np.uint8 else ()
    module = train_module.to(device)
    model = module
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = loss_fn.to(device)
    opt = make_optimizer(cfg.optimizer, module.parameters(), cfg.lr, cfg.weight_decay)
    # Cosine decay of the learning rate over the planned epochs.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, cfg.epochs) / max(cfg.epochs, 1))))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_score": -math.inf, "best_epoch": None, "bad_epochs": 0}
    if resume:
        state = _load_last(run, module, opt, sched, scaler, arch, device)
    n = len(x)
    if n < 2:
        raise TrainingError("fewer than 2 training examples")
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["bad_epochs"] >= cfg.patience:
            break
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        perm = torch.randperm(n, generator=gen).numpy()
        # Every process gets the same number of examples (DDP hangs if one runs an extra batch).
        perm = perm[: n - n % dist.world][dist.rank::dist.world]
        model.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        batches = [perm[i:i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
        batches = [b for b in batches if len(b) > 1]  # batch norm cannot train on a single example
        bar = _bar(batches, f"epoch {epoch}/{cfg.epochs}", progress and dist.main)
        try:
            for idx in bar:
                xb = to_input(x[idx], device)
                yb = torch.from_numpy(y[idx]).to(device)
                if augment:
                    xb = augment_batch(xb, augment, gen)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    logits = model(xb, yb)
                    loss = loss_fn(logits.float(), yb)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the loss became {loss.item()} at epoch {epoch}: lower --lr (now "
                                        f"{cfg.lr:g}); the run folder keeps epoch {state['epoch']} "
                                        f"(--resume continues from it)")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        except (RuntimeError, MemoryError) as exc:
            if is_oom(exc):
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                raise TrainingError(
                    f"batch size {cfg.batch_size} does not fit in {device.type} memory at epoch {epoch}; the run "
                    f"folder keeps epoch {state['epoch']}: rerun with --resume --batch-size "
                    f"{max(cfg.batch_size // 2, 2)}") from None
            raise
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": round(loss_sum / max(seen, 1), 5),
               "train_acc": round(correct / max(seen, 1), 5), "seconds": round(seconds, 2),
               "images_per_s": round(seen * dist.world / seconds, 1), "lr": opt.param_groups[0]["lr"]}
        sched.step()
        module.eval()
        with torch.no_grad():
            val = validate(module)
        module.train()
        row.update({k: (round(v, 5) if isinstance(v, float) else v) for k, v in val.items() if k != "score"})
        score = val.get("score", -row["train_loss"])
        state["history"].append(row)
        state["epoch"] = epoch
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            if dist.main:
                _save(run.best, {"arch": arch, "model": module.state_dict(), "epoch": epoch, "metrics": row})
        else:
            state["bad_epochs"] += 1
        if dist.main:
            _save(run.last, {"arch": arch, "model": module.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), **state})
            run.write_metrics(state["history"])
            _print_epoch(row, progress)
    if state["best_epoch"] is None:
        raise TrainingError("no epoch finished (epochs already done? pass a larger --epochs to continue)")
    return state


def _bar(items, desc: str, show: bool):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="batch", leave=False, disable=None)


def _print_epoch(row: dict[str, Any], progress: bool) -> None:
    if not progress:
        return
    import sys

    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.3f}", f"acc {row['train_acc']:.3f}"]
    for key in ("val_loss", "val_acc", "lfw_acc"):
        if key in row:
            parts.append(f"{key} {row[key]:.3f}")
    parts.append(f"{row['images_per_s']:.0f} img/s")
    print("  ".join(parts), file=sys.stderr, flush=True)


def _save(path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint


def load_checkpoint(path, arch: dict[str, Any] | None = None, device="cpu") -> dict[str, Any]:
    """Read a checkpoint and check it is the architecture expected (a clear error, not a shape mismatch)."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise TrainingError(f"no checkpoint at {path}") from None
    except Exception as exc:  # truncated or not a torch file
        raise TrainingError(f"checkpoint {path} is unreadable ({type(exc).__name__}); it is corrupt or not "
                            f"a facelab checkpoint") from None
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "model" not in ckpt:
        raise TrainingError(f"{path} is not a facelab checkpoint (no architecture recorded)")
    if arch is not None:
        keys = [k for k in set(arch) | set(ckpt["arch"]) if arch.get(k) != ckpt["arch"].get(k)]
        if keys:
            diffs = ", ".join(f"{k}: checkpoint {ckpt['arch'].get(k)!r} vs asked {arch.get(k)!r}"
                              for k in sorted(keys)[:4])
            raise TrainingError(f"checkpoint {path} is of another architecture ({diffs})")
    return ckpt


def _load_last(run: Run, module, opt, sched, scaler, arch, device) -> dict[str, Any]:
    if not run.last.exists():
        raise TrainingError(f"--resume: {run.last} does not exist (nothing to resume)")
    ckpt = load_checkpoint(run.last, arch, device)
    try:
        module.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise TrainingError(f"checkpoint {run.last} does not fit this model: {str(exc).splitlines()[0]}") from None
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    return {k: ckpt[k] for k in ("epoch", "history", "best_score", "best_epoch", "bad_epochs")}
