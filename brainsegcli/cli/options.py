"""Shared option aliases and helpers for every command (light imports only)."""

from __future__ import annotations

import functools
import os
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps")]
Precision = Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16 (autocast)")]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for PyTorch")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="slices per network call")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="print only errors and warnings")]
Force = Annotated[bool, typer.Option("--force", help="overwrite existing outputs")]
Weights = Annotated[Optional[str], typer.Option(
    "--weights", help="manifest name, checkpoint folder (config.json + model.safetensors)")]
LabelsetOpt = Annotated[Optional[str], typer.Option(
    "--labelset", help="tissue | subcortical | aseg | dkt95")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


def error(msg: str) -> None:
    err_console.print(f"error: {msg}", markup=False)


def warn(msg: str) -> None:
    err_console.print(f"warning: {msg}", markup=False)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into a one-line message and exit code 1 (set BRAINSEG_DEBUG=1 for tracebacks)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from brainsegcli.types import BrainsegError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BrainsegError as exc:
            error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error("interrupted; no partial outputs were kept")
            raise typer.Exit(130) from None
        except MemoryError:
            error("out of memory; try a smaller --batch-size")
            raise typer.Exit(1) from None
        except Exception as exc:  # never show a traceback to a user
            if os.environ.get("BRAINSEG_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            error(f"unexpected {type(exc).__name__}: {first} (set BRAINSEG_DEBUG=1 for details and "
                  "please report it)")
            raise typer.Exit(1) from None

    return wrapper


def setup_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
