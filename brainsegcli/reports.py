"""Outputs a person reads: volumes table (CSV), QC picture (PNG), run report (JSON)."""

from __future__ import annotations

import csv
import io
import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from brainsegcli.io.atomic import atomic_write_bytes, atomic_write_text
from brainsegcli.labels import LabelSet


# ---------------------------------------------------------------------------------------------
# JSON with non-finite numbers as strings (so the file stays valid JSON)
# ---------------------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------------------------
def volume_rows(labels: np.ndarray, labelset: LabelSet, spacing=(1.0, 1.0, 1.0)) -> list[dict[str, Any]]:
    """One row per structure of the label set (label IDs in ``labels``), then two totals."""
    vox = float(np.prod(spacing))
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=max(labelset.ids) + 1)
    rows = []
    total = brain = 0
    for lid, name in zip(labelset.ids[1:], labelset.names[1:]):
        n = int(counts[lid])
        rows.append({"label_id": lid, "name": name, "voxels": n, "volume_mm3": round(n * vox, 3)})
        total += n
        if not labelset.is_csf(lid):
            brain += n
    rows.append({"label_id": "", "name": "TotalLabelled", "voxels": total, "volume_mm3": round(total * vox, 3)})
    rows.append({"label_id": "", "name": "BrainVolumeExclCSF", "voxels": brain, "volume_mm3": round(brain * vox, 3)})
    return rows


def write_volumes_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["label_id", "name", "voxels", "volume_mm3"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# PNG (no imaging dependency: zlib + struct)
# ---------------------------------------------------------------------------------------------
def encode_png(rgb: np.ndarray) -> bytes:
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("encode_png takes an (H, W, 3) uint8 array")
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _display_slices(volume: np.ndarray, centre) -> list[np.ndarray]:
    """Sagittal, coronal, axial slices of a conformed (LIA) array, superior/anterior up,
    radiological convention (subject's left on the viewer's right). The sagittal slice is 25 mm into
    the left hemisphere (the midline shows little of the brain's tissue)."""
    x, y, z = (int(c) for c in centre)
    x = min(x + 25, volume.shape[0] - 1)
    sag = volume[x, :, ::-1]          # rows: superior->inferior, cols: anterior->posterior
    cor = volume[:, :, z].T            # rows: superior->inferior, cols: right->left
    axi = volume[:, y, ::-1].T         # rows: anterior->posterior, cols: right->left
    return [sag, cor, axi]


def qc_image(image: np.ndarray, labels: np.ndarray, labelset: LabelSet, alpha: float = 0.45,
             scale: int = 2) -> np.ndarray:
    """Two rows (image alone; image with label overlay) x three views through the labelled brain's centre."""
    lab = np.asarray(labels)
    fg = np.argwhere(lab > 0)
    centre = fg.mean(axis=0).round().astype(int) if len(fg) else np.array(image.shape) // 2
    lut = np.zeros((max(labelset.ids) + 1, 3), np.uint8)
    lut[list(labelset.ids)] = labelset.lut_rgb()
    gray_panels, over_panels = [], []
    for g, l in zip(_display_slices(image, centre), _display_slices(lab, centre)):
        g3 = np.repeat(g.astype(np.float32)[..., None], 3, axis=2)
        col = lut[np.clip(l, 0, len(lut) - 1)].astype(np.float32)
        m = (l > 0)[..., None]
        over = np.where(m, (1 - alpha) * g3 + alpha * col, g3)
        gray_panels.append(g3)
        over_panels.append(over)
    rows = [np.concatenate(gray_panels, axis=1), np.concatenate(over_panels, axis=1)]
    out = np.clip(np.concatenate(rows, axis=0), 0, 255).astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def write_qc_png(path: str | Path, image: np.ndarray, labels: np.ndarray, labelset: LabelSet) -> Path:
    return atomic_write_bytes(path, encode_png(qc_image(image, labels, labelset)))
