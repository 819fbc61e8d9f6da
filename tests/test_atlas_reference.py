"""The atlas references behind benchmarks/eval_mni_subcortical.py: AAL label volumes (manual labels of Colin27),
Harvard-Oxford probability maps, FreeSurfer label volumes and Neuromorphometrics labels, turned into FreeSurfer ids on
the template's grid, and the scores computed against them."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_mni_subcortical import (  # noqa: E402
    FS_IDS, IGNORE, NAMES, aal_reference, freesurfer_reference, ho_reference, labelset_scores, nmm_fs_id,
    nmm_reference, score)

from brainsegcli.io.image import load_volume  # noqa: E402

AAL_TABLE = "37 Hippocampus_L 4101\n38 Hippocampus_R 4102\n41 Amygdala_L 4201\n42 Amygdala_R 4202\n" + "".join(
    f"{i} {s}_{side} {7000 + i}\n" for i, (s, side) in enumerate(
        [(s, side) for s in ("Caudate", "Putamen", "Pallidum", "Thalamus") for side in "LR"], start=71))


def _template(tmp_path: Path, shape=(12, 10, 8)) -> object:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-10, -8, -6)
    nib.save(nib.Nifti1Image(np.arange(np.prod(shape), dtype=np.float32).reshape(shape), affine),
             tmp_path / "t1.nii.gz")
    return load_volume(tmp_path / "t1.nii.gz")


def test_aal_reference_maps_names_to_freesurfer_ids_on_the_template_grid(tmp_path):
    grid = _template(tmp_path)
    # the atlas at 1 mm, offset by one template voxel: template voxel (i, j, k) is atlas voxel (2i + 2, 2j + 2, 2k + 2)
    affine = np.eye(4)
    affine[:3, 3] = (-12, -10, -8)
    aal = np.zeros((30, 26, 22), np.uint8)
    aal[4:8, 4:8, 4:8] = 37   # Hippocampus_L -> template voxels 1..2
    aal[10:14, 4:8, 4:8] = 78  # Thalamus_R
    aal[16:20, 4:8, 4:8] = 5   # not a subcortical label: background
    nib.save(nib.Nifti1Image(aal, affine), tmp_path / "aal.nii.gz")
    (tmp_path / "aal.txt").write_text(AAL_TABLE + "5 Frontal_Sup_Orb_L 2111\n")
    ref = aal_reference(tmp_path / "aal.nii.gz", tmp_path / "aal.txt", grid)
    assert ref.shape == grid.shape
    expected = np.zeros(grid.shape, np.int32)
    expected[1:3, 1:3, 1:3] = FS_IDS["Left-Hippocampus"]
    expected[4:6, 1:3, 1:3] = FS_IDS["Right-Thalamus"]
    np.testing.assert_array_equal(ref, expected)


def test_ho_reference_takes_the_most_probable_structure_above_the_threshold(tmp_path):
    grid = _template(tmp_path)
    names = ["Left_Thalamus", "Right_Thalamus", "Left_Caudate", "Right_Caudate", "Left_Putamen", "Right_Putamen",
             "Left_Pallidum", "Right_Pallidum", "Left_Hippocampus", "Right_Hippocampus", "Left_Amygdala",
             "Right_Amygdala", "Left_Accumbens", "Right_Accumbens"]
    prob = np.zeros(grid.shape + (len(names),), np.float32)
    prob[0, 0, 0, names.index("Left_Caudate")] = 60
    prob[0, 0, 0, names.index("Left_Accumbens")] = 30
    prob[1, 0, 0, names.index("Right_Putamen")] = 40  # below 50 %: background
    prob[2, 0, 0, names.index("Right_Accumbens")] = 70
    nib.save(nib.Nifti1Image(prob, grid.affine), tmp_path / "ho.nii.gz")
    (tmp_path / "ho.csv").write_text("index,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    ref = ho_reference(tmp_path / "ho.nii.gz", tmp_path / "ho.csv", 0.5, grid)
    assert ref[0, 0, 0] == FS_IDS["Left-Caudate"]
    assert ref[1, 0, 0] == 0
    assert ref[2, 0, 0] == FS_IDS["Right-Accumbens-area"]
    assert np.count_nonzero(ref) == 2


def test_score_merges_left_and_right():
    ref = np.zeros((8, 8, 8), np.int32)
    for i, name in enumerate(NAMES):
        ref[i % 8, i // 8, :4] = FS_IDS[name]
    pred = ref.copy()
    # swap the hemispheres of the thalamus: per-structure Dice 0 there, merged Dice still 1
    left, right = FS_IDS["Left-Thalamus"], FS_IDS["Right-Thalamus"]
    pred[ref == left], pred[ref == right] = right, left
    result = score(pred, ref, NAMES, 0.5)
    assert result["per_structure"]["Left-Thalamus"] == 0.0
    assert result["merged_pairs"]["Thalamus"] == 1.0
    assert result["mean_dice_6_merged_pairs"] == pytest.approx(1.0)
    assert result["mean_dice_12"] == pytest.approx(10 / 12)
    assert result["volumes_ml_pred_ref"]["Left-Caudate"] == [2.0, 2.0]


NMM_ROWS = [(4, "3rd_Ventricle"), (23, "Right_Accumbens_Area"), (35, "Brain_Stem"), (38, "Right_Cerebellum_Exterior"),
            (60, "Left_Thalamus_Proper"), (62, "Left_Ventral_DC"), (71, "Cerebellar_Vermal_Lobules_I-V"),
            (75, "Left_Basal_Forebrain"), (101, "Left_ACgG_anterior_cingulate_gyrus"),
            (106, "Right_AnG_angular_gyrus")]


def test_nmm_names_translate_to_freesurfer_ids():
    fs_ids = {**FS_IDS, "3rd-Ventricle": 14, "Brain-Stem": 16}
    got = {name: nmm_fs_id(i, name, fs_ids) for i, name in NMM_ROWS}
    assert got == {"3rd_Ventricle": 14, "Right_Accumbens_Area": 58, "Brain_Stem": 16,
                   "Right_Cerebellum_Exterior": 47, "Left_Thalamus_Proper": 10, "Left_Ventral_DC": 28,
                   "Cerebellar_Vermal_Lobules_I-V": IGNORE, "Left_Basal_Forebrain": IGNORE,
                   "Left_ACgG_anterior_cingulate_gyrus": 1000, "Right_AnG_angular_gyrus": 2000}


def test_nmm_reference_on_the_template_grid_and_unknown_labels_refused(tmp_path):
    grid = _template(tmp_path)
    nmm = np.zeros(grid.shape, np.uint8)
    nmm[0, 0, 0], nmm[1, 0, 0], nmm[2, 0, 0] = 60, 71, 106
    nib.save(nib.Nifti1Image(nmm, grid.affine), tmp_path / "nmm.nii.gz")
    (tmp_path / "nmm.csv").write_text("index,name\n" + "".join(f"{i},{n}\n" for i, n in NMM_ROWS))
    ref = nmm_reference(tmp_path / "nmm.nii.gz", tmp_path / "nmm.csv", grid)
    assert (ref[0, 0, 0], ref[1, 0, 0], ref[2, 0, 0]) == (10, IGNORE, 2000)
    assert np.count_nonzero(ref) == 3
    nmm[3, 0, 0] = 99  # not in the table
    nib.save(nib.Nifti1Image(nmm, grid.affine), tmp_path / "nmm.nii.gz")
    with pytest.raises(SystemExit, match="99"):
        nmm_reference(tmp_path / "nmm.nii.gz", tmp_path / "nmm.csv", grid)


def test_freesurfer_reference_keeps_ids_and_moves_them_onto_the_grid(tmp_path):
    grid = _template(tmp_path)
    # the atlas in LIA orientation (FreeSurfer's), 1 mm: the same world box, so template voxel (i, j, k) is read
    # from atlas voxel (2i, 2j, 2k) of the flipped, re-ordered array
    shape = grid.shape
    aseg = np.zeros((2 * shape[0], 2 * shape[2], 2 * shape[1]), np.int16)  # axes: L, I, A
    lia = np.array([[-1.0, 0, 0, -10 + 2 * shape[0] - 1], [0, 0, 1, -8], [0, -1, 0, -6 + 2 * shape[2] - 1],
                    [0, 0, 0, 1]])
    world = grid.affine @ np.array([3, 2, 1, 1.0])  # template voxel (3, 2, 1)
    i, j, k = np.rint(np.linalg.inv(lia) @ world)[:3].astype(int)
    aseg[i, j, k] = 1017  # ctx-lh-paracentral: the id is kept
    nib.save(nib.Nifti1Image(aseg, lia), tmp_path / "aparc+aseg.nii.gz")
    ref = freesurfer_reference(tmp_path / "aparc+aseg.nii.gz", grid)
    assert ref[3, 2, 1] == 1017 and np.count_nonzero(ref) == 1


def test_labelset_scores_map_the_reference_and_skip_ignored_voxels_and_csf():
    ref = np.zeros((10, 10, 10), np.int32)
    ref[:5] = 1017       # a left cortical parcel: aseg's Left-Cerebral-Cortex
    ref[5:] = 2          # left cerebral white matter
    ref[5:, :, 8:] = 251  # corpus callosum: filled with the white matter around it
    ref[:, :, 9] = 24    # CSF
    ref[:, 9, :] = IGNORE
    pred = np.where(ref == IGNORE, 3, 0)  # cortex drawn on ignored voxels: neither a hit nor a miss
    pred[:5, :9, :9] = 3
    pred[5:, :9, :9] = 2
    pred[:, :, 9] = 4  # the CSF row called ventricle: CSF Dice 0, but CSF is not in the mean
    result = labelset_scores(pred, ref, "aseg")
    assert result["labelset_per_structure"] == {"Left-Cerebral-White-Matter": 1.0, "Left-Cerebral-Cortex": 1.0,
                                                "CSF": 0.0}
    assert result["mean_dice_labelset"] == 1.0
    assert result["labelset_voxels_pred_ref"]["Left-Cerebral-Cortex"] == [405, 405]
    assert "Left-Thalamus" in result["labelset_absent_in_reference"]
    tissue = labelset_scores(np.where(pred == 3, 2, np.where(pred == 2, 3, 0)), ref, "tissue")
    assert tissue["labelset_per_structure"]["GM"] == 1.0 and tissue["labelset_per_structure"]["WM"] == 1.0
