"""Consistency of a checkpoint on one real T1 acquired differently: the same head reoriented, moved by a fraction
of a voxel, resampled to 1.2 mm, with thick axial or coronal slices, under a bias field, with more noise, or tilted
in the scanner.

No reference labels are needed: each variant (``acquisition.py``) runs through the real ``brainseg parcellate``
(a subprocess; TTA and clean-up as users get), its conformed labels are taken back to the original scan's grid
through the affines (nearest neighbour, the step ``parcellate`` itself uses for ``labels.nii.gz``), and compared
with the labels of the original: Dice per structure, and each structure's volume change (conformed space, 1 mm^3
voxels). The grid ceiling is the same comparison for a perfect model: the original's labels moved onto the
variant's conformed grid by partial volume (``regrid``), then back the same way; a sub-voxel move alone costs small
structures a few Dice points. A model that reads anatomy and not acquisition details scores near 1 and near 0 %;
a scan-rescan pair of the same subject is the real-world analogue.

``float32`` is the same image stored as floats: conform (FastSurfer's rule) rescales the robust intensity range of
a non-uint8 image to 0..255 and leaves uint8 values as they are, so the network sees the same scan brighter or
darker depending on how it was saved. ``reoriented`` stores the same voxels in another axis order: conform
re-centres on the grid centre, which moves by one voxel along a reversed axis of even length (FreeSurfer's rule),
so even it is not exactly 1. ``tilted-*`` turn the head (pitch, roll, yaw in degrees) about the grid centre: the
network sees it tilted, and its labels are taken back through the inverse turn (the synthetic training draws
rotations up to 15 degrees about each axis, so 25 degrees of pitch lies beyond it).

Usage: python benchmarks/eval_consistency.py --t1 T1 --weights W [W ...] [--variants a,b] [--no-tta] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

import acquisition as acq
from brainsegcli.io.conform import resample_labels
from brainsegcli.io.image import load_volume
from brainsegcli.labels import get_labelset
from brainsegcli.metrics import dice
from run_parcellate import run


def _axis_along(affine: np.ndarray, world_axis: int) -> int:
    """The voxel axis closest to world axis 0 (L-R), 1 (P-A) or 2 (I-S)."""
    return int(np.argmax(np.abs(np.asarray(affine, float)[world_axis, :3])))


VARIANTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "float32": lambda d, a: (np.asarray(d, dtype=np.float32), np.asarray(a, float)),
    "reoriented": lambda d, a: acq.reorient(d, a, (2, 0, 1), (True, False, True)),
    "shifted": lambda d, a: acq.shift(d, a, (0.3, -0.4, 0.45)),
    "1.2mm": lambda d, a: acq.resample(d, a, 1.2),
    "thick-axial-4mm": lambda d, a: acq.thick_slices(d, a, _axis_along(a, 2), 4),
    "thick-coronal-3mm": lambda d, a: acq.thick_slices(d, a, _axis_along(a, 1), 3),
    "bias-20%": lambda d, a: acq.bias_field(d, a, 0.2),
    "bias-40%": lambda d, a: acq.bias_field(d, a, 0.4),
    "noise-3%": lambda d, a: acq.rician_noise(d, a, 0.03),
    "noise-6%": lambda d, a: acq.rician_noise(d, a, 0.06),
    "tilted-15deg": lambda d, a: acq.tilt(d, a, (15, 5, 5)),
    "tilted-25deg": lambda d, a: acq.tilt(d, a, (25, 0, 0)),
}
MOVED = {n for n in VARIANTS if n.startswith("tilted-")}  # they move the head in the world (same voxels, new affine)


def regrid(labels: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray, shape) -> np.ndarray:
    """Labels moved onto another grid by partial volume: each label's indicator resampled trilinearly, the largest
    share wins (background included). What a perfect model would draw on that grid. Exact ties (a half-voxel
    move puts a voxel half in each of two labels) are broken at random, not by label order, so that no label
    grows at the expense of another."""
    from scipy.ndimage import affine_transform

    m = np.linalg.inv(np.asarray(src_affine, float)) @ np.asarray(dst_affine, float)  # dst voxel -> src voxel
    nz = np.argwhere(labels != 0)
    out = np.zeros(tuple(shape), np.int32)
    if not len(nz):
        return out
    s_lo, s_hi = np.maximum(nz.min(0) - 2, 0), np.minimum(nz.max(0) + 3, labels.shape)
    corners = np.array([[a, b, c, 1.0] for a in (s_lo[0], s_hi[0]) for b in (s_lo[1], s_hi[1])
                        for c in (s_lo[2], s_hi[2])]).T
    d = (np.linalg.inv(m) @ corners)[:3]
    d_lo = np.clip(np.floor(d.min(1)).astype(int), 0, shape)
    d_hi = np.clip(np.ceil(d.max(1)).astype(int) + 1, 0, shape)
    crop = labels[s_lo[0]:s_hi[0], s_lo[1]:s_hi[1], s_lo[2]:s_hi[2]]
    offset = m[:3, :3] @ d_lo + m[:3, 3] - s_lo
    size = tuple(int(x) for x in d_hi - d_lo)
    best = np.zeros(size, np.float32)
    win = np.zeros(size, np.int32)
    rng = np.random.default_rng(0)
    for i in np.unique(crop):
        p = affine_transform((crop == i).astype(np.float32), m[:3, :3], offset, output_shape=size, order=1,
                             mode="constant", cval=1.0 if i == 0 else 0.0)
        p += rng.uniform(0.0, 1e-5, size).astype(np.float32)
        take = p > best
        win[take], best[take] = i, p[take]
    out[d_lo[0]:d_hi[0], d_lo[1]:d_hi[1], d_lo[2]:d_hi[2]] = win
    return out


def compare(ref: np.ndarray, ref_conformed: np.ndarray, pred: np.ndarray, pred_conformed: np.ndarray,
            ids, names) -> dict:
    """Per-structure Dice (ref grid) and volume change in % (conformed space) of a variant against the original."""
    per = {}
    for i, name in zip(ids, names):
        if i == 0 or not (ref == i).any():
            continue
        v0, v1 = int((ref_conformed == i).sum()), int((pred_conformed == i).sum())
        per[name] = {"dice": round(float(dice(pred == i, ref == i)), 4),
                     "volume_change_pct": round(100.0 * (v1 - v0) / v0, 2) if v0 else None}
    d = [p["dice"] for p in per.values()]
    dv = [abs(p["volume_change_pct"]) for p in per.values() if p["volume_change_pct"] is not None]
    worst = min(per, key=lambda n: per[n]["dice"])
    return {"mean_dice": round(float(np.mean(d)), 4), "worst": [worst, per[worst]["dice"]],
            "mean_abs_volume_change_pct": round(float(np.mean(dv)), 2), "structures": per}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--t1", required=True)
    ap.add_argument("--weights", nargs="+", required=True, help="manifest names or checkpoint folders")
    # argparse %-formats help texts, and two variant names hold a "%"
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset of " + ", ".join(VARIANTS).replace("%", "%%"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    names = [v for v in a.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    vol = load_volume(a.t1)
    results: dict = {"t1": a.t1, "tta": not a.no_tta, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {}
        for name in names:
            data, affine = VARIANTS[name](np.asarray(vol.data), vol.affine)
            path = Path(tmp) / f"{name.replace('%', 'pct')}.nii.gz"
            nib.save(nib.Nifti1Image(data, affine), str(path))
            inputs[name] = path, acq.head_move(vol.affine, affine) if name in MOVED else np.eye(4)
        for w in a.weights:
            base = run(a.t1, w, tta=not a.no_tta, threads=a.threads)
            ls = get_labelset(base.report["labelset"]["name"])
            model = results["models"][w] = {"labelset": ls.name}
            for name, (path, move) in inputs.items():
                out = run(path, w, tta=not a.no_tta, threads=a.threads)
                to_ref = np.linalg.inv(move @ vol.affine) @ out.conformed_affine  # variant conformed -> original voxel
                back = resample_labels(out.labels_conformed, to_ref, vol.shape)
                r = model[name] = compare(base.labels, base.labels_conformed, back, out.labels_conformed,
                                          ls.ids, ls.names)
                ideal = regrid(base.labels_conformed, move @ base.conformed_affine, out.conformed_affine,
                               out.labels_conformed.shape)
                c = compare(base.labels, base.labels_conformed, resample_labels(ideal, to_ref, vol.shape), ideal,
                            ls.ids, ls.names)
                r["ceiling"] = {k: c[k] for k in ("mean_dice", "worst", "mean_abs_volume_change_pct")}
                print(f"{w:>18} {name:>18}: mean Dice {r['mean_dice']:.3f} (grid ceiling {c['mean_dice']:.3f}; "
                      f"worst {r['worst'][0]} {r['worst'][1]:.3f}), mean |volume change| "
                      f"{r['mean_abs_volume_change_pct']:.1f} % (ceiling {c['mean_abs_volume_change_pct']:.1f} %)",
                      flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
