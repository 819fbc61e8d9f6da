"""``brainseg parcellate``: segment T1 images with a trained 2.5D network."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from brainsegcli.cli.options import (
    BatchSize,
    Device,
    Force,
    LabelsetOpt,
    Precision,
    Quiet,
    Threads,
    Weights,
    err_console,
    handle_errors,
    out_console,
    setup_threads,
    warn,
)

DEFAULT_LABELSET = "aseg"
LABELSET_ORDER = ("aseg", "tissue", "subcortical", "dkt95")
# architecture used with --allow-untrained when no --model is given
UNTRAINED_DEFAULT = {"tissue": "unet", "subcortical": "deepmrseg", "aseg": "deepmrseg", "dkt95": "deepmrseg"}
SAMPLE_FILE = "mni_icbm152_t1_tal_nlin_sym_09a.nii.gz"


def sample_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("brainsegcli.data").joinpath("sample", SAMPLE_FILE)))


def _no_weights_message(labelset: str, model: str | None) -> str:
    which = f"model {model!r}, label set {labelset!r}" if model else f"label set {labelset!r}"
    return (f"no trained weights are installed for {which}; pass --weights with a brainseg checkpoint "
            "folder (config.json + model.safetensors, e.g. written by `brainseg train`) or a name from "
            "weights_manifest.json; --allow-untrained runs random weights for testing only")


def load_network(model: str | None, labelset: str | None, weights: str | None, allow_untrained: bool, device,
                 notices: list[str] | None = None):
    """(network, labelset name, checkpoint config or None, ModelInfo).

    Warnings about the model (preliminary checkpoint, known limits) go to ``notices`` when given (the caller prints
    them once an input has loaded, so that a bad input gets its one-line error alone), else are printed at once."""
    from brainsegcli.labels import get_labelset
    from brainsegcli.models import create_model, get_spec
    from brainsegcli.pipeline import ModelInfo
    from brainsegcli.types import BrainsegError
    from brainsegcli.weights.checkpoint import load_checkpoint
    from brainsegcli.weights.manifest import default_entry, resolve_weights

    if labelset is not None:
        get_labelset(labelset)  # validates the name
    if model is not None:
        get_spec(model)
    if weights is None and not allow_untrained:
        # without --labelset: the first label set (aseg, tissue, subcortical, dkt95) that has a default
        candidates = [labelset] if labelset else list(LABELSET_ORDER)
        entry = next((e for e in (default_entry(ls, model) for ls in candidates) if e is not None), None)
        if entry is None:
            raise BrainsegError(_no_weights_message(labelset or DEFAULT_LABELSET, model))
        weights = entry["name"]
    if weights is not None:
        resolved = resolve_weights(weights)
        net, cfg = load_checkpoint(resolved.directory, device=device)
        if labelset is not None and cfg.labelset != labelset:
            raise BrainsegError(f"--weights {weights} segments label set {cfg.labelset!r}, not {labelset!r}")
        if model is not None and cfg.architecture != model:
            raise BrainsegError(f"--weights {weights} is a {cfg.architecture!r} model, not {model!r}")
        extra: dict = {"status": resolved.status}
        msgs = []
        if resolved.status == "preliminary":
            summary = _first_sentence(resolved.notes) or "short of its accuracy targets."
            msgs.append(f"{resolved.name} is a preliminary checkpoint: {summary} Model card: "
                        f"`brainseg weights path {resolved.name}`/README.md")
        if resolved.caveats:  # measured biases that change how the volumes should be read
            extra["caveats"] = list(resolved.caveats)
            msgs.append(f"{resolved.name}, known limits: " + "; ".join(c.rstrip(". ") for c in resolved.caveats) + ".")
        for msg in msgs:
            if notices is None:
                warn(msg)
            else:
                notices.append(msg)
        info = ModelInfo(cfg.architecture, resolved.name, resolved.sha256, resolved.source, extra=extra)
        return net, cfg.labelset, cfg, info
    ls = labelset or DEFAULT_LABELSET
    arch = model or UNTRAINED_DEFAULT[ls]
    import torch

    torch.manual_seed(0)
    net = create_model(arch, num_classes=get_labelset(ls).num_classes).to(device).eval()
    return net, ls, None, ModelInfo(arch, None, None, "random initialisation", untrained=True)


def _first_sentence(text: str) -> str:
    """The first sentence of a model card's notes (they run to a paragraph; the warning stays short)."""
    import re

    m = re.search(r"\.\s+(?=[A-Z`])", text)
    first = (text[:m.start() + 1] if m else text).strip()
    return first if not first or first.endswith(".") else first + "."


@handle_errors
def parcellate(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="T1 images (.nii, .nii.gz, .mgz)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder (one sub-folder per input)")] = Path("out"),
    model: Annotated[Optional[str], typer.Option("--model", help="architecture (see `brainseg models`)")] = None,
    weights: Weights = None,
    labelset: LabelsetOpt = None,
    device: Device = "auto",
    precision: Precision = "auto",
    views: Annotated[str, typer.Option("--views", help="comma-separated views to run and fuse")] = "coronal,axial,sagittal",
    batch_size: BatchSize = 8,
    threads: Threads = None,
    sample: Annotated[bool, typer.Option("--sample", help="run on the bundled sample T1 (MNI ICBM152 2009a)")] = False,
    no_crop: Annotated[bool, typer.Option("--no-crop", help="also run the network on empty slices and borders")] = False,
    tta: Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="test-time augmentation: also segment the "
                   "left-right mirrored image and average (twice the network time); default on, off with prompts",
                   show_default=False)] = None,
    allow_untrained: Annotated[bool, typer.Option("--allow-untrained", help="random weights (tests only)")] = False,
    points: Annotated[Optional[list[str]], typer.Option("--points", help="promptable models: x,y,z,label "
                                                        "(label 1 inside, 0 outside); repeatable")] = None,
    box: Annotated[Optional[list[str]], typer.Option("--box", help="promptable models: x0,y0,z0,x1,y1,z1; "
                                                                    "repeatable")] = None,
    prompt_coords: Annotated[str, typer.Option("--prompt-coords", help="voxel (of the input) | ras (mm)")] = "voxel",
    auto_boxes: Annotated[bool, typer.Option("--auto-boxes", help="promptable models: a first pass gives one box "
                                                                  "per structure, fed back as prompts")] = False,
    cleanup: Annotated[bool, typer.Option("--cleanup/--no-cleanup", help="drop labels not connected to the brain "
                       "(face, neck) and stray islands of a structure")] = True,
    refine: Annotated[bool, typer.Option("--refine-edges/--no-refine-edges", help="aseg, dkt95: move the "
                      "hippocampus' edge against the temporal horn and white matter to the image's intensity edge "
                      "(T1-like images only)")] = True,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Segment each INPUT and write labels (native and conformed), volumes.csv, qc.png and report.json."""
    from brainsegcli.inference.device import prepare_for_inference, resolve_device, resolve_precision
    from brainsegcli.inference.predictor import InferenceConfig
    from brainsegcli.io.atomic import check_target, ensure_writable_dir
    from brainsegcli.io.image import check_file, image_stem
    from brainsegcli.labels import get_labelset
    from brainsegcli.types import BrainsegError, Plane

    jobs: list[tuple[Path, str]] = [(Path(p), image_stem(p)) for p in (inputs or [])]
    if sample:
        jobs.append((sample_path(), "sample"))
    if not jobs:
        raise BrainsegError("no input: give one or more T1 images, or --sample")
    stems = [s for _, s in jobs]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise BrainsegError(f"several inputs would write to the same folder {dup[0]!r}; run them separately")
    for path, _ in jobs:
        check_file(path)  # cheap checks first: a missing file is reported before anything is loaded
    plane_list = Plane.parse_list(views)
    setup_threads(threads)
    dev = resolve_device(device)
    dtype = resolve_precision(dev, precision)
    out = ensure_writable_dir(output)
    for _, stem in jobs:
        check_target(out / stem, force)  # refuse before any work is done

    notices: list[str] = []
    net, ls_name, ckpt, info = load_network(model, labelset, weights, allow_untrained, dev, notices)
    if info.untrained:
        notices.append("running UNTRAINED random weights (--allow-untrained): the labels are meaningless")

    def on_loaded() -> None:  # the model's warnings, once, when the first input has loaded
        while notices:
            warn(notices.pop(0))
    ls = get_labelset(ls_name)
    view_weights = {Plane(k): v for k, v in ckpt.input.views.items()} if ckpt else None
    from brainsegcli.pipeline import PromptOptions

    prompt_opts = PromptOptions(list(points or []), list(box or []), prompt_coords, auto_boxes)
    prompted = bool(prompt_opts.points or prompt_opts.boxes or auto_boxes)
    if prompted and not getattr(net, "accepts_prompts", False):
        raise BrainsegError(f"--points/--box/--auto-boxes need a promptable model (lora-sam), not {info.architecture!r}")
    if prompt_coords not in ("voxel", "ras"):
        raise BrainsegError(f"--prompt-coords {prompt_coords}: use voxel or ras")
    if tta and prompted:
        raise BrainsegError("--tta cannot be combined with prompts (a mirrored image would move them)")
    cfg = InferenceConfig(views=tuple(plane_list), view_weights=view_weights,
                          n_slices=ckpt.input.slices if ckpt else 5, batch_size=batch_size, crop=not no_crop,
                          sagittal_lr_merge=ckpt.input.sagittal_lr_merge if ckpt else True, device=dev, dtype=dtype,
                          flip_tta=not prompted if tta is None else tta)
    prepare_for_inference(net, dev)  # eval, batch norm folded into the convolutions, channels-last on CPU

    failures = 0
    for path, stem in jobs:
        try:
            report = _run_one(path, out / stem, net, ls, cfg, info, force, quiet, prompt_opts, cleanup, refine,
                              on_loaded)
        except BrainsegError as exc:
            if len(jobs) == 1:
                raise
            err_console.print(f"error: {exc}", markup=False)
            failures += 1
            continue
        if not quiet:
            secs = report["seconds"]["total"]
            out_console.print(f"{path.name}: {ls.name} labels written to {out / stem} ({secs:.1f} s)", markup=False)
    if failures:
        raise typer.Exit(1)


def _run_one(path, target, net, ls, cfg, info, force, quiet, prompts=None, cleanup=True, refine=True,
             on_loaded=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brainsegcli.pipeline import parcellate_one

    # warnings print with or without --quiet (they are about the result); only the progress bar depends on it
    run = functools.partial(parcellate_one, path, target, net, ls, cfg, info, force=force, prompts=prompts,
                            cleanup=cleanup, refine=refine, warn=warn, on_loaded=on_loaded)
    if quiet:
        return run()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        tasks: dict = {}

        def progress(plane, done, total):
            if plane not in tasks:
                tasks[plane] = bar.add_task(f"{path.name} {plane.value:>8}", total=max(total, 1))
            bar.update(tasks[plane], completed=done)

        return run(progress=progress)
