"""Are the structure volumes of a real-scan segmentation in the range of FreeSurfer-labelled brains?

A protocol-independent check for real T1 scans that have no reference labels: each structure's volume, as a
fraction of the labelled brain, is compared with the same fraction in the 20 real FreeSurfer-labelled SynthSeg
maps (``../shared/data/synthseg``, mapped to the ``aseg`` set exactly as for training). A fraction outside the
[min, max] of those 20 brains, or far from their mean, flags a structure that a model systematically over- or
under-segments on real images (volumes scale with head size; fractions of the brain much less so).

The brain is the sum of the ``aseg`` structures except extra-cerebral CSF (24), whose extent depends on the field of
view and skull stripping. A ``subcortical`` segmentation has no brain of its own: pass the ``aseg`` segmentation of
the same scan with ``--brain-from``.

Usage: python benchmarks/eval_volume_norms.py LABELS.nii.gz [LABELS ...] [--brain-from ASEG.nii.gz [ASEG ...]]
       [--maps ../shared/data/synthseg] [--json out.json]
(LABELS: ``labels.nii.gz`` or ``labels_conformed.nii.gz`` written by ``brainseg parcellate``; FreeSurfer ids.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from brainsegcli.io.image import check_file, load_volume
from brainsegcli.labels import get_labelset, map_labels
from brainsegcli.metrics import volumes
from brainsegcli.types import BrainsegError

ASEG = get_labelset("aseg")
BRAIN_IDS = tuple(i for i in ASEG.ids if i not in (0, 24))
NAME = dict(zip(ASEG.ids, ASEG.names))
DEFAULT_MAPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg"


def volumes_ml(labels: np.ndarray, spacing) -> dict[int, float]:
    """Volume (ml) of every ``aseg`` id in an integer label map with FreeSurfer ids (``spacing``: voxel size, mm)."""
    return {i: mm3 / 1000.0 for i, (_, mm3) in volumes(labels, ASEG.ids, spacing).items()}


def fractions(vol: dict[int, float], brain_ml: float) -> dict[int, float]:
    """Per-mille of the brain for each structure present in ``vol`` (brain 0: no fractions)."""
    if brain_ml <= 0:
        raise ValueError("the brain volume is zero: no aseg structures in the segmentation")
    return {i: 1000.0 * v / brain_ml for i, v in vol.items() if i in BRAIN_IDS}


def brain_ml(vol: dict[int, float]) -> float:
    return float(sum(vol.get(i, 0.0) for i in BRAIN_IDS))


def reference_fractions(maps: list[Path]) -> dict[int, np.ndarray]:
    """Per-mille of the brain per structure in each label map (rows: maps), after mapping to ``aseg``."""
    rows = []
    for path in maps:
        labels, spacing = _load(path)
        vol = volumes_ml(map_labels(labels, ASEG)[0], spacing)
        rows.append(fractions(vol, brain_ml(vol)))
    return {i: np.array([r.get(i, 0.0) for r in rows]) for i in BRAIN_IDS}


def compare(pred: dict[int, float], ref: dict[int, np.ndarray]) -> dict[str, dict]:
    """Each predicted structure against the reference distribution: z-score and whether it lies in [min, max]."""
    out = {}
    for i, p in pred.items():
        r = ref[i]
        sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
        out[NAME[i]] = {
            "per_mille": round(p, 3), "ref_mean": round(float(r.mean()), 3), "ref_sd": round(sd, 3),
            "ref_min": round(float(r.min()), 3), "ref_max": round(float(r.max()), 3),
            "z": round((p - float(r.mean())) / sd, 2) if sd > 0 else None,
            "in_range": bool(r.min() <= p <= r.max()),
        }
    return out


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    vol = load_volume(path, kind="labels")
    return vol.data, vol.spacing


def report(labels: Path, brain_from: Path | None, ref: dict[int, np.ndarray]) -> dict:
    vol = volumes_ml(*_load(labels))
    brain = brain_ml(volumes_ml(*_load(brain_from)) if brain_from else vol)
    result = compare(fractions({i: v for i, v in vol.items() if v > 0}, brain), ref)
    return {"labels": str(labels), "brain_from": str(brain_from) if brain_from else None, "brain_ml": round(brain, 1),
            "structures": result, "outside_range": [n for n, r in result.items() if not r["in_range"]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", type=Path, nargs="+")
    ap.add_argument("--brain-from", type=Path, nargs="+",
                    help="aseg segmentation of the same scan, one per LABELS (for the brain volume)")
    ap.add_argument("--maps", type=Path, default=DEFAULT_MAPS, help="folder of FreeSurfer-labelled maps")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.brain_from and len(a.brain_from) != len(a.labels):
        sys.exit("--brain-from needs one aseg segmentation per LABELS file")
    try:
        for p in [*a.labels, *(a.brain_from or [])]:
            check_file(p)  # before the reference maps' minutes of work
        maps = sorted(a.maps.glob("*.nii.gz"))
        if not maps:
            sys.exit(f"no label maps (*.nii.gz) in {a.maps}")
        ref = reference_fractions(maps)
        reports = [report(lab, a.brain_from[k] if a.brain_from else None, ref) for k, lab in enumerate(a.labels)]
    except BrainsegError as exc:
        sys.exit(str(exc))
    for rep in reports:
        print(f"{rep['labels']}: brain {rep['brain_ml']:.0f} ml; per mille of the brain, against {len(maps)} "
              "FreeSurfer-labelled brains")
        print(f"{'structure':30s} {'pred':>7s} {'mean':>7s} {'sd':>6s} {'min':>7s} {'max':>7s} {'z':>6s}")
        for n, r in rep["structures"].items():
            z = r["z"] if r["z"] is not None else float("nan")
            print(f"{n:30s} {r['per_mille']:7.2f} {r['ref_mean']:7.2f} {r['ref_sd']:6.2f} {r['ref_min']:7.2f} "
                  f"{r['ref_max']:7.2f} {z:6.2f}{'' if r['in_range'] else '  outside'}")
    if a.json:
        a.json.write_text(json.dumps({"reference_maps": len(maps), "reports": reports}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
