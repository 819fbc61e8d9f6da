"""Intensity edge refinement of the hippocampus against the temporal horn (after the clean-up).

The 2.5D networks place the hippocampus' edge about one voxel into the dark temporal horn beside it: on a
synthetic T1 of a held-out brain whose hippocampus lost one layer (``benchmarks/eval_atrophy.py``), the bundled
``aseg-unet`` labelled 486 of the 901 voxels that had turned as dark as the ventricles hippocampus, so it reported
a third of the loss (docs/atrophy.md, session 29). The image shows that edge; the rule reads it, as the
partial-volume rule of intensity-based segmenters does:

For each hippocampus (FreeSurfer 17, 53) of a label set that also has its hemisphere's inferior lateral ventricle
and lateral ventricle (5 / 4, 44 / 43): ``mu_s`` is the median intensity of the hippocampus' interior (labelled
voxels eroded by two, 6-neighbourhood, so that the rim being judged does not pull it towards the ventricles; by one
when too little is left), ``mu_c`` that of the ventricles' interior near it (within ``reach`` mm of
the hippocampus; all of the lateral ventricle's interior when that is too small). A hippocampus voxel next to a
ventricle voxel (6-neighbourhood) whose intensity (after a Gaussian smoothing of ``sigma`` mm, against noise) lies
on the ventricles' side of the midpoint
``(mu_s + mu_c) / 2`` becomes inferior lateral ventricle; this is repeated ``iterations`` times, so a dark layer up
to that many voxels thick is taken back. Either contrast direction works (T1: the ventricles are dark). Nothing is
changed when the two medians are closer than ``min_contrast`` robust standard deviations of the hippocampus'
interior (1.4826 x its median absolute deviation): an image without that contrast has no edge to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from brainsegcli.labels import LabelSet
from brainsegcli.metrics import bounding_box

# (structure, inferior lateral ventricle, lateral ventricle), FreeSurfer ids, one row per hemisphere
HIPPOCAMPAL_EDGES = ((17, 5, 4), (53, 44, 43))
_MIN_VOXELS = 50  # an interior smaller than this gives no reliable median


@dataclass
class EdgeStats:
    """What the refinement did to one structure (intensities in the conformed image's 0-255 units)."""

    structure: str
    applied: bool
    relabelled_mm3: int = 0
    structure_intensity: float | None = None
    csf_intensity: float | None = None
    threshold: float | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        d = {"structure": self.structure, "applied": self.applied, "relabelled_mm3": self.relabelled_mm3}
        for k in ("structure_intensity", "csf_intensity", "threshold"):
            v = getattr(self, k)
            if v is not None:
                d[k] = round(float(v), 2)
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class RefineStats:
    structures: list[EdgeStats] = field(default_factory=list)

    @property
    def total_relabelled(self) -> int:
        return sum(s.relabelled_mm3 for s in self.structures)

    def as_dict(self) -> dict:
        return {"relabelled_mm3": self.total_relabelled, "structures": [s.as_dict() for s in self.structures]}


def applies_to(labelset: LabelSet) -> bool:
    """Whether the label set has a hippocampus with both ventricles of its hemisphere."""
    ids = set(labelset.ids)
    return any(set(row) <= ids for row in HIPPOCAMPAL_EDGES)


def _robust_sd(values: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _one(out: np.ndarray, img: np.ndarray, s: int, ilv: int, lv: int, name: str, iterations: int, reach: int,
         min_contrast: float, sigma: float) -> EdgeStats:
    from scipy.ndimage import binary_dilation, binary_erosion, generate_binary_structure

    six = generate_binary_structure(3, 1)  # 6-neighbourhood
    box = bounding_box(out == s, reach + iterations + 1)
    if box is None:
        return EdgeStats(name, False, reason="structure absent")
    sub, im = out[box], img[box]  # ``sub`` is a view: changes land in ``out``
    inner = binary_erosion(sub == s, six, iterations=2)  # two layers in: clear of the rim being judged
    if inner.sum() < _MIN_VOXELS:
        inner = binary_erosion(sub == s, six)
    csf = np.isin(sub, (ilv, lv))
    csf_inner = binary_erosion(csf, six)
    if inner.sum() < _MIN_VOXELS:
        return EdgeStats(name, False, reason="structure too small")
    if csf_inner.sum() < _MIN_VOXELS:  # too little ventricle near it: the whole lateral ventricle's interior
        csf_inner_all = binary_erosion(out == lv, six)
        if csf_inner_all.sum() < _MIN_VOXELS:
            return EdgeStats(name, False, reason="no ventricle to compare with")
        mu_c = float(np.median(img[csf_inner_all]))
    else:
        mu_c = float(np.median(im[csf_inner]))
    vals = im[inner].astype(np.float32)
    mu_s = float(np.median(vals))
    t = 0.5 * (mu_s + mu_c)
    stats = EdgeStats(name, False, structure_intensity=mu_s, csf_intensity=mu_c, threshold=t)
    if abs(mu_s - mu_c) < min_contrast * max(_robust_sd(vals), 1e-6):
        stats.reason = "too little contrast between the structure and the ventricles"
        return stats
    if sigma > 0:
        from scipy.ndimage import gaussian_filter
        im = gaussian_filter(im.astype(np.float32), sigma)
    csf_side = (im < t) if mu_c < mu_s else (im > t)
    stats.applied = True
    for _ in range(iterations):
        flip = (sub == s) & csf_side & binary_dilation(csf, six)
        n = int(flip.sum())
        if not n:
            break
        sub[flip] = ilv
        csf |= flip  # the voxels taken are ventricle now: the next layer is judged against them
        stats.relabelled_mm3 += n
    return stats


def refine_edges(indices: np.ndarray, image: np.ndarray, labelset: LabelSet, iterations: int = 3, reach: int = 10,
                 min_contrast: float = 1.0, sigma: float = 0.5) -> tuple[np.ndarray, RefineStats]:
    """Refined copy of a class-index map on the conformed grid of ``image`` (see the module docstring), and what
    changed (1 voxel = 1 mm^3)."""
    if np.shape(indices) != np.shape(image):
        raise ValueError("labels and image must share the conformed grid")
    out = np.array(indices, copy=True)
    stats = RefineStats()
    img = np.asarray(image)
    ids = set(labelset.ids)
    for row in HIPPOCAMPAL_EDGES:
        if set(row) <= ids:
            s, ilv, lv = (labelset.index_of(v) for v in row)
            stats.structures.append(_one(out, img, s, ilv, lv, labelset.names[s], iterations, reach, min_contrast,
                                         sigma))
    return out, stats


def postprocess(indices: np.ndarray, image: np.ndarray, labelset: LabelSet, cleanup: bool = True,
                refine: bool = True) -> np.ndarray:
    """``parcellate``'s steps after the network, for callers of the engine (benchmarks): the clean-up
    (brainsegcli.inference.cleanup), then, where it applies, the edge refinement."""
    from brainsegcli.inference.cleanup import clean_labels

    out = clean_labels(indices, labelset)[0] if cleanup else indices
    return refine_edges(out, image, labelset)[0] if refine and applies_to(labelset) else out
