"""Small CNNs for 112x112 aligned face crops, written in plain torch (no torchvision).

Every network takes the crop as facelab stores it (N, 3, S, S float RGB 0-255) and does its own resizing and
normalisation inside the graph, so the ONNX export needs no preprocessing beyond "give me the aligned crop".
An architecture is described by a plain dict (`arch`), saved in every checkpoint and compared on resume.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = ("resnet", "mobilefacenet")


class CropInput(nn.Module):
    """(N,3,S,S) RGB 0-255 -> resized to `input_size`, scaled to about [-1, 1]."""

    def __init__(self, crop_size: int, input_size: int):
        super().__init__()
        self.crop_size, self.input_size = crop_size, input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size != self.crop_size:
            if self.crop_size % self.input_size == 0:  # an exact integer factor: a box filter, no aliasing
                x = F.avg_pool2d(x, self.crop_size // self.input_size)
            else:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                                  antialias=False)
        return (x - 127.5) / 128.0


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout)
        self.short = (nn.Sequential() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + self.short(x))


class SmallResNet(nn.Module):
    """A ResNet with one or two basic blocks per stage; widths (w, 2w, 4w, 8w); global average pool."""

    def __init__(self, width: int = 32, blocks: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if (b == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.feat_dim = cin

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


class Bottleneck(nn.Module):
    """MobileNetV2 inverted residual (MobileFaceNet's building block)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 2):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNetLike(nn.Module):
    """MobileFaceNet (Chen et al. 2018) shape at a smaller width: depthwise bottlenecks, then a global
    depthwise conv over the whole last feature map (GDConv) instead of average pooling, which keeps where
    on the face a feature fired."""

    def __init__(self, input_size: int, width: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.PReLU(w),
            nn.Conv2d(w, w, 3, 1, 1, groups=w, bias=False), nn.BatchNorm2d(w), nn.PReLU(w),
            Bottleneck(w, w, 2), Bottleneck(w, w, 1),
            Bottleneck(w, 2 * w, 2), Bottleneck(2 * w, 2 * w, 1),
            Bottleneck(2 * w, 2 * w, 2), Bottleneck(2 * w, 2 * w, 1),
            nn.Conv2d(2 * w, 4 * w, 1, bias=False), nn.BatchNorm2d(4 * w), nn.PReLU(4 * w))
        with torch.no_grad():
            side = self.features(torch.zeros(1, 3, input_size, input_size)).shape[-1]
        self.gdconv = nn.Sequential(nn.Conv2d(4 * w, 4 * w, side, groups=4 * w, bias=False), nn.BatchNorm2d(4 * w))
        self.feat_dim = 4 * w

    def forward(self, x):
        return self.gdconv(self.features(x)).flatten(1)


def make_backbone(arch: dict[str, Any]) -> SmallResNet | MobileFaceNetLike:
    name = arch["backbone"]
    if name == "resnet":
        return SmallResNet(width=arch.get("width", 32), blocks=arch.get("blocks", 1))
    if name == "mobilefacenet":
        return MobileFaceNetLike(arch["input_size"], width=arch.get("width", 64))
    raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")


class CropClassifier(nn.Module):
    """Aligned crop -> class logits (the CNN way)."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.input = CropInput(arch["crop_size"], arch["input_size"])
        self.backbone = make_backbone(arch)
        self.dropout = nn.Dropout(arch.get("dropout", 0.2))
        self.fc = nn.Linear(self.backbone.feat_dim, arch["num_classes"])

    def forward(self, x):
        return self.fc(self.dropout(self.backbone(self.input(x))))


class EmbeddingHead(nn.Module):
    """Frozen face embedding -> class logits (the fast way): linear, or one hidden layer.

    arch["standardize"]: features with no fixed scale (a CNN's ReLU activations, unlike SFace's unit vectors)
    are standardised with the training set's mean and spread, kept as buffers so the ONNX export does it too."""

    mean: torch.Tensor  # buffers (register_buffer), present when arch["standardize"]
    scale: torch.Tensor

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        dim, hidden, n = arch["embedding_dim"], arch.get("hidden", 0), arch["num_classes"]
        self.standardize = bool(arch.get("standardize"))
        if self.standardize:
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("scale", torch.ones(dim))
        self.net = (nn.Linear(dim, n) if not hidden else
                    nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Dropout(arch.get("dropout", 0.2)), nn.Linear(hidden, n)))

    def set_standardization(self, features) -> None:
        x = torch.as_tensor(features, dtype=torch.float32)
        self.mean.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-6))  # a dead ReLU unit (constant 0) must not divide by zero

    def forward(self, x):
        if self.standardize:
            x = (x - self.mean) / self.scale
        return self.net(x)


class FaceEmbedder(nn.Module):
    """Aligned crop -> embedding (not normalised; the margin loss normalises, the export adds it)."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.input = CropInput(arch["crop_size"], arch["input_size"])
        self.backbone = make_backbone(arch)
        self.project = nn.Sequential(nn.Dropout(arch.get("dropout", 0.0)),
                                     nn.Linear(self.backbone.feat_dim, arch["embedding_dim"], bias=False),
                                     nn.BatchNorm1d(arch["embedding_dim"]))

    def forward(self, x):
        return self.project(self.backbone(self.input(x)))


class WithSoftmax(nn.Module):
    """What is exported for a classifier: probabilities, not logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x).float(), dim=1)


class WithL2Norm(nn.Module):
    """What is exported for an embedder: unit vectors, compared by dot product like every facelab embedder."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.normalize(self.net(x).float(), dim=1)


def build_model(arch: dict[str, Any]) -> nn.Module:
    kind = arch["kind"]
    if kind == "head":
        return EmbeddingHead(arch)
    if kind == "cnn":
        return CropClassifier(arch)
    if kind == "embedder":
        return FaceEmbedder(arch)
    raise ValueError(f"unknown model kind {kind!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
