"""Accumulation of per-view class probabilities into one fused map, with bounded memory.

The accumulator covers only a box of the volume (the head's bounding box when cropping), holds one
probability map (float32, or float16 when float32 would exceed ``max_bytes``), channels last.
"""

from __future__ import annotations

import numpy as np
import torch

from brainsegcli.types import Plane

DEFAULT_WEIGHTS = {Plane.CORONAL: 0.4, Plane.AXIAL: 0.4, Plane.SAGITTAL: 0.2}


def normalise_weights(views, weights: dict[Plane, float] | None = None) -> dict[Plane, float]:
    w = {p: float((weights or DEFAULT_WEIGHTS).get(p, DEFAULT_WEIGHTS[p])) for p in views}
    total = sum(w.values())
    if total <= 0 or any(v < 0 for v in w.values()):
        raise ValueError("view weights must be non-negative and not all zero")
    return {p: v / total for p, v in w.items()}


def merge_lr(probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Sagittal fusion rule: each lateralised class gets the summed probability of itself and its
    twin (a sagittal slice cannot tell left from right); the other views decide the side."""
    if np.array_equal(group, np.arange(len(group))):
        return probs
    summed = np.zeros_like(probs)
    for c in range(len(group)):
        summed[:, group[c]] += probs[:, c]
    return summed[:, group]


class ProbabilityAccumulator:
    """Weighted sum of the views' class probabilities over ``box``, channels last.

    Stored as a torch tensor and added slice-range by slice-range. With the float16 storage (beyond
    ``max_bytes``; 33 classes over a 236³ box) one batch of 16 slices takes 0.12 s, against 0.26 s
    for numpy's fancy-indexed ``+=``, which dominated whole-head ``aseg`` validation in a profile;
    float32 is unchanged (0.09 s against 0.08 s). 2 cores, median of 12 batches."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int,
                 box: tuple[slice, slice, slice] | None = None, max_bytes: int = 2 * 1024**3):
        self.shape = tuple(shape)
        self.box = box or tuple(slice(0, s) for s in shape)
        self.box_shape = tuple(b.stop - b.start for b in self.box)
        n = int(np.prod(self.box_shape)) * num_classes
        self.dtype = np.float32 if n * 4 <= max_bytes else np.float16
        self.acc = torch.zeros(self.box_shape + (num_classes,),
                               dtype=torch.float32 if self.dtype == np.float32 else torch.float16)
        self.num_classes = num_classes

    @property
    def nbytes(self) -> int:
        return self.acc.numel() * self.acc.element_size()

    def _view(self, plane: Plane) -> torch.Tensor:
        return torch.movedim(self.acc, plane.axis, 0)  # (D, h, w, C), no copy

    def add(self, plane: Plane, centres: np.ndarray, probs: np.ndarray | torch.Tensor, weight: float,
            window: tuple[slice, slice] | None = None) -> None:
        """Add ``weight * probs`` for slices ``centres`` of ``plane``; probs is (B, C, H, W) on the
        full in-plane grid (H, W as in :func:`to_view` of the whole volume), or on ``window`` of it,
        which must hold the box."""
        ax = plane.axis
        b = self.box
        inplane = [b[i] for i in range(3) if i != ax]
        if window is not None:
            if any(s.start < w.start or s.stop > w.stop for s, w in zip(inplane, window)):
                raise ValueError("the in-plane window must hold the accumulator's box")
            inplane = [slice(s.start - w.start, s.stop - w.start) for s, w in zip(inplane, window)]
        centres = np.asarray(centres)
        sel = (centres >= b[ax].start) & (centres < b[ax].stop)
        if not sel.any():
            return
        p = torch.as_tensor(probs)[torch.from_numpy(np.flatnonzero(sel))][:, :, inplane[0], inplane[1]]
        p = p.permute(0, 2, 3, 1).mul(float(weight)).to(self.acc.dtype)        # (B, h, w, C)
        view, idx = self._view(plane), centres[sel] - b[ax].start
        if len(idx) > 1 and np.all(np.diff(idx) == 1):      # the engine's batches: consecutive slices
            view[idx[0]:idx[-1] + 1] += p
        else:                                                # (index_add_ is slow on strided views)
            for i, k in enumerate(idx):
                view[int(k)] += p[i]

    def add_background(self, plane: Plane, start: int, stop: int, weight: float) -> None:
        """Slices of ``plane`` outside [start, stop) were not run (empty stacks): background."""
        ax = plane.axis
        lo, hi = self.box[ax].start, self.box[ax].stop
        view = self._view(plane)
        for a, z in ((lo, min(start, hi)), (max(stop, lo), hi)):
            if z > a:
                view[a - lo:z - lo, ..., 0] += float(weight)

    def argmax(self) -> np.ndarray:
        """Class indices on the full grid; outside the box: background (0). Ties: the lowest index."""
        dtype = np.uint8 if self.num_classes <= 255 else np.int16
        out = np.zeros(self.shape, dtype=dtype)
        out[self.box] = torch.argmax(self.acc, dim=-1).numpy().astype(dtype)
        return out
