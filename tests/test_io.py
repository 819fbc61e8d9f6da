import os

import nibabel as nib
import numpy as np
import pytest

from brainsegcli.io.atomic import staged_dir
from brainsegcli.io.image import (
    MAX_SLICE_MM, acquisition_warnings, image_stem, load_volume, looks_like_label_map, save_volume)
from brainsegcli.types import BrainsegError

from badfiles import REFUSED, make_bad
from conftest import head_phantom


@pytest.mark.parametrize("kind", REFUSED)
def test_bad_inputs_are_refused_with_one_line(kind, tmp_path):
    path = make_bad(kind, tmp_path)
    with pytest.raises(BrainsegError) as exc:
        load_volume(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path.name) in msg


def test_single_volume_4d_is_accepted(tmp_path):
    p = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(head_phantom((20, 20, 20))[..., None], np.eye(4)), p)
    assert load_volume(p).shape == (20, 20, 20)


def test_mgz_round_trip(tmp_path):
    data = (head_phantom((20, 22, 24)) / 4).astype(np.uint8)
    aff = np.diag([-1.0, 1.0, 1.0, 1.0])
    p = save_volume(data, aff, tmp_path / "orig.mgz")
    v = load_volume(p)
    assert np.array_equal(v.data, data) and np.allclose(v.affine, aff)


def test_label_map_heuristic(tmp_path):
    assert looks_like_label_map(np.asarray(nib.load(make_bad("label_map", tmp_path)).dataobj))
    assert not looks_like_label_map(head_phantom((20, 20, 20)))


def test_acquisition_warnings():
    assert acquisition_warnings((256, 256, 176), (1.0, 1.0, 1.0)) == []
    assert acquisition_warnings((320, 320, 208), (0.8, 0.8, 0.8)) == []
    assert acquisition_warnings((256, 256, 40), (0.9, 0.9, 4.0)) == []  # thick slices along one axis: trained
    thick, = acquisition_warnings((256, 256, 25), (0.9, 0.9, 6.0))
    assert "0.9 x 0.9 x 6 mm" in thick and "thicker than 5 mm" in thick
    coarse, = acquisition_warnings((128, 128, 90), (2.0, 2.0, 2.0))
    assert "more than one axis" in coarse
    slab, = acquisition_warnings((400, 400, 40), (0.4, 0.4, 1.0))  # a 40 mm slab: partial coverage
    assert "covers only 160 x 160 x 40 mm" in slab
    assert len(acquisition_warnings((20, 20, 10), (2.0, 2.0, 8.0))) == 2


def test_thick_slice_limit_is_the_training_one():
    from brainsegcli.training.synth import SynthConfig

    assert MAX_SLICE_MM == SynthConfig().max_slice_mm


def test_image_stem():
    assert image_stem("/a/sub-01_T1w.nii.gz") == "sub-01_T1w"
    assert image_stem("orig.mgz") == "orig"
    assert image_stem("x.nii") == "x"


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_volume(np.ones((4, 4, 4), np.uint8), np.eye(4), tmp_path / "a.nii.gz")
    assert os.listdir(tmp_path) == ["a.nii.gz"]
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "a.nii.gz").st_mode & 0o777 == 0o666 & ~mask


def test_staged_dir_all_or_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_dir(target) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with staged_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(BrainsegError, match="--force"):
        with staged_dir(target):
            pass
    with staged_dir(target, force=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(os.listdir(target)) == ["b.txt"] and os.listdir(tmp_path) == ["out"]
