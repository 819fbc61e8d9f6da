"""Small CSV lists of files (pairs for evaluation, image/label pairs for training)."""

from __future__ import annotations

import csv
from pathlib import Path

from brainsegcli.types import BrainsegError


def read_path_table(path: str | Path, columns: tuple[str, ...]) -> list[dict[str, str | Path]]:
    """Rows of a CSV with a header holding ``columns``; those columns become paths resolved against
    the CSV's folder, other columns stay strings."""
    path = Path(path)
    if not path.is_file():
        raise BrainsegError(f"{path}: no such file")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not set(columns) <= set(reader.fieldnames):
            raise BrainsegError(f"{path}: needs a header with columns {', '.join(repr(c) for c in columns)}")
        return [{k: ((path.parent / v).resolve() if k in columns else v) for k, v in row.items()} for row in reader]


def require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise BrainsegError(f"{path}: not a directory")
    return path
