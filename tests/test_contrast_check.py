"""The T1-contrast check on phantoms with known tissue intensities (brainsegcli.contrast_check)."""

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from brainsegcli.contrast_check import MIN_VOXELS, check_contrast, eroded_median, tissue_ids
from brainsegcli.labels import get_labelset

WM, GM, CSF = 2, 3, 4  # aseg ids: left cerebral white matter, cortex, lateral ventricle


def phantom(n=48):
    """Nested spheres: a ventricle (CSF) inside white matter inside a cortical shell; every tissue keeps well over
    MIN_VOXELS voxels after erosion. Returns the label ids."""
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    r = np.sqrt(x * x + y * y + z * z)
    labels = np.zeros((n, n, n), np.int32)
    labels[r < 22] = GM
    labels[r < 17] = WM
    labels[r < 8] = CSF
    return labels


def image_for(labels, wm, gm, csf, ring=None):
    """Each tissue at one intensity; ``ring``: the outermost voxel layer of every tissue set to this value instead
    (a partial-volume rim the check must ignore)."""
    img = np.zeros(labels.shape, np.float32)
    for lid, v in ((WM, wm), (GM, gm), (CSF, csf)):
        m = labels == lid
        img[m] = v
        if ring is not None:
            img[m & ~binary_erosion(m)] = ring
    return img


ASEG = get_labelset("aseg")


def test_t1_order_passes_with_its_medians_and_ratios():
    labels = phantom()
    res = check_contrast(image_for(labels, 110, 75, 30), labels, ASEG)
    assert res["checked"] and res["t1_like"] is True and res["summary"] is None
    assert res["medians"] == {"white matter": 110, "grey matter": 75, "CSF": 30}
    assert res["ratios"] == {"grey_over_white": round(75 / 110, 3), "csf_over_grey": 0.4}
    assert min(res["voxels"].values()) >= MIN_VOXELS


@pytest.mark.parametrize("wm, gm, csf, fails", [
    (60, 90, 140, ("grey matter", "CSF")),   # T2: CSF > GM > WM
    (80, 100, 20, ("grey matter",)),         # FLAIR: dark CSF, GM above WM
    (100, 100, 30, ("grey matter",)),        # no grey/white contrast at all: equal counts as not darker
    (110, 80, 90, ("CSF",)),                 # CSF brighter than grey matter
    (0, 80, 20, ("grey matter",)),           # white matter labelled on an empty background: no ratio, a failure
])
def test_other_orders_are_flagged_naming_what_failed(wm, gm, csf, fails):
    labels = phantom()
    res = check_contrast(image_for(labels, wm, gm, csf), labels, ASEG)
    assert res["checked"] and res["t1_like"] is False
    s = res["summary"]
    assert s.startswith("the image does not look T1-weighted")
    assert ("grey matter is not darker than white matter" in s) == ("grey matter" in fails)
    assert ("CSF is not darker than grey matter" in s) == ("CSF" in fails)
    if "grey matter" in fails:
        assert f"(median ratio {gm / wm:.2f})" in s if wm else "(median ratio undefined)" in s
    assert res["ratios"]["grey_over_white"] == (round(gm / wm, 3) if wm else None)


def test_partial_volume_rim_is_ignored():
    """A bright rim on every tissue's boundary (as blurring would make) does not move the medians."""
    labels = phantom()
    res = check_contrast(image_for(labels, 110, 75, 30, ring=250), labels, ASEG)
    assert res["medians"] == {"white matter": 110, "grey matter": 75, "CSF": 30} and res["t1_like"]


def test_eroded_median_matches_whole_volume_erosion_even_at_the_edge():
    rng = np.random.default_rng(0)
    labels = phantom()
    labels[:, :, :3] = WM  # a mask touching the volume's border: erosion treats outside as background
    img = rng.normal(100, 10, labels.shape).astype(np.float32)
    for ids in ((WM,), (GM, CSF)):
        full = binary_erosion(np.isin(labels, ids))
        med, n = eroded_median(img, labels, ids)
        assert n == int(full.sum()) and med == pytest.approx(float(np.median(img[full])))
    assert np.isnan(eroded_median(img, labels, (99,))[0]) and eroded_median(img, labels, (99,))[1] == 0


def test_label_sets_and_their_tissues():
    tissue = get_labelset("tissue")
    assert tissue_ids(tissue) == {"white matter": (3,), "grey matter": (2,), "CSF": (1,)}
    dkt = tissue_ids(get_labelset("dkt95"))
    assert dkt["white matter"] == (2, 41) and len(dkt["grey matter"]) == 62 and dkt["CSF"] == (4, 43)
    assert tissue_ids(ASEG) == {"white matter": (2, 41), "grey matter": (3, 42), "CSF": (4, 43)}
    assert tissue_ids(get_labelset("subcortical")) is None
    # the tissue set's own ids (1 CSF, 2 GM, 3 WM) on the phantom
    labels = phantom()
    tl = np.select([labels == WM, labels == GM, labels == CSF], [3, 2, 1], 0)
    assert check_contrast(image_for(labels, 60, 90, 140), tl, tissue)["t1_like"] is False
    assert check_contrast(image_for(labels, 110, 75, 30), tl, tissue)["t1_like"] is True


def test_unchecked_without_the_classes_or_with_too_few_voxels():
    labels = phantom()
    res = check_contrast(image_for(labels, 60, 90, 140), labels, get_labelset("subcortical"))
    assert res == {"checked": False, "reason": "label set 'subcortical' has no white matter, grey matter and CSF "
                                               "classes", "t1_like": None, "summary": None}
    labels[labels == CSF] = WM
    labels[20:26, 20:26, 20:26] = CSF  # a 6-voxel cube: 64 voxels left after erosion
    res = check_contrast(image_for(labels, 60, 90, 140), labels, ASEG)
    assert not res["checked"] and res["summary"] is None
    assert res["reason"] == f"fewer than {MIN_VOXELS} voxels of CSF after erosion" and res["voxels"]["CSF"] == 64
