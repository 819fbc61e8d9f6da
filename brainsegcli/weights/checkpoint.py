"""brainseg checkpoints: ``model.safetensors`` + ``config.json`` (the PyTorchModelHubMixin layout).

``config.json`` holds everything needed to rebuild the network *and* to feed it correctly:
architecture and its arguments, label set, and the input contract (conform, slices per stack,
views and fusion weights, intensity normalisation). Loading is always ``strict=True``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from brainsegcli.io.atomic import atomic_write_bytes, atomic_write_text
from brainsegcli.types import BrainsegError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


@dataclass
class InputSpec:
    conform: dict[str, Any] = field(default_factory=lambda: {"orientation": "LIA", "voxel_size_mm": 1.0,
                                                             "shape": [256, 256, 256], "dtype": "uint8"})
    slices: int = 5
    views: dict[str, float] = field(default_factory=lambda: {"coronal": 0.4, "axial": 0.4, "sagittal": 0.2})
    sagittal_lr_merge: bool = True
    intensity: str = "uint8/255"


@dataclass
class CheckpointConfig:
    architecture: str
    labelset: str
    model_args: dict[str, Any] = field(default_factory=dict)
    input: InputSpec = field(default_factory=InputSpec)
    name: str = ""
    version: str = "0"
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # models fine-tuned from a base checkpoint (SAM): {"name" (manifest) and/or "path", "sha256"};
    # the checkpoint then holds only what training changed, and loading starts from the base
    base_model: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=list) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckpointConfig":
        try:
            inp = InputSpec(**d.get("input", {}))
            return cls(architecture=d["architecture"], labelset=d["labelset"], model_args=d.get("model_args", {}),
                       input=inp, name=d.get("name", ""), version=str(d.get("version", "0")),
                       format_version=int(d.get("format_version", FORMAT_VERSION)), extra=d.get("extra", {}),
                       base_model=d.get("base_model"))
        except (KeyError, TypeError) as exc:
            raise BrainsegError(f"config.json is not a brainseg checkpoint config ({exc})") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(directory: str | Path, model: torch.nn.Module, config: CheckpointConfig,
                    dtype: torch.dtype | None = None) -> Path:
    """Write model.safetensors + config.json into ``directory`` (each file atomically)."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    full = model.state_dict()
    if config.base_model and hasattr(model, "trainable_state_dict"):
        full = model.trainable_state_dict()
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in full.items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": "pt"}))
    atomic_write_text(directory / CONFIG_FILE, config.to_json())
    return directory


def read_config(directory: str | Path) -> CheckpointConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise BrainsegError(f"{directory}: no {CONFIG_FILE}; a brainseg checkpoint folder holds "
                            f"{CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        return CheckpointConfig.from_dict(json.loads(path.read_text("utf-8")))
    except json.JSONDecodeError as exc:
        raise BrainsegError(f"{path}: invalid JSON ({exc.msg})") from None


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, CheckpointConfig]:
    """Rebuild the registered architecture and load its weights with ``strict=True``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from brainsegcli.labels import get_labelset
    from brainsegcli.models import create_model

    directory = Path(directory)
    cfg = read_config(directory)
    wpath = directory / WEIGHTS_FILE
    if not wpath.is_file():
        raise BrainsegError(f"{directory}: no {WEIGHTS_FILE}")
    labelset = get_labelset(cfg.labelset)
    model = create_model(cfg.architecture, in_channels=cfg.input.slices, num_classes=labelset.num_classes,
                         **cfg.model_args)
    try:
        state = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BrainsegError(f"{wpath}: not a valid safetensors file ({exc})") from None
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v for k, v in state.items()}
    if cfg.base_model:
        unknown = set(state) - set(ref)
        untrained = model.new_keys() - set(state)
        if unknown or untrained:
            raise BrainsegError(f"{wpath}: keys do not fit {cfg.architecture!r} on its base "
                                f"({sorted(unknown or untrained)[:3]})")
        model.load_base(read_base(cfg.base_model))
        state = {**model.state_dict(), **state}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BrainsegError(f"{wpath}: weights do not match architecture {cfg.architecture!r}: "
                            f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval(), cfg


def read_base(base: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The base checkpoint's state dict: a manifest entry (downloaded, sha256-checked) or a local
    file whose sha256 must match; official ``.pth`` files are read with ``weights_only=True``."""
    from brainsegcli.models.sam.loader import load_official

    path = Path(base["path"]) if base.get("path") else None
    if path is None or not path.is_file():
        if not base.get("name"):
            raise BrainsegError(f"base checkpoint {base.get('path')} not found")
        from brainsegcli.weights.manifest import find_entry, verify_entry

        path = verify_entry(find_entry(base["name"]), fetch=True)
    got = sha256_file(path)
    if base.get("sha256") and got != base["sha256"]:
        raise BrainsegError(f"base checkpoint {path}: sha256 {got[:12]}... is not the {base['sha256'][:12]}... "
                            "this model was trained from")
    return load_official(path)
