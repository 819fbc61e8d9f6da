"""Point and box prompts for promptable networks (LoRA-SAM), given in 3D and handed to the network
slice by slice.

Prompts are given in the input image's voxel indices or in RAS millimetres and converted to the
conformed grid. For each 2D stack the engine runs, a point is used on the slice it lies on (within
half a voxel) and a box on every slice it spans; SAM's prompt encoder takes one box per image, so
several boxes on one slice are combined into their bounding box. ``--auto-boxes`` derives one box per
structure and slice from a first pass of the same network: the interactive refinement of the LoRA-SAM
paper, made automatic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from brainsegcli.types import BrainsegError, Plane


@dataclass
class Prompts:
    points: list[tuple[np.ndarray, int]] = field(default_factory=list)   # conformed voxel, label 1/0
    boxes: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # conformed lo, hi corners

    def __bool__(self) -> bool:
        return bool(self.points or self.boxes)


def _numbers(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError:
        raise BrainsegError(f"{what} {text!r}: expected {n} comma-separated numbers") from None
    if len(vals) != n or not np.all(np.isfinite(vals)):
        raise BrainsegError(f"{what} {text!r}: expected {n} comma-separated numbers")
    return vals


def to_conformed(coords: np.ndarray, space: str, native_to_conformed: np.ndarray, conformed_affine: np.ndarray) -> np.ndarray:
    h = np.r_[coords, 1.0]
    if space == "voxel":
        return (native_to_conformed @ h)[:3]
    if space == "ras":
        return (np.linalg.inv(conformed_affine) @ h)[:3]
    raise BrainsegError(f"--prompt-coords {space}: use voxel or ras")


def parse_prompts(points: list[str], boxes: list[str], space: str, native_to_conformed: np.ndarray,
                  conformed_affine: np.ndarray) -> Prompts:
    """``--points x,y,z,label`` (label 1 = inside, 0 = outside) and ``--box x0,y0,z0,x1,y1,z1``."""
    out = Prompts()
    for p in points:
        x, y, z, lab = _numbers(p, 4, "--points")
        if lab not in (0, 1):
            raise BrainsegError(f"--points {p!r}: the label must be 1 (inside) or 0 (outside)")
        out.points.append((to_conformed(np.array([x, y, z]), space, native_to_conformed, conformed_affine),
                           int(lab)))
    for b in boxes:
        v = _numbers(b, 6, "--box")
        a = to_conformed(np.array(v[:3]), space, native_to_conformed, conformed_affine)
        c = to_conformed(np.array(v[3:]), space, native_to_conformed, conformed_affine)
        out.boxes.append((np.minimum(a, c), np.maximum(a, c)))
    return out


def boxes_from_labels(indices: np.ndarray, margin: int = 2) -> Prompts:
    """One 3D box per labelled structure (class index > 0), grown by ``margin`` voxels."""
    out = Prompts()
    for k in np.unique(indices):
        if k == 0:
            continue
        where = np.argwhere(indices == k)
        out.boxes.append((where.min(0) - margin, where.max(0) + margin))
    return out


class PromptedNetwork:
    """Wraps a promptable model; the engine calls it with the plane and slice indices of each batch."""

    wants_slice_info = True

    def __init__(self, model, prompts: Prompts):
        if not getattr(model, "accepts_prompts", False):
            raise BrainsegError("point/box prompts need a promptable model (lora-sam)")
        self.model, self.prompts = model, prompts

    def __getattr__(self, name):  # eval(), training, ... of the wrapped model
        return getattr(self.model, name)

    def slice_prompts(self, plane: Plane, c: int):
        """(points, box) for slice ``c`` of ``plane`` in the stack's (col, row) pixel coordinates."""
        rows, cols = [i for i in range(3) if i != plane.axis]
        pts = [(v[cols], v[rows], lab) for v, lab in self.prompts.points if abs(v[plane.axis] - c) <= 0.5]
        spans = [(lo, hi) for lo, hi in self.prompts.boxes if lo[plane.axis] <= c <= hi[plane.axis]]
        box = None
        if spans:
            lo = np.min([s[0] for s in spans], axis=0)
            hi = np.max([s[1] for s in spans], axis=0)
            box = torch.tensor([[lo[cols], lo[rows], hi[cols], hi[rows]]], dtype=torch.float32)
        points = None
        if pts:
            points = (torch.tensor([[[p[0], p[1]] for p in pts]], dtype=torch.float32),
                      torch.tensor([[p[2] for p in pts]], dtype=torch.long))
        return points, box

    def __call__(self, x: torch.Tensor, plane: Plane, centres) -> torch.Tensor:
        per = [self.slice_prompts(plane, int(c)) for c in centres]
        points = [None if p is None else (p[0].to(x.device), p[1].to(x.device)) for p, _ in per]
        boxes = [None if b is None else b.to(x.device) for _, b in per]
        return self.model(x, points=points, boxes=boxes)
