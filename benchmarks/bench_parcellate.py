"""Seconds per stage and peak RSS of `parcellate` for each CNN model on a 256^3 input.

Usage: python benchmarks/bench_parcellate.py [--models unet,deepmrseg] [--device cpu] [--threads 2]
       [--precision auto] [--input T1.nii.gz] [--tta]

Each model runs in its own subprocess (so peak RSS is per model) with random weights: speed does
not depend on the weight values. The default input is the bundled sample conformed to 256^3.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, tempfile
from pathlib import Path
import torch
from brainsegcli.cli.parcellate import load_network, sample_path
from brainsegcli.inference.device import prepare_for_inference, resolve_device, resolve_precision
from brainsegcli.inference.predictor import InferenceConfig
from brainsegcli.labels import get_labelset
from brainsegcli.pipeline import parcellate_one
from brainsegcli.models import get_spec
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
dev = resolve_device(args["device"])
dtype = resolve_precision(dev, args["precision"])
spec = get_spec(args["model"])
ls = spec.labelsets[0]
net, ls, _, info = load_network(args["model"], ls, None, True, dev)
prepare_for_inference(net, dev)
cfg = InferenceConfig(batch_size=args["batch_size"], device=dev, dtype=dtype, flip_tta=args["tta"])
src = Path(args["input"]) if args["input"] else sample_path()
with tempfile.TemporaryDirectory() as d:
    rep = parcellate_one(src, Path(d) / "x", net, get_labelset(ls), cfg, info)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
gpu = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
print(json.dumps({"model": args["model"], "labelset": ls, "seconds": rep["seconds"], "peak_rss_mib": round(peak),
                  "peak_gpu_mib": gpu, "device": str(dev), "precision": str(dtype)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="unet,sepres-unet,attention-unet,deepmrseg")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--input", default="")
    ap.add_argument("--tta", action="store_true", help="mirror test-time augmentation (parcellate's default)")
    a = ap.parse_args()
    rows = []
    for m in a.models.split(","):
        payload = json.dumps({"model": m, "device": a.device, "threads": a.threads, "precision": a.precision,
                              "batch_size": a.batch_size, "input": a.input, "tta": a.tta})
        out = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    stages = ["load", "conform", "view_coronal", "view_axial", "view_sagittal", "fusion", "native_resampling",
              "write", "total"]
    print("| model | label set | " + " | ".join(stages) + " | peak RSS MiB |")
    print("|" + " --- |" * (len(stages) + 3))
    for r in rows:
        print(f"| {r['model']} | {r['labelset']} | " + " | ".join(f"{r['seconds'].get(s, 0):.2f}" for s in stages)
              + f" | {r['peak_rss_mib']} |")
    print(f"\ndevice {rows[0]['device']}, precision {rows[0]['precision']}, threads {a.threads}, "
          f"batch {a.batch_size}, tta {a.tta}")


if __name__ == "__main__":
    main()
