"""Batch augmentations for aligned face crops, in torch on the training device (no torchvision).

All work on float (N, 3, S, S) RGB 0-255 and keep that range. Geometric ones (crop = small random scale and
shift, rotate = small in-plane tilt) are folded into a single affine warp per batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("brightness", "contrast", "crop", "flip", "grayscale", "rotate")
DEFAULT_AUGMENT = "brightness,contrast,crop,flip"


def parse_augment(text: str | None) -> tuple[str, ...]:
    if not text or text == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(bad)}; known: {', '.join(AUGMENTATIONS)}")
    return names


def augment_batch(x: torch.Tensor, names: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    if not names:
        return x
    n, dev = x.shape[0], x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    if "crop" in names or "rotate" in names:
        angle = (rand(n) * 2 - 1) * math.radians(10) if "rotate" in names else torch.zeros(n, device=dev)
        scale = 1 - rand(n) * 0.12 if "crop" in names else torch.ones(n, device=dev)  # zoom in up to 12 %
        shift = (rand(n, 2) * 2 - 1) * 0.06 if "crop" in names else torch.zeros(n, 2, device=dev)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "flip" in names:
        flip = rand(n) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if "brightness" in names:
        x = x * (0.75 + 0.5 * rand(n, 1, 1, 1))
    if "contrast" in names:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * (0.7 + 0.6 * rand(n, 1, 1, 1))
    if "grayscale" in names:
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1).expand_as(x)
        x = torch.where((rand(n) < 0.2)[:, None, None, None], grey, x)
    return x.clamp(0, 255)
