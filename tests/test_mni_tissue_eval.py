"""benchmarks/eval_mni_tissue.py: the thresholded GM/WM reference and the confusion table behind its Dice."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_mni_tissue import confusion, reference  # noqa: E402


def test_reference_thresholds_at_half_and_gives_white_matter_precedence(tmp_path):
    gm = np.tile(np.array([200, 128, 127, 200], dtype=np.uint8), (2, 2, 1))
    wm = np.tile(np.array([0, 0, 0, 130], dtype=np.uint8), (2, 2, 1))
    for name, arr in (("gm", gm), ("wm", wm)):
        nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / f"{name}.nii.gz")
    ref_gm, ref_wm = reference(str(tmp_path / "gm.nii.gz"), str(tmp_path / "wm.nii.gz"))
    assert ref_gm[0, 0].tolist() == [True, True, False, False]   # 127/255 is not above one half
    assert ref_wm[0, 0].tolist() == [False, False, False, True]  # both above a half: WM
    assert (ref_gm == ref_gm[:1, :1]).all() and (ref_wm == ref_wm[:1, :1]).all()


def test_confusion_counts_every_cell_and_its_median_intensity():
    ref_gm = np.array([1, 1, 1, 0, 0, 0], bool)
    ref_wm = np.array([0, 0, 0, 1, 1, 0], bool)
    pred = np.array([1, 2, 2, 3, 2, 0])
    image = np.array([40.0, 100.0, 120.0, 200.0, 150.0, 5.0])
    table = confusion(pred, ref_gm, ref_wm, image)
    assert table["GM"]["CSF"] == {"voxels": 1, "median_intensity": 40.0}
    assert table["GM"]["GM"] == {"voxels": 2, "median_intensity": 110.0}
    assert table["GM"]["WM"] == {"voxels": 0, "median_intensity": None}
    assert table["WM"]["WM"]["voxels"] == 1 and table["WM"]["GM"]["voxels"] == 1
    assert table["other"]["background"] == {"voxels": 1, "median_intensity": 5.0}
    assert sum(c["voxels"] for row in table.values() for c in row.values()) == pred.size
