import csv
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from brainsegcli.cli.main import app
from brainsegcli.models import create_model, get_spec
from brainsegcli.weights.checkpoint import CheckpointConfig, save_checkpoint

from badfiles import REFUSED, make_bad
from conftest import head_phantom

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-unet", "tissue", 4)


def _tiny_checkpoint(d, labelset: str, num_classes: int, architecture: str = "unet"):
    """A tiny checkpoint (seeded random weights; a U-Net unless ``architecture`` says otherwise) of ``labelset``
    at ``d``."""
    torch.manual_seed(0)
    args = {**get_spec(architecture).default_args, **get_spec(architecture).tiny_args}
    save_checkpoint(d, create_model(architecture, num_classes=num_classes, tiny=True),
                    CheckpointConfig(architecture=architecture, labelset=labelset, model_args=args, name=d.name))
    return d


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("brainseg ")


def test_models_json():
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    names = {row["name"] for row in rows}
    assert {"unet", "sepres-unet", "attention-unet", "deepmrseg"} <= names
    for row in rows:
        assert row["params_total"] >= row["params_trainable"] > 0


def test_parcellate_refuses_without_weights(phantom_t1, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--quiet", "--labelset", "dkt95"])
    assert r.exit_code == 1
    assert "no trained weights" in r.output and "--weights" in r.output and "Traceback" not in r.output
    assert not (out / "sub-01_T1w").exists()


def test_parcellate_with_checkpoint_writes_everything(phantom_t1, tmp_path, tiny_ckpt):
    out = tmp_path / "out"
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", str(tiny_ckpt),
                            "--device", "cpu", "--threads", "2"])
    assert r.exit_code == 0, r.output
    d = out / "sub-01_T1w"
    assert sorted(os.listdir(d)) == sorted(["labels.nii.gz", "labels_conformed.nii.gz", "conformed.nii.gz",
                                            "volumes.csv", "qc.png", "report.json"])
    assert os.listdir(out) == ["sub-01_T1w"]  # no temporary folders left
    src = nib.load(phantom_t1)
    lab = nib.load(d / "labels.nii.gz")
    assert lab.shape == src.shape and np.allclose(lab.affine, src.affine)
    conf = nib.load(d / "labels_conformed.nii.gz")
    assert conf.shape == (256, 256, 256)
    assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1, 2, 3}
    rows = list(csv.DictReader(open(d / "volumes.csv")))
    assert [r["name"] for r in rows][:3] == ["CSF", "GM", "WM"] and rows[-1]["name"] == "BrainVolumeExclCSF"
    assert (d / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((d / "report.json").read_text())
    assert rep["model"]["architecture"] == "unet" and len(rep["model"]["weights_sha256"]) == 64
    assert rep["labelset"]["name"] == "tissue" and rep["inference"]["device"] == "cpu"
    assert {"load", "conform", "view_coronal", "view_axial", "view_sagittal", "fusion", "cleanup",
            "native_resampling", "checks", "write", "total"} <= set(rep["seconds"])
    assert {"volume_check", "contrast_check"} <= set(rep["qc"]) and "checked" in rep["qc"]["contrast_check"]
    cleanup = rep["inference"]["cleanup"]
    assert cleanup["applied"] is True and cleanup["removed_outside_brain_mm3"] >= 0
    assert rep["inference"]["edge_refinement"] == {"applied": False}  # tissue: no hippocampus
    assert "torch" in rep["versions"]

    # existing outputs are kept unless --force
    before = (d / "report.json").stat().st_mtime_ns
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", str(tiny_ckpt), "-q"])
    assert r.exit_code == 1 and "--force" in r.output
    assert (d / "report.json").stat().st_mtime_ns == before
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", str(tiny_ckpt), "-q",
                            "--force", "--views", "axial", "--no-tta", "--no-cleanup"])
    # --quiet: no progress and no "labels written" line; the volume check's warning about this phantom still prints
    assert r.exit_code == 0 and r.output.startswith("warning: ") and "written" not in r.output
    assert "far outside the range" in " ".join(r.output.split())
    rep2 = json.loads((d / "report.json").read_text())
    inference = rep2["inference"]
    assert inference["views"] == ["axial"] and inference["flip_tta"] is False and rep["inference"]["flip_tta"] is True
    assert inference["cleanup"] == {"applied": False} and "cleanup" not in rep2["seconds"]


def test_parcellate_runs_brainsegnet_on_cpu(phantom_t1, tmp_path):
    """BrainSegNet has 5-D weights (its inter-slice adapters): preparing it for CPU inference (channels-last)
    failed with an internal error before."""
    arch = "brainsegnet"
    ckpt = _tiny_checkpoint(tmp_path / "tiny-brainsegnet", "dkt95", 96, arch)
    out = tmp_path / "o"
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", str(ckpt), "-q",
                            "--views", "axial", "--no-tta", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "sub-01_T1w" / "report.json").read_text())
    assert rep["model"]["architecture"] == arch and (out / "sub-01_T1w" / "labels.nii.gz").is_file()


def test_parcellate_edge_refinement_flag(phantom_t1, tmp_path):
    """aseg: the refinement runs by default and reports per hippocampus; --no-refine-edges skips it."""
    ckpt = _tiny_checkpoint(tmp_path / "tiny-aseg", "aseg", 33)
    reports = {}
    for flag in ("--refine-edges", "--no-refine-edges"):
        out = tmp_path / flag
        r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", str(ckpt), "-q",
                                "--views", "axial", "--no-tta", flag])
        assert r.exit_code == 0, r.output
        reports[flag] = json.loads((out / "sub-01_T1w" / "report.json").read_text())
    on = reports["--refine-edges"]["inference"]["edge_refinement"]
    assert on["applied"] is True and len(on["structures"]) == 2 and on["relabelled_mm3"] >= 0
    assert "edge_refinement" in reports["--refine-edges"]["seconds"]
    assert reports["--no-refine-edges"]["inference"]["edge_refinement"] == {"applied": False}
    assert "edge_refinement" not in reports["--no-refine-edges"]["seconds"]


def test_weights_labelset_mismatch_is_refused(phantom_t1, tmp_path, tiny_ckpt):
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(tmp_path), "--weights", str(tiny_ckpt),
                            "--labelset", "aseg"])
    assert r.exit_code == 1 and "label set" in r.output


@pytest.mark.parametrize("kind", REFUSED)
def test_parcellate_bad_input(kind, tmp_path, tiny_ckpt):
    bad = make_bad(kind, tmp_path)
    out = tmp_path / "out"
    r = runner.invoke(app, ["parcellate", str(bad), "-o", str(out), "--weights", str(tiny_ckpt), "-q"])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.output
    assert not out.exists() or os.listdir(out) == []  # nothing partial left behind


def test_model_warning_only_once_an_input_has_loaded(phantom_t1, tmp_path):
    """The bundled default is preliminary; its warning must not precede a bad input's one-line error."""
    bad = make_bad("nan", tmp_path)
    out = tmp_path / "out"
    r = runner.invoke(app, ["parcellate", str(bad), "-o", str(out), "--labelset", "tissue", "-q"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [f"error: {bad}: image has NaN or infinite voxels"]
    r = runner.invoke(app, ["parcellate", str(bad), str(phantom_t1), "-o", str(out), "--labelset", "tissue", "-q",
                            "--views", "axial", "--no-tta"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and lines[0].startswith(f"error: {bad}")
    assert sum("tissue-unet is a preliminary checkpoint" in ln for ln in lines[1:]) == 1, r.output
    assert (out / "sub-01_T1w" / "report.json").is_file()


def test_label_map_given_as_t1_warns(tmp_path, tiny_ckpt):
    lab = make_bad("label_map", tmp_path)
    r = runner.invoke(app, ["parcellate", str(lab), "-o", str(tmp_path / "o"), "--weights", str(tiny_ckpt),
                            "--views", "axial"])
    assert r.exit_code == 0 and "looks like a label map" in r.output
    rep = json.loads((tmp_path / "o" / "aseg" / "report.json").read_text())
    assert any("label map" in w for w in rep["warnings"])


def test_thick_slices_and_partial_coverage_warn(tmp_path, tiny_ckpt):
    path = tmp_path / "slab.nii.gz"
    nib.save(nib.Nifti1Image(head_phantom((48, 48, 8)), np.diag([2.0, 2.0, 6.0, 1.0])), path)
    r = runner.invoke(app, ["parcellate", str(path), "-o", str(tmp_path / "o"), "--weights", str(tiny_ckpt),
                            "--views", "axial"])
    assert r.exit_code == 0
    rep = json.loads((tmp_path / "o" / "slab" / "report.json").read_text())
    assert any("2 x 2 x 6 mm" in w and "thicker than 5 mm" in w for w in rep["warnings"]), rep["warnings"]
    assert any("covers only 96 x 96 x 48 mm" in w for w in rep["warnings"])
    assert "thicker than 5 mm" in " ".join(r.output.split())


def test_unwritable_output(phantom_t1, tmp_path, tiny_ckpt):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for target in (f, f / "sub"):
        r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(target), "--weights", str(tiny_ckpt)])
        assert r.exit_code == 1 and r.output.startswith("error:") and "Traceback" not in r.output


def test_bad_options(phantom_t1, tmp_path, tiny_ckpt):
    for extra, msg in ((["--views", "oblique"], "unknown view"), (["--device", "cuda:7"], "device"),
                       (["--model", "nope"], "unknown model"), (["--weights", "./nowhere"], "no such"),
                       (["--weights", "no-such-name"], "unknown weights")):
        r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(tmp_path), *extra])
        assert r.exit_code == 1 and msg in r.output, (extra, r.output)
    r = runner.invoke(app, ["parcellate", "-o", str(tmp_path)])
    assert r.exit_code == 1 and "no input" in r.output


def test_sample_untrained(tmp_path):
    r = runner.invoke(app, ["parcellate", "--sample", "-o", str(tmp_path), "--allow-untrained", "--model", "unet",
                            "--labelset", "tissue", "--views", "coronal", "-q"])
    assert r.exit_code == 0, r.output
    assert "UNTRAINED" in r.output  # the warning is not silenced by --quiet
    rep = json.loads((tmp_path / "sample" / "report.json").read_text())
    assert rep["model"]["untrained"] is True and rep["input"]["shape"] == [197, 233, 189]


def _labels(path, arr, aff=None):
    nib.save(nib.Nifti1Image(arr.astype(np.int16), np.eye(4) if aff is None else aff), path)
    return path


def test_evaluate_json_shape(tmp_path):
    ref = np.zeros((20, 20, 20))
    pred = ref.copy()
    ref[2:10] = 2
    pred[3:10] = 2
    pred[15:18] = 3  # WM predicted, absent from the reference
    p, g = _labels(tmp_path / "p.nii.gz", pred), _labels(tmp_path / "g.nii.gz", ref)
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--json", str(tmp_path / "m.json"),
                            "--csv", str(tmp_path / "m.csv")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "m.json").read_text())
    assert set(doc["labels"]) == {"1", "2", "3"}
    gm = doc["labels"]["2"]
    assert set(gm) >= {"name", "dice", "iou", "hd95", "hd", "assd", "volume_pred_mm3", "volume_ref_mm3",
                       "volume_diff_mm3", "rel_volume_diff"}
    assert gm["dice"] == pytest.approx(2 * 1400 / (1400 + 1600)) and gm["hd"] == 1.0
    assert doc["labels"]["1"]["dice"] == "nan" and doc["labels"]["3"]["hd"] == "inf"
    assert doc["summary"]["dice"]["n_nan"] == 1
    assert len(list(csv.DictReader(open(tmp_path / "m.csv")))) == 3


def test_evaluate_grids_and_pairs(tmp_path):
    ref = np.zeros((20, 20, 20))
    ref[5:15, 5:15, 5:15] = 17
    g = _labels(tmp_path / "g.nii.gz", ref)
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    p = _labels(tmp_path / "p.nii.gz", ref, shifted)
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--labelset", "subcortical"])
    assert r.exit_code == 1 and "--resample-pred" in r.output
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--labelset", "subcortical", "--resample-pred",
                            "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["labels"]["17"]["hd"] == pytest.approx(2.0)
    (tmp_path / "list.csv").write_text("pred,gt\ng.nii.gz,g.nii.gz\np.nii.gz,g.nii.gz\n")
    r = runner.invoke(app, ["evaluate", "--pairs", str(tmp_path / "list.csv"), "--labelset", "subcortical",
                            "--resample-pred", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["n_subjects"] == 2 and doc["labels"]["17"]["dice"]["n"] == 2
    assert doc["labels"]["17"]["dice"]["mean"] == pytest.approx((1 + 0.8) / 2)


def test_evaluate_gt_from_freesurfer(tmp_path):
    ref = np.zeros((20, 20, 20))
    ref[2:18, 2:18, 2:18] = 2     # WM
    ref[5:15, 5:15, 5:15] = 1028  # a cortical parcel -> GM
    pred = np.where(ref == 2, 3, np.where(ref > 0, 2, 0))
    p, g = _labels(tmp_path / "p.nii.gz", pred), _labels(tmp_path / "g.nii.gz", ref)
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--labelset", "tissue"])
    assert r.exit_code == 1 and "--gt-from" in r.output
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--labelset", "tissue", "--gt-from", "freesurfer",
                            "--json", str(tmp_path / "f.json")])
    assert r.exit_code == 0, r.output
    labels = json.loads((tmp_path / "f.json").read_text())["labels"]
    assert labels["2"]["dice"] == 1.0 and labels["3"]["dice"] == 1.0
    ref[0, 0, 0] = 9999  # no mapping rule: a warning, printed even with --quiet (the table is not)
    g = _labels(tmp_path / "g.nii.gz", ref)
    r = runner.invoke(app, ["evaluate", str(p), str(g), "--labelset", "tissue", "--gt-from", "freesurfer", "-q"])
    assert r.exit_code == 0 and "9999" in r.output and "no mapping rule" in " ".join(r.output.split())
    assert "mean Dice" not in r.output


def test_real_subprocess_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "brainsegcli", "parcellate", str(tmp_path / "missing.nii.gz"),
                        "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.nii.gz'}: no such file"]
    assert "Traceback" not in r.stderr + r.stdout
    v = subprocess.run([sys.executable, "-m", "brainsegcli", "--version"], capture_output=True, text=True,
                       timeout=120)
    assert v.returncode == 0 and v.stdout.startswith("brainseg ")
