"""Shared phantoms: small synthetic heads, spheres and saved NIfTI files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthseg"


def sphere(shape, centre, radius) -> np.ndarray:
    g = np.indices(shape, dtype=float)
    return sum((g[i] - centre[i]) ** 2 for i in range(len(shape))) <= radius**2


def head_phantom(shape=(96, 112, 96), seed=0) -> np.ndarray:
    """A float 'T1': ellipsoid head (skin), CSF shell, grey shell, white core, noise."""
    rng = np.random.default_rng(seed)
    g = np.indices(shape, dtype=float)
    c = [(s - 1) / 2 for s in shape]
    r = sum(((g[i] - c[i]) / (0.45 * shape[i])) ** 2 for i in range(3))
    img = np.zeros(shape, np.float32)
    img[r <= 1.0] = 300.0
    img[r <= 0.8] = 150.0   # CSF-ish
    img[r <= 0.7] = 600.0   # grey
    img[r <= 0.45] = 900.0  # white
    img[r <= 1.0] += rng.normal(0, 10, size=int((r <= 1.0).sum())).astype(np.float32)
    return np.clip(img, 0, None)


@pytest.fixture
def phantom_t1(tmp_path) -> Path:
    path = tmp_path / "sub-01_T1w.nii.gz"
    aff = np.diag([1.2, 1.0, 1.1, 1.0])
    aff[:3, 3] = [-50, -60, -40]
    nib.save(nib.Nifti1Image(head_phantom(), aff), path)
    return path


@pytest.fixture(scope="session")
def synthseg_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data/synthseg not available")
    return SHARED
