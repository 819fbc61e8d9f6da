"""The parcellate job for one input: load, conform, infer, bring back to native space, write outputs.

All outputs of one input appear together or not at all (a staged folder renamed at the end).
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from brainsegcli.contrast_check import check_contrast
from brainsegcli.inference.aggregate import normalise_weights
from brainsegcli.inference.cleanup import clean_labels
from brainsegcli.inference.refine import applies_to, refine_edges
from brainsegcli.inference.predictor import InferenceConfig, Network, Progress, predict_labels
from brainsegcli.io.atomic import staged_dir
from brainsegcli.io.conform import conform, to_native
from brainsegcli.io.image import (acquisition_warnings, load_volume, looks_like_label_map, save_volume,
                                  voxel_size_text)
from brainsegcli.labels import LabelSet, indices_to_ids
from brainsegcli.reports import volume_rows, write_json, write_qc_png, write_volumes_csv
from brainsegcli.volume_check import check_volumes

CLEANUP_WARN_MM3 = 5000  # brain-labelled voxels removed by the clean-up above which the user is told

OUTPUT_FILES = ("labels.nii.gz", "labels_conformed.nii.gz", "conformed.nii.gz", "volumes.csv", "qc.png",
                "report.json")


@dataclass
class ModelInfo:
    """What report.json says about the network that ran."""

    architecture: str
    weights_name: str | None
    weights_sha256: str | None
    weights_source: str
    untrained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    import nibabel
    import scipy

    from brainsegcli import __version__

    return {"brainseg": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "nibabel": nibabel.__version__, "scipy": scipy.__version__, "python": sys.version.split()[0],
            "platform": platform.platform()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass
class PromptOptions:
    """Prompts as given on the command line (see brainsegcli.inference.prompts)."""

    points: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    space: str = "voxel"
    auto_boxes: bool = False


def parcellate_one(input_path: Path, target_dir: Path, network: Network, labelset: LabelSet,
                   cfg: InferenceConfig, model_info: ModelInfo, *, force: bool = False,
                   progress: Progress | None = None, warn: Callable[[str], None] | None = None,
                   prompts: PromptOptions | None = None, cleanup: bool = True, refine: bool = True,
                   on_loaded: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the whole job for one input; returns the report dictionary. ``cleanup``: drop labels that are
    not connected to the brain and stray islands of a structure (brainsegcli.inference.cleanup). ``refine``:
    move the hippocampus' edge against the temporal horn to the image's intensity edge
    (brainsegcli.inference.refine; label sets with a hippocampus and both ventricles).
    ``on_loaded`` is called once the input has loaded and passed its checks, before any other work."""
    timings: dict[str, float] = {}
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    t = time.perf_counter()
    vol = load_volume(input_path)
    timings["load"] = time.perf_counter() - t
    if on_loaded:
        on_loaded()
    if looks_like_label_map(vol.data):
        note(f"{input_path}: looks like a label map, not a T1 image; results will be meaningless")
    for msg in acquisition_warnings(vol.shape, vol.spacing):
        note(f"{input_path}: {msg}")

    t = time.perf_counter()
    conf = conform(vol)
    timings["conform"] = time.perf_counter() - t

    if isinstance(network, torch.nn.Module):
        network.eval()
    prompt_info = None
    if prompts is not None and (prompts.points or prompts.boxes or prompts.auto_boxes):
        from brainsegcli.inference.prompts import PromptedNetwork, boxes_from_labels, parse_prompts

        given = parse_prompts(prompts.points, prompts.boxes, prompts.space, conf.native_to_conformed, conf.affine)
        if prompts.auto_boxes:  # first pass without prompts, then one box per structure
            first = predict_labels(conf.data, network, labelset, cfg, progress=progress)
            if cleanup:  # a stray island would stretch its structure's box
                first = clean_labels(first, labelset)[0]
            given.boxes += boxes_from_labels(first).boxes
        network = PromptedNetwork(network, given)
        prompt_info = {"points": len(given.points), "boxes": len(given.boxes), "auto_boxes": prompts.auto_boxes}
    indices = predict_labels(conf.data, network, labelset, cfg, progress=progress, timings=timings)
    cleanup_info: dict[str, Any] = {"applied": cleanup}
    if cleanup:
        t = time.perf_counter()
        indices, stats = clean_labels(indices, labelset)
        timings["cleanup"] = time.perf_counter() - t
        cleanup_info.update(stats.as_dict())
        if stats.removed_brain > CLEANUP_WARN_MM3:
            note(f"{input_path}: {stats.removed_brain / 1000:.1f} ml labelled as brain lay away from the brain (face, "
                 "neck?) and was removed; look at qc.png")
    # the contrast check reads white matter, cortex and lateral ventricles, none of which the edge refinement
    # relabels (hippocampus -> inferior lateral ventricle only): one run gates the refinement and goes in the report
    t = time.perf_counter()
    contrast_check = check_contrast(conf.data, indices_to_ids(indices, labelset), labelset)
    timings["checks"] = time.perf_counter() - t
    refine_info: dict[str, Any] = {"applied": False}
    if refine and applies_to(labelset):
        t = time.perf_counter()
        indices, rstats = refine_edges(indices, conf.data, labelset, contrast=contrast_check)
        timings["edge_refinement"] = time.perf_counter() - t
        refine_info = {"applied": True, **rstats.as_dict()}
    labels_conf = indices_to_ids(indices, labelset)

    t = time.perf_counter()
    labels_native = to_native(labels_conf, conf)
    timings["native_resampling"] = time.perf_counter() - t

    t = time.perf_counter()
    rows = volume_rows(labels_conf, labelset)
    volume_check = check_volumes(rows, labelset)
    if volume_check["summary"]:
        note(f"{input_path}: {volume_check['summary']}; look at qc.png")
    if volume_check["brain_size"]["summary"]:
        note(f"{input_path}: {volume_check['brain_size']['summary']} (it says {voxel_size_text(vol.spacing)} mm "
             "voxels); look at qc.png")
    if contrast_check["summary"]:
        note(f"{input_path}: {contrast_check['summary']}; look at qc.png")
    timings["checks"] += time.perf_counter() - t

    t = time.perf_counter()
    report: dict[str, Any] = {
        "input": {"path": str(Path(input_path).resolve()), "sha256": _sha256(Path(input_path)),
                  "shape": list(vol.shape), "voxel_size_mm": [round(s, 6) for s in vol.spacing],
                  "dtype": vol.meta.get("dtype")},
        "conform": {"passthrough": conf.passthrough, "src_min": conf.src_min, "scale": conf.scale,
                    "rule": "FastSurfer conform: LIA, 1 mm, 256^3, uint8; robust range 0..99.9% of non-zero"},
        "model": {"architecture": model_info.architecture, "weights": model_info.weights_name,
                  "weights_sha256": model_info.weights_sha256, "weights_source": model_info.weights_source,
                  "untrained": model_info.untrained, **model_info.extra},
        "labelset": {"name": labelset.name, "num_classes": labelset.num_classes},
        "inference": {"device": str(cfg.device), "precision": str(cfg.dtype).replace("torch.", ""),
                      "views": [p.value for p in cfg.views],
                      "view_weights": {p.value: round(w, 4) for p, w in normalise_weights(cfg.views, cfg.view_weights).items()},
                      "slices_per_stack": cfg.n_slices, "batch_size": cfg.batch_size, "crop": cfg.crop,
                      "sagittal_lr_merge": cfg.sagittal_lr_merge, "flip_tta": cfg.flip_tta,
                      "threads": torch.get_num_threads(),
                      "native_resampling": "nearest neighbour of the conformed labels",
                      "prompts": prompt_info, "cleanup": cleanup_info, "edge_refinement": refine_info},
        "volumes": {"space": "conformed (1 mm isotropic)",
                    "total_labelled_mm3": rows[-2]["volume_mm3"], "brain_excl_csf_mm3": rows[-1]["volume_mm3"]},
        "qc": {"layout": "top: image, bottom: labels; sagittal (25 mm left of the labelled centre), coronal, "
                         "axial through the labelled centre; radiological (subject's left on the right)",
               "volume_check": volume_check, "contrast_check": contrast_check},
        "warnings": warnings,
        "versions": package_versions(),
    }
    with staged_dir(target_dir, force=force) as tmp:
        save_volume(labels_native, vol.affine, tmp / "labels.nii.gz")
        save_volume(labels_conf, conf.affine, tmp / "labels_conformed.nii.gz")
        save_volume(conf.data, conf.affine, tmp / "conformed.nii.gz")
        write_volumes_csv(tmp / "volumes.csv", rows)
        write_qc_png(tmp / "qc.png", conf.data, labels_conf, labelset)
        timings["write"] = time.perf_counter() - t
        report["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        report["seconds"]["total"] = round(sum(timings.values()), 3)
        report["outputs"] = {name: str((target_dir / name).resolve()) for name in OUTPUT_FILES}
        write_json(tmp / "report.json", report)
    return report
