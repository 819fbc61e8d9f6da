"""The tissue-segmentation paper's three 2D U-Nets: ``unet``, ``sepres-unet``, ``attention-unet``.

One encoder/decoder skeleton; the level block (plain double conv or separable residual), the skip
merge (concatenate or add) and the optional attention gates are passed in.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from brainsegcli.models.blocks import AttentionGate, DoubleConv, SepResBlock
from brainsegcli.models.registry import register_model

BlockFactory = Callable[[int, int], nn.Module]


class UNet2D(nn.Module):
    """2D U-Net on (B, in_channels, H, W) stacks; H and W must be multiples of 2**(len(features)-1)."""

    def __init__(self, in_channels: int, num_classes: int, features: Sequence[int] = (16, 32, 64, 128, 256),
                 block: BlockFactory = DoubleConv, skip: str = "concat", attention: bool = False):
        super().__init__()
        if skip not in ("concat", "add"):
            raise ValueError("skip must be 'concat' or 'add'")
        f = list(features)
        self.skip = skip
        self.encoders = nn.ModuleList()
        cin = in_channels
        for c in f:
            self.encoders.append(block(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for deep, shallow in zip(f[::-1][:-1], f[::-1][1:]):
            self.ups.append(nn.ConvTranspose2d(deep, shallow, 2, stride=2))
            self.gates.append(AttentionGate(shallow, deep, max(shallow // 2, 4)) if attention else nn.Identity())
            self.decoders.append(block(2 * shallow if skip == "concat" else shallow, shallow))
        self.head = nn.Conv2d(f[0], num_classes, 1)
        self.divisor = 2 ** (len(f) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, gate, dec in zip(self.ups, self.gates, self.decoders):
            s = skips.pop()
            if isinstance(gate, AttentionGate):
                s = gate(s, x)
            x = up(x)
            x = dec(torch.cat([s, x], dim=1) if self.skip == "concat" else s + x)
        return self.head(x)


_PAPER = ("U-Net / separable residual U-Net / Attention U-Net for CSF/GM/WM tissue segmentation "
          "(tissue-segmentation paper)")
_TINY = {"features": (8, 16, 32)}


@register_model("unet", family="tissue-unet", paper=_PAPER, labelsets=("tissue",),
                description="2D U-Net: conv-BN-ReLU blocks, max-pool down, transposed-conv up, concatenated skips",
                default_args={"features": (16, 32, 64, 128, 256)}, tiny_args=_TINY)
def unet(in_channels: int, num_classes: int, features=(16, 32, 64, 128, 256)) -> UNet2D:
    return UNet2D(in_channels, num_classes, features, DoubleConv, "concat", False)


@register_model("sepres-unet", family="tissue-unet", paper=_PAPER, labelsets=("tissue",),
                description="U-Net of depthwise-separable residual blocks; skips concatenated or added",
                default_args={"features": (24, 48, 96, 192, 384), "skip": "concat"}, tiny_args=_TINY)
def sepres_unet(in_channels: int, num_classes: int, features=(24, 48, 96, 192, 384), skip: str = "concat") -> UNet2D:
    return UNet2D(in_channels, num_classes, features, SepResBlock, skip, False)


@register_model("attention-unet", family="tissue-unet", paper=_PAPER, labelsets=("tissue",),
                description="U-Net with additive attention gates on the skip connections",
                default_args={"features": (16, 32, 64, 128, 256)}, tiny_args=_TINY)
def attention_unet(in_channels: int, num_classes: int, features=(16, 32, 64, 128, 256)) -> UNet2D:
    return UNet2D(in_channels, num_classes, features, DoubleConv, "concat", True)
