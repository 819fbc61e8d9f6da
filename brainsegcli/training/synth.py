"""SynthSeg-style synthetic T1-like images from label maps.

Random parameters are drawn by :func:`sample_params` (pure function of a numpy Generator) and
applied deterministically by :func:`synthesize`; the same parameters always give the same image.

Per sample: a random affine (rotation, scaling, shear) and a smooth random elastic displacement
deform the label map (nearest neighbour); each generation class gets a Gaussian intensity (means and
standard deviations from SynthSeg's T1 priors for a realistic T1 contrast, or uniform for a random
contrast); then a smooth multiplicative bias field, blur (isotropic, or anisotropic to mimic thick
slices), Gaussian noise and a gamma transform (with ``thick_resample``, thick slices are also sampled at their
spacing and interpolated back to 1 mm); optionally the extra-cerebral tissues are removed
(skull-stripped look). The result is conformed with the same code as real inputs. With ``p_atrophy``, the label
map is first given enlarged lateral ventricles and thinner hippocampi (:mod:`brainsegcli.training.atrophy`).

SynthSeg's prior files hold, per generation class, two rows: row 0 is the mean and row 1 the
standard deviation of a normal distribution from which the class's mean (``prior_means_t1``) or
standard deviation (``prior_stds_t1``) is drawn (row 1 is smaller than row 0 for every class, so
they cannot be the ``[low, high]`` bounds of a uniform range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainsegcli.io.conform import conform, resample_labels
from brainsegcli.metrics import bounding_box
from brainsegcli.types import Volume


@dataclass
class SynthConfig:
    p_t1_contrast: float = 0.5          # realistic T1 priors; otherwise uniform random contrast
    p_skull_strip: float = 0.4
    rotation_deg: float = 15.0
    scaling: float = 0.15
    shear: float = 0.02
    elastic_mm: float = 3.0             # max std of the coarse displacement field (voxels = mm)
    elastic_grid: int = 6
    bias_std: float = 0.4
    bias_grid: int = 4
    p_thick_slices: float = 0.4
    max_slice_mm: float = 5.0
    # thick slices are also *sampled* every slice_mm and interpolated back to 1 mm (what conform does to a real
    # thick-slice scan); off by default so that the training commands recorded before it reproduce exactly
    thick_resample: bool = False
    max_blur_sigma: float = 0.6
    max_noise: float = 10.0
    gamma_std: float = 0.25
    gamma_mean: float = 0.0             # mean of log(gamma); below 0 brightens grey matter relative to white
    uniform_mean: tuple[float, float] = (0.0, 220.0)
    uniform_std: tuple[float, float] = (0.0, 25.0)
    # simulated atrophy (brainsegcli.training.atrophy): with probability p_atrophy, the lateral ventricles grow
    # 0..max_ventricle_mm voxels and the hippocampi lose 0..max_hippocampus_mm layers (each drawn uniformly; with
    # max_hippocampus_growth_mm, from -growth..max_hippocampus_mm: a negative draw thickens them instead);
    # drawn from a stream of its own, so that a config without it gives the images it always gave
    p_atrophy: float = 0.0
    max_ventricle_mm: int = 4
    max_hippocampus_mm: int = 2
    max_hippocampus_growth_mm: int = 0


@dataclass
class Priors:
    """Generation labels, their classes and the intensity priors (SynthSeg layout)."""

    labels: np.ndarray                      # generation label IDs
    classes_t1: np.ndarray                  # class per label, T1 priors
    classes_random: np.ndarray              # class per label, random contrast
    means_t1: np.ndarray                    # (2, n_classes_t1): [mu, sd] of the class mean
    stds_t1: np.ndarray                     # (2, n_classes_t1): [mu, sd] of the class std
    lut: np.ndarray = field(init=False)     # label id -> row in `labels` (background row for unknown)

    def __post_init__(self):
        self.lut = np.zeros(int(self.labels.max()) + 1, dtype=np.int64)
        self.lut[self.labels] = np.arange(len(self.labels))

    @classmethod
    def load(cls, priors_dir: str | Path) -> "Priors":
        d = Path(priors_dir)
        return cls(np.load(d / "generation_labels.npy").astype(np.int64),
                   np.load(d / "generation_classes_contrast_specific.npy").astype(np.int64),
                   np.load(d / "generation_classes.npy").astype(np.int64),
                   np.load(d / "prior_means_t1.npy"), np.load(d / "prior_stds_t1.npy"))

    @classmethod
    def generic(cls, label_ids) -> "Priors":
        """Without prior files: every label its own class, plausible generic T1 priors."""
        ids = np.unique(np.r_[0, np.asarray(label_ids, dtype=np.int64)])
        n = len(ids)
        means = np.vstack([np.linspace(20, 200, n), np.full(n, 15.0)])
        means[0, 0] = 5.0
        stds = np.vstack([np.full(n, 10.0), np.full(n, 3.0)])
        return cls(ids, np.arange(n), np.arange(n), means, stds)


@dataclass
class SynthParams:
    affine: np.ndarray          # 3x3 linear part (output -> source, about the volume centre)
    translation: np.ndarray     # 3 voxels
    elastic: np.ndarray         # (3, g, g, g) coarse displacement in voxels
    t1_contrast: bool
    class_means: np.ndarray
    class_stds: np.ndarray
    skull_strip: bool
    bias: np.ndarray            # (b, b, b) log-field
    blur_sigma: np.ndarray      # 3 voxels
    noise_std: float
    gamma: float
    noise_seed: int
    slice_axis: int = -1        # thick-slice resampling (-1: none): the axis, spacing (voxels) and first sample
    slice_mm: float = 0.0
    slice_phase: float = 0.0
    ventricle_steps: int = 0    # simulated atrophy (brainsegcli.training.atrophy)
    hippocampus_steps: int = 0


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    a, b, c = angles_rad
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_params(rng: np.random.Generator, priors: Priors, cfg: SynthConfig = SynthConfig()) -> SynthParams:
    rot = _rotation(np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg, 3)))
    scale = np.diag(rng.uniform(1 - cfg.scaling, 1 + cfg.scaling, 3))
    shear = np.eye(3) + np.triu(rng.uniform(-cfg.shear, cfg.shear, (3, 3)), 1)
    elastic_std = rng.uniform(0, cfg.elastic_mm)
    t1 = bool(rng.random() < cfg.p_t1_contrast)
    if t1:
        n = priors.means_t1.shape[1]
        means = np.clip(rng.normal(priors.means_t1[0], priors.means_t1[1]), 0, 255)
        stds = np.clip(rng.normal(priors.stds_t1[0], priors.stds_t1[1]), 0, None)
        stds = np.minimum(stds, 0.35 * np.maximum(means, 10))  # keep classes distinguishable
        assert len(means) == n
    else:
        n = int(priors.classes_random.max()) + 1
        means = rng.uniform(*cfg.uniform_mean, n)
        stds = rng.uniform(*cfg.uniform_std, n)
    thick = rng.random() < cfg.p_thick_slices
    sigma = np.full(3, rng.uniform(0, cfg.max_blur_sigma))
    slice_axis, slice_mm = -1, 0.0
    if thick:  # the draws in the order they always had, so that the same seed gives the same parameters
        slice_mm = float(rng.uniform(1.5, cfg.max_slice_mm))
        slice_axis = int(rng.integers(3))
        sigma[slice_axis] = 0.42 * slice_mm  # FWHM ~ slice thickness
    p = SynthParams(
        affine=rot @ scale @ shear, translation=rng.uniform(-5, 5, 3),
        elastic=rng.normal(0, elastic_std, (3,) + (cfg.elastic_grid,) * 3),
        t1_contrast=t1, class_means=means, class_stds=stds,
        skull_strip=bool(rng.random() < cfg.p_skull_strip),
        bias=rng.normal(0, rng.uniform(0, cfg.bias_std), (cfg.bias_grid,) * 3),
        blur_sigma=sigma, noise_std=float(rng.uniform(0, cfg.max_noise)),
        gamma=float(np.exp(rng.normal(cfg.gamma_mean, cfg.gamma_std))), noise_seed=int(rng.integers(2**31)),
    )
    if thick and cfg.thick_resample:  # its own stream: the draws above stay what they were without it
        p.slice_axis, p.slice_mm = slice_axis, slice_mm
        p.slice_phase = float(np.random.default_rng([p.noise_seed, 2]).uniform(0, slice_mm))
    if cfg.p_atrophy > 0:
        arng = np.random.default_rng([p.noise_seed, 3])
        if arng.random() < cfg.p_atrophy:
            p.ventricle_steps = int(arng.integers(0, cfg.max_ventricle_mm + 1))
            p.hippocampus_steps = int(arng.integers(-cfg.max_hippocampus_growth_mm, cfg.max_hippocampus_mm + 1))
    return p


def deform(volumes: torch.Tensor, p: SynthParams) -> torch.Tensor:
    """Nearest-neighbour deformation of (C, X, Y, Z) label volumes by the affine + elastic field."""
    shape = volumes.shape[1:]
    dev = volumes.device
    axes = [torch.arange(s, dtype=torch.float32, device=dev) - (s - 1) / 2 for s in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)           # (X, Y, Z, 3) voxels
    A = torch.as_tensor(p.affine, dtype=torch.float32, device=dev)
    src = grid @ A.T + torch.as_tensor(p.translation, dtype=torch.float32, device=dev)
    disp = F.interpolate(torch.as_tensor(p.elastic, dtype=torch.float32, device=dev)[None], size=tuple(shape),
                         mode="trilinear", align_corners=True)[0]               # (3, X, Y, Z)
    src = src + disp.permute(1, 2, 3, 0)
    # grid_sample wants (x, y, z) = (W, H, D) order, normalised to [-1, 1]
    half = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float32, device=dev)
    norm = (src / half).flip(-1)
    out = F.grid_sample(volumes[None].float(), norm[None], mode="nearest", padding_mode="zeros",
                        align_corners=True)
    return out[0]


def _gaussian_blur(img: torch.Tensor, sigma: np.ndarray) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter1d

    x = img.numpy()
    for ax, sd in enumerate(sigma):
        if sd >= 0.1:
            x = gaussian_filter1d(x, float(sd), axis=ax, mode="nearest", truncate=3.0)
    return torch.from_numpy(np.ascontiguousarray(x))


def _lerp_along(x: torch.Tensor, axis: int, pos: torch.Tensor) -> torch.Tensor:
    """``x`` linearly interpolated at fractional indices ``pos`` (within [0, n - 1]) along ``axis``."""
    lo = pos.floor().long().clamp(0, x.shape[axis] - 1)
    hi = (lo + 1).clamp(max=x.shape[axis] - 1)
    shape = [1] * x.dim()
    shape[axis] = -1
    w = (pos - lo).to(x.dtype).view(shape)
    a = x.index_select(axis, lo)
    return a + (x.index_select(axis, hi) - a) * w


def thick_resample(img: torch.Tensor, axis: int, slice_mm: float, phase: float) -> torch.Tensor:
    """Sample ``img`` every ``slice_mm`` voxels along ``axis`` from ``phase`` on, then interpolate linearly back
    onto every voxel (beyond the first and last sample: their value), as conform does with a thick-slice scan."""
    n = img.shape[axis]
    pos = torch.arange(phase, n - 1 + 1e-6, slice_mm, dtype=torch.float64)
    low = _lerp_along(img, axis, pos)
    back = ((torch.arange(n, dtype=torch.float64) - phase) / slice_mm).clamp(0, len(pos) - 1)
    return _lerp_along(low, axis, back)


def intensities(gen_labels: torch.Tensor, priors: Priors, p: SynthParams) -> torch.Tensor:
    """Gaussian intensity per generation class (no bias, blur, noise or gamma)."""
    row = torch.as_tensor(priors.lut, device=gen_labels.device)[gen_labels.clamp(0, len(priors.lut) - 1).long()]
    classes = torch.as_tensor(priors.classes_t1 if p.t1_contrast else priors.classes_random,
                              device=gen_labels.device)[row]
    means = torch.as_tensor(p.class_means, dtype=torch.float32, device=gen_labels.device)[classes]
    stds = torch.as_tensor(p.class_stds, dtype=torch.float32, device=gen_labels.device)[classes]
    g = torch.Generator(device=gen_labels.device).manual_seed(p.noise_seed)
    noise = torch.randn(gen_labels.shape, generator=g, device=gen_labels.device)
    return (means + stds * noise).clamp_(min=0)


def synthesize(label_map: np.ndarray, target: np.ndarray, priors: Priors, p: SynthParams,
               affine: np.ndarray, corrupt: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``p`` to a label map (256^3 LIA 1 mm) and its training target (class indices).

    Returns (conformed uint8 image, deformed target, raw float image before conform).
    """
    if p.ventricle_steps or p.hippocampus_steps:
        from brainsegcli.training.atrophy import apply_atrophy

        label_map, target = apply_atrophy(label_map, target, p.ventricle_steps, p.hippocampus_steps)
    # render only the labelled box (+ a margin for the deformation); the rest stays background
    box = bounding_box(label_map > 0, 12) or tuple(slice(0, n) for n in label_map.shape)
    centre_shift = np.array([(b.start + b.stop - 1) / 2 - (n - 1) / 2 for b, n in zip(box, label_map.shape)])
    # the deformation is about the volume centre: express it about the box centre
    shifted = SynthParams(**{**p.__dict__, "translation": p.translation + (p.affine - np.eye(3)) @ centre_shift})
    vols = torch.stack([torch.as_tensor(label_map[box].astype(np.float32)),
                        torch.as_tensor(target[box].astype(np.float32))])
    gen_box, tgt_box = deform(vols, shifted)
    gen = torch.zeros(label_map.shape, dtype=torch.long)
    tgt = torch.zeros(label_map.shape, dtype=torch.float32)
    gen[box] = gen_box.round().long()
    tgt[box] = tgt_box
    img = intensities(gen, priors, p)
    if p.skull_strip:
        keep = (gen > 0) & (gen < 500)
        img = img * keep
    if corrupt:
        bias = F.interpolate(torch.as_tensor(p.bias, dtype=torch.float32)[None, None], size=tuple(img.shape),
                             mode="trilinear", align_corners=True)[0, 0]
        img = img * torch.exp(bias)
        img = _gaussian_blur(img, p.blur_sigma)
        g = torch.Generator().manual_seed(p.noise_seed + 1)
        img = img + p.noise_std * torch.randn(img.shape, generator=g)
        img = img.clamp_(min=0)
        mx = float(img.max())
        if mx > 0:
            img = (img / mx) ** p.gamma * 255.0
        if p.slice_axis >= 0:
            img = thick_resample(img, p.slice_axis, p.slice_mm, p.slice_phase)
        if p.skull_strip:
            img = img * keep  # background stays exactly zero, as after real skull stripping
    raw = img.numpy()
    conf = conform(Volume(raw, affine))
    tgt_np = tgt.round().numpy().astype(target.dtype)
    if tgt_np.shape != conf.data.shape or not conf.passthrough and not np.allclose(conf.native_to_conformed, np.eye(4)):
        tgt_np = resample_labels(tgt_np, conf.native_to_conformed, conf.data.shape)
    return conf.data, tgt_np, raw
