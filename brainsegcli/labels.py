"""Label sets (FreeSurfer IDs, names, colours) and mappings from FreeSurfer-style label maps.

A label set is an ordered list of label IDs; a network predicts class *indices* into that list and
the engine writes the IDs. The LUT is package data, read lazily through importlib.resources.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from brainsegcli.types import BrainsegError

# Value used in a mapping table for "fill from the nearest voxel that has a mapped label".
FILL = -1

_ASEG_32 = (2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
            41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60)
_SUBCORTICAL_12 = (10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54)
_DKT_LH = tuple(i for i in range(1002, 1036) if i not in (1004, 1032, 1033))
_DKT_ASEG_33 = tuple(sorted(set(_ASEG_32) - {3, 42} | {31, 63, 77}))

# labels of ventricles and other CSF spaces (for the "brain volume" that excludes them)
_CSF_IDS = frozenset({4, 5, 14, 15, 24, 31, 43, 44, 63, 72})

# Tissue classes: which FreeSurfer structures are CSF (1), grey matter (2) and white matter (3).
_TISSUE_CSF = (4, 5, 14, 15, 24, 31, 43, 44, 63, 72)
_TISSUE_GM = (3, 42, 8, 47, 10, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54, 26, 58,
              80, 81, 82, 136, 137, 163, 164)
_TISSUE_WM = (2, 41, 7, 46, 16, 28, 60, 77, 78, 79, 85, 192, 251, 252, 253, 254, 255, 25, 57)


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of labels: class index ``k`` stands for label ``ids[k]``; index 0 is background."""

    name: str
    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def index_of(self, label_id: int) -> int:
        return self.ids.index(int(label_id))

    @functools.cached_property
    def lr_pairs(self) -> tuple[tuple[int, int], ...]:
        """(left index, right index) pairs of lateralised structures, matched by name."""
        pos = {n: i for i, n in enumerate(self.names)}
        pairs = []
        for i, n in enumerate(self.names):
            for lp, rp in (("Left-", "Right-"), ("ctx-lh-", "ctx-rh-")):
                if n.startswith(lp) and rp + n[len(lp):] in pos:
                    pairs.append((i, pos[rp + n[len(lp):]]))
        return tuple(pairs)

    @functools.cached_property
    def lr_swap_index(self) -> np.ndarray:
        """Class-index permutation that swaps left and right (for flips)."""
        perm = np.arange(self.num_classes)
        for left, right in self.lr_pairs:
            perm[left], perm[right] = right, left
        return perm

    @functools.cached_property
    def sagittal_index(self) -> np.ndarray:
        """Class index -> merged (hemisphere-agnostic) class index used in the sagittal view.

        Left and right twins share the left twin's index; the merged indices are not compacted,
        so a merged index is always a valid index of this set.
        """
        m = np.arange(self.num_classes)
        for left, right in self.lr_pairs:
            m[right] = left
        return m

    def is_csf(self, label_id: int) -> bool:
        if self.name == "tissue":
            return label_id == 1
        return label_id in _CSF_IDS

    def lut_rgb(self) -> np.ndarray:
        """(num_classes, 3) uint8 colours by class index."""
        return np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)


@functools.lru_cache(maxsize=1)
def freesurfer_lut() -> dict[int, tuple[str, tuple[int, int, int]]]:
    """FreeSurfer label ID -> (name, (r, g, b)) for the labels brainseg uses."""
    text = resources.files("brainsegcli.data").joinpath("freesurfer_lut.tsv").read_text("utf-8")
    lut: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith("id\t"):
            continue
        i, name, r, g, b = line.split("\t")
        lut[int(i)] = (name, (int(r), int(g), int(b)))
    return lut


def _from_lut(name: str, ids: tuple[int, ...], description: str) -> LabelSet:
    lut = freesurfer_lut()
    ids = (0,) + tuple(ids)
    return LabelSet(name, ids, tuple(lut[i][0] for i in ids), tuple(lut[i][1] for i in ids), description)


LABELSET_NAMES = ("tissue", "subcortical", "aseg", "dkt95")


@functools.lru_cache(maxsize=None)
def get_labelset(name: str) -> LabelSet:
    if name == "tissue":
        return LabelSet(
            "tissue", (0, 1, 2, 3), ("Background", "CSF", "GM", "WM"),
            ((0, 0, 0), (60, 60, 220), (205, 62, 78), (245, 245, 245)),
            "background, CSF, grey matter, white matter",
        )
    if name == "subcortical":
        return _from_lut("subcortical", tuple(sorted(_SUBCORTICAL_12)),
                         "12 subcortical structures (L/R thalamus, caudate, putamen, pallidum, "
                         "hippocampus, amygdala)")
    if name == "aseg":
        return _from_lut("aseg", _ASEG_32, "32 whole-brain aseg structures (as SynthSeg)")
    if name == "dkt95":
        ids = _DKT_ASEG_33 + _DKT_LH + tuple(i + 1000 for i in _DKT_LH)
        return _from_lut("dkt95", ids, "95 regions: 33 aseg structures + 31 DKT parcels per hemisphere "
                         "(FastSurfer's aparc.DKTatlas+aseg)")
    raise BrainsegError(f"unknown label set {name!r}; known: {', '.join(LABELSET_NAMES)}")


# ----------------------------------------------------------------------------------------------
# Mapping FreeSurfer-style label maps into a label set
# ----------------------------------------------------------------------------------------------

# SynthSeg's training label maps reuse a few IDs for extra classes: 136/137 and 163/164 are parts
# of the left/right lateral ventricles, and 500-599 are extra-cerebral tissues (skull, eyes, ...).
_SYNTHSEG_RELABEL = {136: 4, 137: 5, 163: 43, 164: 44}


def detect_convention(values: np.ndarray) -> str:
    """'synthseg' if the map carries SynthSeg's extra-cerebral labels (500-599), else 'freesurfer'."""
    v = np.asarray(values)
    return "synthseg" if np.any((v >= 500) & (v < 600)) else "freesurfer"


def _base_aseg(label_id: int, convention: str) -> int | None:
    """Canonical FreeSurfer meaning of one input label, or None for 'unknown'."""
    if convention == "synthseg":
        if label_id in _SYNTHSEG_RELABEL:
            return _SYNTHSEG_RELABEL[label_id]
        if 500 <= label_id < 600:
            return 0
    return label_id


def mapping_table(labelset: LabelSet, values, convention: str = "freesurfer") -> tuple[dict[int, int], list[int]]:
    """Map each input label value to a label-set ID, FILL, or 0.

    Returns (table, unknown) where unknown lists input values that brainseg has no rule for
    (they are mapped to 0 and should be reported to the user).
    """
    lut = freesurfer_lut()
    members = set(labelset.ids)
    table: dict[int, int] = {}
    unknown: list[int] = []
    for raw in sorted(int(v) for v in values):
        v = _base_aseg(raw, convention)
        out: int
        if v == 0:
            out = 0
        elif labelset.name == "tissue":
            out = (1 if v in _TISSUE_CSF else 2 if v in _TISSUE_GM else 3 if v in _TISSUE_WM
                   else 2 if 1000 <= v < 3000 else FILL if v in (30, 62) else 0)
            if out == 0 and v not in lut:
                unknown.append(raw)
        elif v in members:
            out = v
        elif 1000 <= v < 3000:
            if labelset.name == "dkt95":
                out = FILL  # non-DKT parcels (bankssts, frontal/temporal pole, unknown) -> neighbours
            elif labelset.name == "aseg":
                out = 3 if v < 2000 else 42
            else:
                out = 0
        elif labelset.name == "aseg" and v in (25, 57, 78, 79, 31, 63):
            out = {25: 2, 57: 41, 78: 2, 79: 41, 31: 4, 63: 43}[v]
        elif labelset.name in ("aseg", "dkt95") and v in (77, 30, 62, 80, 81, 82, 72, 192, 251, 252,
                                                          253, 254, 255, 25, 57, 78, 79):
            out = FILL  # small or unlateralised structures take the label of their surroundings
        elif labelset.name == "dkt95" and v in (3, 42):
            raise BrainsegError(
                "the label map has unparcellated cortex (3/42); the dkt95 label set needs an "
                "aparc.DKTatlas+aseg (or aparc+aseg) map")
        else:
            out = 0
            if v not in lut:
                unknown.append(raw)
        table[raw] = out
    return table, unknown


def map_labels(label_map: np.ndarray, labelset: LabelSet, convention: str = "auto") -> tuple[np.ndarray, list[int]]:
    """Map a FreeSurfer-style label map (aseg, aparc+aseg, aparc.DKTatlas+aseg, SynthSeg training
    map) to the IDs of ``labelset``.

    Structures that belong to a set member but are not themselves members (e.g. WM
    hypointensities for ``aseg``) are filled from the nearest voxel with a mapped label.
    Returns (mapped int32 array, unknown input labels mapped to background).
    """
    arr = np.asarray(label_map)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise BrainsegError("the label map has non-integer values; is it an intensity image?")
        arr = arr.astype(np.int64)
    values, inverse = np.unique(arr, return_inverse=True)
    conv = detect_convention(values) if convention == "auto" else convention
    table, unknown = mapping_table(labelset, values, conv)
    out = np.array([table[int(v)] for v in values], dtype=np.int32)[inverse].reshape(arr.shape)
    fill = out == FILL
    if fill.any():
        from scipy.ndimage import distance_transform_edt

        if fill.all():
            out[...] = 0
        else:
            idx = distance_transform_edt(fill, return_distances=False, return_indices=True)
            out[fill] = out[tuple(i[fill] for i in idx)]
    return out, unknown


def ids_to_indices(label_ids: np.ndarray, labelset: LabelSet) -> np.ndarray:
    """Label-set IDs -> class indices (uint8/int16); IDs outside the set raise."""
    lookup = np.full(max(labelset.ids) + 1, -1, dtype=np.int32)
    lookup[list(labelset.ids)] = np.arange(labelset.num_classes)
    arr = np.asarray(label_ids)
    bad = (arr < 0) | (arr > max(labelset.ids))
    idx = np.where(bad, -1, lookup[np.clip(arr, 0, max(labelset.ids))])
    if np.any(idx < 0):
        extra = sorted(set(np.unique(arr[idx < 0]).tolist()))[:10]
        raise BrainsegError(f"labels {extra} are not in label set {labelset.name!r}")
    return idx.astype(np.int16 if labelset.num_classes > 127 else np.uint8)


def indices_to_ids(indices: np.ndarray, labelset: LabelSet) -> np.ndarray:
    ids = np.asarray(labelset.ids, dtype=np.int16 if max(labelset.ids) > 255 else np.uint8)
    return ids[np.asarray(indices)]
