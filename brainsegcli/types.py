"""Plain data types shared by every layer. No internal imports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class BrainsegError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints its message as a single line and exits non-zero; it never shows a traceback.
    """


class Plane(str, enum.Enum):
    """The three slicing views. The value is the array axis in a conformed (LIA) volume."""

    SAGITTAL = "sagittal"
    CORONAL = "coronal"
    AXIAL = "axial"

    @property
    def axis(self) -> int:
        # conformed arrays are LIA: axis 0 runs right->left (sagittal slices are fixed x),
        # axis 1 superior->inferior (axial slices), axis 2 posterior->anterior (coronal slices)
        return {"sagittal": 0, "axial": 1, "coronal": 2}[self.value]

    @classmethod
    def parse_list(cls, text: str) -> list["Plane"]:
        names = [t.strip().lower() for t in text.split(",") if t.strip()]
        if not names:
            raise BrainsegError("no view given; use any of axial,coronal,sagittal")
        out: list[Plane] = []
        for n in names:
            try:
                p = cls(n)
            except ValueError:
                raise BrainsegError(f"unknown view {n!r}; use any of axial,coronal,sagittal") from None
            if p not in out:
                out.append(p)
        return out


@dataclass
class Volume:
    """A 3D scalar image: voxel array, voxel-to-world (RAS mm) affine and provenance."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    header: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        a = np.asarray(self.affine, dtype=float)[:3, :3]
        return tuple(float(v) for v in np.sqrt((a**2).sum(axis=0)))  # type: ignore[return-value]
