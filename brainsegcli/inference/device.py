"""Device and precision selection for inference and training."""

from __future__ import annotations

import contextlib

import torch

from brainsegcli.types import BrainsegError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps`` -> torch.device (refuses unavailable ones)."""
    n = (name or "auto").strip().lower()
    if n == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if n == "cpu":
        return torch.device("cpu")
    if n == "cuda" or n.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BrainsegError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        dev = torch.device(n)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BrainsegError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    if n == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise BrainsegError("--device mps: Apple MPS is not available on this machine")
        return torch.device("mps")
    raise BrainsegError(f"--device {name}: use auto, cpu, cuda, cuda:N or mps")


def resolve_precision(device: torch.device, precision: str = "auto") -> torch.dtype:
    """auto: fp16 autocast on CUDA, bf16 on CPUs that support it, else fp32."""
    p = (precision or "auto").lower()
    if p not in PRECISIONS:
        raise BrainsegError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if p == "fp32":
        return torch.float32
    if p == "bf16":
        return torch.bfloat16
    if p == "fp16":
        if device.type == "cpu":
            raise BrainsegError("--precision fp16 is for GPUs; use bf16 or fp32 on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_bf16_fast():
        return torch.bfloat16
    return torch.float32


def _cpu_bf16_fast() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
