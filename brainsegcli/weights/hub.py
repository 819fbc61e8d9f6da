"""Hugging Face Hub downloads and uploads, with pinned revisions and sha256 checks.

Uses the standard Hugging Face cache and environment, read at call time: ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and the usual tokens. A file is used only after
its sha256 matches the manifest; a mismatching file is removed from the cache.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from brainsegcli.types import BrainsegError
from brainsegcli.weights.checkpoint import sha256_file

REVISION_RE = re.compile(r"^[0-9a-f]{40}$")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    revision: str | None
    sha256: str
    size: int | None = None

    @property
    def where(self) -> str:
        return f"{self.repo_id}/{self.filename}@{self.revision or 'main'}"


def parse_hub_ref(ref: str) -> tuple[str, str]:
    """``hf-hub:org/name@revision`` -> (repo_id, revision); the revision must be a full commit id."""
    body = ref[len("hf-hub:"):]
    if "@" not in body:
        raise BrainsegError(f"{ref}: pin a revision, e.g. hf-hub:org/name@<40-character commit id>")
    repo_id, rev = body.rsplit("@", 1)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise BrainsegError(f"{ref}: the repository must be 'org/name'")
    if not REVISION_RE.match(rev):
        raise BrainsegError(f"{ref}: the revision must be a full 40-character commit id")
    return repo_id, rev


def cached_path(f: HubFile) -> Path | None:
    """The cached file, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    p = try_to_load_from_cache(f.repo_id, f.filename, cache_dir=cache_dir(), revision=f.revision)
    return Path(p) if isinstance(p, str) else None


def _remove_cached(path: Path) -> None:
    """Remove a snapshot entry and the blob it points to."""
    try:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        if blob != path:
            blob.unlink(missing_ok=True)
    except OSError:
        pass


def verify_file(path: Path, f: HubFile) -> None:
    got = sha256_file(path)
    if got != f.sha256:
        _remove_cached(path)
        raise BrainsegError(f"{f.where}: sha256 {got[:12]}... does not match the manifest's {f.sha256[:12]}...; "
                            "the file was removed from the cache")


def download(f: HubFile, *, force: bool = False) -> Path:
    """Cached, checksum-verified local path of a Hub file (downloads unless offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, \
        RevisionNotFoundError

    hit = None if force else cached_path(f)
    if hit is not None:
        verify_file(hit, f)
        return hit
    if offline():
        raise BrainsegError(f"{f.where} is not in the cache ({cache_dir()}) and HF_HUB_OFFLINE is set; run "
                            "`brainseg weights pull` with network access, or copy the cache over")
    try:
        path = Path(hf_hub_download(f.repo_id, f.filename, revision=f.revision, cache_dir=cache_dir(),
                                    endpoint=endpoint(), force_download=force))
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise BrainsegError(f"{f.where}: not found on the Hub ({type(exc).__name__})") from None
    except LocalEntryNotFoundError:
        raise BrainsegError(f"{f.where}: the Hub cannot be reached and the file is not cached") from None
    except OSError as exc:
        raise BrainsegError(f"{f.where}: download failed ({type(exc).__name__}: {exc}); run the command again "
                            "to resume") from None
    except Exception as exc:  # httpx / huggingface_hub network errors
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BrainsegError(f"{f.where}: download failed ({type(exc).__name__}: {first}); run the command "
                            "again to resume") from None
    verify_file(path, f)
    return path


def upload_folder(folder: Path, repo_id: str, message: str, token: str | None = None,
                  private: bool = False) -> str:
    """Create the repository if needed, upload the folder in one commit, return the commit id."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint(), token=token)
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=message)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BrainsegError(f"upload to {repo_id} failed ({type(exc).__name__}: {first})") from None
    oid = getattr(info, "oid", None)
    if not oid or not REVISION_RE.match(oid):
        raise BrainsegError(f"upload to {repo_id}: the Hub returned no commit id")
    return oid
