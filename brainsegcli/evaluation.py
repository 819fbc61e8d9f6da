"""Evaluate predicted label maps against references: per-label metrics and summaries."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from brainsegcli.io.atomic import atomic_write_text
from brainsegcli.io.conform import resample_labels
from brainsegcli.io.image import load_volume
from brainsegcli.io.table import read_path_table
from brainsegcli.labels import LABELSET_NAMES, LabelSet, get_labelset, map_labels
from brainsegcli.metrics import METRIC_NAMES, evaluate_labels, summarize
from brainsegcli.types import BrainsegError, Volume

FIELDS = ("dice", "iou", "hd95", "hd", "assd", "volume_pred_mm3", "volume_ref_mm3", "volume_diff_mm3",
          "rel_volume_diff")


def guess_labelset(values) -> LabelSet:
    """The smallest label set that contains every value of the prediction."""
    vals = set(int(v) for v in values)
    for name in LABELSET_NAMES:
        ls = get_labelset(name)
        if vals <= set(ls.ids):
            return ls
    raise BrainsegError(f"the prediction's labels fit no label set ({sorted(vals)[:8]}...); give --labelset")


def _as_int(vol: Volume, what: str) -> np.ndarray:
    a = np.asarray(vol.data)
    if a.dtype.kind == "f":
        if np.any(a != np.round(a)):
            raise BrainsegError(f"{vol.path}: the {what} has non-integer values; is it an intensity image?")
        a = a.astype(np.int64)
    return a


def load_pair(pred_path: Path, gt_path: Path, resample_pred: bool) -> tuple[np.ndarray, np.ndarray, Volume]:
    pred = load_volume(pred_path, kind="labels")
    gt = load_volume(gt_path, kind="labels")
    p, g = _as_int(pred, "prediction"), _as_int(gt, "reference")
    same = p.shape == g.shape and np.allclose(pred.affine, gt.affine, atol=1e-3)
    if not same:
        if not resample_pred:
            raise BrainsegError(f"{pred_path} and {gt_path} are on different grids (shape {p.shape} vs "
                                f"{g.shape}); use --resample-pred to resample the prediction (nearest neighbour)")
        m = np.linalg.inv(gt.affine) @ pred.affine  # pred voxel -> gt voxel
        p = resample_labels(p, m, g.shape)
    return p, g, gt


def evaluate_pair(pred_path: Path, gt_path: Path, labelset: str = "auto", gt_from: str | None = None,
                  resample_pred: bool = False) -> dict[str, Any]:
    p, g, gt = load_pair(pred_path, gt_path, resample_pred)
    ls = guess_labelset(np.unique(p)) if labelset == "auto" else get_labelset(labelset)
    warnings: list[str] = []
    if gt_from:
        g, unknown = map_labels(g, ls, "auto" if gt_from == "freesurfer" else gt_from)
        if unknown:
            warnings.append(f"reference labels {unknown[:10]} have no mapping rule and were treated as background")
    else:
        extra = sorted(set(np.unique(g).tolist()) - set(ls.ids))
        if extra:
            raise BrainsegError(f"{gt_path}: labels {extra[:10]} are not in label set {ls.name!r}; use "
                                "--gt-from freesurfer to map a FreeSurfer/SynthSeg label map")
    extra = sorted(set(np.unique(p).tolist()) - set(ls.ids))
    if extra:
        raise BrainsegError(f"{pred_path}: labels {extra[:10]} are not in label set {ls.name!r}")
    per = evaluate_labels(p, g, ls.ids, gt.spacing)
    labels = {str(i): {"name": ls.names[ls.index_of(i)], **m.as_dict()} for i, m in per.items()}
    summary = {k: summarize(v[k] for v in labels.values()) for k in METRIC_NAMES}
    return {"pred": str(pred_path), "gt": str(gt_path), "labelset": ls.name,
            "spacing_mm": list(gt.spacing), "labels": labels, "summary": summary, "warnings": warnings}


def read_pairs(list_csv: Path) -> list[tuple[Path, Path]]:
    pairs = [(r["pred"], r["gt"]) for r in read_path_table(list_csv, ("pred", "gt"))]
    if not pairs:
        raise BrainsegError(f"{list_csv}: no rows")
    return pairs  # type: ignore[return-value]


def summarize_subjects(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean/sd per label across subjects and overall (over every subject x label)."""
    ids = sorted({i for r in results for i in r["labels"]}, key=int)
    labels = {}
    for i in ids:
        rows = [r["labels"][i] for r in results if i in r["labels"]]
        labels[i] = {"name": rows[0]["name"], **{k: summarize(row[k] for row in rows) for k in FIELDS}}
    overall = {k: summarize(r["labels"][i][k] for r in results for i in r["labels"]) for k in METRIC_NAMES}
    return {"labelset": results[0]["labelset"], "n_subjects": len(results), "subjects": results,
            "labels": labels, "summary": overall}


def csv_text(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pred", "gt", "label_id", "name", *FIELDS])
    for r in results:
        for i, m in r["labels"].items():
            w.writerow([r["pred"], r["gt"], i, m["name"], *[_fmt(m[k]) for k in FIELDS]])
    return buf.getvalue()


def _fmt(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def write_csv(path: Path, results: list[dict[str, Any]]) -> None:
    atomic_write_text(path, csv_text(results))
