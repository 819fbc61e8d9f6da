"""Thick-slice (2.5D) stacks along one view of a conformed volume.

Shared by inference and training so both see exactly the same inputs. A view's slices are taken
along :attr:`Plane.axis`; the in-plane axes keep their array order.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from brainsegcli.types import Plane

DEFAULT_SLICES = 5


def to_view(volume: np.ndarray, plane: Plane) -> np.ndarray:
    """View of ``volume`` (X, Y, Z, ...) with the plane's slicing axis moved first (no copy)."""
    return np.moveaxis(volume, plane.axis, 0)


def from_view(array: np.ndarray, plane: Plane) -> np.ndarray:
    """Inverse of :func:`to_view`."""
    return np.moveaxis(array, 0, plane.axis)


def stack_indices(centre: np.ndarray | int, n_slices: int, depth: int) -> np.ndarray:
    """Slice indices of the stacks centred at ``centre``: (len(centre), n_slices), edge-replicated."""
    if n_slices % 2 != 1:
        raise ValueError("the number of slices per stack must be odd")
    half = n_slices // 2
    c = np.atleast_1d(np.asarray(centre, dtype=np.int64))
    return np.clip(c[:, None] + np.arange(-half, half + 1)[None, :], 0, depth - 1)


def extract_stacks(view_volume: np.ndarray, centres, n_slices: int = DEFAULT_SLICES) -> np.ndarray:
    """(B, n_slices, H, W) stacks from a view-first volume (D, H, W)."""
    idx = stack_indices(centres, n_slices, view_volume.shape[0])
    return view_volume[idx]


def nonempty_range(view_volume: np.ndarray, n_slices: int = DEFAULT_SLICES) -> tuple[int, int]:
    """[start, stop) of the slices whose stack contains any non-zero voxel."""
    occupied = np.flatnonzero(view_volume.reshape(view_volume.shape[0], -1).any(axis=1))
    if occupied.size == 0:
        return 0, 0
    half = n_slices // 2
    return max(int(occupied[0]) - half, 0), min(int(occupied[-1]) + half + 1, view_volume.shape[0])


def iter_batches(volume: np.ndarray, plane: Plane, batch_size: int, n_slices: int = DEFAULT_SLICES,
                 crop: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (slice indices, stacks (B, n_slices, H, W)) along ``plane``."""
    v = to_view(volume, plane)
    start, stop = nonempty_range(v, n_slices) if crop else (0, v.shape[0])
    for s in range(start, stop, batch_size):
        centres = np.arange(s, min(s + batch_size, stop))
        yield centres, extract_stacks(v, centres, n_slices)


def count_batches(volume: np.ndarray, plane: Plane, batch_size: int, n_slices: int = DEFAULT_SLICES,
                  crop: bool = True) -> int:
    v = to_view(volume, plane)
    start, stop = nonempty_range(v, n_slices) if crop else (0, v.shape[0])
    return -(-(stop - start) // batch_size)
