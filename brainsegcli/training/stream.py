"""The training volumes: volume ``k`` of a rank is a pure function of (seed, rank, k).

Synthetic volumes take seconds each on a CPU (deformation, intensities, bias, blur, conform), so
they are made ahead in background threads: ``workers`` volumes at a time, in order. The threads
only decide *when* a volume is made, never *what* it is, so any ``workers`` gives the same run.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from brainsegcli.labels import LabelSet
from brainsegcli.training.data import Subject, flip_lr, load_label_map, load_real
from brainsegcli.training.synth import Priors, SynthConfig, sample_params, synthesize


class StreamConfig(Protocol):
    seed: int
    synthetic: bool
    priors_dir: str | None
    synth: dict[str, Any]
    augment: dict[str, float]
    volumes_per_batch: int


class VolumeStream:
    """Volume ``k`` for this rank, made deterministically; the next ``workers`` are made ahead."""

    def __init__(self, cfg: StreamConfig, labelset: LabelSet, subjects: list[Subject], rank: int, world: int,
                 workers: int = 1):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.cfg, self.labelset, self.rank, self.workers = cfg, labelset, rank, workers
        self.subjects = subjects[rank::world] if len(subjects) >= world else subjects
        self.priors = Priors.load(cfg.priors_dir) if cfg.synthetic and cfg.priors_dir else None
        self.pool = ThreadPoolExecutor(workers)
        self.pending: dict[int, Future] = {}
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.keep = max(cfg.volumes_per_batch, 1) + 1

    def make(self, key: list[int], subject: Subject, flip_p: float) -> tuple[np.ndarray, np.ndarray]:
        """(conformed uint8 image, class-index target) of one subject, randomised by ``key``."""
        rng = np.random.default_rng(key)
        if self.cfg.synthetic:
            raw, target, affine = load_label_map(subject, self.labelset)
            priors = self.priors or Priors.generic(np.unique(raw))
            params = sample_params(rng, priors, SynthConfig(**self.cfg.synth))
            image, target, _ = synthesize(raw, target, priors, params, affine)
        else:
            image, target = load_real(subject, self.labelset)
        if rng.random() < flip_p:
            image, target = flip_lr(image, target, self.labelset)
        return np.ascontiguousarray(image), np.ascontiguousarray(target)

    def make_many(self, jobs: list[tuple[list[int], Subject, float]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`make` for each (key, subject, flip_p), in the worker threads; results in order."""
        return list(self.pool.map(lambda job: self.make(*job), jobs))

    def _job(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        key = [self.cfg.seed, self.rank, k]
        subject = self.subjects[int(np.random.default_rng(key + [7]).integers(len(self.subjects)))]
        return self.make(key, subject, self.cfg.augment.get("flip", 0.0))

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Volume ``k`` (kept while it is among the last ``keep`` volumes asked for)."""
        if k in self.cache:
            return self.cache[k]
        fut = self.pending.pop(k, None) or self.pool.submit(self._job, k)
        for old in [j for j in self.pending if j < k]:
            self.pending.pop(old).cancel()
        for j in range(k + 1, k + 1 + self.workers):
            if j not in self.pending:
                self.pending[j] = self.pool.submit(self._job, j)
        self.cache[k] = volume = fut.result()
        for old in sorted(self.cache)[:-self.keep]:
            if old != k:
                del self.cache[old]
        return volume

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
