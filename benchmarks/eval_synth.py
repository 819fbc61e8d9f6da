"""Per-structure Dice of a checkpoint on synthetic images made from held-out label maps, in several
contrasts and resolutions (the model-card numbers of the bundled checkpoints).

Usage: python benchmarks/eval_synth.py --weights RUN/best --maps training_seg_18,training_seg_19,training_seg_20
       [--variants t1-head,...] [--tta] [--no-cleanup] [--no-refine-edges] [--json F]

The JSON also holds, per variant and structure, the predicted volume over the true volume summed over the maps
(``volume_ratio``): above 1 a structure is drawn too large, below 1 too small (compare with the same ratio on real
scans from ``eval_volume_norms.py`` to tell a training bias from a real-image one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from brainsegcli.inference.device import prepare_for_inference, resolve_device, resolve_precision
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.inference.refine import applies_to, postprocess
from brainsegcli.labels import get_labelset
from brainsegcli.metrics import dice
from brainsegcli.training.data import Subject, load_label_map
from brainsegcli.training.synth import Priors, SynthConfig, sample_params, synthesize
from brainsegcli.weights.checkpoint import load_checkpoint
from brainsegcli.weights.manifest import resolve_weights

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg"
VARIANTS = {
    "t1-head": SynthConfig(p_t1_contrast=1.0, p_skull_strip=0.0, p_thick_slices=0.0),
    "t1-stripped": SynthConfig(p_t1_contrast=1.0, p_skull_strip=1.0, p_thick_slices=0.0),
    "t1-thick-slices": SynthConfig(p_t1_contrast=1.0, p_skull_strip=0.0, p_thick_slices=1.0),
    "random-contrast": SynthConfig(p_t1_contrast=0.0, p_skull_strip=0.5, p_thick_slices=0.0),
    # not in the default set: the t1-thick-slices images (same seeds) also sampled at their slice spacing and
    # interpolated back to 1 mm, as a real thick-slice scan reaches the network after conform
    "t1-thick-resampled": SynthConfig(p_t1_contrast=1.0, p_skull_strip=0.0, p_thick_slices=1.0, thick_resample=True),
}
DEFAULT_VARIANTS = ("t1-head", "t1-stripped", "t1-thick-slices", "random-contrast")
SEED_INDEX = {"t1-thick-resampled": list(VARIANTS).index("t1-thick-slices")}  # the seeds of t1-thick-slices


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--maps", default="training_seg_18,training_seg_19,training_seg_20")
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (bf16 rounding differs: on the "
                                                     "sample 0.07 %% of labelled voxels change)")
    ap.add_argument("--json", default="")
    ap.add_argument("--tta", action="store_true", help="left-right flip test-time augmentation")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated subset of {', '.join(VARIANTS)} (default: %(default)s)")
    ap.add_argument("--no-cleanup", action="store_true", help="score the raw network output (parcellate --no-cleanup)")
    ap.add_argument("--no-refine-edges", action="store_true", help="as parcellate --no-refine-edges")
    a = ap.parse_args()
    if not set(a.variants.split(",")) <= set(VARIANTS):
        ap.error(f"--variants: choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(a.threads)
    model, cfg = load_checkpoint(resolve_weights(a.weights).directory)
    dev = resolve_device(a.device)
    model = prepare_for_inference(model.to(dev), dev)
    ls = get_labelset(cfg.labelset)
    priors = Priors.load(Path(a.data) / "priors")
    infer = InferenceConfig(device=dev, dtype=resolve_precision(dev, "auto"), flip_tta=a.tta)
    variants = {v: VARIANTS[v] for v in a.variants.split(",")}
    scores: dict[str, dict[str, list[float]]] = {}
    voxels: dict[str, np.ndarray] = {v: np.zeros((2, ls.num_classes)) for v in variants}  # rows: predicted, true
    for i, name in enumerate(a.maps.split(",")):
        raw, tgt, aff = load_label_map(Subject(name, Path(a.data) / f"{name}.nii.gz"), ls)
        for j, (vname, scfg) in enumerate(VARIANTS.items()):
            if vname not in variants:
                continue
            p = sample_params(np.random.default_rng([1234, i, SEED_INDEX.get(vname, j)]), priors, scfg)
            img, y, _ = synthesize(raw, tgt, priors, p, aff)
            pred = postprocess(predict_labels(img, model, ls, infer), img, ls, cleanup=not a.no_cleanup,
                               refine=not a.no_refine_edges)
            voxels[vname] += [np.bincount(pred.ravel(), minlength=ls.num_classes)[:ls.num_classes],
                              np.bincount(y.ravel(), minlength=ls.num_classes)[:ls.num_classes]]
            for c in range(1, ls.num_classes):
                d = dice(pred == c, y == c)
                if not np.isnan(d):
                    scores.setdefault(vname, {}).setdefault(ls.names[c], []).append(d)
            print(name, vname, f"mean Dice {np.mean([dice(pred == c, y == c) for c in range(1, ls.num_classes)]):.4f}",
                  flush=True)
    names = list(ls.names[1:])
    print("\n| structure | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{np.mean(scores[v][n]):.3f}" if n in scores.get(v, {}) else "n/a"
                                       for v in variants) + " |")
    means = {v: float(np.mean([np.mean(x) for x in scores[v].values()])) for v in scores}
    print("| **mean** | " + " | ".join(f"**{means[v]:.3f}**" for v in variants) + " |")
    ratio = {v: {names[c - 1]: round(float(n[0, c] / n[1, c]), 3) for c in range(1, ls.num_classes) if n[1, c] > 0}
             for v, n in voxels.items()}
    if a.json:
        per_structure = {v: {n: float(np.mean(x)) for n, x in s.items()} for v, s in scores.items()}
        Path(a.json).write_text(json.dumps({"per_structure": per_structure, "mean": means, "volume_ratio": ratio,
                                            "tta": a.tta, "cleanup": not a.no_cleanup,
                                            "refine_edges": not a.no_refine_edges and applies_to(ls), "device": dev.type,
                                            "precision": str(infer.dtype).removeprefix("torch.")},
                                           indent=2))


if __name__ == "__main__":
    main()
