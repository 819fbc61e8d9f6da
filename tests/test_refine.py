"""Intensity edge refinement of the hippocampus against the temporal horn (brainsegcli.inference.refine), on
phantoms whose right answer is known voxel by voxel."""

import numpy as np
import pytest

from brainsegcli.inference.refine import applies_to, refine_edges
from brainsegcli.labels import get_labelset, ids_to_indices

ASEG = get_labelset("aseg")
N = 48


def _phantom(dark_csf: bool = True, noise: float = 4.0, seed: int = 0, cortex: bool = False):
    """(true aseg ids, image): left white matter with a lateral ventricle block, a hippocampus slab and, below
    it, a temporal horn slab 3 voxels thick; the right hemisphere mirrors it with its own ids. Mild noise: the
    exact answers below need no voxel of the horn to come out brighter than the threshold. ``cortex``: a block of
    cortex in each hemisphere too, so that the T1 contrast check (white matter, cortex, ventricles) can be made."""
    ids = np.zeros((N, N, N), np.uint8)
    ids[2:23, 4:44, 4:44] = 2
    ids[8:18, 8:20, 10:38] = 4             # lateral ventricle
    ids[8:18, 26:32, 10:38] = 17           # hippocampus, 6 voxels thick along axis 1
    ids[6:20, 32:35, 8:40] = 5             # temporal horn beneath it, a little wider
    if cortex:
        ids[2:23, 38:44, 4:44] = 3
    right = ids[::-1].copy()
    for a, b in ((2, 41), (4, 43), (17, 53), (5, 44), (3, 42)):
        right[right == a] = b
    ids = np.where(ids > 0, ids, right)
    return ids, _render(ids, dark_csf, noise, seed)


def _render(ids: np.ndarray, dark_csf: bool = True, noise: float = 4.0, seed: int = 0) -> np.ndarray:
    """The phantom's image of a label map: one intensity per label (inverted when not ``dark_csf``), plus noise."""
    value = {2: 170.0, 41: 170.0, 4: 40.0, 43: 40.0, 5: 40.0, 44: 40.0, 17: 95.0, 53: 95.0, 3: 110.0, 42: 110.0}
    img = np.zeros(ids.shape, np.float32)
    for k, v in value.items():
        img[ids == k] = v if dark_csf else 255.0 - v
    img += np.random.default_rng(seed).normal(0, noise, img.shape) * (ids > 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _grow_hippocampus(ids: np.ndarray, layers: int) -> np.ndarray:
    """The network's error: each hippocampus drawn ``layers`` voxels into the temporal horn beneath it."""
    out = ids.copy()
    for hip, ilv in ((17, 5), (53, 44)):
        for k in range(1, layers + 1):
            below = np.zeros(ids.shape, bool)
            below[:, k:] = (ids == hip)[:, :-k]
            out[below & (ids == ilv)] = hip
    return out


@pytest.mark.parametrize("dark_csf", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
def test_a_hippocampus_drawn_into_the_horn_is_taken_back(dark_csf, layers):
    truth, img = _phantom(dark_csf)
    pred = ids_to_indices(_grow_hippocampus(truth, layers), ASEG)
    out, stats = refine_edges(pred, img, ASEG)
    assert np.array_equal(out, ids_to_indices(truth, ASEG))
    per = {s.structure: s for s in stats.structures}
    assert set(per) == {"Left-Hippocampus", "Right-Hippocampus"}
    expected = int((_grow_hippocampus(truth, layers) != truth).sum()) // 2
    assert all(s.applied and s.relabelled_mm3 == expected for s in per.values())
    assert stats.total_relabelled == 2 * expected
    s = per["Left-Hippocampus"]
    assert (s.structure_intensity > s.csf_intensity) == dark_csf
    assert s.threshold == pytest.approx((s.structure_intensity + s.csf_intensity) / 2)


def test_a_right_answer_is_left_alone():
    truth, img = _phantom()
    pred = ids_to_indices(truth, ASEG)
    out, stats = refine_edges(pred, img, ASEG)
    assert np.array_equal(out, pred) and stats.total_relabelled == 0
    assert all(s.applied for s in stats.structures)


def test_at_most_one_layer_per_iteration():
    truth, img = _phantom()
    pred = ids_to_indices(_grow_hippocampus(truth, 2), ASEG)
    one, s1 = refine_edges(pred, img, ASEG, iterations=1)
    full, s3 = refine_edges(pred, img, ASEG, iterations=3)
    assert np.array_equal(full, ids_to_indices(truth, ASEG))
    hip = ASEG.index_of(17)
    assert 0 < s1.total_relabelled < s3.total_relabelled
    assert (one == hip).sum() > (full == hip).sum() == (truth == 17).sum()


def test_a_horn_labelled_hippocampus_throughout_is_found_from_the_white_matter():
    """No ventricle label left next to the hippocampus: the horn, drawn hippocampus throughout, is reached from the
    white matter around it (3 voxels thick, 3 layers). Without ``white_matter`` the rule starts from the ventricle
    voxels the network drew only, and finds nothing. No smoothing here: the slab's corners, with white matter on
    three sides, would be smoothed past the midpoint."""
    truth, img = _phantom()
    wrong = truth.copy()
    wrong[wrong == 5], wrong[wrong == 44] = 17, 53
    pred = ids_to_indices(wrong, ASEG)
    out, stats = refine_edges(pred, img, ASEG, sigma=0)
    assert np.array_equal(out, ids_to_indices(truth, ASEG))
    old, ostats = refine_edges(pred, img, ASEG, sigma=0, white_matter=False)
    assert np.array_equal(old, pred) and all(s.applied for s in ostats.structures)


def test_a_layer_lost_on_the_white_matter_side_is_taken_back():
    """Atrophy also thins the hippocampus where it faces white matter (brainsegcli.training.atrophy): a dark layer
    between the two, touching no ventricle, drawn hippocampus by the network (no smoothing, as above)."""
    truth, _ = _phantom()
    truth[8:18, 26, 10:38] = 5           # the hippocampus' face towards the lateral ventricle, through white matter
    truth[30:40, 26, 10:38] = 44         # and its mirror image
    assert not np.isin(truth[8:18, 25, 10:38], (4, 5)).any()
    img = _render(truth, seed=1)
    drawn = truth.copy()
    drawn[8:18, 26, 10:38], drawn[30:40, 26, 10:38] = 17, 53
    pred = ids_to_indices(drawn, ASEG)
    out, stats = refine_edges(pred, img, ASEG, sigma=0)
    assert np.array_equal(out, ids_to_indices(truth, ASEG))
    assert stats.total_relabelled == 2 * 10 * 28
    old, _ = refine_edges(pred, img, ASEG, sigma=0, white_matter=False)
    assert np.array_equal(old, pred)


def test_without_contrast_nothing_changes():
    truth, img = _phantom(noise=0.0)
    flat = img.copy()
    flat[np.isin(truth, (4, 5, 43, 44))] = 95  # ventricles exactly as bright as the hippocampus: no edge
    pred = ids_to_indices(_grow_hippocampus(truth, 1), ASEG)
    out, stats = refine_edges(pred, flat, ASEG)
    assert np.array_equal(out, pred)
    assert all(not s.applied and "contrast" in s.reason for s in stats.structures)
    assert stats.as_dict()["relabelled_mm3"] == 0


def _faint_edge():
    """A T1 phantom whose ventricles are only 6 below the hippocampus, while the texture of the hippocampus
    (83 / 95 / 107 in a 3-voxel pattern, inside its outermost layer) gives it a robust SD of about 9: an edge
    fainter than one robust SD."""
    from scipy.ndimage import binary_erosion

    truth, img = _phantom(noise=0.0)
    img = img.astype(np.float32)
    img[np.isin(truth, (4, 5, 43, 44))] = 89
    i, j, k = np.indices(img.shape)
    inner = binary_erosion(np.isin(truth, (17, 53)))
    img[inner] += (12.0 * (((i + j + k) % 3) - 1))[inner]
    return truth, img.astype(np.uint8)


def test_a_t1_edge_fainter_than_one_robust_sd_is_read():
    """The earlier default (``min_contrast=1``) skipped such an edge; without a threshold the rule reads it."""
    from scipy.ndimage import binary_erosion

    truth, img = _faint_edge()
    grown = _grow_hippocampus(truth, 2)
    pred = ids_to_indices(grown, ASEG)
    out, stats = refine_edges(pred, img, ASEG)
    assert np.array_equal(out, ids_to_indices(truth, ASEG))
    vals = img[binary_erosion(grown == 17, iterations=2)].astype(float)  # the interior the rule measures
    robust_sd = 1.4826 * np.median(np.abs(vals - np.median(vals)))
    for s in stats.structures:
        assert s.applied and 0 < s.structure_intensity - s.csf_intensity < robust_sd
    old, ostats = refine_edges(pred, img, ASEG, min_contrast=1.0)
    assert np.array_equal(old, pred) and all("contrast" in s.reason for s in ostats.structures)


def test_an_image_that_is_not_t1_like_is_left_alone():
    """The gate: with cortex to check, an inverted (T2-like) image is not refined, each structure says why, and
    without the gate the rule would have worked in either direction; a T1 image with cortex is refined."""
    truth, t2 = _phantom(dark_csf=False, cortex=True)
    pred = ids_to_indices(_grow_hippocampus(truth, 1), ASEG)
    out, stats = refine_edges(pred, t2, ASEG)
    assert np.array_equal(out, pred) and stats.total_relabelled == 0
    assert len(stats.structures) == 2
    assert all(not s.applied and "not T1-like" in s.reason for s in stats.structures)
    ungated, _ = refine_edges(pred, t2, ASEG, gate=False)
    assert np.array_equal(ungated, ids_to_indices(truth, ASEG))
    _, t1 = _phantom(dark_csf=True, cortex=True)
    out, stats = refine_edges(pred, t1, ASEG)
    assert np.array_equal(out, ids_to_indices(truth, ASEG)) and all(s.applied for s in stats.structures)
    # a check the caller has made already is used as it is
    given, gstats = refine_edges(pred, t1, ASEG, contrast={"checked": True, "t1_like": False})
    assert np.array_equal(given, pred) and not any(s.applied for s in gstats.structures)


def test_a_missing_structure_is_reported_not_guessed():
    truth, img = _phantom()
    truth[truth == 53] = 41
    out, stats = refine_edges(ids_to_indices(truth, ASEG), img, ASEG)
    right = [s for s in stats.structures if s.structure == "Right-Hippocampus"][0]
    assert not right.applied and right.reason == "structure absent"


def test_label_sets_and_grids():
    assert applies_to(get_labelset("aseg")) and applies_to(get_labelset("dkt95"))
    assert not applies_to(get_labelset("tissue")) and not applies_to(get_labelset("subcortical"))
    out, stats = refine_edges(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), get_labelset("tissue"))
    assert stats.structures == [] and not out.any()
    with pytest.raises(ValueError, match="grid"):
        refine_edges(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), ASEG)
