"""``brainseg evaluate``: Dice, IoU, HD95, HD, ASSD and volumes per label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brainsegcli.cli.options import Force, Quiet, handle_errors, out_console, warn


@handle_errors
def evaluate(
    pred: Annotated[Optional[Path], typer.Argument(help="predicted label map")] = None,
    gt: Annotated[Optional[Path], typer.Argument(help="reference label map")] = None,
    labelset: Annotated[str, typer.Option("--labelset", help="tissue | subcortical | aseg | dkt95 | auto")] = "auto",
    gt_from: Annotated[Optional[str], typer.Option(
        "--gt-from", help="map the reference from FreeSurfer labels: freesurfer (aseg, aparc+aseg, DKT; "
                          "SynthSeg maps detected) or synthseg")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write metrics as JSON")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="write metrics as CSV")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="CSV with columns pred,gt (many subjects)")] = None,
    resample_pred: Annotated[bool, typer.Option("--resample-pred", help="resample the prediction onto the "
                                                                         "reference grid (nearest neighbour)")] = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Compare PRED with GT (or every row of --pairs) and report per-label metrics."""
    from brainsegcli.evaluation import evaluate_pair, read_pairs, summarize_subjects, write_csv
    from brainsegcli.io.atomic import check_target
    from brainsegcli.reports import write_json
    from brainsegcli.types import BrainsegError

    if gt_from not in (None, "freesurfer", "synthseg"):
        raise BrainsegError("--gt-from takes freesurfer or synthseg")
    if pairs is not None:
        if pred is not None or gt is not None:
            raise BrainsegError("give either PRED GT or --pairs, not both")
        todo = read_pairs(pairs)
    else:
        if pred is None or gt is None:
            raise BrainsegError("give PRED and GT label maps (or --pairs LIST.csv)")
        todo = [(pred, gt)]
    for out in (json_out, csv_out):
        if out is not None:
            check_target(out, force)
            if not out.parent.exists():
                raise BrainsegError(f"{out.parent}: no such directory")
    results = [evaluate_pair(p, g, labelset, gt_from, resample_pred) for p, g in todo]
    doc = results[0] if pairs is None else summarize_subjects(results)
    if json_out is not None:
        write_json(json_out, doc)
    if csv_out is not None:
        write_csv(csv_out, results)
    if not quiet:
        _print(doc, many=pairs is not None)
    for w in doc.get("warnings", []):  # about the result: printed even with --quiet
        warn(w)


def _print(doc: dict, many: bool) -> None:
    from rich.table import Table

    def f(v):
        if isinstance(v, dict):
            return f"{v['mean']:.3f} ± {v['sd']:.3f}" if v["n"] else "n/a"
        return f"{v:.3f}"

    table = Table(title=f"label set {doc['labelset']}" + (f", {doc['n_subjects']} subjects" if many else ""))
    for col in ("id", "name", "Dice", "IoU", "HD95 mm", "ASSD mm", "vol pred mm³", "vol ref mm³"):
        table.add_column(col, justify="right" if col not in ("name",) else "left")
    for i, m in doc["labels"].items():
        table.add_row(i, m["name"], f(m["dice"]), f(m["iou"]), f(m["hd95"]), f(m["assd"]),
                      f(m["volume_pred_mm3"]), f(m["volume_ref_mm3"]))
    out_console.print(table)
    s = doc["summary"]
    out_console.print(
        f"mean Dice {s['dice']['mean']:.4f} ± {s['dice']['sd']:.4f} over {s['dice']['n']} labels"
        f" ({s['dice']['n_nan']} empty in both, {s['hd']['n_inf']} empty in one); "
        f"mean HD95 {s['hd95']['mean']:.2f} mm, mean ASSD {s['assd']['mean']:.2f} mm", markup=False)
