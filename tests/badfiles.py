"""Makers of broken or implausible image files (shared by the I/O and CLI tests)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import head_phantom


def _save(path: Path, data, affine=None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _patch(path: Path, offset: int, fmt: str, *values) -> Path:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<" + fmt, raw, offset, *values)
    path.write_bytes(bytes(raw))
    return path


def _raw_nifti(path: Path, data=None) -> Path:
    data = head_phantom((20, 20, 20)) if data is None else data
    return _save(path, data)


def make_bad(kind: str, d: Path) -> Path:
    """Return the path of a file that must be refused ('label_map' is only warned about)."""
    if kind == "missing":
        return d / "missing.nii.gz"
    if kind == "empty":
        p = d / "empty.nii.gz"
        p.write_bytes(b"")
        return p
    if kind == "directory":
        p = d / "folder.nii.gz"
        p.mkdir()
        return p
    if kind == "not_an_image":
        p = d / "notes.nii.gz"
        p.write_text("this is not an image\n")
        return p
    if kind == "truncated_gz":
        p = _save(d / "trunc.nii.gz", head_phantom((40, 40, 40)))
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p
    if kind == "truncated_nii":
        p = _save(d / "trunc.nii", head_phantom((40, 40, 40)))
        p.write_bytes(p.read_bytes()[:1000])
        return p
    if kind == "2d":
        return _save(d / "slice.nii.gz", np.ones((50, 50), np.float32))
    if kind == "flat_3d":
        return _save(d / "flat.nii.gz", np.ones((50, 50, 1), np.float32))
    if kind == "4d":
        return _save(d / "bold.nii.gz", np.ones((10, 10, 10, 3), np.float32))
    if kind == "complex":
        return _save(d / "complex.nii.gz", (np.ones((10, 10, 10)) * (1 + 2j)).astype(np.complex64))
    if kind == "rgb":
        rgb = np.zeros((10, 10, 10), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        return _save(d / "rgb.nii.gz", rgb)
    if kind == "nan":
        a = head_phantom((20, 20, 20))
        a[3, 3, 3] = np.nan
        return _save(d / "nan.nii.gz", a)
    if kind == "inf":
        a = head_phantom((20, 20, 20))
        a[3, 3, 3] = np.inf
        return _save(d / "inf.nii.gz", a)
    if kind == "all_zero":
        return _save(d / "zero.nii.gz", np.zeros((20, 20, 20), np.float32))
    if kind == "constant":
        return _save(d / "const.nii.gz", np.full((20, 20, 20), 7, np.float32))
    if kind == "zero_voxel":
        p = _raw_nifti(d / "zerovox.nii")
        _patch(p, 252, "hh", 0, 0)            # no qform/sform: the affine comes from pixdim
        return _patch(p, 80, "f", 0.0)        # pixdim[1] = 0
    if kind == "nonfinite_voxel":
        p = _raw_nifti(d / "nanvox.nii")
        _patch(p, 252, "hh", 0, 0)
        return _patch(p, 84, "f", float("nan"))
    if kind == "singular_affine":
        p = _raw_nifti(d / "singular.nii")
        _patch(p, 252, "hh", 0, 1)            # sform only
        return _patch(p, 280, "4f", 0.0, 0.0, 0.0, 0.0)  # srow_x = 0
    if kind == "huge_fov":
        return _save(d / "huge.nii.gz", head_phantom((40, 40, 40)), np.diag([40.0, 40.0, 40.0, 1.0]))
    if kind == "label_map":
        a = np.zeros((30, 30, 30), np.int16)
        a[5:25, 5:25, 5:25] = 2
        a[10:20, 10:20, 10:20] = 17
        a[12:15, 12:15, 12:15] = 4
        return _save(d / "aseg.nii.gz", a)
    raise ValueError(kind)


REFUSED = ["missing", "empty", "directory", "not_an_image", "truncated_gz", "truncated_nii", "2d", "flat_3d",
           "4d", "complex", "rgb", "nan", "inf", "all_zero", "constant", "zero_voxel", "nonfinite_voxel",
           "singular_affine", "huge_fov"]


def gz(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())
