"""The weights manifest (package data ``weights_manifest.json``) and resolution of ``--weights``.

``--weights`` accepts a manifest name, a local checkpoint folder or ``model.safetensors`` file, and
never guesses between them: anything that looks like a path (has a path separator, starts with
``.`` or ``~``, or exists) is a path.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from brainsegcli.types import BrainsegError
from brainsegcli.weights.checkpoint import CONFIG_FILE, WEIGHTS_FILE, sha256_file

MANIFEST_FILE = "weights_manifest.json"


@functools.lru_cache(maxsize=1)
def load_manifest() -> dict[str, Any]:
    text = resources.files("brainsegcli.data").joinpath(MANIFEST_FILE).read_text("utf-8")
    return json.loads(text)


def entries() -> list[dict[str, Any]]:
    return list(load_manifest().get("entries", []))


def find_entry(name: str) -> dict[str, Any]:
    for e in entries():
        if e["name"] == name:
            return e
    known = ", ".join(e["name"] for e in entries()) or "none yet"
    raise BrainsegError(f"unknown weights {name!r}; known names: {known}")


def default_entry(labelset: str, architecture: str | None = None) -> dict[str, Any] | None:
    """The manifest's default checkpoint for a label set (optionally of one architecture)."""
    for e in entries():
        if e.get("labelset") != labelset or e.get("role", "model") != "model":
            continue
        if architecture is None and e.get("default"):
            return e
        if architecture is not None and e.get("architecture") == architecture:
            return e
    return None


@dataclass
class ResolvedWeights:
    directory: Path
    name: str
    sha256: str
    source: str


def _looks_like_path(arg: str) -> bool:
    return os.sep in arg or "/" in arg or arg.startswith((".", "~")) or Path(arg).exists()


def resolve_weights(arg: str) -> ResolvedWeights:
    if arg.startswith("hf-hub:"):
        raise BrainsegError("hf-hub: weights are not supported by this version yet; download the "
                            "checkpoint folder and pass its path")
    if _looks_like_path(arg):
        p = Path(arg).expanduser()
        if not p.exists():
            raise BrainsegError(f"--weights {arg}: no such file or directory")
        directory = p if p.is_dir() else p.parent
        if p.is_file() and p.name != WEIGHTS_FILE:
            raise BrainsegError(f"--weights {arg}: give a checkpoint folder ({CONFIG_FILE} + {WEIGHTS_FILE})")
        if not (directory / WEIGHTS_FILE).is_file():
            raise BrainsegError(f"--weights {arg}: no {WEIGHTS_FILE} in {directory}")
        return ResolvedWeights(directory, directory.name, sha256_file(directory / WEIGHTS_FILE), "local")
    entry = find_entry(arg)
    src = entry.get("source", {})
    if src.get("type") != "bundled":
        raise BrainsegError(f"weights {arg!r} come from {src.get('type', '?')}; this version only reads "
                            "bundled checkpoints")
    directory = Path(str(resources.files("brainsegcli").joinpath(src["path"])))
    expected = {f["filename"]: f["sha256"] for f in entry.get("files", [])}
    for fname, sha in expected.items():
        got = sha256_file(directory / fname)
        if got != sha:
            raise BrainsegError(f"bundled weights {arg!r}: {fname} has sha256 {got[:12]}..., expected "
                                f"{sha[:12]}...; reinstall brainseg")
    return ResolvedWeights(directory, entry["name"], expected.get(WEIGHTS_FILE, ""), "bundled")
