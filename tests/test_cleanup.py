"""Connected-component clean-up of predicted labels (brainsegcli.inference.cleanup), on phantoms whose
expected result is known voxel by voxel."""

import numpy as np
import pytest

from brainsegcli.inference.cleanup import clean_labels, keep_brain, keep_near_largest
from brainsegcli.labels import get_labelset, ids_to_indices, indices_to_ids

N = 64


def _ball(centre, radius, shape=(N, N, N)):
    g = np.indices(shape).astype(float)
    return sum((g[i] - centre[i]) ** 2 for i in range(3)) <= radius**2


def _brain_ids():
    """aseg ids: WM ball, cortex shell, CSF shell; one hippocampus inside."""
    ids = np.zeros((N, N, N), np.uint8)
    ids[_ball((32, 32, 32), 20)] = 24  # extracerebral CSF
    ids[_ball((32, 32, 32), 18)] = 3  # cortex
    ids[_ball((32, 32, 32), 14)] = 2  # white matter
    ids[_ball((32, 36, 32), 3)] = 17  # Left-Hippocampus
    return ids


def _tissue_ids(centre):
    """tissue ids: WM ball, GM shell, CSF shell."""
    ids = np.zeros((N, N, N), np.uint8)
    for label, radius in ((1, 18), (2, 16), (3, 12)):
        ids[_ball(centre, radius)] = label
    return ids


def test_keep_near_largest_gap_rule():
    m = np.zeros((30, 30, 30), bool)
    m[5:15, 5:15, 5:15] = True  # main component
    m[16, 10, 10] = True  # 2 voxels away (chessboard distance from voxel 14) -> kept with gap 2
    m[25, 25, 25] = True  # far -> dropped
    kept = keep_near_largest(m, gap=2)
    assert kept[16, 10, 10] and not kept[25, 25, 25] and kept[5:15, 5:15, 5:15].all()
    assert not keep_near_largest(m, gap=1)[16, 10, 10]
    assert keep_near_largest(np.zeros((4, 4, 4), bool), 3).sum() == 0


@pytest.mark.parametrize("width,joined", [(1, False), (2, False), (3, True)])
def test_keep_brain_cuts_bridges_thinner_than_three_voxels(width, joined):
    """Two balls joined by a square bar: the second ball ("face") stays only when the bar is 3 voxels wide."""
    m = _ball((20, 32, 32), 12) | _ball((50, 32, 32), 8)
    m[30:44, 32:32 + width, 32:32 + width] = True
    kept = keep_brain(m, bridge=1)
    assert kept[_ball((20, 32, 32), 12)].all()
    assert kept[_ball((50, 32, 32), 8)].all() == joined and kept[_ball((50, 32, 32), 8)].any() == joined
    if not joined:  # the bar is kept up to 1 + 3 voxels from the opened ball (x <= 30 after the erosion)
        assert kept[32:35, 32, 32].all() and not kept[35:44, 32, 32].any()


def test_keep_brain_drops_islands_and_keeps_thin_masks():
    m = _ball((32, 32, 32), 12)
    m[32, 32, 46] = True  # an island 2 voxels beyond the surface (z = 44): dropped (face tissue is that close)
    m[30:35, 32, 17] = True
    kept = keep_brain(m, bridge=1)
    assert np.array_equal(kept, _ball((32, 32, 32), 12))
    assert np.array_equal(keep_brain(m, bridge=0), _ball((32, 32, 32), 12))
    line = np.zeros((10, 10, 10), bool)
    line[2:8, 5, 5] = True  # nothing survives the erosion: the largest component
    line[2:8, 1, 5] = True
    line[2:9, 8, 5] = True
    assert np.array_equal(keep_brain(line, 1), line & (np.indices(line.shape)[1] == 8))


def test_tissue_face_joined_by_a_thin_strand_is_removed():
    """Whole-head T1: the network calls a vessel/dura strand GM, joining a 'face' blob to the brain."""
    ls = get_labelset("tissue")
    ids = _tissue_ids((32, 32, 24))
    expected = ids.copy()
    face = _ball((32, 32, 56), 5)
    ids[face] = 2
    ids[32, 32, 40:52] = 2  # the strand (z 40, 41 touch the brain's CSF shell; the brain's GM ends at z 40)
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    got = indices_to_ids(out, ls)
    assert (got[face] == 0).all()
    assert (got[32, 32, 45:52] == 0).all()  # beyond 3 voxels from the brain
    brain = expected > 0
    brain[32, 32, 40:52] = False  # the strand overwrote the brain's edge there
    assert np.array_equal(got[brain], expected[brain])
    assert stats.removed_brain >= int(face.sum()) + 7
    plain = indices_to_ids(clean_labels(ids_to_indices(ids, ls), ls, bridge=0)[0], ls)
    assert (plain[face] == 2).all()  # without the cut the face stays


def test_whole_brain_drops_far_labels_and_keeps_the_brain():
    ls = get_labelset("aseg")
    ids = _brain_ids()
    clean_ref = ids.copy()
    face = _ball((32, 32, 62), 1.5)  # "cortex" in the face, 9 voxels beyond the CSF shell
    ids[face] = 3
    far_csf = np.zeros_like(face)
    far_csf[2:4, 2:4, 2:4] = True  # a CSF-labelled blob far from the brain
    ids[far_csf] = 24
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    got = indices_to_ids(out, ls)
    assert np.array_equal(got, clean_ref)
    assert stats.removed_outside_brain == {"Left-Cerebral-Cortex": int(face.sum()), "CSF": 8}
    assert stats.total_relabelled == 0


def test_outer_csf_kept_only_near_and_connected_to_the_brain():
    ls = get_labelset("aseg")
    ids = _brain_ids()
    ids[32, 32, 52:64] = 24  # a CSF "tube" leaving the brain: kept up to 15 mm from the brain only
    out = indices_to_ids(clean_labels(ids_to_indices(ids, ls), ls, outer_margin=5)[0], ls)
    # brain (cortex) ends at radius 18 -> z = 50; CSF kept up to z = 55
    assert (out[32, 32, 51:56] == 24).all() and (out[32, 32, 56:] == 0).all()


def test_stray_island_takes_its_neighbours_label():
    ls = get_labelset("aseg")
    ids = _brain_ids()
    ids[32, 24, 30:32] = 17  # a hippocampus island inside the white matter, 7 voxels from the real one
    ids[32, 41, 32] = 17  # a fragment 2 voxels beyond the main hippocampus (y 33..39): kept
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    got = indices_to_ids(out, ls)
    assert (got[32, 24, 30:32] == 2).all()
    assert got[32, 41, 32] == 17
    assert stats.relabelled_islands == {"Left-Hippocampus": 2}
    assert stats.total_removed == 0


def test_fragmented_structures_are_left_alone():
    ls = get_labelset("aseg")
    ids = _brain_ids()
    ids[20, 32, 32] = 5  # Left-Inf-Lat-Vent in two distant pieces
    ids[44, 32, 32] = 5
    got = indices_to_ids(clean_labels(ids_to_indices(ids, ls), ls)[0], ls)
    assert got[20, 32, 32] == 5 and got[44, 32, 32] == 5


def test_tissue_set_keeps_deep_grey_islands():
    """Tissue GM has several components by nature (cortex, deep nuclei): only the whole-brain rule applies."""
    ls = get_labelset("tissue")
    ids = np.zeros((N, N, N), np.uint8)
    ids[_ball((32, 32, 32), 20)] = 1
    ids[_ball((32, 32, 32), 18)] = 2
    ids[_ball((32, 32, 32), 14)] = 3
    ids[_ball((32, 32, 32), 3)] = 2  # deep grey nucleus inside the white matter
    ids[_ball((32, 32, 32), 1)] = 1  # a ventricle inside it
    expected = ids.copy()
    ids[_ball((5, 5, 5), 2)] = 2  # far grey blob
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    assert np.array_equal(indices_to_ids(out, ls), expected)
    assert stats.removed_outside_brain == {"GM": int(_ball((5, 5, 5), 2).sum())}


def test_subcortical_per_structure_only():
    ls = get_labelset("subcortical")
    ids = np.zeros((N, N, N), np.uint8)
    ids[_ball((20, 32, 32), 6)] = 10  # Left-Thalamus
    ids[_ball((44, 32, 32), 6)] = 49  # Right-Thalamus: another structure, far away, kept
    ids[_ball((20, 32, 55), 1)] = 10  # stray left-thalamus blob in "cortex" (background here)
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    got = indices_to_ids(out, ls)
    assert (got[_ball((20, 32, 55), 1)] == 0).all()
    assert (got[_ball((44, 32, 32), 6)] == 49).all() and (got[_ball((20, 32, 32), 6)] == 10).all()
    assert stats.relabelled_islands == {"Left-Thalamus": int(_ball((20, 32, 55), 1).sum())}


@pytest.mark.parametrize("name", ["aseg", "tissue", "subcortical"])
def test_clean_input_is_unchanged_and_empty_input_is_fine(name):
    ls = get_labelset(name)
    ids = _brain_ids() if name == "aseg" else np.zeros((N, N, N), np.uint8)
    out, stats = clean_labels(ids_to_indices(ids, ls), ls)
    assert np.array_equal(indices_to_ids(out, ls), ids) and stats.total_removed == stats.total_relabelled == 0


def test_parcellate_one_applies_cleanup_and_warns(tmp_path):
    """End to end through the pipeline with a pointwise 'network': a bright block away from the head is
    labelled brain by the network; the clean-up removes it, says so, and --no-cleanup keeps it."""
    import json

    import nibabel as nib
    import torch

    from brainsegcli.inference.predictor import InferenceConfig
    from brainsegcli.pipeline import ModelInfo, parcellate_one
    from brainsegcli.types import Plane

    def threshold_net(x):
        m = x[:, x.shape[1] // 2: x.shape[1] // 2 + 1]
        classes = [(m < 0.01), (m >= 0.01) & (m < 0.3), (m >= 0.3) & (m < 0.6), (m >= 0.6)]
        return torch.cat([c.float() for c in classes], dim=1) * 20

    vol = np.zeros((96, 96, 96), np.uint8)
    g = np.indices(vol.shape)
    r = np.sqrt(((g - 40) ** 2).sum(0))
    vol[r < 20], vol[r < 16], vol[r < 9] = 50, 120, 220
    vol[70:90, 70:90, 70:90] = 120  # 8 ml of "grey matter" far from the head
    path = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    ls = get_labelset("tissue")
    cfg = InferenceConfig(views=(Plane.AXIAL,))
    info = ModelInfo("threshold", None, None, "test")
    rep = parcellate_one(path, tmp_path / "clean", threshold_net, ls, cfg, info)
    lab = np.asarray(nib.load(tmp_path / "clean" / "labels.nii.gz").dataobj)
    assert (lab[70:90, 70:90, 70:90] == 0).all() and (lab[r < 9] == 3).all()
    assert any("8.0 ml labelled as brain" in w for w in rep["warnings"])
    assert rep["inference"]["cleanup"]["removed_by_label_mm3"] == {"GM": 8000}
    # a thin core of white matter under a thick grey shell is no brain: the volume check says so (test_volume_check)
    assert rep["qc"]["volume_check"]["flags"]["WM"]["verdict"] == "far below"
    assert any("WM (far below)" in w and "qc.png" in w for w in rep["warnings"])
    raw = parcellate_one(path, tmp_path / "raw", threshold_net, ls, cfg, info, cleanup=False)
    lab = np.asarray(nib.load(tmp_path / "raw" / "labels.nii.gz").dataobj)
    assert (lab[70:90, 70:90, 70:90] == 2).all() and not any("labelled as brain" in w for w in raw["warnings"])
    assert json.loads((tmp_path / "raw" / "report.json").read_text())["inference"]["cleanup"] == {"applied": False}
