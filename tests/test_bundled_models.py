"""The bundled default checkpoints on the bundled real T1 (MNI ICBM152 2009a, brain only).

No labels exist for this scan here, so the checks are anatomical: every structure is found, its
volume lies in a broad adult range (the template lives in MNI space: the aseg default measures 1.58 l
of brain excluding CSF on it, 1.4-1.8x the 0.87-1.09 l of the training label maps, hence generous upper
bounds), and left/right twins agree (the 2009a *symmetric* template is a mirror image of itself, so a
side mix-up or a hemisphere bias shows directly). Run with --no-tta: the mirror test-time augmentation
would make a symmetric template's left/right volumes agree whatever the network's own bias.
"""

import csv

import pytest
from typer.testing import CliRunner

from brainsegcli.cli.main import app
from brainsegcli.labels import get_labelset
from brainsegcli.weights.manifest import default_entry

ML = 1000.0
# broad adult ranges in ml (one side for paired structures)
RANGES = {
    "tissue": {"CSF": (15, 600), "GM": (450, 1100), "WM": (350, 850)},
    "subcortical": {"Thalamus": (4.5, 15), "Caudate": (2.2, 7), "Putamen": (3, 9), "Pallidum": (0.8, 3.5),
                    "Hippocampus": (2.5, 7), "Amygdala": (0.7, 3)},
    "aseg": {"Cerebral-White-Matter": (170, 425), "Cerebral-Cortex": (200, 550), "Lateral-Ventricle": (2, 60),
             "Cerebellum-Cortex": (35, 85), "Thalamus": (4.5, 15), "Caudate": (2.2, 7), "Putamen": (3, 9),
             "Hippocampus": (2.5, 7)},
}
BUNDLED = [ls for ls in RANGES if default_entry(ls) is not None]


def test_bundled_defaults():
    assert set(BUNDLED) == {"tissue", "subcortical", "aseg"}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundled")
    runner = CliRunner()
    vols = {}
    for ls in BUNDLED:
        r = runner.invoke(app, ["parcellate", "--sample", "-o", str(out / ls), "--labelset", ls, "--quiet",
                                "--threads", "2", "--no-tta"])
        assert r.exit_code == 0, r.output
        (case,) = list((out / ls).iterdir())
        with open(case / "volumes.csv") as fh:
            vols[ls] = {row["name"]: float(row["volume_mm3"]) / ML for row in csv.DictReader(fh)}
    return vols


@pytest.mark.parametrize("labelset", BUNDLED)
def test_default_model_finds_every_structure_on_the_sample(volumes, labelset):
    missing = [n for n in get_labelset(labelset).names[1:] if volumes[labelset].get(n, 0.0) <= 0.0]
    assert not missing, f"never predicted on the sample: {missing}"


@pytest.mark.parametrize("labelset", BUNDLED)
def test_default_model_gives_plausible_volumes_on_the_sample(volumes, labelset):
    v = volumes[labelset]
    bad = []
    for structure, (lo, hi) in RANGES[labelset].items():
        sides = [n for n in v if n == structure or n.endswith("-" + structure) and n.split("-")[0] in
                 ("Left", "Right")]
        assert sides, f"{structure} not in the volumes table"
        for n in sides:
            if not lo <= v[n] <= hi:
                bad.append(f"{n} {v[n]:.1f} ml not in [{lo}, {hi}]")
        if len(sides) == 2:
            a, b = (v[n] for n in sorted(sides))
            if min(a, b) <= 0 or max(a, b) / min(a, b) > 1.25:
                bad.append(f"{structure} left/right {a:.1f} vs {b:.1f} ml on a symmetric template")
    assert not bad, "; ".join(bad)
