"""Segmentation metrics: pure functions on boolean masks / label arrays with explicit edge cases.

Definitions (all distances in mm, using the voxel spacing):

* boundary of a mask = mask XOR its erosion with the 6-connected structuring element (voxels
  outside the array count as background, so a mask touching the array edge has a boundary there);
* directed surface distances A->B = for every boundary voxel of A, the Euclidean distance to the
  nearest boundary voxel of B;
* HD = max of both directed maxima; HD95 = max of both directed 95th percentiles (numpy's linear
  interpolation) -- the same numbers as MONAI's ``compute_hausdorff_distance(percentile=95)``;
* ASSD = (sum of both directed distance sets) / (number of boundary voxels of A and B);
* empty cases: both masks empty -> every metric NaN; exactly one empty -> Dice 0, IoU 0 and all
  distances +inf.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

METRIC_NAMES = ("dice", "iou", "hd95", "hd", "assd")


@dataclass
class LabelMetrics:
    dice: float
    iou: float
    hd95: float
    hd: float
    assd: float
    volume_pred_mm3: float
    volume_ref_mm3: float
    volume_diff_mm3: float
    rel_volume_diff: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    sp, sr = int(p.sum()), int(r.sum())
    if sp + sr == 0:
        return math.nan
    return 2.0 * int(np.logical_and(p, r).sum()) / (sp + sr)


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    union = int(np.logical_or(p, r).sum())
    if union == 0:
        return math.nan
    return int(np.logical_and(p, r).sum()) / union


def boundary(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion, generate_binary_structure

    m = np.asarray(mask, bool)
    if not m.any():
        return m.copy()
    eroded = binary_erosion(m, structure=generate_binary_structure(m.ndim, 1), border_value=0)
    return m ^ eroded


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels of ``mask`` grown by ``margin`` voxels on every side (clipped to the
    grid); None when ``mask`` is empty. Shared by metrics, inference clean-up and the training generator."""
    m = np.asarray(mask, bool)
    box = []
    for ax in range(m.ndim):
        nz = np.flatnonzero(m.any(axis=tuple(i for i in range(m.ndim) if i != ax)))
        if not nz.size:
            return None
        box.append(slice(max(int(nz[0]) - margin, 0), min(int(nz[-1]) + margin + 1, m.shape[ax])))
    return tuple(box)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (pred->ref, ref->pred). Both masks must be non-empty."""
    from scipy.ndimage import distance_transform_edt

    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * p.ndim
    # crop to the union (+1 voxel) and pad with background: identical to the full-array result
    box = bounding_box(p | r, 1)
    p = np.pad(p[box], 1)
    r = np.pad(r[box], 1)
    bp, br = boundary(p), boundary(r)
    d_to_r = distance_transform_edt(~br, sampling=spacing)
    d_to_p = distance_transform_edt(~bp, sampling=spacing)
    return d_to_r[bp], d_to_p[br]


def distance_metrics(pred: np.ndarray, ref: np.ndarray, spacing=None) -> tuple[float, float, float]:
    """(HD95, HD, ASSD) with the module's edge-case rules."""
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    ep, er = not p.any(), not r.any()
    if ep and er:
        return math.nan, math.nan, math.nan
    if ep or er:
        return math.inf, math.inf, math.inf
    a, b = surface_distances(p, r, spacing)
    hd95 = max(float(np.percentile(a, 95)), float(np.percentile(b, 95)))
    hd = max(float(a.max()), float(b.max()))
    assd = float((a.sum() + b.sum()) / (a.size + b.size))
    return hd95, hd, assd


def label_metrics(pred: np.ndarray, ref: np.ndarray, spacing=None) -> LabelMetrics:
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * np.ndim(pred)
    vox = float(np.prod(spacing))
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    vp, vr = float(p.sum()) * vox, float(r.sum()) * vox
    hd95, hd, assd = distance_metrics(p, r, spacing)
    rel = (vp - vr) / vr if vr > 0 else (math.nan if vp == 0 else math.inf)
    return LabelMetrics(dice(p, r), iou(p, r), hd95, hd, assd, vp, vr, vp - vr, rel)


def evaluate_labels(pred: np.ndarray, ref: np.ndarray, label_ids, spacing=None) -> dict[int, LabelMetrics]:
    """Metrics for each label ID (background 0 is skipped if listed)."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch {pred.shape} vs {ref.shape}")
    return {int(i): label_metrics(pred == i, ref == i, spacing) for i in label_ids if int(i) != 0}


def summarize(values) -> dict[str, float | int]:
    """mean/sd/median over finite values; counts of NaN (both empty) and inf (one empty) cases."""
    v = np.asarray(list(values), dtype=float)
    finite = v[np.isfinite(v)]
    return {
        "mean": float(finite.mean()) if finite.size else math.nan,
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size == 1 else math.nan),
        "median": float(np.median(finite)) if finite.size else math.nan,
        "n": int(finite.size),
        "n_nan": int(np.isnan(v).sum()),
        "n_inf": int(np.isinf(v).sum()),
    }


def volumes(labels: np.ndarray, label_ids, spacing=(1.0, 1.0, 1.0)) -> dict[int, tuple[int, float]]:
    """label ID -> (voxel count, volume in mm^3)."""
    vox = float(np.prod(spacing))
    arr = np.asarray(labels)
    counts = np.bincount(arr.ravel().astype(np.int64), minlength=max(int(i) for i in label_ids) + 1)
    return {int(i): (int(counts[int(i)]), float(counts[int(i)]) * vox) for i in label_ids}
