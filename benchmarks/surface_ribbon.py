"""Voxelise closed triangle meshes (FreeSurfer white/pial surfaces) onto an image grid: the reference behind
``eval_surface_ribbon.py``. Inside = an odd number of mesh crossings on a ray along the first voxel axis
(rays at voxel centres, nudged by a tiny irrational offset so that no ray passes exactly through an edge or vertex).

FreeSurfer's own ``ribbon.mgz`` is built the same way: white matter = inside the white surface, cortex = inside
the pial surface and outside the white one.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

_NUDGE = (1.3e-4 * np.sqrt(2.0), 1.7e-4 * np.sqrt(3.0))  # ray offsets (voxels) on axes 1 and 2


def read_surface(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] in millimetres, faces [F, 3]) from GIfTI or FreeSurfer geometry (lh.white, ...)."""
    path = Path(path)
    if path.suffix == ".gii":
        img = nib.load(path)
        verts = img.agg_data("NIFTI_INTENT_POINTSET")
        faces = img.agg_data("NIFTI_INTENT_TRIANGLE")
    else:
        verts, faces = nib.freesurfer.read_geometry(str(path))
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64)


def mesh_inside(verts_vox: np.ndarray, faces: np.ndarray,
                shape: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    """(boolean mask of the voxel centres inside a closed mesh whose vertices are given in voxel coordinates,
    number of rays with an odd crossing count). A watertight mesh has no odd ray; odd rays (a hole, or a ray
    grazing the grid border) are left empty and counted so that callers can report them."""
    tri = verts_vox[faces]  # [F, 3 corners, 3 axes]
    a, b = tri[:, :, 1] - _NUDGE[0], tri[:, :, 2] - _NUDGE[1]  # ray (j, k) sits at the origin of (a, b)
    det = (a[:, 1] - a[:, 0]) * (b[:, 2] - b[:, 0]) - (a[:, 2] - a[:, 0]) * (b[:, 1] - b[:, 0])
    keep = np.abs(det) > 1e-12  # faces seen edge-on by the rays never cross one
    tri, a, b, det = tri[keep], a[keep], b[keep], det[keep]
    j0, j1 = np.ceil(a.min(1)).astype(np.int64), np.floor(a.max(1)).astype(np.int64)
    k0, k1 = np.ceil(b.min(1)).astype(np.int64), np.floor(b.max(1)).astype(np.int64)
    hits_j, hits_k, hits_i = [], [], []
    for dj in range(int((j1 - j0).max(initial=-1)) + 1):
        for dk in range(int((k1 - k0).max(initial=-1)) + 1):
            j, k = j0 + dj, k0 + dk
            ok = (j <= j1) & (k <= k1)
            # barycentric coordinates of the ray point (j, k) in the projected triangle
            w1 = ((j - a[:, 0]) * (b[:, 2] - b[:, 0]) - (a[:, 2] - a[:, 0]) * (k - b[:, 0])) / det
            w2 = ((a[:, 1] - a[:, 0]) * (k - b[:, 0]) - (j - a[:, 0]) * (b[:, 1] - b[:, 0])) / det
            w0 = 1.0 - w1 - w2
            ok &= (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            hits_j.append(j[ok])
            hits_k.append(k[ok])
            hits_i.append(w0[ok] * tri[ok, 0, 0] + w1[ok] * tri[ok, 1, 0] + w2[ok] * tri[ok, 2, 0])
    hj, hk, hi = (np.concatenate(h) for h in (hits_j, hits_k, hits_i))
    inside_grid = (hj >= 0) & (hj < shape[1]) & (hk >= 0) & (hk < shape[2])
    hj, hk, hi = hj[inside_grid], hk[inside_grid], hi[inside_grid]
    ray = hj * shape[2] + hk
    order = np.lexsort((hi, ray))
    ray, hi = ray[order], hi[order]
    starts = np.flatnonzero(np.r_[True, ray[1:] != ray[:-1]])
    counts = np.diff(np.r_[starts, ray.size])
    even = np.repeat(counts % 2 == 0, counts)
    rank = np.arange(ray.size) - np.repeat(starts, counts)
    enter = np.flatnonzero(even & (rank % 2 == 0))  # crossing 0, 2, 4 ... enters; the next one leaves
    lo = np.clip(np.ceil(hi[enter]).astype(np.int64), 0, shape[0])
    hi_ = np.clip(np.floor(hi[enter + 1]).astype(np.int64) + 1, 0, shape[0])
    run = lo < hi_
    diff = np.zeros((shape[0] + 1, shape[1] * shape[2]), np.int32)
    np.add.at(diff, (lo[run], ray[enter][run]), 1)
    np.add.at(diff, (hi_[run], ray[enter][run]), -1)
    return (np.cumsum(diff, axis=0)[:-1] > 0).reshape(shape), int((counts % 2).sum())

