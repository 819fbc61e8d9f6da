"""The trainer: deterministic data stream, validation, checkpoints, exact resume, DDP.

The data stream is a pure function of (seed, rank, step): volume ``k = step // steps_per_volume`` is
made from ``default_rng([seed, rank, k])`` and the stacks of a step from
``default_rng([seed, rank, k, step])``, so resuming needs only the step counter and the saved
model/optimizer/scheduler states, and an interrupted run loses at most the current epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from brainsegcli.inference.device import autocast, resolve_device, resolve_precision
from brainsegcli.inference.predictor import InferenceConfig, predict_labels
from brainsegcli.labels import get_labelset
from brainsegcli.metrics import dice
from brainsegcli.models import count_parameters, create_model, get_spec, transfer_to_new_head
from brainsegcli.training.batchnorm import StackPool, recalibrate_batchnorm
from brainsegcli.training.data import StackSampler, Subject
from brainsegcli.training.losses import SegmentationLoss
from brainsegcli.training.recipes import Recipe
from brainsegcli.training.stream import VolumeStream
from brainsegcli.types import BrainsegError, Plane
from brainsegcli.weights.checkpoint import CheckpointConfig, InputSpec, load_checkpoint, save_checkpoint

STATE_FILE = "train_state.pt"


@dataclass
class TrainConfig:
    model: str
    labelset: str
    recipe: str
    hp: Recipe
    train_subjects: list[dict[str, Any]]
    val_subjects: list[dict[str, Any]]
    synthetic: bool
    priors_dir: str | None = None
    steps_per_epoch: int = 200
    stacks_per_volume: int = 64
    volumes_per_batch: int = 4          # each batch mixes stacks of the last N volumes
    views: tuple[str, ...] = ("coronal", "axial", "sagittal")
    n_slices: int = 5
    crop: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    val_volumes_per_subject: int = 1
    val_stacks: int = 48
    val_every: int = 1                  # validate (and pick the best checkpoint) every N epochs and at the end
    augment: dict[str, float] = field(default_factory=lambda: {"flip": 0.5, "noise": 0.03, "scale": 0.1,
                                                                 "rotate_deg": 10.0})
    init_from: str | None = None
    new_head: bool = False              # --init-from another label set: fresh output layer, rest transferred
    bn_pool: int = 512                  # stacks kept for BatchNorm recalibration before validation (0: off)
    base_weights: str | None = None     # SAM models: official checkpoint (path or manifest name)
    synth: dict[str, Any] = field(default_factory=dict)  # SynthConfig overrides
    workers: int = 1                    # threads making the next volumes ahead (same run for any number)
    name: str = ""
    command: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        d["hp"] = Recipe(**{**d["hp"], "betas": tuple(d["hp"]["betas"])})
        d["views"] = tuple(d["views"])
        return cls(**d)


def _subjects(items: list[dict[str, Any]]) -> list[Subject]:
    return [Subject(s["name"], Path(s["labels"]), Path(s["image"]) if s.get("image") else None) for s in items]


def augment_batch(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, aug: dict[str, float]):
    """In-plane rotation, intensity scaling and Gaussian noise (papers: flips + Gaussian noise).

    Runs where ``x`` and ``y`` are (on the GPU when training there); the random draws come from the
    CPU generator ``gen`` (the noise field from a generator on ``x``'s device seeded by it)."""
    b, dev = x.shape[0], x.device
    if aug.get("rotate_deg", 0) > 0:
        ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(aug["rotate_deg"])
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[:, 0].long()
    if aug.get("scale", 0) > 0:
        x = x * (1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * aug["scale"]).to(dev)
    if aug.get("noise", 0) > 0:
        sd = (torch.rand(b, 1, 1, 1, generator=gen) * aug["noise"]).to(dev)
        noise_gen = torch.Generator(device=dev).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        x = x + sd * torch.randn(x.shape, generator=noise_gen, device=dev) * (x > 0)
    return x.clamp(0, 1.5), y


def make_optimizer(params, hp: Recipe) -> torch.optim.Optimizer:
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=0.9, weight_decay=hp.weight_decay)
    raise BrainsegError(f"unknown optimizer {hp.optimizer!r}")


def lr_factor(hp: Recipe, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    def f(s: int) -> float:
        if hp.warmup and s < hp.warmup:
            return (s + 1) / hp.warmup
        t = s - hp.warmup
        rest = max(total_steps - hp.warmup, 1)
        if hp.scheduler == "warmup-poly":
            return max(1 - t / rest, 0.0) ** hp.poly_power
        if hp.scheduler == "warmup-exp":
            return hp.exp_gamma ** (t / steps_per_epoch)
        if hp.scheduler == "warmup-cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t / rest, 1.0)))
        if hp.scheduler in ("constant", "plateau"):
            return 1.0
        raise BrainsegError(f"unknown scheduler {hp.scheduler!r}")
    return f


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun set up (NCCL on GPUs, gloo on CPU); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def finish_distributed(clean: bool) -> None:
    """Leave the process group: after a clean run every rank meets first (a rank that exits while another's gloo
    still talks to it can abort that one), then the group is destroyed. No-op outside torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, log: Callable[[str], None] = print,
                 progress: Callable[[dict[str, Any]], None] | None = None):
        self.cfg, self.run_dir, self.log, self.progress = cfg, Path(run_dir), log, progress
        self.labelset = get_labelset(cfg.labelset)
        self.device = resolve_device(cfg.device)
        self.dist = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.dtype = resolve_precision(self.device, cfg.precision)
        self.views = tuple(Plane(v) for v in cfg.views)
        hp = cfg.hp
        torch.manual_seed(cfg.seed)
        init_base, self.init_training = None, None
        if cfg.init_from:
            self.model, ck = load_checkpoint(cfg.init_from)
            self.init_training = {"checkpoint": ck.name, **ck.extra.get("training", {})}
            check_init_from(cfg.init_from, ck, cfg.model, cfg.labelset, cfg.new_head)
            self.model_args = ck.model_args
            init_base = ck.base_model
            if cfg.new_head:
                self.model = transfer_to_new_head(self.model, cfg.model, cfg.n_slices, self.labelset.num_classes,
                                                  ck.model_args)
        else:
            get_spec(cfg.model)
            self.model_args = {**get_spec(cfg.model).default_args, **hp.model_args}
            self.model = create_model(cfg.model, in_channels=cfg.n_slices, num_classes=self.labelset.num_classes,
                                      **self.model_args)
        self.base_model = init_base if cfg.init_from else None
        if cfg.base_weights and not cfg.init_from:
            self.base_model = self._load_base(cfg.base_weights)
        self.model.to(self.device).train()
        self.net = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        self.optimizer = make_optimizer([p for p in self.model.parameters() if p.requires_grad], hp)
        self.total_steps = hp.epochs * cfg.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(hp, self.total_steps, cfg.steps_per_epoch))
        self.plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=hp.plateau_factor, patience=hp.plateau_patience) if hp.scheduler == "plateau"
            else None)
        groups = self.labelset.sagittal_index if self.labelset.lr_pairs else None
        self.loss_fn = SegmentationLoss(self.labelset.num_classes, hp.ce_weight, hp.dice_weight, hp.class_weights,
                                        groups, hp.edge_weight).to(self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.epoch, self.step, self.best, self.bad_epochs, self.history = 0, 0, None, 0, []
        self.steps_per_volume = max(1, cfg.stacks_per_volume // hp.batch_size)
        self.stream = VolumeStream(cfg, self.labelset, _subjects(cfg.train_subjects), self.dist.rank,
                                   self.dist.world, cfg.workers)
        self._val: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._samplers: dict[int, StackSampler] = {}
        self.bn_pool = StackPool(cfg.bn_pool)

    def _load_base(self, ref: str) -> dict[str, Any]:
        from brainsegcli.weights.checkpoint import read_base, sha256_file

        if not hasattr(self.model, "load_base"):
            raise BrainsegError(f"--base-weights: {self.cfg.model!r} does not start from a base checkpoint")
        base = {"path": str(Path(ref).resolve()), "sha256": sha256_file(ref)} if Path(ref).is_file() else {"name": ref}
        self.model.load_base(read_base(base))
        return base

    # ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else {},
                "scaler": self.scaler.state_dict() if self.scaler else {},
                "epoch": self.epoch, "step": self.step, "best": self.best, "bad_epochs": self.bad_epochs,
                "history": json.dumps(self.history), "torch_rng": torch.get_rng_state()}

    def load_state(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(st["model"], strict=True)
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        if self.plateau and st["plateau"]:
            self.plateau.load_state_dict(st["plateau"])
        if self.scaler and st["scaler"]:
            self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.step, self.best = st["epoch"], st["step"], st["best"]
        self.bad_epochs, self.history = st["bad_epochs"], json.loads(st["history"])
        torch.set_rng_state(st["torch_rng"])

    # ------------------------------------------------------------------------------------------
    def batch(self, step: int):
        """(uint8 stacks, targets, is-sagittal flags, augmentation generator) of a step: stacks from the
        last ``volumes_per_batch`` volumes, so every batch mixes several synthetic contrasts and
        BatchNorm's running statistics do not follow the latest volume's contrast."""
        k = step // self.steps_per_volume
        window = list(range(max(k - self.cfg.volumes_per_batch + 1, 0), k + 1))
        for j in window:
            if j not in self._samplers:
                image, target = self.stream.get(j)
                self._samplers[j] = StackSampler(image, target, self.views, self.cfg.n_slices, self.cfg.crop)
        for j in [j for j in self._samplers if j not in window]:
            del self._samplers[j]
        rng = np.random.default_rng([self.cfg.seed, self.dist.rank, k, step])
        n = self.cfg.hp.batch_size
        counts = [n // len(window) + (i < n % len(window)) for i in range(len(window))]
        parts = [self._samplers[j].draw(rng, c) for j, c in zip(window, counts) if c > 0]
        x, y, sag = (np.concatenate([p[i] for p in parts]) for i in range(3))
        self.bn_pool.offer(x)  # every volume is first in the window once
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(sag), gen

    def train_step(self, step: int) -> float:
        x, y, sag, gen = self.batch(step)
        x, y, sag = x.to(self.device), y.to(self.device), sag.to(self.device)  # uint8: a quarter of the bytes
        x, y = augment_batch(x.float() / 255.0, y, gen, self.cfg.augment)  # on the GPU when training there
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            out = self.net(x)
        aux: list[torch.Tensor] = []
        edge = None
        if isinstance(out, tuple):
            out, aux = out
        if isinstance(out, dict):
            out, edge = out["logits"], out.get("edges")
        loss = self.loss_fn(out, y, sag, edge)
        for a in aux:
            loss = loss + 0.5 / max(len(aux), 1) * self.loss_fn(a, y, sag)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    # ------------------------------------------------------------------------------------------
    def val_volumes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._val is None:
            per_subject = self.cfg.val_volumes_per_subject if self.cfg.synthetic else 1
            self._val = self.stream.make_many([([self.cfg.seed, 10_000, i, j], s, 0.0)
                                               for i, s in enumerate(_subjects(self.cfg.val_subjects))
                                               for j in range(per_subject)])
        return self._val

    def recalibrate(self) -> int:
        """BatchNorm statistics averaged over the pooled stacks of the epoch (see training.batchnorm)."""
        def to_input(xb: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(xb).float().div(255).to(self.device)
            return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else x

        return recalibrate_batchnorm(self.model, self.bn_pool.batches(self.cfg.hp.batch_size, self.step), to_input,
                                     lambda: autocast(self.device, self.dtype))

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        losses, per_class = [], {c: [] for c in range(1, self.labelset.num_classes)}
        infer = InferenceConfig(views=self.views, n_slices=self.cfg.n_slices, batch_size=16, device=self.device,
                                dtype=self.dtype)
        for i, (image, target) in enumerate(self.val_volumes()):
            sampler = StackSampler(image, target, self.views, self.cfg.n_slices)
            x, y, sag = sampler.draw(np.random.default_rng([self.cfg.seed, 20_000, i]), self.cfg.val_stacks)
            for s in range(0, len(x), 16):
                xb = torch.from_numpy(x[s:s + 16]).float().div(255).to(self.device)
                with autocast(self.device, self.dtype):
                    out = self.model(xb)
                out = out[0] if isinstance(out, tuple) else out
                out = out["logits"] if isinstance(out, dict) else out
                losses.append(float(self.loss_fn(out, torch.from_numpy(y[s:s + 16]).to(self.device),
                                                 torch.from_numpy(sag[s:s + 16]).to(self.device))))
            pred = predict_labels(image, self.model, self.labelset, infer)
            for c in per_class:
                d = dice(pred == c, target == c)
                if not math.isnan(d):
                    per_class[c].append(d)
        self.model.train()
        class_dice = {self.labelset.names[c]: float(np.mean(v)) for c, v in per_class.items() if v}
        return {"val_loss": float(np.mean(losses)) if losses else math.nan,
                "val_dice": float(np.mean(list(class_dice.values()))) if class_dice else math.nan,
                "val_class_dice": class_dice}

    # ------------------------------------------------------------------------------------------
    def checkpoint_config(self, metrics: dict[str, Any]) -> CheckpointConfig:
        cfg = self.cfg
        return CheckpointConfig(
            architecture=cfg.model, labelset=cfg.labelset, model_args=self.model_args,
            input=InputSpec(slices=cfg.n_slices), name=cfg.name or self.run_dir.name, version="1",
            base_model=self.base_model,
            extra={"training": {"recipe": cfg.recipe, "epoch": self.epoch, "step": self.step,
                                "command": cfg.command, "synthetic": cfg.synthetic,
                                "train_subjects": [s["name"] for s in cfg.train_subjects],
                                "val_subjects": [s["name"] for s in cfg.val_subjects],
                                "init_from": cfg.init_from, "init_training": self.init_training},
                   "metrics": metrics})

    def save(self, metrics: dict[str, Any], improved: bool) -> None:
        from brainsegcli.training.report import write_learning_curve, write_model_card

        ck = self.checkpoint_config(metrics)
        save_checkpoint(self.run_dir / "last", self.model, ck)
        write_model_card(self.run_dir / "last", ck, count_parameters(self.model))
        if improved:
            save_checkpoint(self.run_dir / "best", self.model, ck)
            write_model_card(self.run_dir / "best", ck, count_parameters(self.model))
        tmp = self.run_dir / (STATE_FILE + ".part")
        torch.save(self.state(), tmp)
        os.replace(tmp, self.run_dir / STATE_FILE)
        write_learning_curve(self.run_dir / "learning_curve.png", self.history)

    def is_better(self, m: dict[str, Any]) -> bool:
        key = self.cfg.hp.select_by
        v = m[key]
        if math.isnan(v):
            return self.best is None
        if self.best is None:
            return True
        return v > self.best if key == "val_dice" else v < self.best

    def fit(self, resume: bool = False) -> dict[str, Any]:
        if resume:
            self.load_state(self.run_dir / STATE_FILE)
        hp = self.cfg.hp
        clean = False
        try:
            while self.epoch < hp.epochs:
                t0 = time.perf_counter()
                losses = []
                self.bn_pool.clear()  # this epoch's stacks only (and a resumed run sees the same ones)
                for i in range(self.cfg.steps_per_epoch):
                    losses.append(self.train_step(self.step))
                    self.step += 1
                    if self.progress and self.dist.main:
                        self.progress({"epoch": self.epoch + 1, "step": i + 1, "loss": losses[-1]})
                self.epoch += 1
                m: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "train_loss": float(np.mean(losses)),
                                     "lr": self.optimizer.param_groups[0]["lr"],
                                     "seconds": round(time.perf_counter() - t0, 2)}
                stop = False
                if self.dist.main:
                    self.recalibrate()
                    improved = False
                    if self.epoch % max(self.cfg.val_every, 1) == 0 or self.epoch >= hp.epochs:
                        m.update(self.validate())
                        if self.plateau:
                            self.plateau.step(m["val_loss"])
                        improved = self.is_better(m)
                        if improved:
                            self.best = m[hp.select_by]
                            self.bad_epochs = 0
                        else:
                            self.bad_epochs += 1
                    m["best"] = self.best
                    self.history.append(m)
                    self.save(m, improved)  # state first: an interrupted run never logs an epoch it lost
                    with open(self.run_dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(m) + "\n")
                    val = (f", val loss {m['val_loss']:.4f}, val Dice {m['val_dice']:.4f}" if "val_loss" in m else "")
                    self.log(f"epoch {self.epoch}: loss {m['train_loss']:.4f}{val}, {m['seconds']:.0f} s")
                    stop = bool(hp.early_stop and self.bad_epochs >= hp.early_stop)
                stop = self._broadcast_stop(stop)
                if stop:
                    self.log(f"early stop after {self.epoch} epochs")
                    break
            clean = True
        finally:
            self.stream.close()
            if self.dist.world > 1:
                finish_distributed(clean)
        return {"epochs": self.epoch, "steps": self.step, "best": self.best,
                "history": self.history[-1] if self.history else {}}

    def _broadcast_stop(self, stop: bool) -> bool:
        if self.dist.world <= 1:
            return stop
        import torch.distributed as dist

        t = torch.tensor([1 if stop else 0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.broadcast(t, 0)
        return bool(t.item())


def check_init_from(ref: str, ck: CheckpointConfig, model: str, labelset: str, new_head: bool) -> None:
    """``--init-from`` needs the same architecture, and the same label set unless ``--new-head``."""
    if ck.architecture != model or (ck.labelset != labelset and not new_head):
        raise BrainsegError(f"--init-from {ref} is a {ck.architecture}/{ck.labelset} checkpoint"
                            + (f"; add --new-head to transfer it to {labelset!r}" if ck.architecture == model else ""))


def run_config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
