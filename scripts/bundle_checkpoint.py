"""Maintainer tool: put a trained checkpoint into the package (fp16) and the manifest.

Usage: python scripts/bundle_checkpoint.py RUN/best --name tissue-unet [--default] [--eval-json FILE ...]
(one --eval-json per benchmarks/eval_synth.py run, e.g. without and with --tta)
       python scripts/bundle_checkpoint.py --name tissue-unet --notes-only --status preliminary --notes "..."
           [--caveat "..." ...]
(new status notes for a bundled checkpoint: its card's Status and Known limits sections and the manifest entry;
weights untouched; without --caveat the entry's caveats are kept)
       python scripts/bundle_checkpoint.py --name tissue-unet --evals-only --eval-json FILE [--eval-json FILE]
(new held-out figures for a bundled checkpoint, e.g. after a change of the default post-processing: its card's
held-out sections and the manifest entry's held_out_synthetic metrics; weights, notes and caveats untouched)

Writes brainsegcli/data/weights/NAME/{model.safetensors, config.json, README.md} and an entry (sha256,
size, input contract, training summary, validation metrics) in both copies of weights_manifest.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from brainsegcli.models import count_parameters
from brainsegcli.training.report import model_card, training_stages
from brainsegcli.weights.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_config, save_checkpoint,
                                            sha256_file)

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 10 * 1024 * 1024


def with_init_chain(directory: Path, training: dict) -> dict:
    """The training block with the ``--init-from`` chain filled in (runs started before checkpoints
    recorded it: the run folder's run.json names the checkpoint it started from)."""
    if training.get("init_training"):
        return training
    init = training.get("init_from")
    run_json = directory.parent / "run.json"
    if not init and run_json.is_file():
        init = json.loads(run_json.read_text()).get("init_from")
    if not init:
        return training
    init_dir = Path(init) if Path(init).is_absolute() else ROOT / init
    parent = read_config(init_dir)
    return {**training, "init_from": init,
            "init_training": {"checkpoint": parent.name, **with_init_chain(init_dir, parent.extra.get("training", {}))}}


MANIFESTS = (ROOT / "brainsegcli" / "data" / "weights_manifest.json", ROOT / "weights_manifest.json")


def status_section(status: str, notes: str, caveats: list[str]) -> str:
    """The card's closing sections: Status, and Known limits (the manifest's ``caveats``, which ``parcellate``
    prints and writes to report.json)."""
    text = f"\n## Status\n\n{status}: {notes}\n"
    if caveats:
        text += "\n## Known limits\n\n" + "".join(f"- {c}\n" for c in caveats)
    return text


EVAL_HEADING = "\n## Held-out synthetic evaluation"


def eval_sections(evals: list[dict]) -> str:
    """The card's held-out sections, one per benchmarks/eval_synth.py JSON, saying how it was measured."""
    text = ""
    for ev in evals:
        how = "with `--tta`" if ev.get("tta") else "without test-time augmentation"
        steps = [s for s, on in (("the clean-up", ev.get("cleanup")), ("the edge refinement", ev.get("refine_edges")))
                 if on]
        how += ", with " + " and ".join(steps) if steps else ""
        how += f", {ev['precision']} on {ev.get('device', 'cpu')}" if ev.get("precision") else ""
        text += f"{EVAL_HEADING} (benchmarks/eval_synth.py, {how})\n\n"
        for variant, per in ev["per_structure"].items():
            text += f"- {variant}: mean Dice {ev['mean'][variant]:.3f} (" + ", ".join(
                f"{k} {v:.3f}" for k, v in per.items()) + ")\n"
    return text


def eval_metrics(evals: list[dict]) -> dict:
    """The manifest entry's held-out metrics (per variant means), keyed by whether --tta was on."""
    return {"held_out_synthetic_tta" if ev.get("tta") else "held_out_synthetic": ev["mean"] for ev in evals}


def with_evals(card: str, evals: list[dict]) -> str:
    """``card`` with its held-out sections replaced by those of ``evals``; what precedes them and the closing
    Status / Known limits sections are kept."""
    head, sep, rest = card.partition("\n## Status\n")
    return head.split(EVAL_HEADING)[0] + eval_sections(evals) + sep + rest


def _update_entry(name: str, dest: Path, change) -> None:
    """Apply ``change`` to NAME's entry in both manifest copies, with the card's new sha256 and size."""
    for path in MANIFESTS:
        doc = json.loads(path.read_text())
        entry = next(e for e in doc["entries"] if e["name"] == name)
        change(entry)
        for f in entry["files"]:
            if f["filename"] == "README.md":
                f["sha256"], f["size"] = sha256_file(dest / "README.md"), (dest / "README.md").stat().st_size
        path.write_text(json.dumps(doc, indent=2) + "\n")


def update_evals(name: str, evals: list[dict]) -> None:
    if not evals:
        raise SystemExit("--evals-only needs at least one --eval-json")
    dest = ROOT / "brainsegcli" / "data" / "weights" / name
    (dest / "README.md").write_text(with_evals((dest / "README.md").read_text(), evals))
    _update_entry(name, dest, lambda entry: entry["metrics"].update(eval_metrics(evals)))
    print(f"{name}: held-out figures updated")


def update_notes(name: str, status: str, notes: str, caveats: list[str] | None = None) -> None:
    dest = ROOT / "brainsegcli" / "data" / "weights" / name
    card = (dest / "README.md").read_text()
    head, sep, _ = card.partition("\n## Status\n")
    if not sep:
        raise SystemExit(f"{dest / 'README.md'} has no Status section")
    if caveats is None:
        entry = next(e for e in json.loads(MANIFESTS[0].read_text())["entries"] if e["name"] == name)
        caveats = entry.get("caveats", [])
    (dest / "README.md").write_text(head + status_section(status, notes, caveats))

    def change(entry: dict) -> None:
        entry["notes"], entry["status"] = notes, status
        if caveats:
            entry["caveats"] = caveats
        else:
            entry.pop("caveats", None)

    _update_entry(name, dest, change)
    print(f"{name}: notes updated")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path, nargs="?")
    ap.add_argument("--notes-only", action="store_true", help="only replace the status notes of bundled NAME")
    ap.add_argument("--evals-only", action="store_true", help="only replace the held-out figures of bundled NAME")
    ap.add_argument("--name", required=True)
    ap.add_argument("--default", action="store_true", help="default model of its label set")
    ap.add_argument("--eval-json", type=Path, action="append", default=[],
                    help="metrics from benchmarks/eval_synth.py (repeatable: without and with --tta)")
    ap.add_argument("--license", default="apache-2.0")
    ap.add_argument("--status", choices=["preliminary", "release"], default="release")
    ap.add_argument("--notes", default="")
    ap.add_argument("--caveat", action="append", default=None,
                    help="a measured limit users must know to read the results (repeatable; printed by parcellate)")
    a = ap.parse_args()
    if a.notes_only:
        return update_notes(a.name, a.status, a.notes, a.caveat)
    if a.evals_only:
        return update_evals(a.name, [json.loads(f.read_text()) for f in a.eval_json])
    if a.checkpoint is None:
        ap.error("the checkpoint folder is required (or --notes-only / --evals-only)")
    model, cfg = load_checkpoint(a.checkpoint)
    cfg.extra["training"] = with_init_chain(a.checkpoint, cfg.extra.get("training", {}))
    cfg.name = a.name
    dest = ROOT / "brainsegcli" / "data" / "weights" / a.name
    if dest.exists():
        shutil.rmtree(dest)
    save_checkpoint(dest, model, cfg, dtype=torch.float16)
    card = model_card(cfg, count_parameters(model))
    evals = [json.loads(f.read_text()) for f in a.eval_json]
    card += eval_sections(evals)
    if a.notes:
        card += status_section(a.status, a.notes, a.caveat or [])
    (dest / "README.md").write_text(card)  # cfg.name is already the bundled name
    files = []
    for f in (CONFIG_FILE, WEIGHTS_FILE, "README.md"):
        size = (dest / f).stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{f} is {size} bytes, over the 10 MB limit for bundled weights")
        files.append({"filename": f, "sha256": sha256_file(dest / f), "size": size})
    tr = cfg.extra.get("training", {})
    metrics = {k: v for k, v in cfg.extra.get("metrics", {}).items() if k.startswith("val")}
    metrics.update(eval_metrics(evals))
    entry = {"name": a.name, "role": "model", "architecture": cfg.architecture, "model_args": cfg.model_args,
             "labelset": cfg.labelset, "input": cfg.to_dict()["input"], "files": files,
             "source": {"type": "bundled", "path": f"data/weights/{a.name}"}, "license": a.license,
             "base_model": None, "training": {"command": tr.get("command"), "recipe": tr.get("recipe"),
                                               "epochs": tr.get("epoch"), "iterations": tr.get("step"),
                                               "train_subjects": tr.get("train_subjects"),
                                               "val_subjects": tr.get("val_subjects"),
                                               "stages": [st.get("command") for st in training_stages(tr)]},
             "metrics": metrics, "version": cfg.version, "default": a.default, "status": a.status}
    if a.notes:
        entry["notes"] = a.notes
    if a.caveat:
        entry["caveats"] = a.caveat
    for path in MANIFESTS:
        doc = json.loads(path.read_text())
        doc["entries"] = [e for e in doc["entries"] if e["name"] != a.name]
        if a.default:
            for e in doc["entries"]:
                if e.get("labelset") == cfg.labelset:
                    e["default"] = False
        doc["entries"].append(entry)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"bundled {a.name}: {sum(f['size'] for f in files)} bytes")


if __name__ == "__main__":
    main()
