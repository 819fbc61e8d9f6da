"""Maintainer tool: the reference volume fractions behind ``parcellate``'s volume check (brainsegcli.volume_check).

Usage: python scripts/make_volume_norms.py [--maps ../shared/data/synthseg] [--out brainsegcli/data/volume_norms.json]

Each FreeSurfer-labelled map is mapped to every label set with reference volumes (as for training), its structures
are measured with the same ``volume_rows`` that writes volumes.csv, and each structure's per-mille of the label set's
brain is summarised over the maps (mean, sample sd, min, max), and so is the label set's brain itself in ml.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brainsegcli.io.image import load_volume
from brainsegcli.labels import get_labelset, map_labels
from brainsegcli.reports import volume_rows
from brainsegcli.volume_check import brain_fractions, brain_ml

ROOT = Path(__file__).resolve().parents[1]
LABELSETS = ("tissue", "subcortical", "aseg")
BRAIN = "brain_ml"  # the key of the brain's own size; no structure has that name


def map_fractions(path: Path) -> dict[str, dict[str, float]]:
    """{label set: {structure: per mille, and "brain_ml": the label set's brain in ml}} for one label map."""
    vol = load_volume(path, kind="labels")
    out = {}
    for name in LABELSETS:
        ls = get_labelset(name)
        ids, unknown = map_labels(np.asarray(vol.data), ls)
        if unknown:
            raise SystemExit(f"{path}: labels {unknown[:10]} have no mapping into {name!r}")
        rows = volume_rows(ids, ls, vol.spacing)
        out[name] = {**brain_fractions(rows, ls), BRAIN: brain_ml(rows, ls)}
    return out


def summarise(per_map: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    names = per_map[0].keys()
    stats = {}
    for n in names:
        v = np.array([m[n] for m in per_map])
        stats[n] = {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)), 4),
                    "min": round(float(v.min()), 4), "max": round(float(v.max()), 4)}
    return stats


def _entry(stats: dict[str, dict[str, float]]) -> dict[str, dict]:
    brain = stats.pop(BRAIN)
    return {"structures": stats, BRAIN: {k: round(v, 1) for k, v in brain.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--maps", type=Path, default=ROOT.parent / "shared" / "data" / "synthseg")
    ap.add_argument("--out", type=Path, default=ROOT / "brainsegcli" / "data" / "volume_norms.json")
    a = ap.parse_args()
    maps = sorted(a.maps.glob("training_seg_*.nii.gz"))
    if not maps:
        raise SystemExit(f"no training_seg_*.nii.gz label maps in {a.maps}")
    rows = [map_fractions(p) for p in maps]
    doc = {"source": "SynthSeg training label maps (BBillot/SynthSeg data/training_label_maps, commit 66342c1; "
                     "Apache-2.0): 20 real brains labelled with FreeSurfer's protocol",
           "maps": [p.name for p in maps], "n_maps": len(maps),
           "unit": "per mille of the label set's structures other than CSF",
           "labelsets": {ls: _entry(summarise([r[ls] for r in rows])) for ls in LABELSETS}}
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out} from {len(maps)} maps")


if __name__ == "__main__":
    main()
