"""``brainseg weights``: list, pull, verify, locate, import, publish and remove checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from brainsegcli.cli.options import Force, Json, Quiet, err_console, handle_errors, out_console

app = typer.Typer(no_args_is_help=True, help="Manage checkpoints (manifest, Hugging Face Hub cache).")
Names = Annotated[Optional[list[str]], typer.Argument(help="manifest names")]
All = Annotated[bool, typer.Option("--all", help="every manifest entry")]


def _select(names: list[str] | None, every: bool) -> list[dict]:
    from brainsegcli.types import BrainsegError
    from brainsegcli.weights.manifest import entries, find_entry

    if every:
        return entries()
    if not names:
        raise BrainsegError("give one or more names, or --all")
    return [find_entry(n) for n in names]


def _where(e: dict) -> str:
    s = e["source"]
    if s["type"] == "hub":
        return f"hub:{s['repo_id']}@{(s.get('revision') or 'unpinned')[:12]}"
    return f"{s['type']}:{s.get('path', '')}"


@app.command("list")
@handle_errors
def list_(as_json: Json = False) -> None:
    """Known checkpoints: name, architecture, label set, size, source, availability (--json: also status and
    caveats, the measured limits parcellate prints)."""
    from brainsegcli.weights.checkpoint import WEIGHTS_FILE
    from brainsegcli.weights.manifest import entries, is_available, user_manifest

    published = user_manifest().get("published", {})
    rows = []
    for e in entries():
        main = next((f for f in e["files"] if f["filename"] == WEIGHTS_FILE), e["files"][0])
        rows.append({"name": e["name"], "architecture": e.get("architecture"), "labelset": e.get("labelset"),
                     "sha256": main["sha256"], "size": sum(int(f.get("size") or 0) for f in e["files"]),
                     "source": _where(e), "available": is_available(e), "role": e.get("role", "model"),
                     "default": bool(e.get("default")), "published": published.get(e["name"]),
                     "status": e.get("status", "release"), "caveats": e.get("caveats", [])})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title="brainseg weights")
    for c in ("name", "architecture", "label set", "size", "source", "available"):
        t.add_column(c, no_wrap=c != "source")
    for r in rows:
        t.add_row(r["name"] + (" (default)" if r["default"] else ""), str(r["architecture"]), str(r["labelset"]),
                  f"{r['size'] / 2**20:.1f} MiB", r["source"], "yes" if r["available"] else "no")
    out_console.print(t)


@app.command("pull")
@handle_errors
def pull(names: Names = None, every: All = False, quiet: Quiet = False) -> None:
    """Download (resumable) and verify Hub checkpoints; bundled ones are only verified."""
    from brainsegcli.weights.manifest import verify_entry

    if quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    for e in _select(names, every):
        path = verify_entry(e, fetch=True)
        if not quiet:
            out_console.print(f"{e['name']}: ok ({path})", markup=False)


@app.command("verify")
@handle_errors
def verify(names: Names = None, every: All = False, quiet: Quiet = False) -> None:
    """Check sha256 of bundled, imported and cached files (Hub entries not cached are skipped)."""
    from brainsegcli.types import BrainsegError
    from brainsegcli.weights.manifest import is_available, verify_entry

    failed = 0
    for e in _select(names, every or not names):
        if e["source"]["type"] == "hub" and not is_available(e):
            if not quiet:
                out_console.print(f"{e['name']}: not cached (skipped)", markup=False)
            continue
        try:
            verify_entry(e)
        except BrainsegError as exc:
            err_console.print(f"error: {exc}", markup=False)
            failed += 1
            continue
        if not quiet:
            out_console.print(f"{e['name']}: ok", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command("path")
@handle_errors
def path(name: Annotated[str, typer.Argument()]) -> None:
    """Print the local folder (or file) of a checkpoint."""
    from brainsegcli.weights.manifest import find_entry, verify_entry

    print(verify_entry(find_entry(name)))


@app.command("import")
@handle_errors
def import_(source: Annotated[Path, typer.Argument(help="checkpoint folder")],
            name: Annotated[str, typer.Option("--name", help="name to register")],
            force: Force = False) -> None:
    """Register local weights (copied into the user store) under NAME."""
    from brainsegcli.weights.manifest import import_checkpoint

    e = import_checkpoint(source, name, force)
    out_console.print(f"imported {name} ({e['architecture']}, {e['labelset']}) -> {e['source']['path']}", markup=False)


@app.command("push")
@handle_errors
def push(name: Annotated[str, typer.Argument()],
         repo_id: Annotated[str, typer.Option("--repo-id", help="org/name on the Hub")],
         private: Annotated[bool, typer.Option("--private")] = False,
         token: Annotated[Optional[str], typer.Option("--token", help="Hub token (default: HF_TOKEN/login)")] = None,
         ) -> None:
    """Upload a bundled or imported checkpoint (with its model card); records the revision it gets."""
    from brainsegcli.types import BrainsegError
    from brainsegcli.weights.hub import upload_folder
    from brainsegcli.weights.manifest import find_entry, local_dir, record_published, verify_entry

    e = find_entry(name)
    if e["source"]["type"] == "hub":
        raise BrainsegError(f"{name} already lives on the Hub ({_where(e)})")
    verify_entry(e)
    rev = upload_folder(local_dir(e), repo_id, f"brainseg: {name}", token=token, private=private)
    record_published(name, repo_id, rev)
    out_console.print(f"pushed {name} to {repo_id} at revision {rev}", markup=False)
    snippet = {"type": "hub", "repo_id": repo_id, "revision": rev}
    out_console.print(f'manifest source: {json.dumps(snippet)}', markup=False)


@app.command("remove")
@handle_errors
def remove(name: Annotated[str, typer.Argument()]) -> None:
    """Delete a Hub checkpoint's files from the cache."""
    from brainsegcli.weights.manifest import find_entry, remove_cached

    n = remove_cached(find_entry(name))
    out_console.print(f"{name}: removed {n} cached file(s)", markup=False)
