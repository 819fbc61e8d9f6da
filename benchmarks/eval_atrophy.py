"""Does a checkpoint measure atrophy? Held-out label maps are given enlarged lateral ventricles or thinner
hippocampi, synthetic T1 images are made from each version with the *same* generator draw (same contrast,
deformation, bias, noise), and the volume the checkpoint measures is compared with the true one.

Volumetry studies (ageing, Alzheimer's disease) rest on volume *differences*: a model that draws every ventricle
at the size it saw in training, or shrinks a thin hippocampus less than it shrank, under-reports the change even
when its Dice is high. The 20 SynthSeg maps span lateral ventricles of 6-83 ml and hippocampi of 4.0-10.2 ml (both
sides together); the largest ventricles are in held-out ``training_seg_18`` (83 ml), so the 17 training maps reach
75 ml and ``ventricles-6`` on that map (146 ml) lies beyond anything the networks were trained on.

Changes (``brainsegcli.training.atrophy``, which training can also apply: ``--synth-config '{"p_atrophy": ...}'``):
``ventricles-N`` grows each lateral ventricle N voxels into its hemisphere's white matter; ``hippocampus-N`` takes N
layers off each hippocampus where it faces white matter or the temporal horn, and makes them inferior lateral
ventricle (the hippocampal atrophy and temporal-horn widening of Alzheimer's disease).

Per map, version and structure: true and measured volume (ml) and Dice; the summary gives the measured change
against the true change from the unchanged map (``measured / true`` change: 1 = the atrophy is measured in full).

Usage: python benchmarks/eval_atrophy.py --weights aseg-unet [--maps ...] [--levels ventricles-2,...] [--tta]
       [--no-refine-edges] [--json F]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from brainsegcli.inference.device import prepare_for_inference, resolve_device, resolve_precision
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.inference.refine import postprocess
from brainsegcli.labels import get_labelset
from brainsegcli.metrics import dice
from brainsegcli.training.atrophy import apply_atrophy
from brainsegcli.training.data import Subject, load_label_map
from brainsegcli.training.synth import Priors, sample_params, synthesize
from brainsegcli.weights.checkpoint import load_checkpoint
from brainsegcli.weights.manifest import resolve_weights
from eval_synth import SHARED, VARIANTS

WATCH = {"ventricles": ("Left-Lateral-Ventricle", "Right-Lateral-Ventricle"),
         "hippocampus": ("Left-Hippocampus", "Right-Hippocampus", "Left-Inf-Lat-Vent", "Right-Inf-Lat-Vent")}


def parse_level(level: str) -> tuple[int, int]:
    """(ventricle steps, hippocampus steps) of ``none``, ``ventricles-N`` or ``hippocampus-N``: the arguments of
    ``apply_atrophy``, the change training applies."""
    if level == "none":
        return 0, 0
    kind, _, n = level.rpartition("-")
    if kind not in WATCH or not n.isdigit():
        raise ValueError(f"{level!r}: expected ventricles-N or hippocampus-N")
    return (int(n), 0) if kind == "ventricles" else (0, int(n))


def summarise(rows: list[dict], names: list[str]) -> list[dict]:
    """Per level and structure, over the maps: true and measured change from the unchanged map, in ml and as
    measured / true."""
    base = {(r["map"], n): r["volumes"][n] for r in rows if r["level"] == "none" for n in names}
    out = []
    for level in dict.fromkeys(r["level"] for r in rows if r["level"] != "none"):
        for n in names:
            t = m = 0.0
            for r in rows:
                if r["level"] == level and (r["map"], n) in base and n in r["volumes"]:
                    t += r["volumes"][n]["true_ml"] - base[r["map"], n]["true_ml"]
                    m += r["volumes"][n]["measured_ml"] - base[r["map"], n]["measured_ml"]
            if abs(t) > 0.05:
                out.append({"level": level, "structure": n, "true_change_ml": round(t, 2),
                            "measured_change_ml": round(m, 2), "measured_over_true": round(m / t, 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--maps", default="training_seg_18,training_seg_19,training_seg_20")
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--levels", default="ventricles-2,ventricles-4,ventricles-6,hippocampus-1")
    ap.add_argument("--variant", default="t1-head", choices=list(VARIANTS), help="generator settings (eval_synth)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--no-refine-edges", action="store_true", help="as parcellate --no-refine-edges")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    levels = ["none"] + [x for x in a.levels.split(",") if x]
    try:
        steps = {lv: parse_level(lv) for lv in levels}
    except ValueError as e:
        ap.error(str(e))
    torch.set_num_threads(a.threads)
    model, cfg = load_checkpoint(resolve_weights(a.weights).directory)
    dev = resolve_device("cpu")
    model = prepare_for_inference(model.to(dev), dev)
    ls = get_labelset(cfg.labelset)
    priors = Priors.load(Path(a.data) / "priors")
    infer = InferenceConfig(device=dev, dtype=resolve_precision(dev, "auto"), flip_tta=a.tta)
    watch = sorted({n for lv in levels[1:] for n in WATCH[lv.rpartition("-")[0]] if n in ls.names},
                   key=ls.names.index)
    rows = []
    seed = list(VARIANTS).index(a.variant)
    for i, name in enumerate(a.maps.split(",")):
        raw0, tgt0, aff = load_label_map(Subject(name, Path(a.data) / f"{name}.nii.gz"), ls)
        p = sample_params(np.random.default_rng([1234, i, seed]), priors, VARIANTS[a.variant])
        for lv in levels:
            raw, tgt = apply_atrophy(raw0, tgt0, *steps[lv])
            img, y, _ = synthesize(raw, tgt, priors, p, aff)
            pred = postprocess(predict_labels(img, model, ls, infer), img, ls, refine=not a.no_refine_edges)
            vols = {}
            for n in watch:
                c = ls.names.index(n)
                vols[n] = {"true_ml": float((y == c).sum()) / 1000, "measured_ml": float((pred == c).sum()) / 1000,
                           "dice": round(float(dice(pred == c, y == c)), 4)}
            rows.append({"map": name, "level": lv, "volumes": vols})
            print(name, lv, "  ".join(f"{n} {v['true_ml']:.2f}->{v['measured_ml']:.2f} ml (Dice {v['dice']:.3f})"
                                       for n, v in vols.items()), flush=True)
    summary = summarise(rows, watch)
    print("\n| change | structure | true change (ml) | measured change (ml) | measured / true |")
    print("| --- | --- | --- | --- | --- |")
    for s in summary:
        print(f"| {s['level']} | {s['structure']} | {s['true_change_ml']:+.2f} | {s['measured_change_ml']:+.2f} | "
              f"{s['measured_over_true']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"weights": a.weights, "tta": a.tta, "variant": a.variant,
                                            "refine_edges": not a.no_refine_edges, "rows": rows,
                                            "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
