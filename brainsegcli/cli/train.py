"""``brainseg train``: train or fine-tune a model on local data or on synthetic images from label maps."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from brainsegcli.cli.options import Device, Force, LabelsetOpt, Precision, Quiet, Threads, err_console, \
    handle_errors, out_console, setup_threads

_F = typer.Option


def _floats(text: str | None) -> list[float] | None:
    return None if not text else [float(t) for t in text.split(",")]


@handle_errors
def train(
    out: Annotated[Optional[Path], _F("--out", "-o", help="run folder (checkpoints, metrics, curves)")] = None,
    model: Annotated[Optional[str], _F("--model", help="architecture (see `brainseg models`)")] = None,
    labelset: LabelsetOpt = None,
    recipe: Annotated[Optional[str], _F("--recipe", help="lora-sam | brainsegnet | tissue | deepmrseg")] = None,
    synth: Annotated[Optional[Path], _F("--synth", help="folder of label maps: train on synthetic images "
                                                         "(SynthSeg priors read from its priors/ if present)")] = None,
    pairs: Annotated[Optional[Path], _F("--pairs", help="CSV with columns image,labels[,name]")] = None,
    freesurfer: Annotated[Optional[Path], _F("--freesurfer", help="FreeSurfer SUBJECTS_DIR")] = None,
    bids: Annotated[Optional[Path], _F("--bids", help="BIDS derivatives folder (*_T1w + *_dseg)")] = None,
    val: Annotated[int, _F("--val", min=1, help="number of held-out validation subjects")] = 3,
    val_subjects: Annotated[Optional[str], _F("--val-subjects", help="comma-separated held-out names")] = None,
    epochs: Annotated[Optional[int], _F("--epochs", min=1)] = None,
    steps_per_epoch: Annotated[int, _F("--steps-per-epoch", min=1)] = 200,
    batch_size: Annotated[Optional[int], _F("--batch-size", min=1)] = None,
    lr: Annotated[Optional[float], _F("--lr")] = None,
    weight_decay: Annotated[Optional[float], _F("--weight-decay")] = None,
    warmup: Annotated[Optional[int], _F("--warmup", help="warm-up iterations")] = None,
    ce_weight: Annotated[Optional[float], _F("--ce-weight", help="alpha of alpha*CE + beta*Dice")] = None,
    dice_weight: Annotated[Optional[float], _F("--dice-weight", help="beta of alpha*CE + beta*Dice")] = None,
    class_weights: Annotated[Optional[str], _F("--class-weights", help="comma-separated CE weights")] = None,
    model_args: Annotated[Optional[str], _F("--model-args", help='architecture arguments as JSON, e.g. '
                                                                 '\'{"features": [16, 32, 64]}\'')] = None,
    synth_config: Annotated[Optional[str], _F("--synth-config", help='synthetic-image settings as JSON, e.g. '
                                                                     '\'{"p_t1_contrast": 0.8}\' (see SynthConfig)')] = None,
    no_unet_skips: Annotated[bool, _F("--no-unet-skips", help="brainsegnet ablation")] = False,
    no_aspp: Annotated[bool, _F("--no-aspp", help="brainsegnet ablation")] = False,
    no_csa: Annotated[bool, _F("--no-csa", help="brainsegnet ablation")] = False,
    no_boundary: Annotated[bool, _F("--no-boundary", help="brainsegnet ablation")] = False,
    views: Annotated[str, _F("--views", help="views to train on")] = "coronal,axial,sagittal",
    crop: Annotated[Optional[int], _F("--crop", help="random in-plane crop size (default: whole slice)")] = None,
    stacks_per_volume: Annotated[int, _F("--stacks-per-volume", min=1, help="stacks drawn from each volume")] = 64,
    volumes_per_batch: Annotated[int, _F("--volumes-per-batch", min=1, help="each batch mixes the last N "
                                                                            "volumes")] = 4,
    seed: Annotated[int, _F("--seed")] = 0,
    device: Device = "auto",
    precision: Precision = "auto",
    threads: Threads = None,
    workers: Annotated[Optional[int], _F("--workers", min=1, help="threads making the next training volumes "
                                                                 "ahead (results do not depend on it); "
                                                                 "default 1")] = None,
    init_from: Annotated[Optional[str], _F("--init-from", help="checkpoint to fine-tune")] = None,
    new_head: Annotated[bool, _F("--new-head", help="--init-from a checkpoint of another label set: keep "
                                                    "everything but the output layer")] = False,
    base_weights: Annotated[Optional[str], _F("--base-weights", help="SAM models: official SAM .pth (path or "
                                                                      "manifest name, e.g. sam-vit-b)")] = None,
    resume: Annotated[Optional[Path], _F("--resume", help="continue the run in this folder")] = None,
    val_every: Annotated[Optional[int], _F("--val-every", min=1, help="validate every N epochs (and after the "
                                                                       "last); default 1")] = None,
    nproc: Annotated[int, _F("--nproc", min=1, help="processes for DistributedDataParallel (torchrun)")] = 1,
    name: Annotated[str, _F("--name", help="checkpoint name")] = "",
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train (or fine-tune) a model; writes best/ and last/ checkpoints usable by `parcellate --weights`."""
    if nproc > 1 and "RANK" not in os.environ:
        args = [a for a in sys.argv[1:]]
        i = next(i for i, a in enumerate(args) if a == "--nproc" or a.startswith("--nproc="))
        del args[i: i + (1 if "=" in args[i] else 2)]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone",
               "-m", "brainsegcli", *args]
        raise typer.Exit(subprocess.call(cmd))

    from brainsegcli.training.loop import Trainer

    setup_threads(threads)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if resume is not None:
        cfg, run_dir = _resume_config(resume, epochs, val_every, workers)
    else:
        cfg, run_dir = _new_config(**locals())
    cfg_log = out_console.print if not quiet and rank0 else (lambda *a, **k: None)
    bar = None
    if not quiet and rank0:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), console=err_console,
                       transient=True)
    trainer = Trainer(cfg, run_dir, log=lambda m: cfg_log(m, markup=False))
    if bar is not None:
        task = bar.add_task("train", total=cfg.steps_per_epoch, epoch=0, loss=float("nan"))

        def progress(d):
            bar.update(task, completed=d["step"], epoch=d["epoch"], loss=d["loss"])

        trainer.progress = progress
        with bar:
            result = trainer.fit(resume=resume is not None)
    else:
        result = trainer.fit(resume=resume is not None)
    if rank0 and not quiet:
        out_console.print(f"done: {result['epochs']} epochs, {result['steps']} iterations; best "
                          f"{cfg.hp.select_by} {result['best']}; checkpoint {run_dir / 'best'}", markup=False)


def _json_object(text: str, option: str) -> dict:
    import json

    from brainsegcli.types import BrainsegError

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrainsegError(f"{option} is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise BrainsegError(f"{option} must be a JSON object")
    return obj


def _resume_config(run_dir: Path, epochs: int | None, val_every: int | None = None, workers: int | None = None):
    import json

    from brainsegcli.training.loop import STATE_FILE, TrainConfig
    from brainsegcli.types import BrainsegError

    if not (run_dir / "run.json").is_file() or not (run_dir / STATE_FILE).is_file():
        raise BrainsegError(f"{run_dir}: not a resumable run folder (run.json and {STATE_FILE} needed)")
    cfg = TrainConfig.from_dict(json.loads((run_dir / "run.json").read_text()))
    # the options a resumed run may change: option -> (object holding the setting, its field, the given value)
    settable = {"--epochs": (cfg.hp, "epochs", epochs), "--val-every": (cfg, "val_every", val_every),
                "--workers": (cfg, "workers", workers)}
    changed = {opt: v for opt, (obj, field, v) in settable.items() if v is not None and v != getattr(obj, field)}
    if not changed:
        return cfg, run_dir
    for opt, v in changed.items():
        setattr(settable[opt][0], settable[opt][1], v)
    # run.json keeps what the run now is (a later --resume without these options goes on with them), and the
    # recorded command the whole chain that made it
    cfg.command = " && ".join(c for c in (cfg.command, shlex.join(
        ["brainseg", "train", "--resume", str(run_dir), *(x for kv in changed.items() for x in map(str, kv))])) if c)
    if int(os.environ.get("RANK", "0")) == 0:
        from brainsegcli.reports import write_json
        from brainsegcli.training.loop import run_config_dict

        write_json(run_dir / "run.json", run_config_dict(cfg))
    return cfg, run_dir


def _new_config(**o):
    import shutil

    from brainsegcli.io.atomic import ensure_writable_dir
    from brainsegcli.labels import get_labelset
    from brainsegcli.models import get_spec
    from brainsegcli.reports import write_json
    from brainsegcli.training.data import (split_subjects, subjects_from_bids, subjects_from_csv,
                                           subjects_from_freesurfer, subjects_from_label_maps)
    from brainsegcli.training.loop import TrainConfig, check_init_from, run_config_dict
    from brainsegcli.training.recipes import RECIPES, get_recipe
    from brainsegcli.types import BrainsegError, Plane

    if o["out"] is None:
        raise BrainsegError("give the run folder with --out (or --resume RUNDIR)")
    sources = [k for k in ("synth", "pairs", "freesurfer", "bids") if o[k] is not None]
    if len(sources) != 1:
        raise BrainsegError("give exactly one data source: --synth, --pairs, --freesurfer or --bids")
    src = sources[0]
    subjects = {"synth": subjects_from_label_maps, "pairs": subjects_from_csv,
                "freesurfer": subjects_from_freesurfer, "bids": subjects_from_bids}[src](o[src])
    if not subjects:
        raise BrainsegError(f"no subjects found in {o[src]}")
    for s in subjects:
        for p in (s.labels, s.image):
            if p is not None and not p.is_file():
                raise BrainsegError(f"{p}: no such file (subject {s.name})")
    init = None
    if o["init_from"]:
        from brainsegcli.weights.checkpoint import read_config

        init = read_config(o["init_from"])
    model = o["model"] or (init.architecture if init else "deepmrseg")
    spec = get_spec(model)
    ls = o["labelset"] or (init.labelset if init else spec.labelsets[0] if spec.labelsets else "aseg")
    get_labelset(ls)
    if init:  # before the run folder exists: a refused run leaves nothing behind
        check_init_from(o["init_from"], init, model, ls, o["new_head"])
    recipe_name = o["recipe"] or ("tissue" if spec.family == "tissue-unet" else
                                  model if model in RECIPES else "deepmrseg")
    hp = get_recipe(recipe_name, epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                    weight_decay=o["weight_decay"], warmup=o["warmup"], ce_weight=o["ce_weight"],
                    dice_weight=o["dice_weight"], class_weights=_floats(o["class_weights"]))
    if o["model_args"]:
        extra = _json_object(o["model_args"], "--model-args")
        hp.model_args = {**hp.model_args, **extra}
    ablations = {k: False for k in ("unet_skips", "aspp", "csa", "boundary") if o[f"no_{k}"]}
    if ablations:
        if model != "brainsegnet":
            raise BrainsegError("--no-unet-skips/--no-aspp/--no-csa/--no-boundary are brainsegnet ablations")
        hp.model_args = {**hp.model_args, **ablations}
        if not ablations.get("boundary", True):
            hp.edge_weight = 0.0
    synth_overrides = _json_object(o["synth_config"], "--synth-config") if o["synth_config"] else {}
    from dataclasses import fields as _fields

    from brainsegcli.training.synth import SynthConfig

    bad = set(synth_overrides) - {f.name for f in _fields(SynthConfig)}
    if bad:
        raise BrainsegError(f"--synth-config: unknown settings {sorted(bad)}")
    if hp.class_weights and len(hp.class_weights) != get_labelset(ls).num_classes:
        if o["class_weights"]:
            raise BrainsegError(f"--class-weights needs {get_labelset(ls).num_classes} values for {ls!r}")
        hp.class_weights = None  # the recipe's weights are for another label set
    val_names = [v.strip() for v in o["val_subjects"].split(",")] if o["val_subjects"] else None
    tr, va = split_subjects(subjects, val_names if val_names else o["val"], o["seed"])
    run_dir = Path(o["out"])
    if int(os.environ.get("RANK", "0")) == 0:
        if run_dir.exists() and any(run_dir.iterdir()):
            if not o["force"]:
                raise BrainsegError(f"{run_dir}: run folder exists; use --resume to continue or --force to restart")
            shutil.rmtree(run_dir)
        ensure_writable_dir(run_dir)
    priors = Path(o["synth"]) / "priors" if src == "synth" and (Path(o["synth"]) / "priors").is_dir() else None
    as_dict = lambda s: {"name": s.name, "labels": str(s.labels.resolve()),  # noqa: E731
                         "image": str(s.image.resolve()) if s.image else None}
    cfg = TrainConfig(model=model, labelset=ls, recipe=recipe_name, hp=hp,
                      train_subjects=[as_dict(s) for s in tr], val_subjects=[as_dict(s) for s in va],
                      synthetic=src == "synth", priors_dir=str(priors) if priors else None,
                      steps_per_epoch=o["steps_per_epoch"], stacks_per_volume=o["stacks_per_volume"],
                      volumes_per_batch=o["volumes_per_batch"],
                      views=tuple(p.value for p in Plane.parse_list(o["views"])), crop=o["crop"], seed=o["seed"],
                      device=o["device"], precision=o["precision"], init_from=o["init_from"],
                      new_head=o["new_head"], val_every=o["val_every"] or 1, workers=o["workers"] or 1,
                      base_weights=o["base_weights"], synth=synth_overrides,
                      name=o["name"] or run_dir.name, command="brainseg " + shlex.join(sys.argv[1:]))
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(run_dir / "run.json", run_config_dict(cfg))
        write_json(run_dir / "split.json", {"train": [s.name for s in tr], "validation": [s.name for s in va]})
    return cfg, run_dir
