"""Does the synthetic T1 contrast the checkpoints learn from cover the contrast of real T1 scans?

For each real T1, the real ``brainseg parcellate`` (a subprocess, an ``aseg`` checkpoint) labels it; in its
conformed image (what the network sees) each structure's median intensity, inside its labels eroded by one voxel
(no partial volume with the neighbours), is divided by that of the cerebral white matter. Left and right twins are
pooled.

The same ratio in the generator: class means drawn by ``synth.sample_params`` with the T1 priors (the default
``SynthConfig``, or ``--synth-config`` as given to ``brainseg train``, with every image a T1), after the gamma
transform (a ratio ``r`` becomes ``r ** gamma``; bias field, blur and noise leave a structure's median about where
it was). Each real ratio is reported with its percentile among ``--draws`` generator draws: near 50 the generator's
typical image; near 0 or 100 a contrast the network rarely saw in training. Structures whose intensity class the
priors share (SynthSeg ties caudate, hippocampus, amygdala and accumbens to the cortex) have the same generator
distribution.

Usage: python benchmarks/eval_contrast.py --t1 T1 [T1 ...] [--weights aseg-unet] [--synth-config JSON]
       [--draws 20000] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

import numpy as np

from brainsegcli.contrast_check import eroded_median
from brainsegcli.labels import get_labelset
from brainsegcli.training.synth import Priors, SynthConfig, sample_params
from run_parcellate import run

PRIORS = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg" / "priors"
WHITE_MATTER = (2, 41)  # FreeSurfer's left and right cerebral white matter


def structure_groups(labelset_name: str = "aseg") -> dict[str, tuple[int, ...]]:
    """Name -> FreeSurfer ids, left/right twins pooled under the name without its side."""
    ls = get_labelset(labelset_name)
    groups: dict[str, tuple[int, ...]] = {}
    for lid, name in zip(ls.ids[1:], ls.names[1:]):
        key = name.removeprefix("Left-").removeprefix("Right-")
        groups[key] = groups.get(key, ()) + (int(lid),)
    return groups


def real_ratios(image: np.ndarray, labels: np.ndarray, groups: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """Median intensity of each group (inside its labels eroded by one voxel) over that of the white matter.
    A group with no voxel left after erosion is NaN; with no white matter at all, every ratio is NaN."""
    @functools.lru_cache(maxsize=None)  # white matter is also one of the groups: eroded once
    def median(ids: tuple[int, ...]) -> float:
        return eroded_median(image, labels, ids)[0]

    wm = median(WHITE_MATTER)
    return {name: (median(ids) / wm if wm > 0 else float("nan")) for name, ids in groups.items()}


def generator_ratios(priors: Priors, groups: dict[str, tuple[int, ...]], draws: int, seed: int = 0,
                     cfg: SynthConfig | None = None) -> dict[str, np.ndarray]:
    """Per group, ``draws`` samples of (class mean / white-matter class mean) ** gamma of T1-contrast images."""
    cfg = dataclasses.replace(cfg or SynthConfig(), p_t1_contrast=1.0)
    rng = np.random.default_rng(seed)
    cls = {name: int(priors.classes_t1[priors.lut[ids[0]]]) for name, ids in groups.items()}
    wm_cls = int(priors.classes_t1[priors.lut[WHITE_MATTER[0]]])
    out = {name: np.empty(draws) for name in groups}
    for i in range(draws):
        p = sample_params(rng, priors, cfg)
        wm = max(float(p.class_means[wm_cls]), 1e-6)
        for name, c in cls.items():
            out[name][i] = (float(p.class_means[c]) / wm) ** p.gamma
    return out


def percentile(samples: np.ndarray, value: float) -> float:
    """Percent of ``samples`` at or below ``value`` (NaN for a NaN value)."""
    return float("nan") if np.isnan(value) else float(100.0 * np.mean(samples <= value))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--t1", nargs="+", required=True)
    ap.add_argument("--weights", default="aseg-unet", help="an aseg checkpoint (manifest name or folder)")
    ap.add_argument("--priors", default=str(PRIORS))
    ap.add_argument("--synth-config", default="{}", help="generator settings as JSON, as for brainseg train")
    ap.add_argument("--draws", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    groups = structure_groups("aseg")
    synth = json.loads(args.synth_config)
    gen = generator_ratios(Priors.load(args.priors), groups, args.draws, cfg=SynthConfig(**synth))
    scans = {}
    for t1 in args.t1:
        res = run(t1, args.weights, threads=args.threads)
        scans[Path(t1).name] = real_ratios(res.conformed.astype(np.float32), res.labels_conformed, groups)
    names = list(scans)
    print(f"{'structure / white matter':28s}" + "".join(f"{n[:18]:>20s}" for n in names)
          + "   generator median [5 %, 95 %]")
    rows = {}
    for g in groups:
        q = np.quantile(gen[g], [0.5, 0.05, 0.95])
        cells = {n: {"ratio": scans[n][g], "percentile": percentile(gen[g], scans[n][g])} for n in names}
        rows[g] = {"scans": cells, "generator": {"median": q[0], "p5": q[1], "p95": q[2]}}
        print(f"{g:28s}" + "".join(f"{c['ratio']:>11.2f} ({c['percentile']:3.0f} %)" for c in cells.values())
              + f"   {q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]")
    if args.json:
        Path(args.json).write_text(json.dumps({"weights": args.weights, "synth_config": synth,
                                               "draws": args.draws, "structures": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
