"""The acquisition changes behind benchmarks/eval_consistency.py: each keeps the head where it is in the world."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import acquisition as acq  # noqa: E402
from eval_consistency import compare, regrid  # noqa: E402

from brainsegcli.io.conform import conform, resample_labels  # noqa: E402
from brainsegcli.types import Volume  # noqa: E402

AFFINE = np.array([[-1.0, 0, 0, 90], [0, 0, 1, -120], [0, -1, 0, 100], [0, 0, 0, 1]])  # LIA-like, 1 mm
SHAPE = (30, 36, 24)
COEF = np.array([0.7, -1.3, 2.1])


def _world(affine, shape):
    ijk = np.indices(shape).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3,) + tuple(shape))


def _ramp(affine=AFFINE, shape=SHAPE):
    """An image linear in world coordinates: any change that keeps the head in place keeps every value."""
    w = _world(affine, shape)
    return np.tensordot(COEF, w, axes=1).astype(np.float32) + 500.0


@pytest.mark.parametrize("order,flips", [((2, 0, 1), (True, False, True)), ((1, 2, 0), (False, True, False)),
                                         ((0, 1, 2), (True, True, True))])
def test_reorient_keeps_every_voxel_in_place(order, flips):
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    out, aff = acq.reorient(data, AFFINE, order, flips)
    assert out.shape == tuple(SHAPE[k] for k in order)
    # each new voxel maps through the new affine to a world point whose old voxel holds the same value
    old = np.rint(np.linalg.inv(AFFINE) @ aff @ np.vstack([np.indices(out.shape).reshape(3, -1),
                                                          np.ones((1, out.size))])).astype(int)[:3]
    np.testing.assert_array_equal(out.reshape(-1), data[old[0], old[1], old[2]])


def test_reoriented_image_conforms_to_the_same_head():
    """Conform of a permuted grid is identical; a reversed even-length axis moves the centre by one voxel."""
    data = np.random.default_rng(1).random((40, 44, 36)).astype(np.float32) * 200
    ref = conform(Volume(data, AFFINE))
    same = conform(Volume(*acq.reorient(data, AFFINE, (1, 0, 2), (False, False, False))))
    np.testing.assert_array_equal(same.data, ref.data)
    np.testing.assert_allclose(same.affine, ref.affine)
    flipped = conform(Volume(*acq.reorient(data, AFFINE, (0, 1, 2), (True, False, False))))
    np.testing.assert_allclose(flipped.affine[:3, :3], ref.affine[:3, :3])
    assert np.abs(flipped.affine[:3, 3] - ref.affine[:3, 3]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("axis,factor", [(0, 3), (1, 4), (2, 5)])
def test_thick_slices_average_slabs_centred_on_the_new_voxels(axis, factor):
    out, aff = acq.thick_slices(_ramp(), AFFINE, axis, factor)
    assert out.shape[axis] == SHAPE[axis] // factor
    assert np.linalg.norm(aff[:3, axis]) == pytest.approx(factor)
    np.testing.assert_allclose(out, _ramp(aff, out.shape), atol=1e-3)  # a linear profile averages to its centre


def test_resample_keeps_the_field_of_view_and_a_linear_image():
    out, aff = acq.resample(_ramp(), AFFINE, 1.2)
    np.testing.assert_allclose(np.linalg.norm(aff[:3, :3], axis=0), 1.2)
    np.testing.assert_allclose(aff[:3, 3], AFFINE[:3, 3])  # first voxel centre unchanged
    assert all(1.2 * (n - 1) <= s - 1 for n, s in zip(out.shape, SHAPE))
    np.testing.assert_allclose(out, _ramp(aff, out.shape), atol=1e-3)


def test_shift_moves_the_grid_not_the_head():
    offset = (0.3, -0.4, 0.5)
    out, aff = acq.shift(_ramp(), AFFINE, offset)
    np.testing.assert_allclose(aff[:3, 3] - AFFINE[:3, 3], -AFFINE[:3, :3] @ np.asarray(offset))
    inner = (slice(1, -1),) * 3  # the edge voxels read beyond the grid (clamped)
    np.testing.assert_allclose(out[inner], _ramp(aff, out.shape)[inner], atol=1e-3)


def test_bias_field_spans_the_requested_range():
    out, aff = acq.bias_field(np.ones(SHAPE, np.float32), AFFINE, 0.2)
    assert out.min() == pytest.approx(0.8, abs=1e-6) and out.max() == pytest.approx(1.2, abs=1e-6)
    np.testing.assert_array_equal(aff, AFFINE)


def test_rician_noise_is_reproducible_and_has_the_rayleigh_floor():
    data = np.zeros((40, 40, 40), np.float32)
    data[:20] = 100.0
    a, _ = acq.rician_noise(data, AFFINE, 0.05, seed=3)
    b, _ = acq.rician_noise(data, AFFINE, 0.05, seed=3)
    np.testing.assert_array_equal(a, b)
    sigma = 5.0
    assert a[20:].mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)  # Rayleigh mean in the background
    assert a[:20].mean() == pytest.approx(100.0, rel=0.01)


def test_compare_scores_identity_and_a_grown_structure():
    ref = np.zeros((10, 10, 10), np.int32)
    ref[2:6, 2:6, 2:6] = 17
    ref[6:8, 2:6, 2:6] = 53
    same = compare(ref, ref, ref, ref, (0, 17, 53, 99), ("bg", "a", "b", "absent"))
    assert same["mean_dice"] == 1.0 and same["mean_abs_volume_change_pct"] == 0.0
    assert set(same["structures"]) == {"a", "b"}  # absent from the original: not scored
    grown = ref.copy()
    grown[6:8, 2:6, 2:6] = 17  # "a" takes all of "b"
    r = compare(ref, ref, grown, grown, (0, 17, 53), ("bg", "a", "b"))
    assert r["structures"]["a"]["volume_change_pct"] == 50.0
    assert r["structures"]["b"] == {"dice": 0.0, "volume_change_pct": -100.0}
    assert r["worst"] == ["b", 0.0]


def _ball(shape, centre, radius):
    g = np.indices(shape).astype(float)
    return ((g - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) <= radius ** 2


def test_regrid_is_exact_for_whole_voxel_moves_and_beats_nearest_neighbour_for_fractional_ones():
    labels = np.zeros((40, 40, 40), np.int32)
    labels[_ball(labels.shape, (20, 20, 20), 10)] = 2
    labels[_ball(labels.shape, (20, 20, 20), 5)] = 7
    whole = AFFINE.copy()
    whole[:3, 3] += AFFINE[:3, :3] @ np.array([2.0, -3.0, 1.0])  # dst grid = src grid moved by whole voxels
    np.testing.assert_array_equal(regrid(labels, AFFINE, whole, labels.shape),
                                  np.roll(labels, (-2, 3, -1), (0, 1, 2)))
    offset = np.array([0.3, -0.4, 0.45])  # no exact half: a tie between labels would pick by label order
    frac = AFFINE.copy()
    frac[:3, 3] += AFFINE[:3, :3] @ offset
    centre = 20 - offset  # the balls' centre on the new grid; drawn there, they are what a perfect model gives
    truth = np.where(_ball(labels.shape, centre, 5), 7, np.where(_ball(labels.shape, centre, 10), 2, 0))
    moved = regrid(labels, AFFINE, frac, labels.shape)
    nearest = resample_labels(labels, np.linalg.inv(frac) @ AFFINE, labels.shape)
    ids, names = (0, 2, 7), ("bg", "shell", "core")
    good = compare(truth, truth, moved, moved, ids, names)
    assert good["mean_dice"] > 0.95
    assert good["mean_dice"] > compare(truth, truth, nearest, nearest, ids, names)["mean_dice"] + 0.03
    assert all(abs(s["volume_change_pct"]) < 7 for s in good["structures"].values())
    half = AFFINE.copy()
    half[:3, 3] += AFFINE[:3, :3] @ np.array([0.0, 0.0, 0.5])  # every boundary voxel a tie along one axis
    moved = regrid(labels, AFFINE, half, labels.shape)
    for i in (2, 7):  # ties broken by label order would shrink the core by 13 % and the shell by 6 %
        assert (moved == i).sum() == pytest.approx((labels == i).sum(), rel=0.05)


def test_tilt_turns_the_head_about_the_grid_centre():
    data = np.random.default_rng(2).random(SHAPE).astype(np.float32)
    out, aff = acq.tilt(data, AFFINE, (15, 5, 5))
    np.testing.assert_array_equal(out, data)  # the same voxels
    move = acq.head_move(AFFINE, aff)
    rot = move[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    assert np.degrees(np.arccos((np.trace(rot) - 1) / 2)) == pytest.approx(16.77, abs=0.01)  # one turn of 16.8 degrees
    centre = (np.asarray(SHAPE) - 1) / 2
    np.testing.assert_allclose(aff[:3, :3] @ centre + aff[:3, 3], AFFINE[:3, :3] @ centre + AFFINE[:3, 3])
    _, pitched = acq.tilt(data, AFFINE, (25, 0, 0))
    pitch = acq.head_move(AFFINE, pitched)[:3, :3]
    np.testing.assert_allclose(pitch[:, 0], [1, 0, 0], atol=1e-12)  # pitch: about the left-right axis
    assert pitch[1, 1] == pytest.approx(np.cos(np.radians(25)))


def test_a_tilted_head_conforms_tilted_and_maps_back_through_the_move():
    """The path of eval_consistency's tilted variants: conform sees the head turned; conformed labels go back to the
    original voxels through the inverse move and land on the original structure."""
    shape = (48, 56, 44)
    ball = _ball(shape, (24, 40, 22), 8) & ~_ball(shape, (24, 46, 22), 4)  # 12 voxels off the centre of the turn
    data = np.where(ball, 200.0, 20.0).astype(np.float32)
    tilted, aff = acq.tilt(data, AFFINE, (25, 0, 0))
    move = acq.head_move(AFFINE, aff)
    conf = conform(Volume(tilted, aff))
    straight = conform(Volume(data, AFFINE))
    seg, seg0 = (conf.data > 110).astype(np.int32), (straight.data > 110).astype(np.int32)
    assert (seg != seg0).sum() > 0.5 * seg0.sum()  # the network would see the structure turned

    def back(labels, to_ref):
        return resample_labels(labels, to_ref, shape)

    right = back(seg, np.linalg.inv(move @ AFFINE) @ conf.affine)
    wrong = back(seg, np.linalg.inv(AFFINE) @ conf.affine)  # ignoring the move
    ids, names = (0, 1), ("bg", "ball")
    truth = ball.astype(np.int32)
    assert compare(truth, truth, right, right, ids, names)["mean_dice"] > 0.95
    assert compare(truth, truth, wrong, wrong, ids, names)["mean_dice"] < 0.7
