"""benchmarks/eval_volume_norms.py: structure volumes as fractions of the brain against FreeSurfer-labelled maps."""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_volume_norms import brain_ml, compare, fractions, main, reference_fractions, volumes_ml  # noqa: E402


def _save(path: Path, arr: np.ndarray, mm: float = 1.0) -> Path:
    nib.save(nib.Nifti1Image(arr.astype(np.int16), np.diag([mm, mm, mm, 1.0])), path)
    return path


def _brain(n_wm: int, n_pall: int, n_csf: int = 0, shape=(20, 20, 20)) -> np.ndarray:
    flat = np.zeros(int(np.prod(shape)), np.int16)
    flat[:n_wm] = 2
    flat[n_wm:n_wm + n_pall] = 13
    flat[n_wm + n_pall:n_wm + n_pall + n_csf] = 24
    return flat.reshape(shape)


def test_fractions_exclude_extracerebral_csf_and_use_voxel_size():
    vol = volumes_ml(_brain(900, 100, n_csf=500), spacing=(2.0, 2.0, 2.0))
    assert vol[2] == pytest.approx(7.2) and vol[13] == pytest.approx(0.8) and vol[24] == pytest.approx(4.0)
    assert brain_ml(vol) == pytest.approx(8.0)
    fr = fractions(vol, brain_ml(vol))
    assert fr[13] == pytest.approx(100.0) and fr[2] == pytest.approx(900.0) and 24 not in fr
    with pytest.raises(ValueError):
        fractions({24: 3.0}, 0.0)


def test_reference_and_comparison(tmp_path):
    maps = [_save(tmp_path / f"m{i}.nii.gz", _brain(1000 - p, p)) for i, p in enumerate((20, 30, 40))]
    ref = reference_fractions(maps)
    np.testing.assert_allclose(ref[13], [20.0, 30.0, 40.0])
    np.testing.assert_allclose(ref[52], 0.0)
    res = compare({13: 50.0, 2: 970.0}, ref)
    assert res["Left-Pallidum"]["ref_mean"] == pytest.approx(30.0)
    assert res["Left-Pallidum"]["ref_sd"] == pytest.approx(10.0)
    assert res["Left-Pallidum"]["z"] == pytest.approx(2.0)
    assert res["Left-Pallidum"]["in_range"] is False
    assert res["Left-Cerebral-White-Matter"]["in_range"] is True  # 960..980


def test_main_with_brain_from_another_segmentation(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    for i, p in enumerate((20, 30, 40)):
        _save(maps / f"m{i}.nii.gz", _brain(1000 - p, p))
    aseg = _save(tmp_path / "aseg.nii.gz", _brain(975, 25, n_csf=300))
    sub = np.zeros((20, 20, 20), np.int16)
    sub.flat[:25] = 13
    sub = _save(tmp_path / "sub.nii.gz", sub)
    out = tmp_path / "r.json"
    assert main([str(sub), "--brain-from", str(aseg), "--maps", str(maps), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())["reports"][0]
    assert rep["brain_ml"] == pytest.approx(1.0)
    assert list(rep["structures"]) == ["Left-Pallidum"]
    assert rep["structures"]["Left-Pallidum"]["per_mille"] == pytest.approx(25.0)
    assert rep["structures"]["Left-Pallidum"]["z"] == pytest.approx(-0.5)
    assert rep["outside_range"] == []


def test_main_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nope.nii.gz"), "--maps", str(tmp_path)])
    assert str(e.value) == f"{tmp_path / 'nope.nii.gz'}: no such file"
