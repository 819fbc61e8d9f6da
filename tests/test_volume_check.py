"""The volume plausibility check of parcellate (brainsegcli.volume_check)."""

from pathlib import Path

import numpy as np
import pytest

from brainsegcli.labels import get_labelset, map_labels
from brainsegcli.reports import volume_rows
from brainsegcli.volume_check import (FAR_FACTOR, SIZE_FACTOR, UNCHECKED, brain_fractions, brain_ml, brain_norms_for,
                                      check_brain_size, check_volumes, norms_for)

SYNTHSEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg"


def _rows(labelset, mm3: dict[str, float]):
    """volume_rows-shaped rows with the given volumes (absent structures: 0)."""
    return [{"label_id": lid, "name": n, "voxels": 0, "volume_mm3": float(mm3.get(n, 0.0))}
            for lid, n in zip(labelset.ids[1:], labelset.names[1:])]


@pytest.mark.parametrize("name", ["tissue", "subcortical", "aseg"])
def test_norms_cover_every_checked_structure(name):
    ls = get_labelset(name)
    norms = norms_for(ls)
    assert set(norms) == set(ls.names[1:]) - set(UNCHECKED.get(name, ()))
    for s in norms.values():
        assert 0 < s["min"] <= s["mean"] <= s["max"] and s["sd"] > 0


def _mean_rows(ls):
    # non-CSF reference means sum to 1000 per mille, so these rows reproduce the means exactly
    return {n: s["mean"] for n, s in norms_for(ls).items()}


def test_reference_means_pass_and_fractions_are_exact():
    ls = get_labelset("aseg")
    mm3 = _mean_rows(ls)
    fr = brain_fractions(_rows(ls, mm3), ls)
    assert fr["Left-Thalamus"] == pytest.approx(mm3["Left-Thalamus"], rel=1e-3)
    out = check_volumes(_rows(ls, {**mm3, "CSF": 1e6}), ls)  # extra-cerebral CSF is not checked, however large
    assert out["checked"] and out["flags"] == {} and out["summary"] is None


def test_missing_small_and_swollen_structures_are_flagged():
    ls = get_labelset("aseg")
    norms = norms_for(ls)
    mm3 = _mean_rows(ls)
    mm3["Left-Hippocampus"] = 0.0
    mm3["Right-Pallidum"] = norms["Right-Pallidum"]["min"] / FAR_FACTOR * 0.8
    mm3["Left-Lateral-Ventricle"] = norms["Left-Lateral-Ventricle"]["max"] * FAR_FACTOR * 1.2  # CSF: not in the brain
    mm3["Right-Thalamus"] = norms["Right-Thalamus"]["max"] * 1.5  # large, but within the margin
    out = check_volumes(_rows(ls, mm3), ls)
    assert {n: f["verdict"] for n, f in out["flags"].items()} == {
        "Left-Hippocampus": "not found", "Right-Pallidum": "far below", "Left-Lateral-Ventricle": "far above"}
    assert out["summary"].startswith("3 structure volume(s)") and "Right-Thalamus" not in out["summary"]
    assert "Left-Hippocampus (not found)" in out["summary"] and "more" not in out["summary"]
    failed = check_volumes(_rows(ls, {"Left-Cerebral-White-Matter": 500.0, "Left-Cerebral-Cortex": 500.0}), ls)
    assert len(failed["flags"]) == len(norms)  # the two at 2.4x their maximum, everything else missing
    assert failed["flags"]["Left-Cerebral-Cortex"]["verdict"] == "far above"
    assert sum(failed["summary"].count(v + ")") for v in ("found", "above", "below")) == 5
    assert f"and {len(norms) - 5} more" in failed["summary"]


@pytest.mark.parametrize("name", ["tissue", "subcortical", "aseg"])
def test_brain_size_references_are_those_of_adult_brains(name):
    ref = brain_norms_for(get_labelset(name))
    assert 0 < ref["min"] <= ref["mean"] <= ref["max"] and ref["sd"] > 0
    lo, hi = (33, 59) if name == "subcortical" else (790, 1420)  # ml, the 20 maps (module docstring)
    assert lo <= ref["min"] and ref["max"] <= hi


@pytest.mark.parametrize("name", ["subcortical", "aseg"])
def test_a_brain_of_wrong_size_is_flagged_with_fractions_unchanged(name):
    """A wrong voxel size scales every structure alike: the fractions pass, the size check does not."""
    ls = get_labelset(name)
    ref = brain_norms_for(ls)
    mean = _mean_rows(ls)  # per mille: a brain of 1 ml

    def scaled(ml):
        return _rows(ls, {n: v * ml for n, v in mean.items()})

    assert brain_ml(scaled(ref["mean"]), ls) == pytest.approx(ref["mean"], rel=1e-3)
    ok = check_volumes(scaled(ref["max"] * SIZE_FACTOR * 0.99), ls)
    assert ok["flags"] == {} and ok["brain_size"]["verdict"] is None and ok["brain_size"]["summary"] is None
    assert check_brain_size(scaled(ref["min"] / SIZE_FACTOR * 1.01), ls)["verdict"] is None
    for factor, verdict in ((1.5 ** 3, "far above"), (0.65 ** 3, "far below")):  # 1 mm voxels declared 1.5 / 0.65
        out = check_volumes(scaled(ref["mean"] * factor), ls)
        assert out["flags"] == {} and out["summary"] is None
        size = out["brain_size"]
        assert size["checked"] and size["verdict"] == verdict
        assert size["brain_ml"] == pytest.approx(ref["mean"] * factor, abs=0.051)  # rounded to 0.1 ml
        assert f"{ref['mean'] * factor:.0f} ml, {verdict} the {ref['min']:.0f}-{ref['max']:.0f} ml" in size["summary"]
        assert "voxel size" in size["summary"]
        assert size["summary"].startswith("its 12 structures" if name == "subcortical" else "the brain (all but CSF)")


def test_unchecked_cases():
    empty = check_volumes(_rows(get_labelset("aseg"), {}), get_labelset("aseg"))
    assert not empty["checked"] and empty["summary"] == "no brain structure was labelled"
    assert not empty["brain_size"]["checked"] and empty["brain_size"]["summary"] is None
    dkt = check_volumes(_rows(get_labelset("dkt95"), {"Left-Thalamus": 5000.0}), get_labelset("dkt95"))
    assert not dkt["checked"] and dkt["summary"] is None and "dkt95" in dkt["reason"]
    assert not dkt["brain_size"]["checked"] and "dkt95" in dkt["brain_size"]["reason"]


def test_tissue_needs_white_matter():
    ls = get_labelset("tissue")
    assert check_volumes(_rows(ls, {"GM": 550.0, "WM": 450.0, "CSF": 400.0}), ls)["flags"] == {}
    out = check_volumes(_rows(ls, {"GM": 900.0, "WM": 100.0}), ls)
    assert out["flags"]["WM"]["verdict"] == "far below"


@pytest.mark.skipif(not SYNTHSEG.is_dir(), reason="needs ../shared/data/synthseg")
def test_a_real_freesurfer_brain_passes_with_every_fraction_in_range():
    """One of the 20 reference brains, through the same mapping and volume_rows as parcellate's outputs."""
    import nibabel as nib

    img = nib.load(SYNTHSEG / "training_seg_07.nii.gz")
    ls = get_labelset("subcortical")
    ids, unknown = map_labels(np.asarray(img.dataobj), ls)
    assert not unknown
    rows = volume_rows(ids, ls, img.header.get_zooms()[:3])
    out = check_volumes(rows, ls)
    assert out["flags"] == {} and out["brain_size"]["verdict"] is None
    ref = brain_norms_for(ls)
    assert ref["min"] <= out["brain_size"]["brain_ml"] <= ref["max"]
    norms = norms_for(ls)
    for name, value in brain_fractions(rows, ls).items():
        assert norms[name]["min"] - 1e-3 <= value <= norms[name]["max"] + 1e-3
