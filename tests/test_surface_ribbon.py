"""The mesh voxeliser behind benchmarks/eval_surface_ribbon.py (a real-scan reference must be right)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from surface_ribbon import mesh_inside  # noqa: E402


def _grid_mesh(fn, nu: int, nv: int):
    """Closed triangle mesh of a surface periodic in u and v (a torus): vertex (i, j) at fn(u_i, v_j)."""
    u = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    v = np.linspace(0, 2 * np.pi, nv, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    verts = np.stack(fn(uu.ravel(), vv.ravel()), axis=1)
    idx = np.arange(nu * nv).reshape(nu, nv)
    a, b = idx, np.roll(idx, -1, axis=0)
    c, d = np.roll(idx, -1, axis=1), np.roll(b, -1, axis=1)
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return verts, faces


def _icosphere(radius: float, centre, subdivisions: int = 5):
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    v = [np.asarray(p, float) / np.linalg.norm(p) for p in verts]
    for _ in range(subdivisions):
        cache, new = {}, []

        def mid(i, j):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = v[i] + v[j]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(v) * radius + np.asarray(centre), np.asarray(faces)


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_sphere_matches_the_analytic_ball():
    shape = (48, 50, 52)
    centre = (23.3, 25.1, 24.7)
    verts, faces = _icosphere(15.0, centre)
    inside, odd = mesh_inside(verts, faces, shape)
    g = np.indices(shape).astype(float)
    ball = sum((g[i] - centre[i]) ** 2 for i in range(3)) <= 15.0**2
    assert odd == 0
    assert _dice(inside, ball) > 0.995  # the inscribed polyhedron differs only at the very boundary
    assert abs(int(inside.sum()) - int(ball.sum())) / ball.sum() < 0.01


def test_torus_non_convex_several_crossings_per_ray():
    shape = (60, 60, 30)
    c = np.array([30.2, 29.7, 14.6])
    big, small = 18.0, 6.0

    def torus(u, v):
        return ((big + small * np.cos(v)) * np.cos(u) + c[0], (big + small * np.cos(v)) * np.sin(u) + c[1],
                small * np.sin(v) + c[2])

    verts, faces = _grid_mesh(torus, 240, 80)
    inside, odd = mesh_inside(verts, faces, shape)
    g = np.indices(shape).astype(float)
    r = np.hypot(g[0] - c[0], g[1] - c[1])
    ref = (r - big) ** 2 + (g[2] - c[2]) ** 2 <= small**2
    assert odd == 0
    assert _dice(inside, ref) > 0.99
    assert not inside[int(c[0]), int(c[1]), int(c[2])]  # the hole stays empty


def test_open_mesh_reports_odd_rays_and_orientation_does_not_matter():
    verts, faces = _icosphere(8.0, (12.1, 12.2, 12.3), subdivisions=3)
    full, odd = mesh_inside(verts, faces, (25, 25, 25))
    flipped, _ = mesh_inside(verts, faces[:, ::-1], (25, 25, 25))
    assert odd == 0 and np.array_equal(full, flipped)
    _, odd_open = mesh_inside(verts, faces[verts[faces].mean(1)[:, 0] < 14], (25, 25, 25))
    assert odd_open > 0


def test_reference_and_scores_from_freesurfer_surfaces_in_tkr_coordinates(tmp_path):
    """FreeSurfer geometry files (tkr coordinates) on an .mgz grid: the ribbon masks match the analytic balls,
    and a prediction equal to the reference scores 1 everywhere."""
    import nibabel as nib

    import eval_surface_ribbon as ev

    n = 64
    g = np.indices((n, n, n)).astype(float)
    centres = {"lh": (40.3, 31.6, 32.2), "rh": (21.7, 32.4, 31.8)}  # conformed axis 0 runs to the left
    data = np.full((n, n, n), 20, np.uint8)
    balls = {}
    for hemi, c in centres.items():
        r2 = sum((g[i] - c[i]) ** 2 for i in range(3))
        balls[hemi] = (r2 <= 9.0**2, r2 <= 6.0**2)
        data[balls[hemi][0]] = 70
        data[balls[hemi][1]] = 110
    mgz = nib.MGHImage(data, np.diag([-1.0, 1, 1, 1]))
    t1 = tmp_path / "T1.mgz"
    nib.save(mgz, t1)
    tkr = mgz.header.get_vox2ras_tkr()
    paths = {}
    for hemi, c in centres.items():
        for kind, radius in (("white", 6.0), ("pial", 9.0)):
            verts, faces = _icosphere(radius, c, subdivisions=4)
            paths[hemi, kind] = tmp_path / f"{hemi}.{kind}"
            nib.freesurfer.write_geometry(str(paths[hemi, kind]), verts @ tkr[:3, :3].T + tkr[:3, 3], faces)
    masks = ev.reference(t1, [paths["lh", "white"], paths["rh", "white"]],
                         [paths["lh", "pial"], paths["rh", "pial"]], "tkr")
    for hemi in ("lh", "rh"):
        assert _dice(masks[hemi, "pial"], balls[hemi][0]) > 0.98
        assert _dice(masks[hemi, "white"], balls[hemi][1]) > 0.98
    labels = np.zeros((n, n, n), np.int32)
    for hemi, (cortex, wm) in (("lh", (3, 2)), ("rh", (42, 41))):
        labels[masks[hemi, "pial"]] = cortex
        labels[masks[hemi, "white"]] = wm
    scores = ev.score(labels, "aseg", masks, band_mm=3.0)
    assert all(scores[k] == 1.0 for k in ("cortex_lh", "cortex_rh", "white_interior_lh", "white_interior_rh",
                                          "band_gm", "band_wm"))
    # a cortex one voxel too thick outward lowers the cortex score and nothing else
    thick = labels.copy()
    from scipy.ndimage import binary_dilation

    thick[binary_dilation(masks["lh", "pial"]) & (labels == 0)] = 3
    worse = ev.score(thick, "aseg", masks, band_mm=3.0)
    assert worse["cortex_lh"] < 0.9 and worse["white_interior_lh"] == 1.0 and worse["cortex_rh"] == 1.0
    # wrong coordinates are refused: scanner RAS is not what these files hold
    with pytest.raises(SystemExit):
        ev.reference(t1, [paths["lh", "white"], paths["rh", "white"]], [paths["lh", "pial"], paths["rh", "pial"]],
                     "scanner")
