"""Acquisition changes applied to a real T1 (voxel array + affine), for the consistency benchmark.

Each function returns a new ``(data, affine)`` describing the same head as acquired differently, so that a
segmentation of the result, taken back to the original grid through the affines, can be compared with the
segmentation of the original:

- ``reorient``: the same voxels stored in another axis order / direction (an exact relabelling of the grid);
- ``thick_slices``: slabs of ``factor`` voxels averaged along one axis (a 2D acquisition with thick slices; the
  new voxel centre is the slab centre);
- ``resample``: trilinear resampling to another isotropic voxel size over the same field of view;
- ``shift``: the voxel grid moved by a fraction of a voxel against the head (resampled);
- ``bias_field``: a smooth multiplicative field spanning ``1 - strength`` .. ``1 + strength`` across the head;
- ``rician_noise``: Rician noise with sigma a fraction of the 99th intensity percentile.

One change moves the head itself: ``tilt`` turns it in the scanner (the same voxels, a rotated affine), so the
network sees it tilted against the conformed axes. Its segmentation is compared through that move
(``head_move``), not in place.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform


def reorient(data: np.ndarray, affine: np.ndarray, order: tuple[int, int, int],
             flips: tuple[bool, bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    """New axis k is old axis ``order[k]``, reversed where ``flips[k]``; every voxel keeps its world position."""
    out = np.transpose(data, order)
    m = np.zeros((4, 4))
    m[3, 3] = 1.0
    for k, (src, flip) in enumerate(zip(order, flips)):
        n = data.shape[src]
        if flip:
            out = np.flip(out, axis=k)
            m[src, k], m[src, 3] = -1.0, n - 1  # old index = n - 1 - new index
        else:
            m[src, k] = 1.0
    return np.ascontiguousarray(out), np.asarray(affine, float) @ m


def thick_slices(data: np.ndarray, affine: np.ndarray, axis: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Average consecutive slabs of ``factor`` slices along ``axis`` (a trailing partial slab is dropped)."""
    n = data.shape[axis] // factor
    kept = np.take(np.asarray(data, dtype=np.float32), np.arange(n * factor), axis=axis)
    shape = list(kept.shape)
    shape[axis:axis + 1] = [n, factor]
    out = kept.reshape(shape).mean(axis=axis + 1, dtype=np.float64).astype(np.float32)
    m = np.eye(4)
    m[axis, axis] = factor
    m[axis, 3] = (factor - 1) / 2.0  # new voxel j is centred on old index j * factor + (factor - 1) / 2
    return out, np.asarray(affine, float) @ m


def resample(data: np.ndarray, affine: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear resampling to isotropic ``voxel_mm`` voxels covering the same field of view (same axes)."""
    affine = np.asarray(affine, float)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    step = voxel_mm / zooms  # old voxels per new voxel, per axis
    shape = tuple(int(np.floor((s - 1) / st)) + 1 for s, st in zip(data.shape, step))
    m = np.eye(4)
    m[:3, :3] = np.diag(step)
    out = affine_transform(np.asarray(data, dtype=np.float32), m, output_shape=shape, order=1, mode="nearest")
    return out, affine @ m


def shift(data: np.ndarray, affine: np.ndarray, offset_vox) -> tuple[np.ndarray, np.ndarray]:
    """Resample the content ``offset_vox`` voxels along the grid (trilinear) and move the affine back by as much:
    the head stays where it is in the world, the voxel grid is offset from it by a fraction of a voxel."""
    back = -np.asarray(offset_vox, dtype=float)  # new voxel i holds old position i - offset
    out = affine_transform(np.asarray(data, dtype=np.float32), np.eye(3), offset=back, order=1, mode="nearest")
    m = np.eye(4)
    m[:3, 3] = back
    return out, np.asarray(affine, float) @ m


def bias_field(data: np.ndarray, affine: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Multiply by a smooth field: a diagonal ramp plus a quadratic bowl, rescaled to 1 +- ``strength``."""
    u = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in data.shape]
    x, y, z = np.meshgrid(*u, indexing="ij")
    f = 0.6 * x + 0.8 * z + 0.7 * (x * x + y * y) - 0.4 * y
    f = (f - f.min()) / (f.max() - f.min())  # 0..1
    field = 1.0 - strength + 2.0 * strength * f
    return (np.asarray(data, dtype=np.float32) * field).astype(np.float32), np.asarray(affine, float)


def rician_noise(data: np.ndarray, affine: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """|signal + n1 + i n2| with n1, n2 ~ N(0, sigma), sigma = ``fraction`` x the 99th percentile of the image."""
    img = np.asarray(data, dtype=np.float32)
    sigma = fraction * float(np.percentile(img, 99))
    rng = np.random.default_rng(seed)
    re = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    im = rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.sqrt(re * re + im * im).astype(np.float32), np.asarray(affine, float)


def _rotation(degrees) -> np.ndarray:
    """Rotation about world x (L-R, pitch), then y (P-A, roll), then z (I-S, yaw)."""
    out = np.eye(3)
    for axis, deg in enumerate(degrees):
        t = np.deg2rad(deg)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = np.cos(t), -np.sin(t), np.sin(t), np.cos(t)
        out = r @ out
    return out


def tilt(data: np.ndarray, affine: np.ndarray, degrees) -> tuple[np.ndarray, np.ndarray]:
    """The head turned by ``degrees`` (pitch, roll, yaw) about the world point at the grid centre: voxels
    unchanged, the affine rotated. ``head_move(affine, new_affine)`` is the move."""
    affine = np.asarray(affine, float)
    centre = affine[:3, :3] @ ((np.asarray(data.shape[:3], float) - 1) / 2) + affine[:3, 3]
    move = np.eye(4)
    move[:3, :3] = _rotation(degrees)
    move[:3, 3] = centre - move[:3, :3] @ centre
    return np.asarray(data), move @ affine


def head_move(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """World -> world move of the head between two affines of the same voxel array."""
    return np.asarray(after, float) @ np.linalg.inv(np.asarray(before, float))
