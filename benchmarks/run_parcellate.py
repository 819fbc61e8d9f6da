"""Run the real ``brainseg parcellate`` command on one T1 for the real-scan benchmarks.

A subprocess, so conform, inference, view fusion, clean-up and the return to native space are the ones users
get; the labels and report are read back from a temporary output folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from brainsegcli.io.image import load_volume


def parcellate(t1: str | Path, weights: str, *, tta: bool = True, cleanup: bool = True,
               threads: int = 2) -> tuple[np.ndarray, dict]:
    """Native-space label map (FreeSurfer ids, int32) and the JSON report of ``brainseg parcellate T1``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "brainsegcli", "parcellate", str(t1), "-o", tmp, "--weights", weights,
               "--threads", str(threads), "--quiet", "--tta" if tta else "--no-tta",
               "--cleanup" if cleanup else "--no-cleanup"]
        subprocess.run(cmd, check=True)
        report = json.loads(next(Path(tmp).glob("*/report.json")).read_text())
        labels = np.asarray(load_volume(next(Path(tmp).glob("*/labels.nii.gz")), kind="labels").data, np.int32)
    return labels, report
