"""FastSurfer-compatible conform: LIA orientation, 1 mm isotropic, 256^3, uint8.

The rules follow FastSurfer's ``conform`` (itself modelled on ``mri_convert -c``):

* the target grid is 256^3 voxels of 1 mm with LIA axes (strict: no oblique direction cosines);
  its centre (voxel 128, FreeSurfer's ``c_ras`` convention) is the centre of the input's field of
  view, ``A @ (shape / 2)``. Inputs with voxels finer than 1 mm are resampled to 1 mm.
* when the input is already 1 mm and axis-aligned, the centre is shifted by half a voxel where the
  field-of-view parity differs, so that the conform is a pure re-ordering (no interpolation);
* intensities: the scale is computed on the *original* data (minimum .. the upper edge of the
  histogram bin below which 99.9 % of the non-zero voxels lie, 1000-bin histogram), the image is
  resampled with trilinear interpolation (order 1) as float, then shifted/scaled/clipped to
  0..255, voxels that are exactly zero after resampling stay zero, and values are rounded to uint8;
  uint8 inputs are not rescaled;
* an image that is already conformed (uint8, LIA, 1 mm, 256^3) passes through bit-identical.

:class:`Conformed` keeps the input grid so labels can be brought back to native space
(:func:`to_native`, nearest neighbour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainsegcli.types import BrainsegError, Volume

SIZE = 256
VOX = 1.0
LIA = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass
class Conformed:
    data: np.ndarray            # uint8 (256, 256, 256)
    affine: np.ndarray          # conformed voxel -> RAS mm
    native_affine: np.ndarray   # input voxel -> RAS mm
    native_shape: tuple[int, int, int]
    src_min: float
    scale: float
    passthrough: bool

    @property
    def native_to_conformed(self) -> np.ndarray:
        """Homogeneous matrix: native voxel index -> conformed voxel index."""
        return np.linalg.inv(self.affine) @ self.native_affine


def robust_scale(data: np.ndarray, dst_min: float = 0.0, dst_max: float = 255.0,
                 f_low: float = 0.0, f_high: float = 0.999) -> tuple[float, float]:
    """Offset and scale that map the robust intensity range to dst_min..dst_max (FastSurfer rule)."""
    if not (0.0 <= f_low <= f_high <= 1.0):
        raise ValueError("need 0 <= f_low <= f_high <= 1")
    data_min = float(np.min(data))
    data_max = float(np.max(data))
    if f_low == 0.0 and f_high == 1.0:
        return data_min, 1.0
    n_nonzero = int(np.count_nonzero(np.abs(data) >= 1e-15))
    n_total = int(data.size)
    hist, edges = np.histogram(data, bins=1000, range=(data_min, data_max))
    cum = np.concatenate(([0], np.cumsum(hist)))
    low_cut = int(f_low * n_total)
    below = np.flatnonzero(cum < low_cut)
    src_min = float(edges[below[-1] + 1 if len(below) else 0])
    # the upper cut-off ignores a fraction of the *non-zero* voxels only
    up_cut = n_total - int((1.0 - f_high) * n_nonzero)
    above = np.flatnonzero(cum >= up_cut)
    if len(above):
        src_max = float(edges[above[0] - 2])
    else:
        src_max = float(edges[-1])
    if src_min == src_max:
        return src_min, 1.0
    return src_min, (dst_max - dst_min) / (src_max - src_min)


def _is_permutation(m: np.ndarray, eps: float = 1e-6) -> bool:
    a = np.abs(m[:3, :3])
    # exactly three entries of magnitude 1, all others 0
    return abs(a.sum() - 3) <= eps and not np.any(np.minimum(a, np.abs(a - 1)) > eps)


def is_conformed(vol: Volume, eps: float = 1e-6) -> bool:
    if vol.data.shape[:3] != (SIZE, SIZE, SIZE) or vol.data.dtype != np.uint8:
        return False
    a = np.asarray(vol.affine, dtype=float)[:3, :3]
    return bool(np.allclose(a, LIA * VOX, atol=eps))


def conformed_affine(native_affine: np.ndarray, native_shape, size: int = SIZE, vox: float = VOX) -> np.ndarray:
    """Affine of the conformed grid for an input (centre preserved, parity fix for 1 mm inputs)."""
    A = np.asarray(native_affine, dtype=float)
    shape = np.asarray(native_shape[:3], dtype=float)
    md = LIA * vox
    center = shape / 2.0

    def build(c_vox: np.ndarray) -> np.ndarray:
        c_ras = A[:3, :3] @ c_vox + A[:3, 3]
        out = np.eye(4)
        out[:3, :3] = md
        out[:3, 3] = c_ras - md @ np.full(3, size / 2.0)
        return out

    aff = build(center)
    v2v = np.linalg.inv(aff) @ A
    if _is_permutation(v2v):
        # conformed axis k is fed by input axis src[k]
        src = np.argmax(np.abs(v2v[:3, :3]), axis=1)
        delta = np.zeros(3)
        for k in range(3):
            delta[src[k]] = shape[src[k]] - size
        if not np.allclose(np.remainder(delta, 2), 0):
            aff = build(center + delta / 2.0)
    return aff


def conform(vol: Volume, order: int = 1) -> Conformed:
    """Conform an image to FastSurfer's standard space (see module docstring)."""
    from scipy.ndimage import affine_transform

    native_shape = vol.shape
    if is_conformed(vol):
        return Conformed(vol.data, np.asarray(vol.affine, dtype=float), np.asarray(vol.affine, dtype=float),
                         native_shape, 0.0, 1.0, passthrough=True)
    data = np.asarray(vol.data)
    aff = conformed_affine(vol.affine, native_shape)
    v2v = np.linalg.inv(aff) @ np.asarray(vol.affine, dtype=float)
    src_min, scale = 0.0, 1.0
    is_uint8 = data.dtype == np.uint8
    if not is_uint8:
        src_min, scale = robust_scale(data)
    if _is_permutation(v2v) and np.allclose(v2v[:3, 3], np.round(v2v[:3, 3]), atol=1e-4):
        # a pure re-ordering: no interpolation
        mapped = _reorder(data, np.linalg.inv(v2v), (SIZE, SIZE, SIZE)).astype(np.float64)
    else:
        mapped = affine_transform(data.astype(np.float64, copy=False), np.linalg.inv(v2v),
                                  output_shape=(SIZE, SIZE, SIZE), order=order, mode="constant", cval=0.0)
    if not is_uint8:
        zero = mapped == 0
        mapped = np.clip(scale * (mapped - src_min), 0.0, 255.0)
        mapped[zero] = 0
    out = np.clip(np.rint(mapped), 0, 255).astype(np.uint8)
    if not out.any():
        raise BrainsegError("the conformed image is empty: the input's field of view does not overlap "
                            "the 256 mm box around its centre, or its intensities are all at the minimum")
    return Conformed(out, aff, np.asarray(vol.affine, dtype=float), native_shape, src_min, scale, False)


def resample_labels(labels: np.ndarray, src_to_dst_vox: np.ndarray, out_shape) -> np.ndarray:
    """Nearest-neighbour resampling of a label array: dst voxel v takes src voxel inv(M) v."""
    from scipy.ndimage import affine_transform

    M = np.linalg.inv(np.asarray(src_to_dst_vox, dtype=float))
    if _is_permutation(M) and np.allclose(M[:3, 3], np.round(M[:3, 3]), atol=1e-4):
        # exact re-ordering: index arithmetic, no rounding questions
        return _reorder(labels, M, tuple(out_shape))
    return affine_transform(labels, M, output_shape=tuple(out_shape), order=0, mode="constant", cval=0)


def _reorder(arr: np.ndarray, M: np.ndarray, out_shape) -> np.ndarray:
    """Exact resampling for a permutation/flip matrix with integer shift: outer indexing per axis."""
    src_axis = [int(np.argmax(np.abs(M[:3, c]))) for c in range(3)]  # dst axis c reads src axis
    arr_t = np.transpose(arr, src_axis)
    index, valid = [], []
    for c in range(3):
        r = src_axis[c]
        src = np.rint(M[r, c] * np.arange(out_shape[c]) + M[r, 3]).astype(np.int64)
        ok = (src >= 0) & (src < arr.shape[r])
        index.append(np.clip(src, 0, arr.shape[r] - 1))
        valid.append(ok)
    out = arr_t[np.ix_(*index)]
    mask = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    if not mask.all():
        out = np.where(mask, out, np.zeros((), dtype=arr.dtype))
    return np.ascontiguousarray(out, dtype=arr.dtype)


def to_native(labels_conformed: np.ndarray, conf: Conformed) -> np.ndarray:
    """Bring a conformed label map back to the input's grid (nearest neighbour)."""
    if conf.passthrough:
        return labels_conformed
    return resample_labels(labels_conformed, np.linalg.inv(conf.native_to_conformed), conf.native_shape)


def conform_labels(labels: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour conform of a label map onto the grid its image would conform to."""
    aff = conformed_affine(labels.affine, labels.shape)
    v2v = np.linalg.inv(aff) @ np.asarray(labels.affine, dtype=float)
    return resample_labels(np.asarray(labels.data), v2v, (SIZE, SIZE, SIZE)), aff
