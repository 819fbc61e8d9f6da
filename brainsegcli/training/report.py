"""Run-folder reports: model card (Hugging Face README with YAML front matter) and learning curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from brainsegcli.io.atomic import atomic_write_bytes, atomic_write_text
from brainsegcli.reports import encode_png
from brainsegcli.weights.checkpoint import CheckpointConfig


def model_card(ck: CheckpointConfig, params: tuple[int, int]) -> str:
    tr = ck.extra.get("training", {})
    m = ck.extra.get("metrics", {})
    lines = [
        "---",
        "license: apache-2.0",
        "library_name: brainseg",
        "pipeline_tag: image-segmentation",
        "tags:", "- medical-imaging", "- brain-mri", "- segmentation", f"- {ck.labelset}", f"- {ck.architecture}",
    ]
    if "base_model" in ck.extra:
        lines.append(f"base_model: {ck.extra['base_model']}")
    if isinstance(m.get("val_dice"), float) and not math.isnan(m["val_dice"]):
        lines += ["model-index:", f"- name: {ck.name}", "  results:", "  - task:", "      type: image-segmentation",
                  "    dataset:", "      name: held-out validation subjects", "      type: custom",
                  "    metrics:", "    - type: dice", f"      value: {m['val_dice']:.4f}"]
    lines += ["---", "", f"# {ck.name}", "",
              f"brainseg `{ck.architecture}` checkpoint for the `{ck.labelset}` label set "
              f"({params[0]:,} parameters, {params[1]:,} trainable).", "",
              "Input: FastSurfer-conformed T1 (LIA, 1 mm, 256³, uint8), "
              f"{ck.input.slices}-slice stacks, views {ck.input.views}, intensities {ck.input.intensity}.", "",
              "## Training", "",
              f"- recipe: `{tr.get('recipe')}`; epochs {tr.get('epoch')}, iterations {tr.get('step')}",
              f"- synthetic images from label maps: {tr.get('synthetic')}",
              f"- training subjects: {', '.join(tr.get('train_subjects', []))}",
              f"- validation subjects (held out): {', '.join(tr.get('val_subjects', []))}",
              f"- command: `{tr.get('command', '')}`"]
    for stage in training_stages(tr)[:-1][::-1]:
        lines.append(f"- started from `{stage.get('checkpoint') or stage.get('name')}` (its epoch {stage.get('epoch')}, "
                     f"{stage.get('step')} iterations), trained with: `{stage.get('command', '')}`")
    lines += ["", "## Validation", ""]
    if m:
        lines.append(f"- loss {m.get('val_loss', float('nan')):.4f}, mean Dice {m.get('val_dice', float('nan')):.4f}")
        for name, d in sorted(m.get("val_class_dice", {}).items()):
            lines.append(f"  - {name}: {d:.4f}")
    return "\n".join(lines) + "\n"


def training_stages(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain of ``--init-from`` trainings that led to a checkpoint, earliest first (each stage's
    own training block, without the nested chain)."""
    stages = []
    t: dict[str, Any] | None = training
    while t:
        stages.append({k: v for k, v in t.items() if k != "init_training"})
        t = t.get("init_training")
    return stages[::-1]


def write_model_card(directory: Path, ck: CheckpointConfig, params: tuple[int, int]) -> Path:
    return atomic_write_text(Path(directory) / "README.md", model_card(ck, params))


def _plot(panel: np.ndarray, series: list[tuple[list[float], tuple[int, int, int]]], lo: float, hi: float) -> None:
    h, w, _ = panel.shape
    for frac in (0.25, 0.5, 0.75):
        panel[int((1 - frac) * (h - 1)), :] = 60
    panel[[0, -1], :] = 160
    panel[:, [0, -1]] = 160
    for values, color in series:
        v = np.asarray(values, dtype=float)
        if v.size == 0:
            continue
        xs = np.linspace(0, w - 1, max(v.size, 2))
        ys = (1 - (np.clip(v, lo, hi) - lo) / max(hi - lo, 1e-9)) * (h - 1)
        if v.size == 1:
            xs, ys = xs[:1], np.repeat(ys, 1)
        fine_x = np.linspace(xs[0], xs[-1], 4 * w)
        fine_y = np.interp(fine_x, xs, ys) if v.size > 1 else np.full_like(fine_x, ys[0])
        ok = np.isfinite(fine_y)
        for dx in (0, 1):
            for dy in (0, 1):
                panel[np.clip(fine_y[ok].astype(int) + dy, 0, h - 1), np.clip(fine_x[ok].astype(int) + dx, 0, w - 1)] = color


def write_learning_curve(path: Path, history: list[dict[str, Any]]) -> Path:
    """Left: training (orange) and validation (blue) loss, scaled to their range; right: validation
    Dice on 0..1 (green), gridlines at quarters. The numbers are in metrics.jsonl."""
    h, w = 240, 360
    img = np.zeros((h, 2 * w + 10, 3), np.uint8)
    tl = [m["train_loss"] for m in history]
    vl = [m.get("val_loss", math.nan) for m in history]
    finite = [v for v in tl + vl if isinstance(v, float) and math.isfinite(v)]
    hi = max(finite) if finite else 1.0
    _plot(img[:, :w], [(tl, (255, 160, 40)), (vl, (80, 160, 255))], 0.0, hi)
    _plot(img[:, w + 10:], [([m.get("val_dice", math.nan) for m in history], (80, 220, 80))], 0.0, 1.0)
    return atomic_write_bytes(path, encode_png(img))
