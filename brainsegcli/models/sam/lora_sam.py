"""LoRA-SAM: a frozen SAM image encoder with LoRA on q/v, SAM's prompt encoder and a mask decoder
with one mask token per class (SAMed-style), for the 12 subcortical structures."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from brainsegcli.models.registry import register_model
from brainsegcli.models.sam.loader import (SAM_CONFIGS, adapt_state, build_image_encoder, build_mask_decoder,
                                           build_prompt_encoder, to_sam_input)
from brainsegcli.models.sam.lora import attach_lora, freeze


def middle_three(x: torch.Tensor) -> torch.Tensor:
    """The centre slice and its two neighbours as SAM's three input channels."""
    c = x.shape[1]
    if c >= 3:
        m = c // 2
        return x[:, m - 1:m + 2]
    return x[:, :1].expand(-1, 3, -1, -1)


class LoRASAM(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, variant: str = "vit_b", image_size: int = 512,
                 lora_rank: int = 16):
        super().__init__()
        cfg = SAM_CONFIGS[variant]
        self.variant, self.image_size, self.in_channels = variant, image_size, in_channels
        self.image_encoder = build_image_encoder(cfg, image_size)
        freeze(self.image_encoder)
        self.lora = attach_lora(self.image_encoder, lora_rank)
        self.prompt_encoder = build_prompt_encoder(cfg, image_size)
        # SAMed-style: num_classes mask tokens (SAM's 'multimask outputs' + 1), every token's mask used
        self.mask_decoder = build_mask_decoder(cfg, num_classes - 1)
        # kept for key compatibility, unused here: mask prompts and SAM's IoU-prediction head
        freeze(self.prompt_encoder.mask_downscaling)
        freeze(self.mask_decoder.iou_prediction_head)
    accepts_prompts = True

    def new_keys(self) -> set[str]:
        """Keys an official SAM checkpoint does not provide (LoRA factors, extra mask-token heads)."""
        n_official = 4  # SAM's decoder: 3 multimask outputs + 1
        keys = {k for k in self.state_dict() if k.startswith("lora.")}
        keys |= {k for k in self.state_dict() if k.startswith("mask_decoder.output_hypernetworks_mlps.")
                 and int(k.split(".")[2]) >= n_official}
        return keys

    def load_base(self, sam_state: dict[str, torch.Tensor]) -> None:
        """Load an official SAM state dict (strict, new keys listed by :meth:`new_keys`)."""
        own = self.state_dict()
        adapted = adapt_state(sam_state, own)
        missing = set(own) - set(adapted)
        if missing != self.new_keys():
            raise ValueError(f"unexpected keys missing from the SAM checkpoint: {sorted(missing - self.new_keys())[:5]}")
        self.load_state_dict({**own, **adapted}, strict=True)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changes: LoRA factors, prompt encoder, mask decoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("image_encoder.")}

    def forward(self, x: torch.Tensor, points=None, boxes=None) -> torch.Tensor:
        """x: (B, slices, H, W) in [0, 1]. Optional per-image prompts in input pixel coordinates:
        ``points[i] = (coords (1, N, 2) as (col, row), labels (1, N))``, ``boxes[i] = (1, 4)``."""
        b, _, h, w = x.shape
        emb = self.image_encoder(to_sam_input(middle_three(x), self.image_size))
        scale = torch.tensor([self.image_size / w, self.image_size / h], device=x.device)
        pe = self.prompt_encoder.get_dense_pe()
        outs = []
        for i in range(b):
            pts = None if points is None or points[i] is None else (points[i][0] * scale, points[i][1])
            box = None if boxes is None or boxes[i] is None else boxes[i] * scale.repeat(2)
            sparse, dense = self.prompt_encoder(points=pts, boxes=box, masks=None)
            masks, _ = self.mask_decoder.predict_masks(image_embeddings=emb[i:i + 1], image_pe=pe,
                                                       sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
            outs.append(masks)
        return F.interpolate(torch.cat(outs), size=(h, w), mode="bilinear", align_corners=False)


@register_model("lora-sam", family="sam", labelsets=("subcortical",),
                paper="LoRA-SAM: SAM with low-rank adaptation for subcortical segmentation",
                description="frozen SAM ViT encoder + LoRA on q/v, prompt encoder, one mask token per class",
                default_args={"variant": "vit_b", "image_size": 512, "lora_rank": 16},
                tiny_args={"variant": "tiny", "image_size": 64, "lora_rank": 4})
def lora_sam(in_channels: int, num_classes: int, variant: str = "vit_b", image_size: int = 512,
             lora_rank: int = 16) -> LoRASAM:
    return LoRASAM(in_channels, num_classes, variant, image_size, lora_rank)
