"""BrainSegNet: SAM ViT encoder fine-tuned through 3D adapters and LoRA, U-Net long skips from the
transformer blocks, dual ASPP, channel-spatial attention (CSA) and a boundary-refinement head."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from brainsegcli.models.blocks import ConvBNAct
from brainsegcli.models.registry import register_model
from brainsegcli.models.sam.loader import SAM_CONFIGS, adapt_state, build_image_encoder, to_sam_input
from brainsegcli.models.sam.lora import SliceContext, attach_adapters, attach_lora, freeze


class ASPP(nn.Module):
    """Image-level (global average pooling) branch + atrous branches (rates 1, 6, 12, 18), concatenated
    and fused by a 1x1 convolution: the two views, global and local, of the 'dual' ASPP."""

    def __init__(self, cin: int, cout: int, rates: Sequence[int] = (1, 6, 12, 18)):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(cin, cout, 1 if r == 1 else 3, padding=0 if r == 1 else r, dilation=r,
                                     bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)) for r in rates])
        self.fuse = ConvBNAct(cout * (len(rates) + 1), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.pool(x).expand(-1, -1, *x.shape[-2:])
        return self.fuse(torch.cat([g] + [b(x) for b in self.branches], dim=1))


class CSA(nn.Module):
    """Channel attention (average + max pooling through a shared MLP, sigmoid), then spatial attention
    (channel-wise average + max maps through a 7x7 convolution, sigmoid)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))
        return x * sa


class BrainSegNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, variant: str = "vit_b", image_size: int = 512,
                 lora_rank: int = 4, decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
                 unet_skips: bool = True, aspp: bool = True, csa: bool = True, boundary: bool = True):
        super().__init__()
        cfg = SAM_CONFIGS[variant]
        self.variant, self.image_size, self.boundary = variant, image_size, boundary
        self.image_encoder = build_image_encoder(cfg, image_size)
        freeze(self.image_encoder)
        self.ctx = SliceContext(in_channels)
        self.adapters = attach_adapters(self.image_encoder, self.ctx)
        self.lora = attach_lora(self.image_encoder, lora_rank) if lora_rank else nn.ModuleList()
        dc = list(decoder_channels)
        self.bottom = ASPP(cfg.prompt_dim, dc[0]) if aspp else ConvBNAct(cfg.prompt_dim, dc[0])
        self.csa = CSA(dc[0]) if csa else nn.Identity()
        self.ups = nn.ModuleList(nn.ConvTranspose2d(dc[k], dc[k + 1], 2, stride=2) for k in range(4))
        self.skip_proj = nn.ModuleList(ConvBNAct(cfg.embed_dim, dc[k + 1], 1) for k in range(4)) if unet_skips else None
        self.fuse = nn.ModuleList(ConvBNAct(dc[k + 1] * (2 if unet_skips else 1), dc[k + 1]) for k in range(4))
        c = dc[4]
        if boundary:
            self.edge = nn.Sequential(ConvBNAct(c, c), nn.Conv2d(c, 1, 1))
            self.refine = nn.Sequential(nn.Conv2d(c + 1, c, 3, padding=1, bias=False), nn.GroupNorm(min(8, c), c),
                                        nn.ReLU(inplace=True))
        self.head = nn.Conv2d(c, num_classes, 1)
        self.depth = cfg.depth

    def new_keys(self) -> set[str]:
        return {k for k in self.state_dict() if not k.startswith("image_encoder.")}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("image_encoder.")}

    def load_base(self, sam_state: dict[str, torch.Tensor]) -> None:
        enc = {k[len("image_encoder."):]: v for k, v in sam_state.items() if k.startswith("image_encoder.")}
        own = self.image_encoder.state_dict()
        adapted = adapt_state(enc, own)
        if set(own) != set(adapted):
            raise ValueError(f"SAM checkpoint lacks encoder keys {sorted(set(own) - set(adapted))[:5]}")
        self.image_encoder.load_state_dict(adapted, strict=True)

    def forward(self, x: torch.Tensor):
        b, d, h, w = x.shape
        self.ctx.n_slices = d
        z = to_sam_input(x.reshape(b * d, 1, h, w).expand(-1, 3, -1, -1), self.image_size)
        enc = self.image_encoder
        t = enc.patch_embed(z)
        if enc.pos_embed is not None:
            t = t + enc.pos_embed
        feats = []
        for blk in enc.blocks:
            t = blk(t)
            feats.append(t)
        centre = d // 2

        def pick(f: torch.Tensor) -> torch.Tensor:  # the centre slice of every stack
            return f.view(b, d, *f.shape[1:])[:, centre]

        y = self.csa(self.bottom(pick(enc.neck(t.permute(0, 3, 1, 2)))))
        g = max(self.depth // 4, 1)
        # blocks linked symmetrically: the deepest group feeds the first decoder stage
        groups = [torch.stack(feats[i * g:(i + 1) * g]).mean(0) for i in range(4)]
        for k in range(4):
            y = self.ups[k](y)
            if self.skip_proj is not None:
                s = self.skip_proj[k](pick(groups[3 - k]).permute(0, 3, 1, 2))
                s = F.interpolate(s, size=y.shape[-2:], mode="bilinear", align_corners=False)
                y = torch.cat([y, s], dim=1)
            y = self.fuse[k](y)
        edges = None
        if self.boundary:
            edges = self.edge(y)
            y = self.refine(torch.cat([y, torch.sigmoid(edges)], dim=1))
        logits = F.interpolate(self.head(y), size=(h, w), mode="bilinear", align_corners=False)
        if self.training and edges is not None:
            return {"logits": logits,
                    "edges": F.interpolate(edges, size=(h, w), mode="bilinear", align_corners=False)}
        return logits


@register_model("brainsegnet", family="sam", labelsets=("dkt95",),
                paper="BrainSegNet: SAM encoder + adapters + U-Net skips + ASPP/attention/boundary decoder",
                description="SAM ViT encoder (3D adapters + LoRA), U-Net skips, dual ASPP, CSA, boundary refinement",
                default_args={"variant": "vit_b", "image_size": 512, "lora_rank": 4},
                tiny_args={"variant": "tiny", "image_size": 64, "lora_rank": 2,
                           "decoder_channels": (32, 16, 16, 8, 8)})
def brainsegnet(in_channels: int, num_classes: int, variant: str = "vit_b", image_size: int = 512,
                lora_rank: int = 4, decoder_channels=(256, 128, 64, 32, 16), unet_skips: bool = True,
                aspp: bool = True, csa: bool = True, boundary: bool = True) -> BrainSegNet:
    return BrainSegNet(in_channels, num_classes, variant, image_size, lora_rank, decoder_channels, unet_skips,
                       aspp, csa, boundary)
