"""Loading and saving NIfTI / MGZ volumes, with every check a user's bad file deserves.

Every failure raises :class:`BrainsegError` with a one-line message; nothing here prints.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from brainsegcli.io.atomic import publish
from brainsegcli.types import BrainsegError, Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")
# Refuse inputs that cannot be a head image before reading their data: no valid T1 needs more.
MAX_VOXELS = 1024**3 // 2
MAX_FOV_MM = 1000.0


def image_stem(path: str | Path) -> str:
    name = Path(path).name
    for suf in IMAGE_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem


def check_file(path: Path) -> None:
    if not path.exists():
        raise BrainsegError(f"{path}: no such file")
    if path.is_dir():
        raise BrainsegError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise BrainsegError(f"{path}: file is empty")
    if not os.access(path, os.R_OK):
        raise BrainsegError(f"{path}: permission denied")


def check_geometry(affine: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    """Refuse affines and grids that are not a plausible scan (before any large allocation)."""
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise BrainsegError(f"{where}: the affine has non-finite values")
    zooms = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    if np.any(zooms <= 1e-6) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise BrainsegError(f"{where}: singular affine (a voxel size is zero)")
    if np.any(zooms > 50):
        raise BrainsegError(f"{where}: absurd voxel size {tuple(np.round(zooms, 3))} mm")
    fov = zooms * np.asarray(shape[:3], dtype=float)
    if np.any(fov > MAX_FOV_MM):
        raise BrainsegError(
            f"{where}: field of view {tuple(np.round(fov).astype(int))} mm is far larger than a head")


def _raw_zooms(path: Path, img) -> np.ndarray:
    """Voxel sizes as stored in the file (nibabel silently replaces a 0 pixdim by 1 on load)."""
    import nibabel as nib

    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        try:
            with nib.openers.ImageOpener(str(path)) as fh:
                raw = type(img.header).from_fileobj(fh, check=False)
            zooms = np.abs(np.asarray(raw["pixdim"][1:4], dtype=float))
        except Exception:
            pass  # the loaded header is the best we have
    return zooms


def load_volume(path: str | Path, *, kind: str = "image") -> Volume:
    """Load a 3D scalar NIfTI/MGZ volume (a 4D file with a single volume is accepted).

    ``kind`` is "image" (intensities: must be finite and not constant) or "labels".
    """
    import nibabel as nib

    path = Path(path)
    check_file(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise BrainsegError(f"{path}: not a readable NIfTI/MGZ image ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'unknown format'})") from None
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3 or (len(shape) == 3 and min(shape) < 1):
        raise BrainsegError(f"{path}: {len(shape)}D image; a 3D volume is needed")
    if len(shape) > 3:
        if int(np.prod(shape[3:])) != 1:
            raise BrainsegError(f"{path}: {len(shape)}D image with {int(np.prod(shape[3:]))} volumes; "
                                "give a single 3D volume")
    if min(shape[:3]) < 2:
        raise BrainsegError(f"{path}: image of shape {shape[:3]} is 2D; a 3D volume is needed")
    if int(np.prod(shape[:3])) > MAX_VOXELS:
        raise BrainsegError(f"{path}: {shape[:3]} voxels is too large for a head image")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise BrainsegError(f"{path}: voxel type {dtype} is not a real scalar (complex/RGB/other)")
    zooms = _raw_zooms(path, img)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise BrainsegError(f"{path}: invalid voxel size {tuple(zooms.tolist())} in the header")
    check_geometry(img.affine, shape, str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise BrainsegError(f"{path}: image data could not be read (truncated or corrupt file: "
                            f"{type(exc).__name__})") from None
    data = data.reshape(shape[:3])
    if data.dtype.kind not in "biuf":
        raise BrainsegError(f"{path}: voxel type {data.dtype} is not a real scalar")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise BrainsegError(f"{path}: image has NaN or infinite voxels")
    if kind == "image":
        lo, hi = data.min(), data.max()
        if lo == hi:
            raise BrainsegError(f"{path}: image is constant ({'all zero' if hi == 0 else f'all {hi}'})")
    return Volume(data=data, affine=np.asarray(img.affine, dtype=float), path=path, header=img.header,
                  meta={"dtype": str(dtype), "format": type(img).__name__})


def looks_like_label_map(data: np.ndarray) -> bool:
    """Heuristic: integer-valued, few distinct values, most of them FreeSurfer label IDs."""
    if data.dtype.kind == "f":
        sample = data.ravel()[:: max(1, data.size // 200_000)]
        if np.any(sample != np.round(sample)):
            return False
    values = np.unique(data.ravel()[:: max(1, data.size // 2_000_000)])
    if len(values) < 3 or len(values) > 200:
        return False
    fs_like = np.isin(values, list(range(0, 90)) + list(range(1000, 1036)) + list(range(2000, 2036))
                      + list(range(500, 531)))
    return bool(fs_like.mean() > 0.9 and values.max() > 3)


# What the bundled models were trained on (brainsegcli.training.synth.SynthConfig): 1 mm images, at most one
# axis of thick slices up to 5 mm. Outside that, and for a field of view smaller than a brain, say so.
MAX_SLICE_MM = 5.0
COARSE_MM = 1.5
MIN_EXTENT_MM = 100.0


def voxel_size_text(spacing) -> str:
    """A voxel size as warnings print it: ``1 x 1 x 1.2``."""
    return " x ".join(f"{float(s):g}" for s in spacing)


def acquisition_warnings(shape, spacing) -> list[str]:
    """One-line cautions about an acquisition the bundled models were not trained for, or one that cannot hold a
    whole brain (``shape`` and ``spacing``, mm, of the input grid); empty for an ordinary 0.7-1.5 mm whole-head T1."""
    spacing = [float(s) for s in spacing]
    dims = voxel_size_text(spacing)
    out = []
    expect = "expect blurred boundaries and unreliable small-structure volumes"
    if max(spacing) > MAX_SLICE_MM:
        out.append(f"voxels of {dims} mm: slices thicker than {MAX_SLICE_MM:g} mm are beyond what the bundled models "
                   f"were trained on; {expect}")
    elif sum(s > COARSE_MM for s in spacing) > 1:
        out.append(f"voxels of {dims} mm: coarser than {COARSE_MM:g} mm along more than one axis, which the bundled "
                   f"models were not trained on (1 mm images, at most one thick-slice axis); {expect}")
    extent = [n * s for n, s in zip(shape, spacing)]
    if min(extent) < MIN_EXTENT_MM:
        out.append("the image covers only " + " x ".join(f"{e:.0f}" for e in extent) + " mm, less than a whole "
                   "brain: what lies outside it is missing from the labels and the volumes")
    return out


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in IMAGE_SUFFIXES:
        if name.endswith(suf):
            return suf
    raise BrainsegError(f"{path}: output must end in one of {', '.join(IMAGE_SUFFIXES)}")


def save_volume(data: np.ndarray, affine: np.ndarray, path: str | Path, *, dtype=None) -> Path:
    """Write atomically: to a temporary file in the same folder, then rename."""
    import nibabel as nib

    path = Path(path)
    suf = _suffix(path)
    arr = np.asarray(data if dtype is None else np.asarray(data).astype(dtype))
    if suf in (".mgz", ".mgh"):
        if arr.dtype not in (np.uint8, np.int16, np.int32, np.float32):
            arr = arr.astype(np.int32 if arr.dtype.kind in "iu" else np.float32)
        img = nib.MGHImage(arr, np.asarray(affine, dtype=np.float32))
    else:
        img = nib.Nifti1Image(arr, np.asarray(affine, dtype=float))
        img.header.set_data_dtype(arr.dtype)
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(np.asarray(affine, dtype=float), code=1)
        img.set_sform(np.asarray(affine, dtype=float), code=1)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suf, dir=path.parent)
    os.close(fd)
    try:
        nib.save(img, tmp)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
