"""Simulated atrophy (brainsegcli.training.atrophy, used by training and benchmarks/eval_atrophy.py), on label
phantoms with known answers."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_atrophy import parse_level, summarise  # noqa: E402

from brainsegcli.training.atrophy import apply_atrophy, enlarge_ventricles, thin_hippocampus  # noqa: E402


def _hemispheres() -> np.ndarray:
    """Two hemispheres of white matter (2 left, 41 right) side by side, each with a 4^3 lateral ventricle
    (4, 43) in its middle, a caudate (11) touching the left ventricle, and a 4 x 6 x 6 hippocampus (17, 53)
    whose x = 2 face touches white matter and whose other faces touch cortex (3, 42)."""
    a = np.zeros((40, 20, 20), np.int16)
    a[2:19, 2:18, 2:18] = 2
    a[21:38, 2:18, 2:18] = 41
    a[8:12, 8:12, 8:12] = 4
    a[29:33, 8:12, 8:12] = 43
    a[12:14, 8:12, 8:12] = 11  # next to the left ventricle, +x side
    for wm, hip, ctx, x0 in ((2, 17, 3, 2), (41, 53, 42, 21)):
        a[x0 + 1:x0 + 7, 12:18, 2:8] = ctx  # cortex box; the hippocampus sits in it, touching WM only at x0 + 1
        a[x0 + 1:x0 + 5, 13:17, 3:7] = hip
    return a


def test_ventricles_grow_into_their_own_white_matter_only():
    a = _hemispheres()
    out = enlarge_ventricles(a, 1)
    # one 6-neighbourhood step around a 4^3 cube: 6 faces of 16 voxels, minus the caudate face (16) on the left
    assert (out == 4).sum() - (a == 4).sum() == 5 * 16
    assert (out == 43).sum() - (a == 43).sum() == 6 * 16
    assert (out == 11).sum() == (a == 11).sum()  # the caudate is not eaten
    changed = out != a
    assert set(np.unique(a[changed])) == {2, 41}  # only white matter turned
    assert enlarge_ventricles(a, 0).tolist() == a.tolist()
    two = enlarge_ventricles(a, 2)
    assert (two == 43).sum() > (out == 43).sum()
    assert (two[:20] == 43).sum() == 0 and (two[20:] == 4).sum() == 0  # no ventricle crosses the midline


def test_hippocampus_thins_only_where_it_faces_white_matter_or_the_temporal_horn():
    a = _hemispheres()
    out = thin_hippocampus(a, 1)
    # the hippocampus touches white matter only on its x = x0 + 1 face (4 x 4 voxels)
    assert (a == 17).sum() - (out == 17).sum() == 16
    assert (out == 5).sum() == 16
    assert ((out == 17) | (out == 5)).sum() == (a == 17).sum()  # what the hippocampus loses becomes the horn
    # the second step erodes the face next to the new temporal horn, one layer further in
    two = thin_hippocampus(a, 2)
    assert (two == 17).sum() == (a == 17).sum() - 32 and (two == 53).sum() == (a == 53).sum() - 32
    assert (two[two != a] != 0).all()


def test_parse_level_names():
    assert parse_level("none") == (0, 0)
    assert parse_level("ventricles-1") == (1, 0) and parse_level("hippocampus-2") == (0, 2)
    for bad in ("ventricles", "amygdala-1", "ventricles-x"):
        with pytest.raises(ValueError):
            parse_level(bad)


def test_summarise_sums_changes_over_maps():
    def row(m, level, t, v):
        return {"map": m, "level": level, "volumes": {"LV": {"true_ml": t, "measured_ml": v}}}

    rows = [row("a", "none", 10.0, 11.0), row("a", "ventricles-2", 14.0, 14.0),
            row("b", "none", 20.0, 19.0), row("b", "ventricles-2", 26.0, 23.0)]
    (s,) = summarise(rows, ["LV"])
    assert s["true_change_ml"] == 10.0 and s["measured_change_ml"] == 7.0
    assert s["measured_over_true"] == pytest.approx(0.7)
    # a structure the change does not touch is left out (no true change to compare with)
    assert summarise([row("a", "none", 5.0, 5.0), row("a", "hippocampus-1", 5.0, 4.0)], ["LV"]) == []


def test_apply_atrophy_gives_changed_voxels_the_class_their_new_label_has():
    a = _hemispheres()
    lut = {0: 0, 2: 1, 41: 1, 3: 2, 42: 2, 4: 3, 43: 3, 11: 4, 17: 5, 53: 5, 5: 6, 44: 6}  # a merged-side label set
    a[15, 15, 15], a[35, 15, 15] = 5, 44  # the map has temporal horns somewhere, so the label exists
    target = np.vectorize(lut.get)(a).astype(np.int16)
    raw, tgt = apply_atrophy(a, target, 2, 1)
    assert (raw == thin_hippocampus(enlarge_ventricles(a, 2), 1)).all() and (raw != a).any()
    assert (tgt == np.vectorize(lut.get)(raw)).all()
    # the cached training maps are Fortran-ordered: same answer
    raw_f, tgt_f = apply_atrophy(np.asfortranarray(a), np.asfortranarray(target), 2, 1)
    assert (raw_f == raw).all() and (tgt_f == tgt).all()
    same_raw, same_tgt = apply_atrophy(a, target, 0, 0)
    assert same_raw is a and same_tgt is target
    # a map without temporal horns: the hippocampus is not thinned (its voxels would have no class to take)
    b = _hemispheres()
    raw_b, tgt_b = apply_atrophy(b, np.vectorize(lut.get)(b).astype(np.int16), 0, 1)
    assert (raw_b == b).all()


def test_synth_atrophy_is_off_by_default_and_drawn_from_its_own_stream():
    from brainsegcli.training.synth import Priors, SynthConfig, sample_params

    priors = Priors.generic(np.array([0, 2, 3, 4, 17]))
    base = sample_params(np.random.default_rng(5), priors, SynthConfig())
    on = sample_params(np.random.default_rng(5), priors, SynthConfig(p_atrophy=1.0, max_ventricle_mm=3))
    assert base.ventricle_steps == base.hippocampus_steps == 0
    assert np.array_equal(base.class_means, on.class_means) and base.noise_seed == on.noise_seed
    draws = [sample_params(np.random.default_rng(s), priors, SynthConfig(p_atrophy=1.0, max_ventricle_mm=3))
             for s in range(40)]
    assert {d.ventricle_steps for d in draws} == {0, 1, 2, 3}
    assert {d.hippocampus_steps for d in draws} == {0, 1, 2}


def test_synthesize_draws_the_atrophied_brain():
    from brainsegcli.labels import get_labelset, ids_to_indices, map_labels
    from brainsegcli.training.synth import Priors, SynthConfig, sample_params, synthesize

    a = _hemispheres()
    a[15, 15, 15], a[35, 15, 15] = 5, 44
    ls = get_labelset("aseg")
    tgt = ids_to_indices(map_labels(a, ls)[0], ls)
    priors = Priors.generic(np.unique(a))
    p = sample_params(np.random.default_rng(0), priors, SynthConfig(p_skull_strip=0.0, p_thick_slices=0.0))
    p.affine, p.translation, p.elastic = np.eye(3), np.zeros(3), np.zeros_like(p.elastic)  # no deformation
    plain = synthesize(a, tgt, priors, p, np.eye(4), corrupt=False)[1]
    p.ventricle_steps, p.hippocampus_steps = 1, 1
    atrophied = synthesize(a, tgt, priors, p, np.eye(4), corrupt=False)[1]
    lv, hip = ls.names.index("Left-Lateral-Ventricle"), ls.names.index("Left-Hippocampus")
    assert (atrophied == lv).sum() - (plain == lv).sum() == 5 * 16
    assert (plain == hip).sum() - (atrophied == hip).sum() == 16


def test_hippocampus_thickens_into_its_own_white_matter_and_temporal_horn():
    from brainsegcli.training.atrophy import thicken_hippocampus

    a = _hemispheres()
    out = thicken_hippocampus(a, 1)
    # one layer: the 4 x 4 white-matter face on each side (x = x0); the cortex (3, 42) around the rest stays
    assert (out == 17).sum() - (a == 17).sum() == 16 and (out == 53).sum() - (a == 53).sum() == 16
    assert set(np.unique(a[out != a])) == {2, 41}
    two = thicken_hippocampus(a, 2)  # the second layer spreads in the white matter of that plane (4 x 4 ring)
    assert (two == 17).sum() - (a == 17).sum() == 32 and (two[:20] == 53).sum() == 0
    assert thicken_hippocampus(a, 0).tolist() == a.tolist()
    horn = a.copy()
    horn[2, 13:17, 3:7] = 5  # a temporal horn on the left face: the hippocampus takes it back
    h1 = thicken_hippocampus(horn, 1)
    assert (h1 == 5).sum() == 0 and (h1 == 17).sum() - (horn == 17).sum() == 16
    # apply_atrophy: a negative step count thickens, and the new voxels take the hippocampus class
    lut = {0: 0, 2: 1, 3: 2, 4: 3, 5: 4, 11: 5, 17: 6, 41: 7, 42: 8, 43: 9, 53: 10}
    tgt = np.vectorize(lut.get)(a).astype(np.int16)
    raw_t, tgt_t = apply_atrophy(a, tgt, 0, -1)
    assert (raw_t == out).all() and (tgt_t[raw_t == 17] == 6).all() and (tgt_t[raw_t == 53] == 10).all()


def test_hippocampal_growth_draws_both_directions_only_when_asked():
    from brainsegcli.training.synth import Priors, SynthConfig, sample_params

    priors = Priors.generic(np.array([0, 2, 3, 4, 17]))
    cfg = SynthConfig(p_atrophy=1.0, max_hippocampus_mm=3, max_hippocampus_growth_mm=3)
    steps = {sample_params(np.random.default_rng(s), priors, cfg).hippocampus_steps for s in range(80)}
    assert steps == set(range(-3, 4))
    old = SynthConfig(p_atrophy=1.0, max_hippocampus_mm=3)
    assert {sample_params(np.random.default_rng(s), priors, old).hippocampus_steps for s in range(80)} == {0, 1, 2, 3}
