"""Atomic file writes and all-or-nothing output folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from brainsegcli.types import BrainsegError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: str | Path, mode: int = 0o666) -> None:
    """Give a temporary file the usual permissions (mkstemp makes 0600) and rename it into place."""
    os.chmod(tmp, mode & ~_umask())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def ensure_writable_dir(path: str | Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BrainsegError(f"{path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrainsegError(f"{path}: cannot create output directory ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise BrainsegError(f"{path}: output directory is not writable")
    return path


def check_target(target: str | Path, force: bool) -> None:
    target = Path(target)
    if target.exists() and not force:
        raise BrainsegError(f"{target}: already exists; use --force to overwrite")


@contextlib.contextmanager
def staged_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` in one rename.

    On any error the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    check_target(target, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
        try:
            os.replace(tmp, target)
        except OSError:
            if old is not None:
                os.replace(old / "x", target)  # put the previous outputs back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
