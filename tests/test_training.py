import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegcli.labels import get_labelset, ids_to_indices
from brainsegcli.metrics import dice
from brainsegcli.training.data import StackSampler, Subject, load_real, split_subjects, subjects_from_csv
from brainsegcli.training.losses import SegmentationLoss, label_edges, merge_sagittal
from brainsegcli.training.synth import Priors, SynthConfig, sample_params, synthesize
from brainsegcli.types import BrainsegError, Plane

from conftest import head_phantom

TINY = '{"features": [8, 16, 32]}'


def phantom_pair(d: Path, name: str, shape=(48, 56, 48), seed=0):
    """A T1-like phantom and its FreeSurfer-style label map (24 CSF, 3 cortex, 2 WM)."""
    img = head_phantom(shape, seed)
    lab = np.zeros(shape, np.int16)
    lab[(img > 100) & (img < 200)] = 24
    lab[(img > 500) & (img < 700)] = 3
    lab[img > 800] = 2
    aff = np.eye(4)
    ip, lp = d / f"{name}_T1w.nii.gz", d / f"{name}_aseg.nii.gz"
    nib.save(nib.Nifti1Image(img, aff), ip)
    nib.save(nib.Nifti1Image(lab, aff), lp)
    return ip, lp


def write_pairs_csv(d: Path, n: int) -> Path:
    """``n`` phantom subjects and the pairs CSV that lists them."""
    rows = ["image,labels"]
    for i in range(n):
        ip, lp = phantom_pair(d, f"s{i}", seed=i)
        rows.append(f"{ip.name},{lp.name}")
    (d / "pairs.csv").write_text("\n".join(rows) + "\n")
    return d / "pairs.csv"


def test_tiny_model_overfits_a_phantom():
    from brainsegcli.models import create_model

    torch.manual_seed(0)
    ls = get_labelset("tissue")
    img = np.zeros((64, 64, 64), np.uint8)
    g = np.indices(img.shape)
    r = np.sqrt(((g - 32) ** 2).sum(0))
    tgt = np.zeros(img.shape, np.uint8)
    for rad, val, cls in ((26, 60, 1), (20, 130, 2), (12, 230, 3)):
        img[r < rad], tgt[r < rad] = val, cls
    model = create_model("unet", num_classes=4, tiny=True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = SegmentationLoss(4, 0.5, 0.5)
    sampler = StackSampler(img, tgt, tuple(Plane))
    rng = np.random.default_rng(0)
    for _ in range(60):
        x, y, sag = sampler.draw(rng, 8)
        loss = loss_fn(model(torch.from_numpy(x).float() / 255), torch.from_numpy(y), torch.from_numpy(sag))
        opt.zero_grad()
        loss.backward()
        opt.step()
    from brainsegcli.inference.predictor import InferenceConfig, predict_labels

    pred = predict_labels(img, model.eval(), ls, InferenceConfig())
    scores = [dice(pred == c, tgt == c) for c in (1, 2, 3)]
    assert min(scores) > 0.95, scores


def test_sagittal_merge_in_the_loss():
    ls = get_labelset("subcortical")
    lt, rt = ls.index_of(10), ls.index_of(49)
    probs = torch.zeros(2, ls.num_classes, 1, 1)
    probs[:, rt] = 1.0   # the network says 'right' ...
    target = torch.full((2, 1, 1), lt)  # ... for a left structure
    groups = torch.as_tensor(ls.sagittal_index)
    p, t = merge_sagittal(probs, target, torch.tensor([True, False]), groups)
    assert p[0, t[0, 0, 0], 0, 0] == 1.0   # sagittal: side-agnostic, counted as right
    assert p[1, t[1, 0, 0], 0, 0] == 0.0   # other views: wrong side is wrong
    edges = label_edges(torch.tensor([[[0, 0, 1, 1]]]))
    assert edges.tolist() == [[[[0.0, 1.0, 1.0, 0.0]]]]


def test_synthetic_generator_keeps_labels_and_follows_the_gaussians():
    shape = (64, 64, 64)
    lab = np.zeros(shape, np.int16)
    g = np.indices(shape)
    r = np.sqrt(((g - 32) ** 2).sum(0))
    lab[r < 28] = 24
    lab[r < 24] = 3
    lab[r < 15] = 2
    lab[(r < 8) & (g[0] > 32)] = 10
    lab[(r < 8) & (g[0] <= 32)] = 49
    ls = get_labelset("aseg")
    from brainsegcli.labels import map_labels

    tgt = ids_to_indices(map_labels(lab, ls)[0], ls)
    priors = Priors.generic(np.unique(lab))
    p = sample_params(np.random.default_rng(0), priors, SynthConfig(p_skull_strip=0.0))
    aff = np.eye(4)
    aff[:3, :3] = [[-1, 0, 0], [0, 0, 1], [0, -1, 0]]
    image, target, raw = synthesize(lab, tgt, priors, p, aff, corrupt=False)
    assert image.dtype == np.uint8 and image.shape == target.shape == (256, 256, 256)  # conformed
    assert set(np.unique(target)) <= set(np.unique(tgt))      # no invented labels
    from scipy.ndimage import label as cc

    for c in np.unique(tgt)[1:]:
        comp, n = cc(target == c)
        sizes = np.bincount(comp.ravel())[1:]
        assert sizes.max() > 0.9 * sizes.sum()                # topology roughly kept
        assert abs(int((target == c).sum()) - int((tgt == c).sum())) < 0.5 * (tgt == c).sum()
    # deterministic: the same parameters give the same image
    again = synthesize(lab, tgt, priors, p, aff, corrupt=False)[0]
    assert np.array_equal(image, again)
    # intensities follow the per-class Gaussians drawn in p (before corruption)
    from brainsegcli.training.synth import deform, intensities

    gen = deform(torch.stack([torch.as_tensor(lab, dtype=torch.float32)] * 2), p)[0].round().long()
    vals = intensities(gen, priors, p).numpy()
    for lid in (2, 3, 24):
        cls = priors.classes_t1[priors.lut[lid]] if p.t1_contrast else priors.classes_random[priors.lut[lid]]
        mu, sd = p.class_means[cls], p.class_stds[cls]
        v = vals[gen.numpy() == lid]
        assert abs(v.mean() - mu) < 0.1 * sd + 0.5 and abs(v.std() - sd) < 0.1 * sd + 0.5


def test_thick_resample_samples_at_the_slice_spacing_and_interpolates_back():
    from brainsegcli.training.synth import thick_resample

    x = torch.randn(5, 41, 3, dtype=torch.float64)
    y = thick_resample(x, 1, 4.0, 0.0)
    assert torch.equal(y[:, ::4], x[:, ::4])                                  # the sampled slices are kept
    assert torch.allclose(y[:, 2::4], (x[:, 0:-1:4] + x[:, 4::4]) / 2)       # halfway: the mean of the two
    ramp = torch.arange(60, dtype=torch.float32).view(1, 1, 60).expand(2, 3, 60)
    z = thick_resample(ramp, 2, 3.3, 1.7)[0, 0]
    n_last = 1.7 + 3.3 * int((59 - 1.7) / 3.3)                               # the last sample's position
    inside = (torch.arange(60) >= 1.7) & (torch.arange(60) <= n_last)
    assert torch.allclose(z[inside], ramp[0, 0][inside])                     # linear in, linear out
    assert torch.allclose(z[~inside], torch.tensor([1.7] * 2 + [n_last] * int((~inside).sum() - 2)))


def test_thick_resample_option_keeps_every_other_draw_and_makes_slices():
    priors = Priors.generic(range(1, 6))
    for seed in range(20):
        old = sample_params(np.random.default_rng(seed), priors, SynthConfig(p_thick_slices=0.5))
        new = sample_params(np.random.default_rng(seed), priors, SynthConfig(p_thick_slices=0.5, thick_resample=True))
        for k in ("affine", "class_means", "blur_sigma", "noise_std", "gamma", "noise_seed"):
            assert np.array_equal(getattr(old, k), getattr(new, k))             # same seed, same image otherwise
        assert old.slice_axis == -1
        if new.slice_axis >= 0:
            assert 1.5 <= new.slice_mm <= 5.0 and 0 <= new.slice_phase < new.slice_mm
            assert new.blur_sigma[new.slice_axis] == pytest.approx(0.42 * new.slice_mm)
    # the synthetic image is piecewise linear along the slice axis: no curvature between two sampled slices
    lab = np.zeros((48, 48, 48), np.int16)
    g = np.indices(lab.shape)
    lab[((g - 24) ** 2).sum(0) < 20 ** 2] = 3
    lab[((g - 24) ** 2).sum(0) < 10 ** 2] = 2
    ls = get_labelset("aseg")
    from brainsegcli.labels import map_labels

    tgt = ids_to_indices(map_labels(lab, ls)[0], ls)
    cfg = SynthConfig(p_thick_slices=1.0, p_skull_strip=0.0, max_slice_mm=4.0, thick_resample=True)
    p = sample_params(np.random.default_rng(3), priors, cfg)
    p.slice_axis, p.slice_mm, p.slice_phase = 1, 4.0, 0.0
    raw = synthesize(lab, tgt, priors, p, np.eye(4))[2]
    curv = np.abs(np.diff(raw, 2, axis=1))                                   # curv[:, j] sits at voxel j + 1
    between = np.array([(j + 1) % 4 != 0 for j in range(curv.shape[1])])
    assert curv[:, between].max() < 1e-3 * raw.max() < curv[:, ~between].max()
    p.slice_axis = -1                                                        # without it: blurred, not sampled
    raw0 = synthesize(lab, tgt, priors, p, np.eye(4))[2]
    assert np.abs(np.diff(raw0, 2, axis=1))[:, between].max() > 1e-2 * raw0.max()


def test_gamma_mean_shifts_only_the_gamma_draw():
    priors = Priors.generic(range(1, 6))
    shifted = []
    # the default reproduces the draws made before gamma_mean existed (values from the generator of 5ec16e3)
    before = [0.9057735523694407, 0.7228790112118199, 1.3124891178796447]
    assert [sample_params(np.random.default_rng(s), priors, SynthConfig()).gamma for s in range(3)] == before
    for seed in range(200):
        old = sample_params(np.random.default_rng(seed), priors, SynthConfig())
        new = sample_params(np.random.default_rng(seed), priors, SynthConfig(gamma_mean=-0.3))
        for k in ("affine", "class_means", "blur_sigma", "noise_std", "noise_seed"):
            assert np.array_equal(getattr(old, k), getattr(new, k))
        assert np.log(new.gamma) == pytest.approx(np.log(old.gamma) - 0.3)  # the same normal draw, moved
        shifted.append(new.gamma)
    assert np.median(shifted) < 0.85                                         # gamma < 1: grey brighter vs white


def test_real_t1_sample_looks_like_t1(synthseg_dir):
    """SynthSeg's T1 priors: white matter brighter than grey matter, grey brighter than CSF."""
    priors = Priors.load(synthseg_dir / "priors")
    wm, gm, csf = (priors.means_t1[0][priors.classes_t1[priors.lut[i]]] for i in (2, 3, 4))
    assert wm > gm > csf


def test_data_sources_and_bad_input(tmp_path):
    ip, lp = phantom_pair(tmp_path, "s1")
    (tmp_path / "pairs.csv").write_text(f"image,labels\n{ip.name},{lp.name}\n")
    subs = subjects_from_csv(tmp_path / "pairs.csv")
    img, tgt = load_real(subs[0], get_labelset("tissue"))
    assert img.shape == tgt.shape == (256, 256, 256) and set(np.unique(tgt)) == {0, 1, 2, 3}
    # grid mismatch
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.int16), np.eye(4)), tmp_path / "small.nii.gz")
    with pytest.raises(BrainsegError, match="does not match"):
        load_real(Subject("x", tmp_path / "small.nii.gz", ip), get_labelset("tissue"))
    # labels without a mapping rule
    bad = np.asarray(nib.load(lp).dataobj).copy()
    bad[0, 0, 0] = 999
    nib.save(nib.Nifti1Image(bad, np.eye(4)), tmp_path / "bad.nii.gz")
    with pytest.raises(BrainsegError, match="no mapping"):
        load_real(Subject("x", tmp_path / "bad.nii.gz", ip), get_labelset("tissue"))
    with pytest.raises(BrainsegError, match="empty"):
        split_subjects([], 1)
    with pytest.raises(BrainsegError, match="hold out"):
        split_subjects(subs, 1)


def test_volume_stream_gives_the_same_volumes_with_any_number_of_workers(tmp_path):
    from types import SimpleNamespace

    from brainsegcli.training.stream import VolumeStream

    subjects = [Subject(f"s{i}", phantom_pair(tmp_path, f"s{i}", seed=i)[1]) for i in range(2)]
    cfg = SimpleNamespace(seed=3, synthetic=True, priors_dir=None, synth={}, augment={"flip": 0.5},
                          volumes_per_batch=2)
    ls = get_labelset("tissue")
    one, three = VolumeStream(cfg, ls, subjects, 0, 1, workers=1), VolumeStream(cfg, ls, subjects, 0, 1, workers=3)
    try:
        for k in (0, 1, 2, 4):  # 4 after 2: volume 3, made ahead by the three workers, is dropped
            a, b = one.get(k), three.get(k)
            assert a[0].shape == (256, 256, 256) and a[0].any()
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert not np.array_equal(one.get(0)[0], one.get(1)[0])
        val = three.make_many([([3, 10_000, i, 0], s, 0.0) for i, s in enumerate(subjects)])
        assert all(np.array_equal(v[0], one.make([3, 10_000, i, 0], s, 0.0)[0]) for i, (v, s)
                   in enumerate(zip(val, subjects)))
    finally:
        one.close()
        three.close()
    with pytest.raises(ValueError):
        VolumeStream(cfg, ls, subjects, 0, 1, workers=0)


def _train_cli(args, env=None):
    from typer.testing import CliRunner

    from brainsegcli.cli.main import app

    return CliRunner().invoke(app, ["train", *args])


@pytest.fixture
def pairs_csv(tmp_path):
    return write_pairs_csv(tmp_path, 3)


COMMON = ["--model", "unet", "--labelset", "tissue", "--model-args", TINY, "--steps-per-epoch", "3",
          "--batch-size", "4", "--stacks-per-volume", "8", "--val", "1", "--device", "cpu", "--precision", "fp32",
          "--quiet", "--crop", "128"]


def test_resume_continues_exactly(pairs_csv, tmp_path):
    from safetensors.torch import load_file

    full, part = tmp_path / "full", tmp_path / "part"
    r = _train_cli(["--pairs", str(pairs_csv), "--out", str(full), "--epochs", "2", "--val-every", "2", *COMMON])
    assert r.exit_code == 0, r.output
    r = _train_cli(["--pairs", str(pairs_csv), "--out", str(part), "--epochs", "1", *COMMON])
    assert r.exit_code == 0, r.output
    r = _train_cli(["--resume", str(part), "--epochs", "2", "--quiet", "--workers", "3"])  # same run
    assert r.exit_code == 0, r.output
    a = load_file(full / "last" / "model.safetensors")
    b = load_file(part / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (part / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    # run.json now says 2 epochs (a later plain --resume keeps them) and the recorded command is the whole chain
    run = json.loads((part / "run.json").read_text())
    assert run["hp"]["epochs"] == 2 and run["workers"] == 3
    chain = f"brainseg train --resume {part} --epochs 2 --workers 3"
    assert run["command"].endswith(" && " + chain)  # (CliRunner: the first part is pytest's argv)
    assert json.loads((part / "last" / "config.json").read_text())["extra"]["training"]["command"] == run["command"]
    for again in ([], ["--epochs", "2"]):  # nothing new: nothing run, nothing recorded
        r = _train_cli(["--resume", str(part), "--quiet", *again])
        assert r.exit_code == 0, r.output
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((part / "run.json").read_text()) == run
    # validation (not BatchNorm recalibration) is skipped on off epochs: the weights above still match
    assert ["val_dice" in json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()] == [False, True]
    split = json.loads((full / "split.json").read_text())
    assert len(split["validation"]) == 1 and not set(split["validation"]) & set(split["train"])
    assert (full / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    card = (full / "best" / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: image-segmentation" in card
    # transfer to another label set: refused without --new-head, then only the output layer is new
    aseg = [a if a != "tissue" else "aseg" for a in COMMON]
    r = _train_cli(["--pairs", str(pairs_csv), "--out", str(tmp_path / "aseg"), "--epochs", "1",
                    "--init-from", str(full / "best"), *aseg])
    assert r.exit_code == 1 and "--new-head" in r.output
    r = _train_cli(["--pairs", str(pairs_csv), "--out", str(tmp_path / "aseg"), "--epochs", "1",
                    "--init-from", str(full / "best"), "--new-head", *aseg])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "aseg" / "best" / "config.json").read_text())["labelset"] == "aseg"
    # the result is directly usable by parcellate
    from typer.testing import CliRunner

    from brainsegcli.cli.main import app

    t1 = pairs_csv.parent / "s0_T1w.nii.gz"
    r = CliRunner().invoke(app, ["parcellate", str(t1), "-o", str(tmp_path / "seg"), "--weights",
                                 str(full / "best"), "-q", "--views", "axial"])
    assert r.exit_code == 0, r.output


def test_train_bad_input(tmp_path, pairs_csv):
    r = _train_cli(["--pairs", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"), *COMMON])
    assert r.exit_code == 1 and "no such file" in r.output
    (tmp_path / "missing.csv").write_text("image,labels\nx.nii.gz,y.nii.gz\n")
    r = _train_cli(["--pairs", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o"), *COMMON])
    assert r.exit_code == 1 and "no such file" in r.output
    (tmp_path / "empty.csv").write_text("image,labels\n")
    r = _train_cli(["--pairs", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "o"), *COMMON])
    assert r.exit_code == 1 and "no subjects" in r.output
    r = _train_cli(["--out", str(tmp_path / "o"), *COMMON])
    assert r.exit_code == 1 and "data source" in r.output
    r = _train_cli(["--resume", str(tmp_path)])
    assert r.exit_code == 1 and "resumable" in r.output


def test_ddp_two_gloo_processes(pairs_csv, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out):
        return subprocess.run([sys.executable, "-m", "brainsegcli", "train", "--pairs", str(pairs_csv), "--out",
                               str(out), "--epochs", "1", "--nproc", "2", *COMMON], capture_output=True, text=True,
                              timeout=600, env=env)

    out = tmp_path / "ddp"
    r = run(out)
    if r.returncode != 0 and ("exitcode: -6" in r.stderr or "exitcode  : -6" in r.stderr):
        # A worker aborted (SIGABRT) once in ~10 CI runs (session 14; 0 of 8 reruns, 0 of 15 in session 15), most
        # likely at gloo teardown; fit() now ends with a barrier and destroys the group. Should it recur: say so,
        # with the worker's own lines, and try once more; a real bug fails both times.
        clues = [ln for ln in r.stderr.splitlines() if any(k in ln for k in ("terminate", "what()", "Error", "gloo"))]
        warnings.warn("DDP worker aborted, retrying once: " + " | ".join(clues[:8]))
        out = tmp_path / "ddp-retry"
        r = run(out)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (out / "last" / "model.safetensors").is_file() and (out / "best" / "config.json").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 alone writes
