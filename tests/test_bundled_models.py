"""The bundled default checkpoints on the bundled real T1 (MNI ICBM152 2009a, brain only).

No labels exist for this scan here, so the checks are anatomical: every structure is found, its
volume lies in a broad adult range, and left/right twins agree (the 2009a *symmetric* template is a mirror image
of itself, so a side mix-up or a hemisphere bias shows directly). The template lives in MNI space: the aseg default
measures 1.59 l of brain excluding CSF on it, 1.4-1.8x the 0.87-1.09 l of the training label maps, so millilitres
get only broad lower bounds; sizes are judged as fractions of the brain instead, against the 20 FreeSurfer-labelled
brains of brainsegcli.volume_check, with a margin (1.25x) far tighter than parcellate's warning (2x); the outer CSF,
which that check leaves out, keeps an upper bound in ml. Run with --no-tta: the mirror test-time augmentation would
make a symmetric template's left/right volumes agree whatever the network's own bias.
"""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from brainsegcli.cli.main import app
from brainsegcli.cli.parcellate import sample_path
from brainsegcli.io.image import load_volume, save_volume
from brainsegcli.labels import get_labelset
from brainsegcli.volume_check import brain_fractions, norms_for
from brainsegcli.weights.manifest import default_entry

ML = 1000.0
# broad adult lower bounds in ml (one side for paired structures); sizes: FRACTION_MARGIN below
RANGES = {
    "tissue": {"CSF": 15, "GM": 450, "WM": 350},
    "subcortical": {"Thalamus": 4.5, "Caudate": 2.2, "Putamen": 3, "Pallidum": 0.8, "Hippocampus": 2.5,
                    "Amygdala": 0.7},
    "aseg": {"Cerebral-White-Matter": 170, "Cerebral-Cortex": 200, "Lateral-Ventricle": 2, "Cerebellum-Cortex": 35,
             "Thalamus": 4.5, "Caudate": 2.2, "Putamen": 3, "Hippocampus": 2.5},
}
CSF_MAX_ML = {"tissue": 600, "aseg": 600}  # outer CSF (+ ventricles for tissue): not in the fraction check
FRACTION_MARGIN = 1.25  # per-mille of the brain within [reference min / 1.25, reference max * 1.25]
BUNDLED = [ls for ls in RANGES if default_entry(ls) is not None]


def test_bundled_defaults():
    assert set(BUNDLED) == {"tissue", "subcortical", "aseg"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Label set -> (volumes in ml by structure name, report.json) of the default model on the sample."""
    out = tmp_path_factory.mktemp("bundled")
    runner = CliRunner()
    res = {}
    for ls in BUNDLED:
        r = runner.invoke(app, ["parcellate", "--sample", "-o", str(out / ls), "--labelset", ls, "--quiet",
                                "--threads", "2", "--no-tta"])
        assert r.exit_code == 0, r.output
        (case,) = list((out / ls).iterdir())
        with open(case / "volumes.csv") as fh:
            vols = {row["name"]: float(row["volume_mm3"]) / ML for row in csv.DictReader(fh)}
        res[ls] = (vols, json.loads((case / "report.json").read_text()))
    return res


@pytest.fixture(scope="module")
def volumes(runs):
    return {ls: vols for ls, (vols, _) in runs.items()}


@pytest.mark.parametrize("labelset", BUNDLED)
def test_default_model_finds_every_structure_on_the_sample(volumes, labelset):
    missing = [n for n in get_labelset(labelset).names[1:] if volumes[labelset].get(n, 0.0) <= 0.0]
    assert not missing, f"never predicted on the sample: {missing}"


@pytest.mark.parametrize("labelset", BUNDLED)
def test_default_model_gives_plausible_volumes_on_the_sample(volumes, labelset):
    v = volumes[labelset]
    bad = []
    for structure, lo in RANGES[labelset].items():
        sides = [n for n in v if n == structure or n.endswith("-" + structure) and n.split("-")[0] in
                 ("Left", "Right")]
        assert sides, f"{structure} not in the volumes table"
        for n in sides:
            if v[n] < lo:
                bad.append(f"{n} {v[n]:.1f} ml below {lo}")
        if len(sides) == 2:
            a, b = (v[n] for n in sorted(sides))
            if min(a, b) <= 0 or max(a, b) / min(a, b) > 1.25:
                bad.append(f"{structure} left/right {a:.1f} vs {b:.1f} ml on a symmetric template")
    if labelset in CSF_MAX_ML and v["CSF"] > CSF_MAX_ML[labelset]:
        bad.append(f"CSF {v['CSF']:.1f} ml above {CSF_MAX_ML[labelset]}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("labelset", BUNDLED)
def test_default_model_sizes_are_those_of_real_brains(volumes, labelset):
    """Every checked structure, as per mille of the brain, near the range of the 20 FreeSurfer-labelled brains."""
    ls = get_labelset(labelset)
    rows = [{"label_id": lid, "name": n, "volume_mm3": volumes[labelset].get(n, 0.0) * ML}
            for lid, n in zip(ls.ids[1:], ls.names[1:])]
    fractions = brain_fractions(rows, ls)
    bad = [f"{n} {fractions[n]:.2f} not in [{r['min'] / FRACTION_MARGIN:.2f}, {r['max'] * FRACTION_MARGIN:.2f}]"
           for n, r in norms_for(ls).items()
           if not r["min"] / FRACTION_MARGIN <= fractions[n] <= r["max"] * FRACTION_MARGIN]
    assert not bad, "per mille of the brain: " + "; ".join(bad)


@pytest.mark.parametrize("labelset", BUNDLED)
def test_the_sample_passes_the_t1_contrast_check(runs, labelset):
    """A real T1: grey matter well below white matter (0.66-0.79 on the real scans of docs/inference.md)."""
    _, report = runs[labelset]
    check = report["qc"]["contrast_check"]
    if labelset == "subcortical":
        assert check["checked"] is False
    else:
        assert check["t1_like"] is True and check["ratios"]["grey_over_white"] < 0.85, check
    assert not any("T1-weighted" in w for w in report["warnings"])


@pytest.mark.parametrize("labelset", BUNDLED)
def test_edge_refinement_on_the_sample(runs, labelset):
    """aseg only (tissue and subcortical have no temporal horn): both hippocampi judged, the ventricles darker
    than the hippocampus (T1), and on this real healthy brain the network's edge already lies at the image's
    (docs/inference.md: 0 voxels relabelled with TTA, session 29)."""
    _, report = runs[labelset]
    refine = report["inference"]["edge_refinement"]
    if labelset != "aseg":
        assert refine == {"applied": False}
        return
    assert refine["applied"] and [s["structure"] for s in refine["structures"]] == ["Left-Hippocampus",
                                                                                  "Right-Hippocampus"]
    for s in refine["structures"]:
        assert s["applied"] and s["csf_intensity"] < s["threshold"] < s["structure_intensity"], s
    assert refine["relabelled_mm3"] < 200, refine


@pytest.mark.parametrize("labelset", BUNDLED)
def test_the_sample_passes_the_brain_size_check(runs, labelset):
    _, report = runs[labelset]
    size = report["qc"]["volume_check"]["brain_size"]
    assert size["checked"] and size["verdict"] is None, size
    assert not any("reference adult brains" in w for w in report["warnings"])


def test_a_wrong_voxel_size_is_flagged(tmp_path):
    """The sample declared at 0.65 mm (it is 1 mm): every structure shrinks to 0.27x in ml; parcellate says the brain
    is far too small and names the header's voxel size."""
    vol = load_volume(sample_path())
    affine = np.array(vol.affine, dtype=float)
    affine[:3, :3] *= 0.65
    src = tmp_path / "small.nii.gz"
    save_volume(vol.data, affine, src)
    r = CliRunner().invoke(app, ["parcellate", str(src), "-o", str(tmp_path / "out"), "--labelset", "aseg",
                                 "--quiet", "--threads", "2", "--no-tta"])
    assert r.exit_code == 0, r.output
    assert "far below the 798-1413 ml of the 20 reference adult brains" in r.output
    assert "(it says 0.65 x 0.65 x 0.65 mm voxels)" in r.output
    size = json.loads((tmp_path / "out" / "small" / "report.json").read_text())["qc"]["volume_check"]["brain_size"]
    assert size["verdict"] == "far below" and size["brain_ml"] < 1590 * 0.65 ** 3 * 1.2, size


def test_an_inverted_sample_is_flagged_as_not_t1(tmp_path):
    """The sample with its intensities inverted inside the head (CSF brightest, white matter darkest: a T2 order):
    parcellate still labels it, says the image does not look T1-weighted (printed under --quiet too) and leaves
    the hippocampal edges as the network drew them."""
    vol = load_volume(sample_path())
    data = np.asarray(vol.data, dtype=np.float32)
    inside = data > 0
    data[inside] = data.max() * 1.05 - data[inside]
    src = tmp_path / "t2like.nii.gz"
    save_volume(data, vol.affine, src)
    r = CliRunner().invoke(app, ["parcellate", str(src), "-o", str(tmp_path / "out"), "--labelset", "aseg",
                                 "--quiet", "--threads", "2", "--no-tta"])
    assert r.exit_code == 0, r.output
    assert "does not look T1-weighted: grey matter is not darker than white matter" in r.output
    report = json.loads((tmp_path / "out" / "t2like" / "report.json").read_text())
    check = report["qc"]["contrast_check"]
    assert check["t1_like"] is False and check["ratios"]["grey_over_white"] > 1.2, check
    # the same check gates the edge refinement: nothing relabelled on an image that is not T1-like
    refine = report["inference"]["edge_refinement"]
    assert refine["relabelled_mm3"] == 0 and len(refine["structures"]) == 2, refine
    assert all(not s["applied"] and "not T1-like" in s["reason"] for s in refine["structures"]), refine
