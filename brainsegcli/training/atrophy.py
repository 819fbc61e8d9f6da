"""Simulated atrophy on a raw FreeSurfer label map (1 mm): enlarged lateral ventricles and thinner (or, to spread the
hippocampal size both ways, thicker) hippocampi.

The 20 real label maps behind the synthetic training hold one brain each; a network trained on them learns each
structure's usual size as well as its look, and can under-report a change that real ageing or Alzheimer's disease
brings (``benchmarks/eval_atrophy.py`` measures it). These changes give the training brains that change:

- ``enlarge_ventricles``: each lateral ventricle (4, 43) grows ``steps`` voxels (6-neighbourhood steps) into its
  own hemisphere's cerebral white matter (2, 41); nothing else changes.
- ``thin_hippocampus``: each hippocampus (17, 53) loses ``steps`` layers (6-neighbourhood erosion) on the sides
  that face white matter or the inferior lateral ventricle (2, 41, 5, 44); the voxels become inferior lateral
  ventricle (5, 44), the temporal horn that widens as the hippocampus shrinks.
- ``thicken_hippocampus``: the counterpart, ``steps`` layers (6-neighbourhood dilation) added to each hippocampus
  over the white matter and temporal horn of its own hemisphere that touch it. Training on thinned hippocampi only
  teaches a smaller hippocampus (docs/atrophy.md, "Every training brain atrophied"); drawing both directions
  spreads the size without moving its centre.
"""

from __future__ import annotations

import numpy as np

from brainsegcli.metrics import bounding_box

SIDES = ((4, 2, 17, 5), (43, 41, 53, 44))  # per hemisphere: lateral ventricle, white matter, hippocampus, inf. lat. v.


def _grow(out: np.ndarray, around: int, pad: int, grow: tuple[int, ...], into: tuple[int, ...], new: int,
          steps: int) -> None:
    """In place, inside the bounding box of label ``around`` padded by ``pad``: ``steps`` times, the voxels of
    ``into`` next to (6-neighbourhood) a voxel of ``grow`` become ``new``."""
    from scipy.ndimage import binary_dilation, generate_binary_structure

    box = bounding_box(out == around, pad)
    if box is None:
        return
    sub = out[box]  # a view: changes land in ``out``
    six = generate_binary_structure(3, 1)  # 6-neighbourhood
    for _ in range(steps):
        sub[binary_dilation(np.isin(sub, grow), six) & np.isin(sub, into)] = new


def enlarge_ventricles(raw: np.ndarray, steps: int) -> np.ndarray:
    """Copy of ``raw`` with the lateral ventricles grown ``steps`` voxels into their hemisphere's white matter."""
    out = raw.copy()
    for vent, wm, _, _ in SIDES if steps > 0 else ():
        _grow(out, vent, steps + 1, (vent,), (wm,), vent, steps)
    return out


def thin_hippocampus(raw: np.ndarray, steps: int) -> np.ndarray:
    """Copy of ``raw`` with each hippocampus eroded ``steps`` layers where it faces white matter or the temporal
    horn; the voxels taken become inferior lateral ventricle."""
    out = raw.copy()
    for _, wm, hip, ilv in SIDES if steps > 0 else ():
        _grow(out, hip, 2, (wm, ilv), (hip,), ilv, steps)
    return out


def thicken_hippocampus(raw: np.ndarray, steps: int) -> np.ndarray:
    """Copy of ``raw`` with each hippocampus grown ``steps`` layers into the white matter and temporal horn of its
    hemisphere (the sides that ``thin_hippocampus`` erodes)."""
    out = raw.copy()
    for _, wm, hip, ilv in SIDES if steps > 0 else ():
        _grow(out, hip, steps + 1, (hip,), (wm, ilv), hip, steps)
    return out


def apply_atrophy(raw: np.ndarray, target: np.ndarray, ventricle_steps: int, hippocampus_steps: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(raw, target) with both changes applied (``hippocampus_steps`` < 0: the hippocampi are thickened by that
    many layers); each changed voxel takes the target class that its new raw label has elsewhere in the same map
    (a label the map lacks is not drawn: ``target`` keeps those voxels' class)."""
    if ventricle_steps <= 0 and hippocampus_steps == 0:
        return raw, target
    raw = np.ascontiguousarray(raw)  # the cached label maps are Fortran-ordered: mixed orders are slow
    new = enlarge_ventricles(raw, ventricle_steps) if ventricle_steps > 0 else raw
    if hippocampus_steps > 0:
        new = thin_hippocampus(new, hippocampus_steps)
    elif hippocampus_steps < 0:
        new = thicken_hippocampus(new, -hippocampus_steps)
    changed = np.flatnonzero(new != raw)
    if not changed.size:
        return raw, target
    values = new.ravel()[changed]
    tgt = target.copy()
    for label in np.unique(values):
        at = changed[values == label]
        classes = target[raw == label]
        if classes.size:
            tgt.ravel()[at] = np.bincount(classes.astype(np.int64)).argmax()
        else:
            new.ravel()[at] = raw.ravel()[at]
    return new, tgt
