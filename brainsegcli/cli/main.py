"""The ``brainseg`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from brainsegcli.cli import evaluate, models, parcellate, train, weights

app = typer.Typer(name="brainseg", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Brain MRI segmentation with 2.5D multi-view deep networks.")


def _version(value: bool) -> None:
    if value:
        from brainsegcli import __version__

        print(f"brainseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="print the version and exit")] = False) -> None:
    """Brain MRI segmentation with 2.5D multi-view deep networks."""


app.command("parcellate")(parcellate.parcellate)
app.command("evaluate")(evaluate.evaluate)
app.command("models")(models.models)
app.command("train")(train.train)
app.add_typer(weights.app, name="weights")


def run() -> None:
    app()
