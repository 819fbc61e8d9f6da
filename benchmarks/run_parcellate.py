"""Run the real ``brainseg parcellate`` command on one T1 for the real-scan benchmarks.

A subprocess, so conform, inference, view fusion, clean-up and the return to native space are the ones users
get; the labels and report are read back from a temporary output folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainsegcli.io.image import load_volume


@dataclass
class Outputs:
    """What one ``brainseg parcellate`` run wrote (label maps as FreeSurfer ids, int32)."""

    labels: np.ndarray  # on the input's grid
    labels_conformed: np.ndarray
    conformed_affine: np.ndarray
    conformed: np.ndarray  # the conformed image the network saw (uint8 values)
    report: dict


def run(t1: str | Path, weights: str, *, tta: bool = True, cleanup: bool = True, refine: bool = True,
        threads: int = 2) -> Outputs:
    """``brainseg parcellate T1 --weights W`` in a subprocess; its outputs read back."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "brainsegcli", "parcellate", str(t1), "-o", tmp, "--weights", weights,
               "--threads", str(threads), "--quiet", "--tta" if tta else "--no-tta",
               "--cleanup" if cleanup else "--no-cleanup", "--refine-edges" if refine else "--no-refine-edges"]
        subprocess.run(cmd, check=True)
        out = next(Path(tmp).iterdir())
        conformed = load_volume(out / "labels_conformed.nii.gz", kind="labels")
        return Outputs(labels=np.asarray(load_volume(out / "labels.nii.gz", kind="labels").data, np.int32),
                       labels_conformed=np.asarray(conformed.data, np.int32),
                       conformed_affine=np.asarray(conformed.affine, float),
                       conformed=np.asarray(load_volume(out / "conformed.nii.gz").data),
                       report=json.loads((out / "report.json").read_text()))


def parcellate(t1: str | Path, weights: str, *, tta: bool = True, cleanup: bool = True, refine: bool = True,
               threads: int = 2) -> tuple[np.ndarray, dict]:
    """Native-space label map (FreeSurfer ids, int32) and the JSON report of ``brainseg parcellate T1``."""
    res = run(t1, weights, tta=tta, cleanup=cleanup, refine=refine, threads=threads)
    return res.labels, res.report
