"""Synthetic-image generation throughput vs training throughput on this machine.

Usage: python benchmarks/bench_synth.py [--labelset tissue] [--model unet] [--n 4] [--threads 2]
       [--crop 160] [--batch-size 16] [--stacks-per-volume 192]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from brainsegcli.labels import get_labelset
from brainsegcli.models import create_model
from brainsegcli.training.data import StackSampler, Subject, load_label_map
from brainsegcli.training.losses import SegmentationLoss
from brainsegcli.training.synth import Priors, SynthConfig, sample_params, synthesize
from brainsegcli.types import Plane

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthseg"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labelset", default="tissue")
    ap.add_argument("--model", default="unet")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--stacks-per-volume", type=int, default=192)
    ap.add_argument("--data", default=str(SHARED))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ls = get_labelset(a.labelset)
    priors = Priors.load(Path(a.data) / "priors")
    raw, tgt, aff = load_label_map(Subject("s", Path(a.data) / "training_seg_01.nii.gz"), ls)
    rng = np.random.default_rng(0)
    synthesize(raw, tgt, priors, sample_params(rng, priors, SynthConfig()), aff)  # warm-up
    t = time.perf_counter()
    for _ in range(a.n):
        img, y, _ = synthesize(raw, tgt, priors, sample_params(rng, priors, SynthConfig()), aff)
    gen = (time.perf_counter() - t) / a.n
    t = time.perf_counter()
    sampler = StackSampler(img, y, tuple(Plane), 5, a.crop)
    for _ in range(4):
        sampler.draw(rng, a.batch_size)
    draw = (time.perf_counter() - t) / 4
    model = create_model(a.model, num_classes=ls.num_classes).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = SegmentationLoss(ls.num_classes)
    x, yy, sag = sampler.draw(rng, a.batch_size)
    xt = torch.from_numpy(x).float().div(255).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(4):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(xt)
        loss = loss_fn(out, torch.from_numpy(yy), torch.from_numpy(sag))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    step = min(times[1:])
    steps_per_volume = a.stacks_per_volume / a.batch_size
    print(f"synthetic 256^3 volume: {gen:.2f} s ({1 / gen:.2f} volumes/s, "
          f"{a.stacks_per_volume / gen:.0f} stacks/s at {a.stacks_per_volume} stacks per volume)")
    print(f"stack sampling: {draw:.3f} s per batch of {a.batch_size}")
    print(f"{a.model} training step (bf16, batch {a.batch_size}, crop {a.crop}): {step:.2f} s "
          f"({a.batch_size / step:.0f} stacks/s)")
    print(f"per volume: generation {gen:.1f} s vs training {steps_per_volume * (step + draw):.1f} s "
          f"({steps_per_volume:.0f} steps); threads {a.threads}")


if __name__ == "__main__":
    main()
