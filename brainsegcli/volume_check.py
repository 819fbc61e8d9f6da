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

Fractions cannot see a brain that is wrong as a whole, and that is what a wrong voxel size in the header gives (an
image declared at 1.5 mm that was acquired at 1 mm makes every structure 3.4 times too large, fractions unchanged).
So the brain itself is also compared in millilitres (``check_brain_size``): it is flagged below the reference
minimum / ``SIZE_FACTOR`` or above the maximum * ``SIZE_FACTOR``. The 20 reference brains span 798-1413 ml (1.8-fold,
SD 13 %); the bundled MNI152 sample, a brain enlarged by the registration to MNI space, measures about
1590 ml.

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
SIZE_FACTOR = 1.5  # the brain in ml: flag below reference min / SIZE_FACTOR or above reference max * SIZE_FACTOR
SUMMARY_NAMES = 5  # structures named in the one-line warning
UNCHECKED = {"aseg": ("CSF",), "tissue": ("CSF",)}  # classes that hold extra-cerebral CSF


def _structures(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {r["label_id"]: r for r in rows if r["label_id"] != ""}


def _brain_mm3(by_id: dict[Any, dict[str, Any]], labelset: LabelSet) -> float:
    return sum(r["volume_mm3"] for lid, r in by_id.items() if not labelset.is_csf(lid))


def brain_ml(rows: list[dict[str, Any]], labelset: LabelSet) -> float:
    """The label set's brain in ml: its structures other than CSF (for ``subcortical`` the sum of its 12
    structures), from ``volume_rows`` output."""
    return _brain_mm3(_structures(rows), labelset) / 1000.0


def brain_fractions(rows: list[dict[str, Any]], labelset: LabelSet) -> dict[str, float]:
    """Per mille of the label set's brain (``brain_ml``) for each structure except the unchecked ones, from
    ``volume_rows`` output. Empty without brain."""
    by_id = _structures(rows)
    brain = _brain_mm3(by_id, labelset)
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


def brain_norms_for(labelset: LabelSet) -> dict[str, float] | None:
    """Reference statistics (mean, sd, min, max; ml) of the label set's brain, or None without them."""
    entry = _bundled_norms()["labelsets"].get(labelset.name)
    return None if entry is None else entry["brain_ml"]


def check_brain_size(rows: list[dict[str, Any]], labelset: LabelSet) -> dict[str, Any]:
    """Is the brain as a whole of a plausible size? JSON-ready: ``checked``, ``brain_ml``, ``ref_min_ml`` /
    ``ref_max_ml``, ``verdict`` (None, "far below" or "far above") and ``summary`` (one line, or None)."""
    ref = brain_norms_for(labelset)
    value = brain_ml(rows, labelset)
    if ref is None or value <= 0:
        reason = f"no reference volumes for label set {labelset.name!r}" if ref is None else "no brain labelled"
        return {"checked": False, "reason": reason, "verdict": None, "summary": None}
    verdict = ("far below" if value < ref["min"] / SIZE_FACTOR else
               "far above" if value > ref["max"] * SIZE_FACTOR else None)
    summary = None
    if verdict:
        what = "its 12 structures measure" if labelset.name == "subcortical" else "the brain (all but CSF) measures"
        summary = (f"{what} {value:.0f} ml, {verdict} the {ref['min']:.0f}-{ref['max']:.0f} ml of the "
                   f"{_bundled_norms()['n_maps']} reference adult brains: check the voxel size in the image header")
    return {"checked": True, "brain_ml": round(value, 1), "ref_min_ml": ref["min"], "ref_max_ml": ref["max"],
            "factor": SIZE_FACTOR, "verdict": verdict, "summary": summary}


def check_volumes(rows: list[dict[str, Any]], labelset: LabelSet) -> dict[str, Any]:
    """The check for one segmentation (``rows``: ``volume_rows`` of it). Returns a JSON-ready dictionary:
    ``checked`` (bool), ``flags`` ({structure: {"per_mille", "ref_min", "ref_max", "verdict"}}), ``summary``
    (one line naming the flagged structures, or None) and ``brain_size`` (``check_brain_size``)."""
    norms = norms_for(labelset)
    size = check_brain_size(rows, labelset)
    if norms is None:
        return {"checked": False, "reason": f"no reference volumes for label set {labelset.name!r}",
                "flags": {}, "summary": None, "brain_size": size}
    fractions = brain_fractions(rows, labelset)
    if not fractions:
        return {"checked": False, "reason": "no brain labelled", "flags": {},
                "summary": "no brain structure was labelled", "brain_size": size}
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
    return {"checked": True, "flags": flags, "summary": summary, "brain_size": size,
            "unit": "per mille of the label set's structures other than CSF (BrainVolumeExclCSF in volumes.csv)"}
