"""GM/WM Dice of a tissue checkpoint (or an aseg one, merged to tissue classes) on a real T1: the
bundled MNI ICBM152 2009a sample, against the template's own grey/white-matter probability maps
(shipped in the nilearn wheel: ``pip download --no-deps nilearn`` and unzip
``nilearn/datasets/data/mni_icbm152_{gm,wm}_*``).

The checkpoint runs through the real ``brainseg parcellate`` command (a subprocess), so conform, inference, view
fusion, clean-up and the return to native space are the ones users get.

Reference: WM where p(WM) > 0.5, GM where p(GM) > 0.5 and not WM (the maps are 0..255).
Caveat: the template is an average of 152 brains, smoother than a single scan. The printed confusion table
(reference rows x predicted columns, with the sample's median intensity per cell) shows where the disagreement lies,
e.g. blurred sulci: reference GM (an average of 152 classifications) at an intensity between CSF and GM.

Usage: python benchmarks/eval_mni_tissue.py --weights NAME_OR_DIR --gm GM.nii.gz --wm WM.nii.gz [--no-tta]
       [--no-cleanup] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brainsegcli.cli.parcellate import sample_path
from brainsegcli.io.image import load_volume
from brainsegcli.labels import get_labelset, map_labels
from brainsegcli.metrics import dice
from run_parcellate import parcellate


def reference(gm_path: str, wm_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(GM, WM) masks from the 0..255 probability maps: WM where p(WM) > 0.5, GM where p(GM) > 0.5 and not WM."""
    gm = np.asarray(load_volume(gm_path, kind="labels").data, dtype=float)
    wm = np.asarray(load_volume(wm_path, kind="labels").data, dtype=float)
    ref_wm = wm > 127
    return (gm > 127) & ~ref_wm, ref_wm


def confusion(pred: np.ndarray, ref_gm: np.ndarray, ref_wm: np.ndarray, image: np.ndarray) -> dict:
    """Voxel counts and median image intensity of each (reference GM / WM / other) x (predicted class 0-3) cell."""
    rows = {"GM": ref_gm, "WM": ref_wm, "other": ~ref_gm & ~ref_wm}
    columns = {name: pred == cls for cls, name in enumerate(("background", "CSF", "GM", "WM"))}
    out = {}
    for row, ref in rows.items():
        out[row] = {}
        for col, predicted in columns.items():
            values = image[ref & predicted]
            out[row][col] = {"voxels": int(values.size),
                             "median_intensity": round(float(np.median(values)), 1) if values.size else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--gm", required=True)
    ap.add_argument("--wm", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--no-cleanup", action="store_true", help="score the raw network output (parcellate --no-cleanup)")
    ap.add_argument("--json")
    a = ap.parse_args()
    ref_gm, ref_wm = reference(a.gm, a.wm)
    pred, report = parcellate(sample_path(), a.weights, tta=not a.no_tta, cleanup=not a.no_cleanup,
                              threads=a.threads)
    if pred.shape != ref_gm.shape:
        raise SystemExit(f"the tissue maps ({ref_gm.shape}) are not on the sample's grid ({pred.shape})")
    labelset = report["labelset"]["name"]
    if labelset != "tissue":  # e.g. aseg: cortex and grey nuclei -> GM, white matter -> WM (as for training)
        pred, _ = map_labels(pred, get_labelset("tissue"), "freesurfer")
    result = {"weights": a.weights, "labelset": labelset, "tta": not a.no_tta,
              "cleanup": report["inference"]["cleanup"]["applied"],
              "gm_dice": round(float(dice(pred == 2, ref_gm)), 4),
              "wm_dice": round(float(dice(pred == 3, ref_wm)), 4),
              "gm_voxels_pred_ref": [int((pred == 2).sum()), int(ref_gm.sum())],
              "wm_voxels_pred_ref": [int((pred == 3).sum()), int(ref_wm.sum())],
              "confusion": confusion(pred, ref_gm, ref_wm, np.asarray(load_volume(sample_path()).data, dtype=float))}
    print(f"GM Dice {result['gm_dice']:.4f}, WM Dice {result['wm_dice']:.4f} (pred GM {result['gm_voxels_pred_ref'][0]} "
          f"vox, ref {result['gm_voxels_pred_ref'][1]}; pred WM {result['wm_voxels_pred_ref'][0]}, "
          f"ref {result['wm_voxels_pred_ref'][1]})")
    print("reference \\ predicted: voxels (median sample intensity)")
    for row, cells in result["confusion"].items():
        print(f"  {row:5s} " + "  ".join(f"{k} {c['voxels']} ({c['median_intensity']})" for k, c in cells.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
