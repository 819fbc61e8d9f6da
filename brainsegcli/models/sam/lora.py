"""Low-rank factors on q and v and MA-SAM-style 3D adapters, attached to a built SAM image encoder
through forward hooks: the SAM modules and their state-dict keys stay exactly as built."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class QVLoRA(nn.Module):
    """Adds B_q A_q x to the query and B_v A_v x to the value part of a fused ``qkv`` projection.

    A: Kaiming-uniform, B: zeros, so the wrapped layer starts exactly as the original.
    """

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.dim, self.rank = dim, rank
        self.a_q = nn.Parameter(torch.empty(rank, dim))
        self.b_q = nn.Parameter(torch.zeros(dim, rank))
        self.a_v = nn.Parameter(torch.empty(rank, dim))
        self.b_v = nn.Parameter(torch.zeros(dim, rank))
        nn.init.kaiming_uniform_(self.a_q, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.a_v, a=math.sqrt(5))

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        dq = F.linear(F.linear(x, self.a_q), self.b_q)
        dv = F.linear(F.linear(x, self.a_v), self.b_v)
        zero = torch.zeros_like(dq)
        return output + torch.cat([dq, zero, dv], dim=-1)


def attach_lora(encoder: nn.Module, rank: int) -> nn.ModuleList:
    """One :class:`QVLoRA` per transformer block (returned; register it on the owning model)."""
    loras = nn.ModuleList()
    for blk in encoder.blocks:
        lora = QVLoRA(blk.attn.qkv.in_features, rank)
        blk.attn.qkv.register_forward_hook(lora.hook)
        loras.append(lora)
    return loras


class SliceContext:
    """How many consecutive batch items form one stack (the slice axis of the 3D adapters)."""

    def __init__(self, n_slices: int = 1):
        self.n_slices = n_slices


class Adapter3D(nn.Module):
    """LayerNorm -> down-projection -> Conv3d (3,1,1) along the slice axis -> GELU -> up-projection,
    added to its input (MA-SAM). The up-projection starts at zero."""

    def __init__(self, dim: int, ctx: SliceContext, ratio: float = 0.25):
        super().__init__()
        hidden = max(int(dim * ratio), 4)
        self.norm = nn.LayerNorm(dim)
        self.down = nn.Linear(dim, hidden)
        self.conv = nn.Conv3d(hidden, hidden, kernel_size=(3, 1, 1), padding=(1, 0, 0))
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.ctx = ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B*D, H, W, C)
        d = self.ctx.n_slices
        h = self.down(self.norm(x))
        bd, hh, ww, c = h.shape
        h = h.view(bd // d, d, hh, ww, c).permute(0, 4, 1, 2, 3)      # (B, C, D, H, W)
        h = self.conv(h).permute(0, 2, 3, 4, 1).reshape(bd, hh, ww, c)
        return x + self.up(F.gelu(h))

    def pre_hook(self, module: nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
        return (self.forward(inputs[0]),)

    def hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return self.forward(output)


def attach_adapters(encoder: nn.Module, ctx: SliceContext) -> nn.ModuleList:
    """Two adapters per block, on full (not windowed) token grids: on the block's input, before the
    attention, and on the MLP's output."""
    adapters = nn.ModuleList()
    for blk in encoder.blocks:
        dim = blk.norm1.normalized_shape[0]
        pair = nn.ModuleList([Adapter3D(dim, ctx), Adapter3D(dim, ctx)])
        blk.register_forward_pre_hook(pair[0].pre_hook)
        blk.mlp.register_forward_hook(pair[1].hook)
        adapters.append(pair)
    return adapters


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
