"""benchmarks/eval_contrast.py: real structure/white-matter ratios and the generator's distribution of them."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from eval_contrast import generator_ratios, percentile, real_ratios, structure_groups  # noqa: E402

from brainsegcli.training.synth import Priors, SynthConfig  # noqa: E402


def test_groups_pool_left_and_right_twins():
    groups = structure_groups("aseg")
    assert groups["Cerebral-White-Matter"] == (2, 41)
    assert groups["Caudate"] == (11, 50)
    assert groups["CSF"] == (24,)
    assert sum(len(ids) for ids in groups.values()) == 32


def test_real_ratios_ignore_the_partial_volume_ring():
    labels = np.zeros((20, 20, 20), np.int32)
    image = np.zeros((20, 20, 20), np.float32)
    labels[2:10, 2:18, 2:18], image[2:10, 2:18, 2:18] = 2, 200.0      # left white matter
    labels[10:18, 2:18, 2:18], image[10:18, 2:18, 2:18] = 42, 120.0   # right cortex
    image[9:11] = 160.0                                               # partial volume on both sides of the border
    labels[3:6, 3:6, 3:6] = 11                                        # caudate: one voxel left after erosion
    image[4, 4, 4] = 150.0
    ratios = real_ratios(image, labels, {"Cerebral-White-Matter": (2, 41), "Cerebral-Cortex": (3, 42),
                                         "Caudate": (11, 50), "Putamen": (12, 51)})
    assert ratios["Cerebral-White-Matter"] == 1.0
    assert ratios["Cerebral-Cortex"] == 0.6
    assert ratios["Caudate"] == 0.75
    assert np.isnan(ratios["Putamen"])  # not labelled


def _priors(mean_sd: float) -> Priors:
    # background, white matter (class 1) and cortex (class 2), both hemispheres
    return Priors(np.array([0, 2, 3, 41, 42]), np.array([0, 1, 2, 1, 2]), np.array([0, 1, 2, 1, 2]),
                  np.array([[5.0, 160.0, 96.0], [0.0, mean_sd, mean_sd]]),
                  np.array([[1.0, 10.0, 10.0], [0.0, 0.0, 0.0]]))


def test_generator_ratio_is_the_class_mean_ratio_without_spread_or_gamma():
    groups = {"Cerebral-White-Matter": (2, 41), "Cerebral-Cortex": (3, 42)}
    out = generator_ratios(_priors(0.0), groups, draws=20, cfg=SynthConfig(gamma_std=0.0, p_t1_contrast=0.0))
    np.testing.assert_allclose(out["Cerebral-Cortex"], 0.6)       # every image a T1, whatever the config says
    np.testing.assert_allclose(out["Cerebral-White-Matter"], 1.0)


def test_generator_ratio_spreads_with_gamma_around_the_same_median():
    groups = {"Cerebral-Cortex": (3, 42)}
    out = generator_ratios(_priors(0.0), groups, draws=2000, seed=1)["Cerebral-Cortex"]
    assert abs(np.median(out) - 0.6) < 0.01       # gamma's median is 1
    assert out.min() < 0.5 and out.max() > 0.7
    assert percentile(out, 0.6) == np.mean(out <= 0.6) * 100
    assert percentile(out, 10.0) == 100.0 and percentile(out, 0.0) == 0.0
    assert np.isnan(percentile(out, float("nan")))


def test_a_synthetic_t1_measures_what_its_parameters_say():
    """The generator-side formula, (class mean ratio) ** gamma, is what a rendered, conformed image shows (no bias)."""
    from brainsegcli.labels import get_labelset, ids_to_indices, map_labels
    from brainsegcli.training.synth import sample_params, synthesize

    lab = np.zeros((48, 48, 48), np.int16)
    lab[6:42, 6:42, 6:24], lab[6:42, 6:42, 24:42] = 2, 3     # white matter and cortex slabs in a dark background
    ls = get_labelset("aseg")
    tgt = ids_to_indices(map_labels(lab, ls)[0], ls)
    priors = _priors(12.0)
    cfg = SynthConfig(p_t1_contrast=1.0, bias_std=0.0, p_skull_strip=0.0, p_thick_slices=0.0)
    groups = {"Cerebral-White-Matter": (2, 41), "Cerebral-Cortex": (3, 42)}
    for seed in range(3):
        p = sample_params(np.random.default_rng(seed), priors, cfg)
        image, target, _ = synthesize(lab, tgt, priors, p, np.eye(4))
        measured = real_ratios(image.astype(np.float32), np.asarray(ls.ids)[target], groups)["Cerebral-Cortex"]
        expected = generator_ratios(priors, groups, 1, seed=seed, cfg=cfg)["Cerebral-Cortex"][0]
        assert measured == pytest.approx(expected, abs=0.01)
