"""The official segment-anything modules, loaded without running the package ``__init__``.

``import segment_anything`` executes its ``__init__``, which imports the predictor and through it
torchvision; the ``modeling`` files themselves only need torch. We register a private alias package
whose ``__path__`` is the installed package folder (its ``__init__`` is never executed) and import
``modeling`` and ``build_sam`` through it. A real ``import segment_anything`` elsewhere is unaffected.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from brainsegcli.types import BrainsegError

_ALIAS = "_brainseg_segment_anything"
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@functools.lru_cache(maxsize=1)
def _package() -> types.ModuleType:
    spec = importlib.util.find_spec("segment_anything")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise BrainsegError("the segment-anything package is not installed (pip install segment-anything)")
    pkg = types.ModuleType(_ALIAS)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__package__ = _ALIAS
    sys.modules[_ALIAS] = pkg
    return pkg


def sam_modeling() -> types.ModuleType:
    """``segment_anything.modeling`` (ImageEncoderViT, PromptEncoder, MaskDecoder, TwoWayTransformer)."""
    _package()
    return importlib.import_module(f"{_ALIAS}.modeling")


def sam_build_module() -> types.ModuleType:
    """``segment_anything.build_sam`` (the official builders), for key-compatibility checks."""
    _package()
    return importlib.import_module(f"{_ALIAS}.build_sam")


@dataclass(frozen=True)
class SamConfig:
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    prompt_dim: int = 256
    window_size: int = 14
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    mask_in_chans: int = 16


SAM_CONFIGS = {
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
    # for tests: same code paths, a few seconds on a CPU
    "tiny": SamConfig(64, 4, 4, (1, 3), prompt_dim=32, window_size=4, decoder_mlp_dim=64, decoder_heads=2,
                      mask_in_chans=4),
}


def build_image_encoder(cfg: SamConfig, image_size: int) -> torch.nn.Module:
    m = sam_modeling()
    return m.ImageEncoderViT(
        depth=cfg.depth, embed_dim=cfg.embed_dim, img_size=image_size, mlp_ratio=4,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6), num_heads=cfg.num_heads, patch_size=16,
        qkv_bias=True, use_rel_pos=True, global_attn_indexes=cfg.global_attn_indexes,
        window_size=cfg.window_size, out_chans=cfg.prompt_dim)


def build_prompt_encoder(cfg: SamConfig, image_size: int) -> torch.nn.Module:
    m = sam_modeling()
    emb = image_size // 16
    return m.PromptEncoder(embed_dim=cfg.prompt_dim, image_embedding_size=(emb, emb),
                           input_image_size=(image_size, image_size), mask_in_chans=cfg.mask_in_chans)


def build_mask_decoder(cfg: SamConfig, num_masks: int) -> torch.nn.Module:
    m = sam_modeling()
    return m.MaskDecoder(num_multimask_outputs=num_masks,
                         transformer=m.TwoWayTransformer(depth=2, embedding_dim=cfg.prompt_dim,
                                                         mlp_dim=cfg.decoder_mlp_dim, num_heads=cfg.decoder_heads),
                         transformer_dim=cfg.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=cfg.prompt_dim)


def to_sam_input(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, 3, H, W) intensities in [0, 1] -> SAM's normalised input at ``image_size``."""
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(PIXEL_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * 255.0 - mean) / std


def load_official(path: str | Path) -> dict[str, torch.Tensor]:
    """An official SAM ``.pth`` (a plain state dict): never unpickles anything but tensors."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BrainsegError(f"{path}: not a loadable SAM checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise BrainsegError(f"{path}: not a SAM state dict")
    return state


def adapt_state(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resize an official state dict to a model of another image size / number of masks.

    ``pos_embed`` is resized bilinearly, the relative-position tables of the attention blocks
    linearly (as SAMed does for 512-pixel inputs); mask-decoder tensors whose first dimension grew
    (more mask tokens) keep SAM's rows and the model's own initial values for the new rows.
    """
    out = {}
    for k, v in state.items():
        if k not in target:
            continue
        t = target[k]
        if v.shape == t.shape:
            out[k] = v
        elif k.endswith("pos_embed"):
            g = F.interpolate(v.permute(0, 3, 1, 2), size=t.shape[1:3], mode="bilinear", align_corners=False)
            out[k] = g.permute(0, 2, 3, 1)
        elif k.endswith(("rel_pos_h", "rel_pos_w")):
            out[k] = F.interpolate(v.T[None], size=t.shape[0], mode="linear", align_corners=False)[0].T
        elif k.startswith("mask_decoder.") and v.dim() == t.dim() and v.shape[1:] == t.shape[1:] \
                and v.shape[0] < t.shape[0]:
            merged = t.clone()
            merged[: v.shape[0]] = v
            out[k] = merged
        else:
            raise BrainsegError(f"SAM checkpoint tensor {k} has shape {tuple(v.shape)}, the model needs "
                                f"{tuple(t.shape)}")
    return out
