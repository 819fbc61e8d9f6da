"""The weights manifest and resolution of ``--weights``.

Two manifests are merged: the package's ``weights_manifest.json`` (bundled checkpoints and Hub
entries) and the user's (``$BRAINSEG_HOME/weights_manifest.json``, default ``~/.cache/brainseg``),
which holds checkpoints registered with ``brainseg weights import`` and the revisions that
``brainseg weights push`` got back.

``--weights`` accepts a manifest name, a local checkpoint folder or ``model.safetensors`` file, or
``hf-hub:org/name@<commit>``, and never guesses between them: anything that looks like a path (has a
path separator, starts with ``.`` or ``~``, or exists) is a path.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from brainsegcli.io.atomic import atomic_write_text
from brainsegcli.types import BrainsegError
from brainsegcli.weights.checkpoint import CONFIG_FILE, WEIGHTS_FILE, sha256_file
from brainsegcli.weights.hub import HubFile, cached_path, download, parse_hub_ref

MANIFEST_FILE = "weights_manifest.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE)


def user_home() -> Path:
    return Path(os.environ.get("BRAINSEG_HOME") or Path.home() / ".cache" / "brainseg")


@functools.lru_cache(maxsize=1)
def package_manifest() -> dict[str, Any]:
    return json.loads(resources.files("brainsegcli.data").joinpath(MANIFEST_FILE).read_text("utf-8"))


def user_manifest() -> dict[str, Any]:
    p = user_home() / MANIFEST_FILE
    if not p.is_file():
        return {"schema_version": 1, "entries": [], "published": {}}
    try:
        return json.loads(p.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise BrainsegError(f"{p}: invalid JSON ({exc.msg})") from None


def _save_user_manifest(doc: dict[str, Any]) -> None:
    user_home().mkdir(parents=True, exist_ok=True)
    atomic_write_text(user_home() / MANIFEST_FILE, json.dumps(doc, indent=2) + "\n")


def entries() -> list[dict[str, Any]]:
    out = [dict(e, _origin="package") for e in package_manifest().get("entries", [])]
    out += [dict(e, _origin="user") for e in user_manifest().get("entries", [])]
    return out


def find_entry(name: str) -> dict[str, Any]:
    for e in entries():
        if e["name"] == name:
            return e
    known = ", ".join(e["name"] for e in entries()) or "none yet"
    raise BrainsegError(f"unknown weights {name!r}; known names: {known}")


def default_entry(labelset: str, architecture: str | None = None) -> dict[str, Any] | None:
    """The default checkpoint for a label set (optionally of one architecture)."""
    for e in entries():
        if e.get("labelset") != labelset or e.get("role", "model") != "model":
            continue
        if architecture is None and e.get("default"):
            return e
        if architecture is not None and e.get("architecture") == architecture:
            return e
    return None


def hub_files(entry: dict[str, Any]) -> list[HubFile]:
    src = entry["source"]
    sub = src.get("subfolder", "")
    return [HubFile(src["repo_id"], f"{sub}/{f['filename']}" if sub else f.get("path_in_repo", f["filename"]),
                    src.get("revision"), f["sha256"], f.get("size")) for f in entry["files"]]


def local_dir(entry: dict[str, Any]) -> Path:
    src = entry["source"]
    if src["type"] == "bundled":
        return Path(str(resources.files("brainsegcli").joinpath(src["path"])))
    if src["type"] == "local":
        return Path(src["path"])
    raise ValueError("not a local entry")


def is_available(entry: dict[str, Any]) -> bool:
    if entry["source"]["type"] == "hub":
        return all(cached_path(f) is not None for f in hub_files(entry))
    d = local_dir(entry)
    return all((d / f["filename"]).is_file() for f in entry["files"])


def verify_entry(entry: dict[str, Any], *, fetch: bool = False) -> Path:
    """Check every file's sha256 (downloading Hub files when ``fetch``); returns the folder/file."""
    if entry["source"]["type"] == "hub":
        paths = []
        for f in hub_files(entry):
            if not fetch and cached_path(f) is None:
                raise BrainsegError(f"{entry['name']}: {f.where} is not cached; run `brainseg weights pull "
                                    f"{entry['name']}`")
            paths.append(download(f))
        return paths[0].parent if len(paths) > 1 else paths[0]
    d = local_dir(entry)
    for f in entry["files"]:
        p = d / f["filename"]
        if not p.is_file():
            raise BrainsegError(f"{entry['name']}: {p} is missing; reinstall brainseg or re-import the weights")
        got = sha256_file(p)
        if got != f["sha256"]:
            raise BrainsegError(f"{entry['name']}: {f['filename']} has sha256 {got[:12]}..., the manifest "
                                f"says {f['sha256'][:12]}...")
    return d


def remove_cached(entry: dict[str, Any]) -> int:
    if entry["source"]["type"] != "hub":
        raise BrainsegError(f"{entry['name']} is {entry['source']['type']}, not a cached Hub download")
    n = 0
    for f in hub_files(entry):
        p = cached_path(f)
        if p is not None:
            blob = p.resolve()
            p.unlink(missing_ok=True)
            if blob != p:
                blob.unlink(missing_ok=True)
            n += 1
    return n


def import_checkpoint(path: Path, name: str, force: bool = False) -> dict[str, Any]:
    """Copy a checkpoint folder into the user store and register it."""
    from brainsegcli.weights.checkpoint import read_config

    if any(e["name"] == name for e in entries() if e["_origin"] == "package"):
        raise BrainsegError(f"{name!r} is a packaged checkpoint name; choose another --name")
    src = Path(path)
    if src.is_file() and src.name == WEIGHTS_FILE:
        src = src.parent
    cfg = read_config(src)
    if not (src / WEIGHTS_FILE).is_file():
        raise BrainsegError(f"{src}: no {WEIGHTS_FILE}")
    doc = user_manifest()
    if any(e["name"] == name for e in doc["entries"]) and not force:
        raise BrainsegError(f"{name!r} is already imported; use --force to replace it")
    dest = user_home() / "weights" / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest)
    files = [{"filename": f, "sha256": sha256_file(dest / f), "size": (dest / f).stat().st_size}
             for f in sorted(os.listdir(dest)) if (dest / f).is_file()]
    entry = {"name": name, "role": "model", "architecture": cfg.architecture, "model_args": cfg.model_args,
             "labelset": cfg.labelset, "input": cfg.to_dict()["input"], "files": files,
             "source": {"type": "local", "path": str(dest)}, "license": "unknown", "version": cfg.version}
    doc["entries"] = [e for e in doc["entries"] if e["name"] != name] + [entry]
    _save_user_manifest(doc)
    return entry


def record_published(name: str, repo_id: str, revision: str) -> None:
    doc = user_manifest()
    doc.setdefault("published", {})[name] = {"repo_id": repo_id, "revision": revision}
    _save_user_manifest(doc)


@dataclass
class ResolvedWeights:
    directory: Path
    name: str
    sha256: str
    source: str
    status: str = "release"     # "preliminary": trained, but short of its accuracy targets
    notes: str = ""
    caveats: tuple[str, ...] = ()  # measured limits a user must know to read the results (manifest "caveats")


def _looks_like_path(arg: str) -> bool:
    return os.sep in arg or "/" in arg or arg.startswith((".", "~")) or Path(arg).exists()


def resolve_weights(arg: str) -> ResolvedWeights:
    """A verified local checkpoint folder for a ``--weights`` value."""
    if arg.startswith("hf-hub:"):
        repo_id, rev = parse_hub_ref(arg)
        paths = [_download_unchecked(repo_id, f, rev) for f in CHECKPOINT_FILES]
        return ResolvedWeights(paths[0].parent, arg, sha256_file(paths[1]), "hub (pinned commit)")
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
    if entry.get("role", "model") != "model":
        raise BrainsegError(f"{arg!r} is a base checkpoint, not a segmentation model")
    folder = verify_entry(entry, fetch=True)
    sha = next((f["sha256"] for f in entry["files"] if f["filename"] == WEIGHTS_FILE), "")
    return ResolvedWeights(folder, entry["name"], sha, entry["source"]["type"], entry.get("status", "release"),
                           entry.get("notes", ""), tuple(entry.get("caveats", ())))


def _download_unchecked(repo_id: str, filename: str, revision: str) -> Path:
    """Explicit ``hf-hub:`` references have no manifest checksum; the pinned commit identifies the
    content, and report.json records the sha256 of what was used."""
    from brainsegcli.weights import hub

    f = HubFile(repo_id, filename, revision, sha256="")
    hit = hub.cached_path(f)
    if hit is not None:
        return hit
    if hub.offline():
        raise BrainsegError(f"{f.where} is not cached and HF_HUB_OFFLINE is set")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub.cache_dir(),
                                    endpoint=hub.endpoint()))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BrainsegError(f"{f.where}: download failed ({type(exc).__name__}: {first})") from None
