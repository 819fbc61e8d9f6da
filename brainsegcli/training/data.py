"""Training data: subject lists (CSV, FreeSurfer SUBJECTS_DIR, BIDS derivatives, label maps for
synthesis), volume sources (real or synthetic) and the 2.5D stack sampler.

Real images go through the same conform as inference; label maps are conformed with nearest
neighbour and mapped into the label set with the same functions ``evaluate`` uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainsegcli.inference.slicing import extract_stacks, to_view
from brainsegcli.io.conform import conform, conform_labels
from brainsegcli.io.image import IMAGE_SUFFIXES, image_stem, load_volume
from brainsegcli.io.table import read_path_table, require_dir
from brainsegcli.labels import LabelSet, ids_to_indices, map_labels
from brainsegcli.types import BrainsegError, Plane


@dataclass(frozen=True)
class Subject:
    name: str
    labels: Path
    image: Path | None = None   # None: synthetic images are made from the label map


def subjects_from_csv(path: str | Path) -> list[Subject]:
    rows = read_path_table(path, ("image", "labels"))
    return [Subject(str(r.get("name") or image_stem(r["image"]) or f"row{i}"), r["labels"], r["image"])
            for i, r in enumerate(rows)]


def subjects_from_freesurfer(subjects_dir: str | Path) -> list[Subject]:
    root = require_dir(subjects_dir)
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        mri = sub / "mri"
        lab = next((mri / n for n in ("aparc.DKTatlas+aseg.mgz", "aparc+aseg.mgz", "aseg.mgz")
                    if (mri / n).is_file()), None)
        if (mri / "orig.mgz").is_file() and lab is not None:
            out.append(Subject(sub.name, lab, mri / "orig.mgz"))
    return out


def subjects_from_bids(root: str | Path) -> list[Subject]:
    """BIDS derivatives: ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]`` with a matching ``*_dseg.nii[.gz]``."""
    root = require_dir(root)
    out = []
    for t1 in sorted(root.glob("sub-*/**/anat/*_T1w.nii*")):
        stem = image_stem(t1)[: -len("_T1w")]
        dseg = sorted(t1.parent.glob(stem + "*_dseg.nii*"))
        if dseg:
            out.append(Subject(stem, dseg[0], t1))
    return out


def subjects_from_label_maps(folder: str | Path) -> list[Subject]:
    folder = require_dir(folder)
    maps = sorted(p for p in folder.iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES))
    return [Subject(image_stem(p), p) for p in maps]


def split_subjects(subjects: list[Subject], val: int | list[str], seed: int = 0) -> tuple[list[Subject], list[Subject]]:
    """Held-out validation subjects: by name, or ``val`` chosen at random with ``seed``."""
    if not subjects:
        raise BrainsegError("the dataset is empty")
    if isinstance(val, list):
        names = set(val)
        unknown = names - {s.name for s in subjects}
        if unknown:
            raise BrainsegError(f"validation subjects not in the dataset: {sorted(unknown)}")
        va = [s for s in subjects if s.name in names]
    else:
        if val >= len(subjects):
            raise BrainsegError(f"cannot hold out {val} of {len(subjects)} subjects and still train")
        order = np.random.default_rng(seed).permutation(len(subjects))
        va = [subjects[i] for i in sorted(order[:val])]
    tr = [s for s in subjects if s not in va]
    return tr, va


def load_real(subject: Subject, labelset: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """(conformed uint8 image, class-index target) for a real image + label map."""
    if subject.image is None:
        raise ValueError("not a real subject")
    img = load_volume(subject.image)
    lab = load_volume(subject.labels, kind="labels")
    if img.shape != lab.shape or not np.allclose(img.affine, lab.affine, atol=1e-3):
        raise BrainsegError(f"{subject.labels}: label map grid {lab.shape} does not match image {img.shape} "
                            f"({subject.image})")
    conf = conform(img)
    lab_conf, _ = conform_labels(lab)
    ids, unknown = map_labels(lab_conf, labelset)
    if unknown:
        raise BrainsegError(f"{subject.labels}: labels {unknown[:10]} have no mapping into {labelset.name!r}")
    return conf.data, ids_to_indices(ids, labelset)


@functools.lru_cache(maxsize=64)
def _label_map_cached(path: str, labelset_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from brainsegcli.labels import get_labelset

    vol = load_volume(path, kind="labels")
    raw = np.asarray(vol.data)
    if not (raw.shape == (256, 256, 256)):
        lab_conf, _ = conform_labels(vol)
        raw = lab_conf
    raw = raw.astype(np.int16)
    ls = get_labelset(labelset_name)
    ids, unknown = map_labels(raw, ls)
    if unknown:
        raise BrainsegError(f"{path}: labels {unknown[:10]} have no mapping into {ls.name!r}")
    from brainsegcli.io.conform import conformed_affine

    return raw, ids_to_indices(ids, ls), conformed_affine(vol.affine, vol.shape)


def load_label_map(subject: Subject, labelset: LabelSet):
    """(raw label map on the conformed grid, class-index target, conformed affine), cached."""
    return _label_map_cached(str(subject.labels), labelset.name)


# ---------------------------------------------------------------------------------------------
# Stacks
# ---------------------------------------------------------------------------------------------
def flip_lr(image: np.ndarray, target: np.ndarray, labelset: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """Mirror along the left-right axis (conformed axis 0) and swap left/right classes."""
    return image[::-1], labelset.lr_swap_index.astype(target.dtype)[target[::-1]]


class StackSampler:
    """Draws training stacks from one volume; slice occupancy per view is computed once."""

    def __init__(self, image: np.ndarray, target: np.ndarray, views: tuple[Plane, ...], n_slices: int = 5,
                 crop: int | None = None, p_foreground: float = 0.9):
        self.image, self.target, self.views = image, target, tuple(views)
        self.n_slices, self.crop, self.p_foreground = n_slices, crop, p_foreground
        self._fg: dict[Plane, np.ndarray] = {}
        self._occ: dict[Plane, np.ndarray] = {}
        for plane in self.views:
            other = tuple(i for i in range(3) if i != plane.axis)
            self._fg[plane] = np.flatnonzero(target.any(axis=other))
            self._occ[plane] = np.flatnonzero(image.any(axis=other))

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, n_slices, H, W) uint8 stacks, (n, H, W) targets, (n,) is-sagittal flags."""
        xs, ys, sag = [], [], []
        for _ in range(n):
            plane = self.views[int(rng.integers(len(self.views)))]
            fg, occ = self._fg[plane], self._occ[plane]
            if len(fg) and rng.random() < self.p_foreground:
                c = int(fg[rng.integers(len(fg))])
            elif len(occ):
                c = int(occ[rng.integers(len(occ))])
            else:
                c = int(rng.integers(self.image.shape[plane.axis]))
            x = extract_stacks(to_view(self.image, plane), [c], self.n_slices)[0]
            y = to_view(self.target, plane)[c]
            if self.crop is not None and self.crop < x.shape[-1]:
                i0 = int(rng.integers(0, x.shape[-2] - self.crop + 1))
                j0 = int(rng.integers(0, x.shape[-1] - self.crop + 1))
                x, y = x[:, i0:i0 + self.crop, j0:j0 + self.crop], y[i0:i0 + self.crop, j0:j0 + self.crop]
            xs.append(x)
            ys.append(y)
            sag.append(plane is Plane.SAGITTAL)
        return np.stack(xs), np.stack(ys).astype(np.int64), np.asarray(sag)
