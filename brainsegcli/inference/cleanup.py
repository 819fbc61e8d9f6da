"""Connected-component clean-up of a predicted label map (as FastSurfer's brain mask and SynthSeg's
largest-component step): on real whole-head scans a 2.5D network also answers "brain" in places a brain
cannot be (face, neck, scalp), and a structure can get stray islands far from where it lies.

Rules, on class indices of the conformed (1 mm) grid, distances in voxels = millimetres:

1. Whole-brain label sets (tissue, aseg, dkt95): the *brain* is every labelled voxel except the outer CSF
   class (extracerebral CSF: FreeSurfer label 24, the tissue set's CSF). Keep its largest part after cutting
   the bridges thinner than ``2 * bridge + 1`` voxels (``keep_brain``); other brain voxels become background,
   islands near the brain included. On whole-head T1 scans the networks label strands along the dura and
   sinuses and blobs in the face and neck as brain, a few voxels from it or joined to it by such a strand;
   keeping components within a few voxels of the brain (the rule before) kept a 76 ml blob on one real scan
   and dropped it when the same scan was stored with its axes reversed. Outer-CSF voxels stay only where they
   are 26-connected to the kept brain through CSF lying within ``outer_margin`` mm of it.
2. Single-structure labels (every label of subcortical, aseg and dkt95 except the outer CSF and the structures
   that are fragmented by nature: inferior lateral ventricles, vessels, choroid plexus, 5th ventricle,
   hypointensities, optic chiasm): keep the label's largest component and the components within ``gap``
   voxels of it. The voxels dropped here take the label of the nearest voxel that was kept (background where
   that is background), so no hole is left inside the brain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from brainsegcli.labels import LabelSet
from brainsegcli.metrics import bounding_box

WHOLE_BRAIN_SETS = ("tissue", "aseg", "dkt95")
_OUTER_CSF_IDS = frozenset({24})
_FRAGMENTED_IDS = frozenset({5, 44, 30, 62, 31, 63, 72, 77, 80, 85})
_CUBE = np.ones((3, 3, 3), bool)  # 26-connectivity


@dataclass
class CleanupStats:
    """What the clean-up changed, in voxels of the conformed grid (1 mm^3 each)."""

    removed_outside_brain: dict[str, int] = field(default_factory=dict)  # label name -> voxels set to background
    removed_brain: int = 0  # of those, voxels of brain labels (not the outer CSF)
    relabelled_islands: dict[str, int] = field(default_factory=dict)  # label name -> voxels given a neighbour's label

    @property
    def total_removed(self) -> int:
        return sum(self.removed_outside_brain.values())

    @property
    def total_relabelled(self) -> int:
        return sum(self.relabelled_islands.values())

    def as_dict(self) -> dict:
        return {"removed_outside_brain_mm3": self.total_removed, "relabelled_islands_mm3": self.total_relabelled,
                "removed_by_label_mm3": dict(sorted(self.removed_outside_brain.items())),
                "relabelled_by_label_mm3": dict(sorted(self.relabelled_islands.items()))}


def outer_indices(labelset: LabelSet) -> list[int]:
    if labelset.name == "tissue":
        return [labelset.index_of(1)]
    return [i for i, v in enumerate(labelset.ids) if v in _OUTER_CSF_IDS]


def _grow(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def keep_near_largest(mask: np.ndarray, gap: int) -> np.ndarray:
    """The largest 26-connected component of ``mask`` plus every component within ``gap`` voxels
    (chessboard distance) of it."""
    from scipy.ndimage import binary_dilation, label

    comps, n = label(mask, structure=_CUBE)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(comps.ravel())
    sizes[0] = 0
    main = comps == sizes.argmax()
    near = binary_dilation(main, _CUBE, iterations=gap) if gap > 0 else main
    keep = np.zeros(n + 1, bool)
    keep[np.unique(comps[near & mask])] = True
    keep[0] = False
    return keep[comps]


def keep_brain(mask: np.ndarray, bridge: int, regrow: int = 3) -> np.ndarray:
    """The largest part of ``mask`` after cutting the bridges thinner than ``2 * bridge + 1`` voxels.

    The mask is eroded ``bridge`` times (26-neighbourhood); the largest 26-connected part of what is left, with
    the parts within ``2 * bridge`` voxels of it (a short neck is not a bridge), is grown back inside the mask by
    ``bridge + regrow`` steps: the opening, then thin borders and protrusions up to ``regrow`` voxels long.
    Components not reached are dropped, islands near the brain included. Without ``bridge`` (or when nothing
    survives the erosion): the largest component."""
    from scipy.ndimage import binary_dilation, binary_erosion

    if bridge > 0:
        core = binary_erosion(mask, _CUBE, iterations=bridge)
        if core.any():
            kept = keep_near_largest(core, 2 * bridge)
            return binary_dilation(kept, _CUBE, iterations=bridge + regrow, mask=mask)
    return keep_near_largest(mask, 0)


def _count(labels: np.ndarray, mask: np.ndarray, labelset: LabelSet, into: dict[str, int]) -> None:
    for i, n in enumerate(np.bincount(labels[mask].astype(np.int64), minlength=labelset.num_classes)):
        if n:
            into[labelset.names[i]] = into.get(labelset.names[i], 0) + int(n)


def _whole_brain(out: np.ndarray, labelset: LabelSet, outer_margin: float, bridge: int, stats: CleanupStats) -> None:
    from scipy.ndimage import distance_transform_edt, label

    outer = np.isin(out, outer_indices(labelset))
    brain = (out > 0) & ~outer
    box = bounding_box(out > 0, 1)
    if box is None or not brain.any():
        return
    b, o = brain[box], outer[box]
    kept = keep_brain(b, bridge)
    near = distance_transform_edt(~kept) <= outer_margin
    comps, _ = label(kept | (o & near), structure=_CUBE)
    touching = np.unique(comps[kept])
    kept_outer = o & near & np.isin(comps, touching[touching > 0])
    drop = np.zeros(out.shape, bool)
    lost = b & ~kept
    drop[box] = lost | (o & ~kept_outer)  # the box holds every labelled voxel
    stats.removed_brain = int(lost.sum())
    _count(out, drop, labelset, stats.removed_outside_brain)
    out[drop] = 0


def _per_structure(out: np.ndarray, labelset: LabelSet, gap: int, stats: CleanupStats) -> None:
    from scipy.ndimage import distance_transform_edt, find_objects

    skip = set(outer_indices(labelset)) | {i for i, v in enumerate(labelset.ids) if v in _FRAGMENTED_IDS}
    drop = np.zeros(out.shape, bool)
    for c, found in enumerate(find_objects(out), start=1):  # every class's bounding box in one pass
        if c in skip or found is None:
            continue
        box = _grow(found, gap + 1, out.shape)
        m = out[box] == c
        drop[box] |= m & ~keep_near_largest(m, gap)
    if not drop.any():
        return
    _count(out, drop, labelset, stats.relabelled_islands)
    box = bounding_box(drop, 8)
    sub, d = out[box], drop[box]
    # nearest kept voxel of each dropped one; a dropped island bigger than the padding falls back to the
    # nearest voxel inside the padded box, which is kept by construction (not dropped)
    _, nearest = distance_transform_edt(d, return_indices=True)
    sub[d] = sub[tuple(ix[d] for ix in nearest)]


def clean_labels(indices: np.ndarray, labelset: LabelSet, gap: int = 3, outer_margin: float = 15.0,
                 bridge: int = 1) -> tuple[np.ndarray, CleanupStats]:
    """Cleaned copy of a class-index map (see the module docstring) and what changed."""
    out = np.array(indices, copy=True)
    stats = CleanupStats()
    if labelset.name in WHOLE_BRAIN_SETS:
        _whole_brain(out, labelset, outer_margin, bridge, stats)
    if labelset.name != "tissue":
        _per_structure(out, labelset, gap, stats)
    return out, stats
