"""The atlas references behind benchmarks/eval_mni_subcortical.py: AAL label volumes (manual labels of Colin27) and
Harvard-Oxford probability maps, turned into FreeSurfer ids on the template's grid."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_mni_subcortical import FS_IDS, NAMES, aal_reference, ho_reference, score  # noqa: E402

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
