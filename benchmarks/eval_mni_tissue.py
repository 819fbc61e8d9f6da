"""GM/WM Dice of a tissue checkpoint (or an aseg one, merged to tissue classes) on a real T1: the
bundled MNI ICBM152 2009a sample, against the template's own grey/white-matter probability maps
(shipped in the nilearn wheel: ``pip download --no-deps nilearn`` and unzip
``nilearn/datasets/data/mni_icbm152_{gm,wm}_*``).

Reference: WM where p(WM) > 0.5, GM where p(GM) > 0.5 and not WM (the maps are 0..255).
Caveat: the template is an average of 152 brains, smoother than a single scan.

Usage: python benchmarks/eval_mni_tissue.py --weights RUN/best --gm GM.nii.gz --wm WM.nii.gz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from brainsegcli.cli.parcellate import sample_path
from brainsegcli.inference.cleanup import clean_labels
from brainsegcli.inference.device import resolve_precision
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.io.conform import conform, to_native
from brainsegcli.io.image import load_volume
from brainsegcli.labels import get_labelset, indices_to_ids, map_labels
from brainsegcli.metrics import dice
from brainsegcli.weights.checkpoint import load_checkpoint
from brainsegcli.weights.manifest import resolve_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="manifest name or checkpoint folder")
    ap.add_argument("--gm", required=True)
    ap.add_argument("--wm", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", action="store_true", help="left-right flip test-time augmentation")
    ap.add_argument("--no-cleanup", action="store_true", help="score the raw network output (parcellate --no-cleanup)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg = load_checkpoint(resolve_weights(a.weights).directory)
    ls = get_labelset(cfg.labelset)
    vol = load_volume(sample_path())
    conf = conform(vol)
    dev = torch.device("cpu")
    idx = predict_labels(conf.data, model.to(memory_format=torch.channels_last), ls,
                         InferenceConfig(device=dev, dtype=resolve_precision(dev, "auto"), flip_tta=a.tta))
    if not a.no_cleanup:
        idx = clean_labels(idx, ls)[0]
    pred = to_native(indices_to_ids(idx, ls), conf)
    if ls.name != "tissue":  # e.g. aseg: cortex and grey nuclei -> GM, white matter -> WM (as for training)
        pred, _ = map_labels(pred, get_labelset("tissue"), "freesurfer")
    gm = np.asarray(load_volume(a.gm, kind="labels").data, dtype=float)
    wm = np.asarray(load_volume(a.wm, kind="labels").data, dtype=float)
    ref_wm = wm > 127
    ref_gm = (gm > 127) & ~ref_wm
    print(f"GM Dice {dice(pred == 2, ref_gm):.4f}, WM Dice {dice(pred == 3, ref_wm):.4f} "
          f"(pred GM {int((pred == 2).sum())} vox, ref {int(ref_gm.sum())}; pred WM {int((pred == 3).sum())}, "
          f"ref {int(ref_wm.sum())})")


if __name__ == "__main__":
    main()
