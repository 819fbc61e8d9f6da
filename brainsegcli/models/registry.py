"""Model registry (timm-style): ``@register_model``, ``create_model``, ``list_models``.

Models take plain numbers (``in_channels``, ``num_classes``) and know nothing of files or labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from brainsegcli.types import BrainsegError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    description: str
    default_args: dict[str, Any] = field(default_factory=dict)
    # small configuration used by tests (fast on CPU, same code paths)
    tiny_args: dict[str, Any] = field(default_factory=dict)
    # label sets the model is meant for (any set works; this is what the paper used)
    labelsets: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, paper: str, description: str,
                   default_args: dict[str, Any] | None = None, tiny_args: dict[str, Any] | None = None,
                   labelsets: tuple[str, ...] = ()):
    def deco(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, family, paper, description, dict(default_args or {}),
                                    dict(tiny_args or {}), labelsets)
        return builder
    return deco


def _ensure_loaded() -> None:
    # importing the package imports every model module, which registers them
    import brainsegcli.models  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BrainsegError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, *, in_channels: int = 5, num_classes: int, tiny: bool = False, **kwargs) -> nn.Module:
    spec = get_spec(name)
    args = dict(spec.default_args)
    if tiny:
        args.update(spec.tiny_args)
    args.update(kwargs)
    return spec.builder(in_channels=in_channels, num_classes=num_classes, **args)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def transfer_to_new_head(old: nn.Module, architecture: str, in_channels: int, num_classes: int,
                         model_args: dict[str, Any]) -> nn.Module:
    """A fresh ``architecture`` for ``num_classes`` holding every weight of ``old`` except those whose
    shape depends on the number of classes (the output layers), which keep their new initialisation.
    The two key sets must be identical: nothing else may be dropped silently."""
    new = create_model(architecture, in_channels=in_channels, num_classes=num_classes, **model_args)
    src, dst = old.state_dict(), new.state_dict()
    if set(src) != set(dst):
        raise BrainsegError(f"--new-head: {architecture} checkpoints differ in more than the output layer")
    fresh = {k for k in dst if src[k].shape != dst[k].shape}
    new.load_state_dict({k: (dst[k] if k in fresh else src[k]) for k in dst}, strict=True)
    return new
