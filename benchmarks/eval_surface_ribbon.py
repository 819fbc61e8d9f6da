"""Cortex and white-matter Dice on a real T1 scan against that subject's own FreeSurfer surfaces.

The reference is FreeSurfer's ribbon, rebuilt from the white and pial surfaces (``surface_ribbon.py``):
cortex = inside the pial surface and outside the white one, per hemisphere; "white interior" = inside the
white surface. One ready-made subject: pycortex's demo subject S1 (``pycortex`` sdist on PyPI, 70 MB:
``filestore/db/S1/anatomicals/raw.nii.gz`` is FreeSurfer's T1.mgz of that subject -- whole head,
intensity-normalised -- and ``surfaces/{wm,pia}_{lh,rh}.gii`` its white and pial surfaces in scanner RAS).

Scores, from the labels the real ``brainseg parcellate`` writes (a subprocess; clean-up and TTA as users get):

- aseg-style label sets (cortex labels 3/42 or DKT parcels): cortex Dice per hemisphere, and the Dice of the
  white interior against the structures FreeSurfer's filled volume holds (cerebral WM, lateral ventricle,
  thalamus, caudate, putamen, pallidum, accumbens, ventral DC, vessel, choroid plexus); hippocampus and
  amygdala lie outside the white surface in FreeSurfer and are not counted.
- tissue classes (a tissue model, or an aseg one merged to tissue): GM and WM Dice within a band of ``--band``
  mm around the ribbon (reference GM = ribbon, WM = white interior, anything else = other). The band keeps the
  comparison to the cortex, where the surfaces define the truth; deep grey nuclei are outside it, but the
  cerebellar cortex within the band below the occipital and temporal lobes counts against GM.

Usage: python benchmarks/eval_surface_ribbon.py --t1 S1/anatomicals/raw.nii.gz
       --white S1/surfaces/wm_lh.gii S1/surfaces/wm_rh.gii --pial S1/surfaces/pia_lh.gii S1/surfaces/pia_rh.gii
       --weights aseg-unet tissue-unet [--no-tta] [--no-cleanup] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import distance_transform_edt, map_coordinates

from brainsegcli.labels import get_labelset, map_labels
from brainsegcli.metrics import dice
from run_parcellate import parcellate
from surface_ribbon import mesh_inside, read_surface

INTERIOR = {"lh": (2, 4, 10, 11, 12, 13, 26, 28, 30, 31), "rh": (41, 43, 49, 50, 51, 52, 58, 60, 62, 63)}
CORTEX = {"lh": (3, range(1000, 2000)), "rh": (42, range(2000, 3000))}


def reference(t1: Path, white: list[str], pial: list[str], coords: str) -> dict:
    """Per-hemisphere (inside-white, inside-pial) masks on the T1's grid."""
    img = nib.load(t1)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if coords == "tkr":
        if not hasattr(img.header, "get_vox2ras_tkr"):
            raise SystemExit("--coords tkr needs the FreeSurfer volume (.mgz) the surfaces were made from")
        to_vox = np.linalg.inv(img.header.get_vox2ras_tkr())
    else:
        to_vox = np.linalg.inv(img.affine)
    masks, check = {}, {}
    for hemi, w_path, p_path in zip(("lh", "rh"), white, pial):
        for kind, path in (("white", w_path), ("pial", p_path)):
            verts, faces = read_surface(path)
            vox = verts @ to_vox[:3, :3].T + to_vox[:3, 3]
            masks[hemi, kind], odd = mesh_inside(vox, faces, img.shape[:3])
            check[hemi, kind] = float(map_coordinates(data, vox.T, order=1).mean())
            if odd:
                print(f"warning: {path}: {odd} rays cross the mesh an odd number of times (not watertight?)")
    for hemi in ("lh", "rh"):  # the white surface lies on brighter tissue than the pial one in a T1
        if not check[hemi, "white"] > check[hemi, "pial"]:
            raise SystemExit(f"{hemi}: mean T1 on the white surface {check[hemi, 'white']:.1f} is not above the "
                             f"pial one {check[hemi, 'pial']:.1f}: wrong --coords?")
    print("mean T1 on the surfaces: " + ", ".join(f"{h} {k} {v:.1f}" for (h, k), v in check.items()))
    return masks


def score(labels: np.ndarray, labelset: str, masks: dict, band_mm: float) -> dict:
    out: dict = {}
    white = masks["lh", "white"] | masks["rh", "white"]
    ribbon = {h: masks[h, "pial"] & ~masks[h, "white"] for h in ("lh", "rh")}
    if labelset != "tissue" and (np.isin(labels, [3, 42]).any() or (labels >= 1000).any()):
        for h in ("lh", "rh"):
            single, parcels = CORTEX[h]
            cortex = (labels == single) | ((labels >= parcels.start) & (labels < parcels.stop))
            out[f"cortex_{h}"] = dice(cortex, ribbon[h])
            out[f"white_interior_{h}"] = dice(np.isin(labels, INTERIOR[h]), masks[h, "white"])
            out[f"cortex_{h}_ml_pred_ref"] = [round(cortex.sum() / 1000, 1), round(ribbon[h].sum() / 1000, 1)]
    if labelset != "subcortical":
        tissue = labels if labelset == "tissue" else map_labels(labels, get_labelset("tissue"), "freesurfer")[0]
        rib = ribbon["lh"] | ribbon["rh"]
        band = distance_transform_edt(~rib) <= band_mm
        out["band_gm"] = dice((tissue == 2) & band, rib)
        out["band_wm"] = dice((tissue == 3) & band, white & band)
    return {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--t1", required=True, type=Path)
    ap.add_argument("--white", nargs=2, required=True, metavar=("LH", "RH"))
    ap.add_argument("--pial", nargs=2, required=True, metavar=("LH", "RH"))
    ap.add_argument("--coords", choices=("scanner", "tkr"), default="scanner",
                    help="surface coordinates: scanner RAS (pycortex GIfTI) or FreeSurfer tkr (lh.white, ...)")
    ap.add_argument("--weights", nargs="+", required=True)
    ap.add_argument("--band", type=float, default=3.0)
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--no-cleanup", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    masks = reference(a.t1, a.white, a.pial, a.coords)
    results = {}
    for w in a.weights:
        labels, report = parcellate(a.t1, w, tta=not a.no_tta, cleanup=not a.no_cleanup, threads=a.threads)
        labelset = report["labelset"]["name"]
        results[w] = {"labelset": labelset, **score(labels, labelset, masks, a.band)}
        print(w, json.dumps(results[w]))
    if a.json:
        Path(a.json).write_text(json.dumps({"t1": str(a.t1), "tta": not a.no_tta, "cleanup": not a.no_cleanup,
                                            "band_mm": a.band, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
