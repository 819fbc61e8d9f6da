import nibabel as nib
import numpy as np
import pytest

from brainsegcli.io.conform import (LIA, conform, conform_labels, conformed_affine, is_conformed,
                                    robust_scale, to_native)
from brainsegcli.types import Volume

from conftest import head_phantom, sphere


def _world_centroid(data, affine, mask_fn=lambda d: d > 0):
    idx = np.argwhere(mask_fn(data)).astype(float)
    w = data[mask_fn(data)].astype(float)
    c = (idx * w[:, None]).sum(0) / w.sum()
    return affine[:3, :3] @ c + affine[:3, 3]


def test_conformed_image_is_a_fixed_point():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(256, 256, 256), dtype=np.uint8)
    aff = np.eye(4)
    aff[:3, :3] = LIA
    aff[:3, 3] = [127.3, -101.0, 130.5]
    c = conform(Volume(data, aff))
    assert c.passthrough and c.data is data and np.array_equal(c.affine, aff)
    assert is_conformed(Volume(c.data, c.affine))


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LIA", "ASL", "PIR"])
def test_orientation_flips_round_trip_exactly(codes):
    ras = np.zeros((60, 70, 50), np.uint8)
    ras[10:40, 20:30, 5:45] = 200
    ras[45:50, 5:60, 30:40] = 90
    ornt = nib.orientations.axcodes2ornt(codes)
    data = nib.orientations.apply_orientation(ras, ornt)
    aff = nib.orientations.inv_ornt_aff(ornt, ras.shape)  # voxel of `data` -> voxel of `ras`
    aff = np.diag([1, 1, 1, 1.0]) @ aff
    aff[:3, 3] += [-30, -35, -25]
    vol = Volume(data, aff)
    c = conform(vol)
    assert c.data.shape == (256,) * 3 and c.data.dtype == np.uint8
    assert np.allclose(c.affine[:3, :3], LIA)
    # 1 mm axis-aligned input: a pure re-ordering, so values are untouched ...
    assert sorted(np.unique(c.data).tolist()) == [0, 90, 200]
    assert (c.data == 200).sum() == (data == 200).sum()
    # ... the same voxels sit at the same world positions, and the way back is exact
    assert np.allclose(_world_centroid(c.data, c.affine), _world_centroid(data, aff))
    assert np.array_equal(to_native(c.data, c), data)


def test_anisotropic_voxels_keep_world_position():
    data = np.zeros((80, 80, 30), np.float32)
    data[sphere(data.shape, (30, 45, 14), 8)] = 1000.0
    data[5, 5, 5] = 1.0  # some dim voxel so the robust range is not trivial
    aff = np.diag([0.9, 0.9, 3.0, 1.0])
    aff[:3, 3] = [-36, -36, -45]
    c = conform(Volume(data, aff))
    assert np.allclose(c.affine[:3, :3], LIA)
    assert np.linalg.norm(_world_centroid(c.data, c.affine, lambda d: d > 100)
                          - _world_centroid(data, aff, lambda d: d > 100)) < 0.6


def test_oblique_affine():
    data = np.zeros((64, 64, 64), np.float32)
    data[sphere(data.shape, (20, 40, 30), 6)] = 500.0
    data[40:50, 10:20, 10:20] = 250.0
    th = np.deg2rad(15)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot * 1.0
    aff[:3, 3] = [-20, -30, -10]
    c = conform(Volume(data, aff))
    assert np.allclose(c.affine[:3, :3], LIA)  # strict LIA: the rotation is resampled away
    a = _world_centroid(c.data, c.affine, lambda d: d > 200)
    b = _world_centroid(data, aff, lambda d: d > 400)
    assert np.linalg.norm(a - b) < 0.7
    # labels go back to the oblique native grid
    lab = conform_labels(Volume((data > 400).astype(np.uint8), aff))[0]
    back = to_native(lab, c)
    d = (data > 400)
    assert 2 * (back.astype(bool) & d).sum() / (back.astype(bool).sum() + d.sum()) > 0.9


def test_intensity_rule_matches_fastsurfer():
    rng = np.random.default_rng(1)
    data = np.zeros((40, 40, 40), np.float32)
    inner = sphere(data.shape, (20, 20, 20), 15)
    data[inner] = rng.uniform(10, 1000, int(inner.sum()))
    data[20, 20, 20] = 50000.0  # a single bright outlier must not set the scale
    src_min, scale = robust_scale(data)
    assert src_min == 0.0
    # the upper bound is close to the 99.9th percentile of the non-zero voxels, not the maximum
    upper = 255.0 / scale
    assert 800 < upper < 2000
    aff = np.eye(4)
    c = conform(Volume(data, aff))
    assert c.data.max() == 255 and c.data[~np.isin(c.data, [0])].min() >= 0
    # zeros stay zero, and nothing outside the head becomes non-zero
    assert (c.data > 0).sum() <= inner.sum() + 10


def test_robust_range_exact_small_case():
    # zeros plus one voxel at each of 1..1000: 1000 bins of width 1. The upper cut-off keeps all but
    # 0.1 % of the non-zero voxels (1 voxel); FastSurfer takes the bin edge two bins below the first
    # bin whose cumulative count reaches it: edge 998.
    data = np.concatenate([np.zeros(5000), np.arange(1, 1001)]).astype(np.float32).reshape(100, 60, 1)
    data = np.repeat(data, 2, axis=2)[..., :1]
    src_min, scale = robust_scale(data)
    assert src_min == 0.0 and scale == pytest.approx(255.0 / 998.0)


def test_uint8_input_is_not_rescaled():
    data = np.zeros((50, 50, 50), np.uint8)
    data[10:40, 10:40, 10:40] = 77
    c = conform(Volume(data, np.eye(4)))
    assert c.scale == 1.0 and set(np.unique(c.data).tolist()) == {0, 77}


def test_finer_than_1mm_is_resampled_to_1mm():
    data = head_phantom((120, 120, 120))
    aff = np.diag([0.7, 0.7, 0.7, 1.0])
    c = conform(Volume(data, aff))
    assert np.allclose(np.abs(c.affine[:3, :3]).sum(0), 1.0)
    nz = np.argwhere(c.data > 0)
    extent = nz.max(0) - nz.min(0) + 1
    assert np.all(np.abs(np.sort(extent) - 0.9 * 120 * 0.7) < 4)


def test_conformed_affine_centre_is_preserved():
    aff = np.diag([1.0, 1.0, 1.5, 1.0])
    aff[:3, 3] = [10, 20, 30]
    shape = (100, 120, 60)
    ca = conformed_affine(aff, shape)
    centre_in = aff @ np.r_[np.array(shape) / 2, 1]
    centre_out = ca @ np.r_[128, 128, 128, 1]
    assert np.allclose(centre_in, centre_out)
