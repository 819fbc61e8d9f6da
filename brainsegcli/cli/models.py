"""``brainseg models``: the registered architectures."""

from __future__ import annotations

import json

from brainsegcli.cli.options import Json, handle_errors, out_console


def model_rows() -> list[dict]:
    from brainsegcli.labels import get_labelset
    from brainsegcli.models import count_parameters, create_model, get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        ls = spec.labelsets[0] if spec.labelsets else "tissue"
        n_classes = get_labelset(ls).num_classes
        total, trainable = count_parameters(create_model(name, num_classes=n_classes))
        rows.append({"name": name, "family": spec.family, "params_total": total, "params_trainable": trainable,
                     "params_frozen": total - trainable, "labelsets": list(spec.labelsets),
                     "counted_for": {"labelset": ls, "num_classes": n_classes, "in_channels": 5},
                     "description": spec.description, "paper": spec.paper})
    return rows


@handle_errors
def models(as_json: Json = False) -> None:
    """List registered architectures with their label sets and parameter counts."""
    rows = model_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="brainseg architectures")
    for col in ("name", "label sets", "params", "trainable", "frozen"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("params", "trainable", "frozen") else "left")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["labelsets"]), f"{r['params_total']:,}", f"{r['params_trainable']:,}",
                      f"{r['params_frozen']:,}")
    out_console.print(table)
    for r in rows:
        out_console.print(f"{r['name']}: {r['description']}", markup=False)
