"""Small building blocks shared by the CNN families."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """conv-BN-ReLU twice (the classic U-Net level)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNAct(cin, cout), ConvBNAct(cout, cout))


class SepConvBN(nn.Sequential):
    """Depthwise-separable 3x3 convolution: depthwise 3x3, pointwise 1x1, BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )


class SepResBlock(nn.Module):
    """Two separable convolutions with a residual connection (1x1 projection when widths differ)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = SepConvBN(cin, cout)
        self.conv2 = SepConvBN(cout, cout)
        self.proj = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                                                     nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        return F.relu(y + self.proj(x), inplace=True)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): the coarser decoder signal ``g`` weights the skip ``x``.

    alpha = sigmoid(psi(relu(W_x x (stride 2) + W_g g))), upsampled to x's size; returns x * alpha.
    """

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int):
        super().__init__()
        self.wx = nn.Conv2d(x_channels, inter_channels, 2, stride=2, bias=False)
        self.wg = nn.Conv2d(g_channels, inter_channels, 1, bias=True)
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, 1, bias=True), nn.BatchNorm2d(1))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.psi(F.relu(self.wx(x) + self.wg(g), inplace=True)))
        a = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * a
