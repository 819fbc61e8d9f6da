"""DeepMRSeg: a residual U-Net whose levels are Inception-ResNet-A style blocks.

Encoder levels downsample with strided convolutions (no max-pooling); the decoder upsamples with
transposed convolutions and concatenated skips; optional deep-supervision heads on every decoder
level (returned in training mode as ``(logits, [aux logits...])``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from brainsegcli.models.blocks import ConvBNAct
from brainsegcli.models.registry import register_model


class InceptionResNetA(nn.Module):
    """Parallel 1x1 / 1x1->3x3 / 1x1->3x3->3x3 branches, concatenated, 1x1 projection, added to input."""

    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        b = max(channels // 4, 4)
        self.b1 = ConvBNAct(channels, b, 1)
        self.b2 = nn.Sequential(ConvBNAct(channels, b, 1), ConvBNAct(b, b, 3))
        self.b3 = nn.Sequential(ConvBNAct(channels, b, 1), ConvBNAct(b, b + b // 2, 3), ConvBNAct(b + b // 2, b, 3))
        self.proj = nn.Sequential(nn.Conv2d(3 * b, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x)], dim=1)
        return F.relu(x + self.scale * self.proj(y), inplace=True)


class DeepMRSeg(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, features: Sequence[int] = (32, 64, 128, 256, 384),
                 blocks_per_level: int = 1, deep_supervision: bool = False):
        super().__init__()
        f = list(features)
        self.stem = ConvBNAct(in_channels, f[0], 3)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for i, c in enumerate(f):
            self.enc.append(nn.Sequential(*[InceptionResNetA(c) for _ in range(blocks_per_level)]))
            if i + 1 < len(f):
                self.down.append(ConvBNAct(c, f[i + 1], 3, stride=2))
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.aux = nn.ModuleList()
        levels = list(zip(f[::-1][:-1], f[::-1][1:]))
        for i, (deep, shallow) in enumerate(levels):
            self.up.append(nn.ConvTranspose2d(deep, shallow, 2, stride=2))
            self.fuse.append(ConvBNAct(2 * shallow, shallow, 1))
            self.dec.append(nn.Sequential(*[InceptionResNetA(shallow) for _ in range(blocks_per_level)]))
            if deep_supervision and i < len(levels) - 1:  # the last level feeds the main head
                self.aux.append(nn.Conv2d(shallow, num_classes, 1))
        self.head = nn.Conv2d(f[0], num_classes, 1)
        self.deep_supervision = deep_supervision
        self.divisor = 2 ** (len(f) - 1)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        aux_out = []
        for i, (up, fuse, dec) in enumerate(zip(self.up, self.fuse, self.dec)):
            x = dec(fuse(torch.cat([skips.pop(), up(x)], dim=1)))
            if self.deep_supervision and self.training and i < len(self.dec) - 1:
                aux_out.append(F.interpolate(self.aux[i](x), size=size, mode="bilinear", align_corners=False))
        logits = self.head(x)
        if self.deep_supervision and self.training:
            return logits, aux_out
        return logits


@register_model("deepmrseg", family="deepmrseg", paper="DeepMRSeg (Doshi et al.): inception-residual U-Net",
                description="residual U-Net of Inception-ResNet-A blocks, strided-conv down, transposed-conv up, "
                            "optional deep supervision", labelsets=("subcortical", "aseg"),
                default_args={"features": (24, 48, 96, 192, 320), "blocks_per_level": 1, "deep_supervision": False},
                tiny_args={"features": (8, 16, 32), "deep_supervision": True})
def deepmrseg(in_channels: int, num_classes: int, features=(24, 48, 96, 192, 320), blocks_per_level: int = 1,
              deep_supervision: bool = False) -> DeepMRSeg:
    return DeepMRSeg(in_channels, num_classes, features, blocks_per_level, deep_supervision)
