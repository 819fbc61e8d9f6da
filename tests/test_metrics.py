import math

import numpy as np
import pytest

from brainsegcli.metrics import (boundary, bounding_box, dice, distance_metrics, evaluate_labels, iou, label_metrics,
                                 summarize, volumes)

from conftest import sphere


def _brute_boundary(m):
    """Independent boundary: a voxel of the mask with a 6-neighbour outside it (or the array)."""
    p = np.pad(m, 1)
    out = np.zeros_like(p)
    for ax in range(3):
        for s in (1, -1):
            out |= p & ~np.roll(p, s, axis=ax)
    return out[1:-1, 1:-1, 1:-1]


def _brute_distances(a, b, spacing):
    pa = np.argwhere(_brute_boundary(a)) * spacing
    pb = np.argwhere(_brute_boundary(b)) * spacing
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.min(0)


@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_shifted_spheres_hd_is_exact(k, axis):
    c = [20, 20, 20]
    a = sphere((44, 44, 44), c, 9)
    c2 = list(c)
    c2[axis] += k
    b = sphere((44, 44, 44), c2, 9)
    spacing = (1.0, 1.0, 1.0)
    hd95, hd, assd = distance_metrics(a, b, spacing)
    assert hd == pytest.approx(k)
    # anisotropic: HD scales with the spacing along the shift axis
    sp = [0.7, 1.3, 2.0]
    assert distance_metrics(a, b, sp)[1] == pytest.approx(k * sp[axis])


def test_hd95_and_assd_against_brute_force():
    a = sphere((30, 30, 30), (14, 15, 13), 7)
    b = sphere((30, 30, 30), (16, 14, 15), 6)
    b[5:9, 5:9, 5:9] = True  # a far-away island makes the tail matter
    sp = np.array([0.8, 1.0, 1.5])
    d_ab, d_ba = _brute_distances(a, b, sp)
    hd95, hd, assd = distance_metrics(a, b, sp)
    assert hd == pytest.approx(max(d_ab.max(), d_ba.max()))
    assert hd95 == pytest.approx(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
    assert assd == pytest.approx((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))


def test_identical_masks_and_single_voxels():
    a = sphere((20, 20, 20), (10, 10, 10), 5)
    assert distance_metrics(a, a) == (0.0, 0.0, 0.0)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    p = np.zeros((10, 10, 10), bool)
    q = p.copy()
    p[2, 2, 2] = True
    q[2, 6, 5] = True
    assert distance_metrics(p, q) == pytest.approx((5.0, 5.0, 5.0))


def test_known_overlap_dice_iou():
    a = np.zeros((10, 10, 10), bool)
    b = a.copy()
    a[0:4] = True   # 400 voxels
    b[2:6] = True   # 400 voxels, overlap 200
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(200 / 600)


def test_boundary_touching_array_edge():
    m = np.ones((4, 4, 4), bool)
    assert boundary(m).sum() == 64 - 8  # the 2x2x2 core is interior


def test_empty_cases():
    e = np.zeros((8, 8, 8), bool)
    f = e.copy()
    f[3, 3, 3] = True
    both = label_metrics(e, e)
    assert all(math.isnan(getattr(both, k)) for k in ("dice", "iou", "hd95", "hd", "assd"))
    one = label_metrics(f, e)
    assert one.dice == 0 and one.iou == 0 and math.isinf(one.hd) and math.isinf(one.hd95) and math.isinf(one.assd)
    assert math.isinf(one.rel_volume_diff)


def test_evaluate_labels_volumes_and_summary():
    pred = np.zeros((10, 10, 10), np.int16)
    ref = pred.copy()
    pred[:5] = 2
    ref[:4] = 2
    ref[8:] = 3
    res = evaluate_labels(pred, ref, [0, 2, 3], spacing=(1, 1, 2))
    assert set(res) == {2, 3}
    assert res[2].volume_pred_mm3 == 1000 and res[2].volume_ref_mm3 == 800
    assert res[2].rel_volume_diff == pytest.approx(0.25)
    assert res[3].dice == 0.0 and math.isinf(res[3].hd)
    s = summarize([r.dice for r in res.values()] + [math.nan])
    assert s["n"] == 2 and s["n_nan"] == 1
    s = summarize([r.hd for r in res.values()])
    assert s["n_inf"] == 1 and s["n"] == 1
    v = volumes(pred, [2], spacing=(1, 1, 2))
    assert v[2] == (500, 1000.0)


def test_bounding_box_margin_clipping_and_empty():
    m = np.zeros((10, 12, 8), bool)
    assert bounding_box(m) is None and bounding_box(m, 5) is None
    m[2, 3:6, 7] = True
    assert bounding_box(m) == (slice(2, 3), slice(3, 6), slice(7, 8))
    # grown by the margin on every side, clipped to the grid
    assert bounding_box(m, 3) == (slice(0, 6), slice(0, 9), slice(4, 8))
    assert bounding_box(np.array([0, 0, 4, 0, 9, 0]), 1) == (slice(1, 6),)  # labels count as True, any ndim
