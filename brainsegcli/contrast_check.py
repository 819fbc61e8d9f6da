"""Does the input look T1-weighted? A check on the intensities under the labels a model has just drawn.

The bundled models were trained on T1-weighted images (and a share of random contrasts), and on a T2-weighted, FLAIR
or proton-density image, or an infant T1 with inverted grey/white contrast, they still return a full label map with
no error. What gives such an input away is the order of the tissue intensities: in a T1-weighted image white matter
is brighter than grey matter and grey matter brighter than CSF; T2 and FLAIR put grey matter above white matter
(T2 and PD also CSF above grey matter).

Rules (``check_contrast``), on the conformed image the network saw:
- each tissue's intensity is the median over its labels eroded by one voxel (no partial volume with neighbours):
  white matter, grey matter and CSF as the label set defines them (``aseg`` / ``dkt95``: cerebral white matter,
  cerebral cortex or its parcels, lateral ventricles; ``tissue``: its three classes);
- the image is called T1-like when grey matter is darker than white matter *and* CSF darker than grey matter
  (ratios below 1); otherwise it is flagged, naming the ratio that failed;
- a label set without those classes (``subcortical``: deep grey matter only, whose intensity order T1 contrast
  does not fix) or a segmentation with fewer than ``MIN_VOXELS`` voxels of one of them after erosion is unchecked;
- a ratio whose denominator is zero is reported as None and fails (a tissue labelled on an empty background).

The bound is the contrast's definition, not a tuned margin: on real T1 scans grey matter lies at 0.66-0.79 of white
matter (docs/inference.md), and 99 % of the generator's T1 draws below 0.95, so a flag means an inverted order, not a
weak T1 contrast. The labels come from the model under test, so on a badly segmented image the medians mix tissues:
the check tells a T1 image from another contrast, not a good segmentation from a bad one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brainsegcli.labels import LabelSet

MIN_VOXELS = 1000  # eroded voxels a tissue needs for its median to count
TISSUES = ("white matter", "grey matter", "CSF")


def eroded_median(image: np.ndarray, labels: np.ndarray, ids) -> tuple[float, int]:
    """Median of ``image`` inside the voxels of ``labels`` in ``ids``, eroded by one voxel (6-neighbourhood),
    and the number of voxels it was taken over (NaN and 0 when none is left)."""
    from scipy.ndimage import binary_erosion

    mask = np.isin(labels, np.asarray(tuple(ids)))
    if not mask.any():
        return float("nan"), 0
    # erode inside the mask's bounding box (+1 voxel): the same result as on the whole volume, far less work
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(mask))
    inside = binary_erosion(mask[box])
    n = int(inside.sum())
    return (float(np.median(image[box][inside])) if n else float("nan")), n


def tissue_ids(labelset: LabelSet) -> dict[str, tuple[int, ...]] | None:
    """Label ids of white matter, grey matter and CSF for the check, or None when the set lacks one of them."""
    if labelset.name == "tissue":
        by_name = dict(zip(labelset.names, labelset.ids))
        return {"white matter": (by_name["WM"],), "grey matter": (by_name["GM"],), "CSF": (by_name["CSF"],)}
    ids = labelset.ids
    groups = {"white matter": tuple(i for i in ids if i in (2, 41)),
              "grey matter": tuple(i for i in ids if i in (3, 42) or 1000 <= i < 3000),
              "CSF": tuple(i for i in ids if i in (4, 43))}
    return groups if all(groups.values()) else None


def check_contrast(image: np.ndarray, labels: np.ndarray, labelset: LabelSet) -> dict[str, Any]:
    """The check for one segmentation: ``image`` the conformed image, ``labels`` its label ids on the same grid.
    Returns a JSON-ready dictionary: ``checked``, ``t1_like``, ``medians``, ``ratios`` and ``summary`` (one line
    saying why the image does not look T1-weighted, or None)."""
    groups = tissue_ids(labelset)
    if groups is None:
        return {"checked": False, "reason": f"label set {labelset.name!r} has no white matter, grey matter and CSF "
                                            "classes", "t1_like": None, "summary": None}
    img = np.asarray(image, dtype=np.float32)
    medians, counts = {}, {}
    for name in TISSUES:
        medians[name], counts[name] = eroded_median(img, labels, groups[name])
    few = [n for n in TISSUES if counts[n] < MIN_VOXELS]
    if few:
        return {"checked": False, "reason": f"fewer than {MIN_VOXELS} voxels of {', '.join(few)} after erosion",
                "voxels": counts, "t1_like": None, "summary": None}
    wm, gm, csf = (medians[n] for n in TISSUES)
    ratios = {"grey_over_white": gm / wm if wm > 0 else None, "csf_over_grey": csf / gm if gm > 0 else None}
    failed = []
    for key, what in (("grey_over_white", "grey matter is not darker than white matter"),
                      ("csf_over_grey", "CSF is not darker than grey matter")):
        r = ratios[key]
        if r is None or r >= 1.0:
            failed.append(f"{what} (median ratio {'undefined' if r is None else f'{r:.2f}'})")
    summary = None
    if failed:
        summary = ("the image does not look T1-weighted: " + " and ".join(failed)
                   + "; models trained on T1 (every bundled one) are much less accurate on other contrasts")
    return {"checked": True, "t1_like": not failed, "medians": {n: round(v, 2) for n, v in medians.items()},
            "ratios": {k: None if v is None else round(v, 3) for k, v in ratios.items()}, "voxels": counts,
            "summary": summary,
            "rule": "T1-like: median grey matter < white matter and CSF < grey matter (labels eroded by one voxel)"}
