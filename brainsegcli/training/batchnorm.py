"""BatchNorm statistics that describe many synthetic contrasts, not the last few batches.

With momentum 0.1 a BatchNorm layer's running mean/variance are dominated by the last ~10 batches,
i.e. by the handful of synthetic contrasts they came from; validation and the saved checkpoint then
depend on which contrasts happened to come last (held-out Dice swung 0.65-0.77 between epochs of
the tissue run). ``StackPool`` keeps a few stacks of every batch of the epoch and
``recalibrate_batchnorm`` re-estimates the statistics as a plain average over them
("precise BN", Wu & Johnson 2021) before each validation and checkpoint.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Callable, ContextManager

import numpy as np
import torch
import torch.nn as nn


class StackPool:
    """The last ``capacity`` uint8 stacks offered (``per_batch`` taken from each training batch)."""

    def __init__(self, capacity: int, per_batch: int = 2):
        self.per_batch = per_batch
        self.stacks: deque[np.ndarray] = deque(maxlen=capacity)

    def offer(self, x: np.ndarray) -> None:
        if self.stacks.maxlen:
            for s in x[: self.per_batch]:
                self.stacks.append(np.array(s, copy=True))

    def clear(self) -> None:
        self.stacks.clear()

    def __len__(self) -> int:
        return len(self.stacks)

    def batches(self, batch_size: int, seed: int):
        order = np.random.default_rng(seed).permutation(len(self.stacks))
        for i in range(0, len(order), batch_size):
            if len(order) - i == 1 and i > 0:
                break  # a lone last stack: BatchNorm in training mode may need more than one value per channel
            yield np.stack([self.stacks[j] for j in order[i:i + batch_size]])


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, to_input: Callable[[np.ndarray], torch.Tensor],
                          autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``batches``
    (a cumulative average, equal weight per batch); other layers stay in eval mode (no dropout).
    Returns the number of batches used; with none, nothing changes. Restores train/eval modes."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    modes = {m: m.training for m in model.modules()}
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
             for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    n = 0
    try:
        for xb in batches:
            with autocast():
                model(to_input(xb))
            n += 1
    finally:
        for m, (mean, var, count, momentum) in zip(layers, saved):
            m.momentum = momentum
            if n == 0:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        for m, mode in modes.items():
            m.train(mode)
    return n
