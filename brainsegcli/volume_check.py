"""Are a segmentation's structure volumes plausible? A check against 20 real FreeSurfer-labelled brains.

A network that fails on a scan (wrong contrast, unusual field of view, a bad conform) rarely fails silently in its
volumes: structures go missing or swell. Each structure's volume is taken as a fraction (per mille) of the label
set's brain -- its structures other than CSF, the ``BrainVolumeExclCSF`` row of volumes.csv -- and compared with the
same fraction in the 20 whole-head label maps SynthSeg was trained from (FreeSurfer protocol, mapped to the label
set exactly as for training). Fractions rather than millilitres, so head size does not matter.

Rules (``check_volumes``):
- *not found*: a structure that every reference brain has (reference minimum > 0) has no voxel;
- *far below* / *far above*: its fraction is below half the reference minimum or above twice the reference maximum;
- CSF classes that include extra-cerebral CSF (``aseg`` ``CSF``, ``tissue`` ``CSF``) are not checked: their extent
  depends on the field of view and skull stripping, not on the anatomy;
- a label set without reference fractions (``dkt95``) or a segmentation without brain is reported as unchecked.

The margins are wide on purpose: the reference is only 20 brains, so ventricles of an atrophied brain can lie
outside them for real; a flag says "look at qc.png", not "wrong". Within the margins a model's own biases pass (on
five real T1 scans no bundled model strays more than 1.22 times outside the reference range; docs/inference.md).

The reference table is package data (``data/volume_norms.json``) made by ``scripts/make_volume_norms.py``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from brainsegcli.labels import LabelSet

FAR_FACTOR = 2.0  # flag below reference min / FAR_FACTOR or above reference max * FAR_FACTOR
SUMMARY_NAMES = 5  # structures named in the one-line warning
UNCHECKED = {"aseg": ("CSF",), "tissue": ("CSF",)}  # classes that hold extra-cerebral CSF


def brain_fractions(rows: list[dict[str, Any]], labelset: LabelSet) -> dict[str, float]:
    """Per mille of the label set's brain (its structures other than CSF; for ``subcortical`` the sum of its 12
    structures) for each structure except the unchecked ones, from ``volume_rows`` output. Empty without brain."""
    by_id = {r["label_id"]: r for r in rows if r["label_id"] != ""}
    brain = sum(r["volume_mm3"] for lid, r in by_id.items() if not labelset.is_csf(lid))
    if brain <= 0:
        return {}
    skip = UNCHECKED.get(labelset.name, ())
    return {r["name"]: 1000.0 * r["volume_mm3"] / brain for r in by_id.values() if r["name"] not in skip}


@functools.lru_cache(maxsize=1)
def _bundled_norms() -> dict[str, Any]:
    return json.loads(resources.files("brainsegcli.data").joinpath("volume_norms.json").read_text())


def norms_for(labelset: LabelSet) -> dict[str, dict[str, float]] | None:
    """Reference per-mille statistics (mean, sd, min, max) per structure, or None for a label set without them."""
    entry = _bundled_norms()["labelsets"].get(labelset.name)
    return None if entry is None else entry["structures"]


def check_volumes(rows: list[dict[str, Any]], labelset: LabelSet) -> dict[str, Any]:
    """The check for one segmentation (``rows``: ``volume_rows`` of it). Returns a JSON-ready dictionary:
    ``checked`` (bool), ``flags`` ({structure: {"per_mille", "ref_min", "ref_max", "verdict"}}) and ``summary``
    (one line naming the flagged structures, or None)."""
    norms = norms_for(labelset)
    if norms is None:
        return {"checked": False, "reason": f"no reference volumes for label set {labelset.name!r}",
                "flags": {}, "summary": None}
    fractions = brain_fractions(rows, labelset)
    if not fractions:
        return {"checked": False, "reason": "no brain labelled", "flags": {},
                "summary": "no brain structure was labelled"}
    flags = {}
    for name, ref in norms.items():
        value = fractions.get(name, 0.0)
        if value == 0.0 and ref["min"] > 0:
            verdict = "not found"
        elif value < ref["min"] / FAR_FACTOR:
            verdict = "far below"
        elif value > ref["max"] * FAR_FACTOR:
            verdict = "far above"
        else:
            continue
        flags[name] = {"per_mille": round(value, 3), "ref_min": ref["min"], "ref_max": ref["max"], "verdict": verdict}
    summary = None
    if flags:
        named = [f"{n} ({f['verdict']})" for n, f in flags.items()]
        extra = len(named) - SUMMARY_NAMES
        tail = f" and {extra} more (report.json qc.volume_check)" if extra > 0 else ""
        summary = (f"{len(named)} structure volume(s) far outside the range of the reference brains: "
                   + ", ".join(named[:SUMMARY_NAMES]) + tail)
    return {"checked": True, "flags": flags, "summary": summary,
            "unit": "per mille of the label set's structures other than CSF (BrainVolumeExclCSF in volumes.csv)"}
