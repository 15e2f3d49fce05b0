"""Gupta et al.'s HHA encoding of depth (ECCV 2014), as the release's HHA nets read it.

The release's ``nyud-fcn32s-hha`` and ``nyud-fcn32s-color-hha`` read ``data/hha/img_<id>.png``,
"HHA images from Gupta et al. ECCV14, see rcnn-depth/rcnn/saveHHA.m" (the release's
``nyud_layers.py``). No archive the release names holds them, so ``python -m reproduce data
fetch nyud`` (and ``data hha``) computes them here from ``data/depth`` (depth PNGs in mm).
Each part follows one MATLAB function of Gupta's code (rcnn-depth, rgbdutils, nyu-hooks),
with MATLAB's semantics, in float64 as MATLAB computes:

* ``nyud_camera_matrix`` — ``cropCamera(getCameraParam('color'))``: the NYUDv2 colour
  camera's intrinsics, principal point moved by the 425 × 560 crop (``cropIt``: rows
  46:470, columns 41:600), so cx = 325.582… − 40, cy = 253.736… − 45.
* ``point_cloud_from_z`` — ``getPointCloudFromZ(Z, C, 1)``: ``X = (x − cx)·Z / fx``,
  ``Y = (y − cy)·Z / fy`` with pixel coordinates counted **from 1**, as MATLAB's
  ``meshgrid(1:W, 1:H)``.
* ``box_sum`` — ``filter2(ones(2r+1), f)``: correlation, 'same' size, zeros outside.
* ``compute_normals`` — ``computeNormalsSquareSupport(z, missingMask, r, 1, C, ones)``: the
  least-squares plane ``[X/Z Y/Z 1]·n = 1/Z`` over each (2r+1)² window, missing points
  (NaN) left out; one superpixel, so ``filterItChopOff`` is the plain box sum. ``n`` is the
  adjugate of AᵀA times Aᵀb (``invertIt``/``mutiplyIt``: no division by the determinant),
  normalised, then oriented: first ``sign(n_z)`` (0 → 1), then ``sign(n · P)`` with the
  unmasked point P (NaN or 0 → 1). The bias ``b`` is not computed: processDepthImage drops it.
* ``gravity_direction`` — ``getYDir(N, struct('y0', [0 1 0]', 'angleThresh', [45 15],
  'iter', [5 5]))``: normals within the threshold of the current direction (|cos| > cosd t)
  count as "floor", those near-perpendicular (|cos| < sind t) as "wall"; the new direction
  is the eigenvector of NW·NWᵀ − NF·NFᵀ with the least eigenvalue, signed to agree with the
  last one (``sign`` 0 gives the zero vector, as in MATLAB).
* ``rotation_matrix`` — rgbdutils ``getRMatrix(yi, yf)``: Rodrigues' rotation about
  ``yi × yf`` by ``acosd(|yi·yf|)``, the identity when that is ≤ 0.1° (or NaN).
* ``process_depth_image`` — ``processDepthImage(z_cm, missingMask, C)``: normals with r = 3
  (N) and r = 10 (for gravity), ``R = getRMatrix([0 1 0]', yDir)``, the point cloud rotated
  by Rᵀ (``rotatePC``), height ``h = −y``, less ``prctile(h(:), 0)`` (the least non-NaN h;
  −130 when that is above −90).
* ``hha_from_depth`` — ``saveHHA``: ``D = double(depth)/1000`` (m), ``z = D·100`` (cm);
  channel 1 disparity ``31000 / max(Z, 100)``, channel 2 the height, channel 3 the angle
  ``acosd(min(1, max(-1, N·yDir))) + 128 − 90`` (MATLAB's min/max skip NaN: a NaN normal
  gives 180°); ``uint8`` as MATLAB converts (``matlab_uint8``: round half away from zero,
  saturate, NaN → 0). The PNG is written as MATLAB's ``imwrite`` does: RGB in that order.

**What differs from Gupta's own images.** saveHHA takes ``missingMask = RD == 0`` from the
*raw* Kinect depth, and the normals skip those points. nyud.tar.gz holds only the hole-filled
depth, so the mask used here is ``depth == 0`` (pixels the filled depth leaves empty, few or
none): at Kinect holes the normals are fitted to the filled-in depth instead of being left
out. The disparity and height channels, which saveHHA takes from the filled depth anyway,
are unaffected except where the gravity estimate shifts; the angle channel differs near
holes. These images are therefore Gupta's encoding but not byte-identical to his released
HHA PNGs; a user who has those can put them in ``data/hha`` — existing files are never
overwritten — and one who has the raw depth can give it (``data hha --raw-depth DIR``).
Checked against MATLAB's output on a real NYUDv2 frame (``benchmarks/check_hha_reference.py``,
README "NYUDv2"): identical in every pixel and channel.
"""
from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

__all__ = ["nyud_camera_matrix", "point_cloud_from_z", "box_sum", "compute_normals", "gravity_direction",
           "rotation_matrix", "rotate_pc", "process_depth_image", "matlab_uint8", "hha_from_depth", "encode_hha",
           "read_depth_png", "write_hha_image", "make_nyud_hha", "derive_nyud_hha", "NYUD_HHA", "NYUD_DEPTH"]

# getCameraParam('color') of nyu-hooks (NYUDv2's RGB intrinsics, full 480 × 640 frame).
_FX, _FY = 5.1885790117450188e+02, 5.1946961112127485e+02
_CX, _CY = 3.2558244941119034e+02, 2.5373616633400465e+02
# processDepthImage's parameters.
NORMAL_RADII = (3, 10)
Y0 = (0.0, 1.0, 0.0)
ANGLE_THRESHOLDS = (45.0, 15.0)
ITERATIONS = (5, 5)

# Where the release's layer reads them, under nyud_dir.
NYUD_DEPTH = "data/depth/img_{id}.png"
NYUD_HHA = "data/hha/img_{id}.png"


def nyud_camera_matrix(crop: bool = True) -> np.ndarray:
    """``cropCamera(getCameraParam('color'))``: the camera matrix of the 425 × 560 NYUDv2 crop
    (``crop=False``: ``getCameraParam('color')``, the full 480 × 640 frame's)."""
    camera = np.array([[_FX, 0.0, _CX], [0.0, _FY, _CY], [0.0, 0.0, 1.0]])
    if not crop:
        return camera
    camera[0, 2] = camera[0, 2] - 40
    camera[1, 2] = camera[1, 2] - 45
    return camera


def point_cloud_from_z(z: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``getPointCloudFromZ(Z, C, 1)``: X, Y, Z in Z's unit; pixel coordinates from 1."""
    height, width = z.shape
    xx = np.arange(1, width + 1, dtype=np.float64)[np.newaxis, :]
    yy = np.arange(1, height + 1, dtype=np.float64)[:, np.newaxis]
    x3 = (xx - camera[0, 2]) * z / camera[0, 0]
    y3 = (yy - camera[1, 2]) * z / camera[1, 1]
    return x3, y3, z


def box_sum(f: np.ndarray, radius: int) -> np.ndarray:
    """``filter2(ones(2r+1), f)`` over the first two axes of ``f`` (H × W [× C]): each value
    the sum of its (2r+1)² window, zeros outside the image ('same' size).

    Summed directly (2r+1 shifted slices along each axis), not by differences of running
    sums: the normals' 3 × 3 systems are ill-conditioned, so the sums need filter2's accuracy.
    """
    size = 2 * radius + 1
    height, width = f.shape[:2]
    rest = [(0, 0)] * (f.ndim - 2)
    padded = np.pad(f, [(radius, radius), (0, 0)] + rest)
    rows = padded[0:height].copy()
    for k in range(1, size):
        rows += padded[k:k + height]
    padded = np.pad(rows, [(0, 0), (radius, radius)] + rest)
    out = padded[:, 0:width].copy()
    for k in range(1, size):
        out += padded[:, k:k + width]
    return out


def compute_normals(depth_m: np.ndarray, missing: np.ndarray, radius: int, camera: np.ndarray) -> np.ndarray:
    """``computeNormalsSquareSupport(depth, missingMask, radius, 1, C, ones)``: H × W × 3
    unit normals (NaN where a window holds no point), oriented as Gupta orients them."""
    depth_cm = depth_m * 100
    xf, yf, zf = point_cloud_from_z(depth_cm, camera)
    x, y, z = (np.where(missing, np.nan, v) for v in (xf, yf, zf))
    with np.errstate(divide="ignore", invalid="ignore"):
        one_z = 1 / z
        x_z, y_z = x / z, y / z
        one = np.where(np.isnan(z), np.nan, 1.0)
        zz = z * z
        x_zz, y_zz = x / zz, y / zz
        raw = np.stack([x_z ** 2, x_z * y_z, x_z, y_z ** 2, y_z, one, x_zz, y_zz, one_z], axis=-1)
        raw[np.isnan(raw)] = 0
        a = box_sum(raw, radius)
        a1, a2, a3, a4, a5, a6, b1, b2, b3 = (a[..., k] for k in range(9))
        # invertIt: the adjugate of the symmetric AᵀA (entries a1 a2 a3 / a4 a5 / a6)
        adj_a = a4 * a6 - a5 * a5
        adj_d = -(a2 * a6 - a3 * a5)
        adj_g = a2 * a5 - a3 * a4
        adj_e = a1 * a6 - a3 * a3
        adj_h = -(a1 * a5 - a2 * a3)
        adj_k = a1 * a4 - a2 * a2
        # mutiplyIt
        n = np.stack([adj_a * b1 + adj_d * b2 + adj_g * b3,
                      adj_d * b1 + adj_e * b2 + adj_h * b3,
                      adj_g * b1 + adj_h * b2 + adj_k * b3], axis=-1)
        n = n / np.sqrt(n[..., 0] ** 2 + n[..., 1] ** 2 + n[..., 2] ** 2)[..., np.newaxis]
        sn = np.sign(n[..., 2])
        sn[sn == 0] = 1
        n = n * sn[..., np.newaxis]
        sn = np.sign(n[..., 0] * xf + n[..., 1] * yf + n[..., 2] * zf)
        sn[np.isnan(sn)] = 1
        sn[sn == 0] = 1
        return n * sn[..., np.newaxis]


def gravity_direction(normals: np.ndarray, y0=Y0, thresholds=ANGLE_THRESHOLDS, iterations=ITERATIONS) -> np.ndarray:
    """``getYDir(N, yDirParam)``: the direction of gravity (unit, or zero where MATLAB's
    ``sign`` gives 0) from an H × W × 3 normal field."""
    nn = normals.reshape(-1, 3)
    nn = nn[~np.isnan(nn[:, 0])]
    y = np.asarray(y0, dtype=np.float64)
    for threshold, count in zip(thresholds, iterations):
        cos_t, sin_t = np.cos(np.radians(threshold)), np.sin(np.radians(threshold))
        for _ in range(count):
            similarity = np.abs(nn @ y)
            # NW·NWᵀ − NF·NFᵀ as one weighted sum: +1 for "wall", −1 for "floor", else 0
            weight = (similarity < sin_t).astype(np.float64) - (similarity > cos_t)
            a = (nn * weight[:, np.newaxis]).T @ nn
            values, vectors = np.linalg.eigh(a)
            new = vectors[:, np.argmin(values)]
            y = new * np.sign(y @ new)
    return y


def rotation_matrix(yi, yf) -> np.ndarray:
    """rgbdutils ``getRMatrix(yi, yf)``: the rotation taking ``yi`` towards ``yf`` about
    ``yi × yf`` by ``acosd(|yi·yf|)``; the identity for an angle ≤ 0.1° (or NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.asarray(yi, dtype=np.float64)
        yf = np.asarray(yf, dtype=np.float64)
        yi = yi / np.linalg.norm(yi)
        yf = yf / np.linalg.norm(yf)
        axis = np.cross(yi, yf)
        axis = axis / np.linalg.norm(axis)
        phi = np.degrees(np.arccos(np.abs(yi @ yf)))
    if not abs(phi) > 0.1:
        return np.eye(3)
    phi = phi * (np.pi / 180)
    s_hat = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(phi) * s_hat + (1 - np.cos(phi)) * (s_hat @ s_hat)


def rotate_pc(pc: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``rotatePC(pc, R)``: ``R·p`` for each point of an H × W × 3 field."""
    return pc @ rotation.T


def process_depth_image(z_cm: np.ndarray, missing: np.ndarray, camera: np.ndarray):
    """``processDepthImage(z, missingMask, C)`` (z in cm): ``(pc, N, yDir, h)``."""
    x, y, z = point_cloud_from_z(z_cm, camera)
    pc = np.stack([x, y, z], axis=-1)
    normals = compute_normals(z_cm / 100, missing, NORMAL_RADII[0], camera)
    normals_wide = compute_normals(z_cm / 100, missing, NORMAL_RADII[1], camera)
    y_dir = gravity_direction(normals_wide)
    rotation = rotation_matrix(Y0, y_dir)
    pc_rot = rotate_pc(pc, rotation.T)
    h = -pc_rot[..., 1]
    y_min = np.nanmin(h) if not np.isnan(h).all() else np.nan
    if y_min > -90:
        y_min = -130
    return pc, normals, y_dir, h - y_min


def matlab_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's ``uint8(x)`` of doubles: round half away from zero, saturate to 0…255, NaN → 0."""
    values = np.asarray(values, dtype=np.float64)
    whole = np.trunc(values)
    rounded = whole + np.sign(values) * (np.abs(values - whole) >= 0.5)
    return np.nan_to_num(np.clip(rounded, 0, 255), nan=0.0).astype(np.uint8)


def hha_from_depth(depth_mm: np.ndarray, missing: np.ndarray | None = None,
                   camera: np.ndarray | None = None) -> np.ndarray:
    """``saveHHA`` of a depth map in millimetres: H × W × 3 uint8 (disparity, height, angle).

    ``missing`` defaults to ``depth_mm == 0`` (see the module docstring: Gupta's mask comes
    from the raw depth); ``camera`` to ``nyud_camera_matrix()``.
    """
    depth_mm = np.asarray(depth_mm, dtype=np.float64)
    if depth_mm.ndim != 2:
        raise ValueError(f"a depth map must be H × W, got shape {depth_mm.shape}")
    if missing is None:
        missing = depth_mm == 0
    if camera is None:
        camera = nyud_camera_matrix()
    d = depth_mm / 1000
    return encode_hha(*process_depth_image(d * 100, missing, camera))


def encode_hha(pc: np.ndarray, normals: np.ndarray, y_dir: np.ndarray, height: np.ndarray) -> np.ndarray:
    """saveHHA's encoding of ``process_depth_image``'s results: H × W × 3 uint8."""
    with np.errstate(invalid="ignore"):
        cos_angle = normals[..., 0] * y_dir[0] + normals[..., 1] * y_dir[1] + normals[..., 2] * y_dir[2]
        angle = np.degrees(np.arccos(np.fmin(1, np.fmax(-1, cos_angle))))
    z = np.fmax(pc[..., 2], 100)
    image = np.stack([31000 / z, height, angle + 128 - 90], axis=-1)
    return matlab_uint8(image)


# -- files ------------------------------------------------------------------------------------
_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_depth_png(path: str | Path) -> np.ndarray:
    """A depth PNG (one channel, 16-bit, millimetres) as float64; a missing or bad file
    raises ``DataFetchError`` naming it."""
    from PIL import Image

    from .fetch import DataFetchError

    path = Path(path)
    if not path.is_file():
        raise DataFetchError(f"{path}: depth PNG missing (HHA is computed from it; fetch nyud again)")
    try:
        with Image.open(path) as image:
            mode = image.mode
            depth = np.array(image)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as err:
        raise DataFetchError(f"{path}: not a readable depth PNG ({type(err).__name__}: {err}); "
                             f"delete nyud's folder and fetch it again") from None
    if mode not in _DEPTH_MODES or depth.ndim != 2:
        raise DataFetchError(f"{path}: not a depth PNG in millimetres (a one-channel 16-bit image): "
                             f"mode {mode}, shape {depth.shape}")
    return depth.astype(np.float64)


def write_hha_image(depth_path: str | Path, hha_path: str | Path, raw_depth_path: str | Path | None = None) -> None:
    """Compute the HHA of one depth PNG and write it as an RGB PNG, atomically.

    ``raw_depth_path``: the raw Kinect depth of the same image (zeros where the sensor saw
    nothing), whose zeros are the missing-data mask as in Gupta's ``saveHHA``; without it the
    mask is the depth's own zeros.
    """
    from PIL import Image

    from reproduce.caffe.files import atomic_output

    from .fetch import DataFetchError

    depth = read_depth_png(depth_path)
    missing = None
    if raw_depth_path is not None:
        missing = read_depth_png(raw_depth_path) == 0
        if missing.shape != depth.shape:
            raise DataFetchError(f"{raw_depth_path}: raw depth is {missing.shape[1]}x{missing.shape[0]}, "
                                 f"its depth {depth_path} is {depth.shape[1]}x{depth.shape[0]}")
    hha = hha_from_depth(depth, missing)
    with atomic_output(hha_path) as tmp:
        Image.fromarray(hha, mode="RGB").save(tmp, format="PNG")


def _write_hha_task(task: tuple) -> str:
    write_hha_image(*task)
    return task[1]


def make_nyud_hha(nyud_dir: str | Path, ids: Iterable[str], progress: bool = True,
                  raw_depth_dir: str | Path | None = None, jobs: int = 1) -> Iterator[str]:
    """Write ``data/hha/img_<id>.png`` for each id lacking one; yields one summary line.

    Resumable (files already there, Gupta's own or ours, are kept and never overwritten);
    each file is written whole or not at all. ``raw_depth_dir`` holds the raw Kinect depth as
    ``img_<id>.png`` (one for every image to make, checked before any is made): its zeros are
    the missing-data mask, as in Gupta's code. ``jobs`` worker processes share the images.
    """
    from .fetch import DataFetchError

    nyud_dir = Path(nyud_dir)
    if jobs < 1:
        raise DataFetchError(f"--jobs {jobs}: must be at least 1")
    ids = list(dict.fromkeys(ids))
    todo = [i for i in ids if not (nyud_dir / NYUD_HHA.format(id=i)).is_file()]
    raw = [None] * len(todo)
    if raw_depth_dir is not None:
        raw_depth_dir = Path(raw_depth_dir)
        if not raw_depth_dir.is_dir():
            raise DataFetchError(f"{raw_depth_dir}: no such folder of raw depth PNGs (--raw-depth)")
        raw = [raw_depth_dir / f"img_{i}.png" for i in todo]
        absent = [p for p in raw if not p.is_file()]
        if absent:
            raise DataFetchError(f"{absent[0]}: raw depth missing ({len(absent):,} of the {len(raw):,} "
                                 f"images to make have none in {raw_depth_dir})")
    tasks = [(nyud_dir / NYUD_DEPTH.format(id=i), nyud_dir / NYUD_HHA.format(id=i), r) for i, r in zip(todo, raw)]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="image", desc="HHA from depth", file=sys.stderr,
                   dynamic_ncols=True, leave=False)
    try:
        if jobs == 1 or len(tasks) < 2:
            for task in tasks:
                _write_hha_task(task)
                if bar is not None:
                    bar.update(1)
        else:
            _run_pool(tasks, jobs, bar)
    finally:
        if bar is not None:
            bar.close()
    kept = len(ids) - len(todo)
    mask = "mask depth == 0" if raw_depth_dir is None else f"mask raw depth == 0 from {raw_depth_dir}"
    yield (f"{Path(NYUD_HHA).parent}: computed {len(todo):,} HHA image(s) from {Path(NYUD_DEPTH).parent} "
           f"(Gupta et al.'s encoding, {mask}), {kept:,} already there kept")


def _run_pool(tasks: list[tuple], jobs: int, bar) -> None:
    """The tasks over ``jobs`` spawned processes (numpy and PIL only: no fork of a process
    that may hold torch's threads); the first failure stops the rest and is raised."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(_write_hha_task, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
                    if bar is not None:
                        bar.update(1)
        finally:
            for future in pending:
                future.cancel()


def derive_nyud_hha(data_dir: str | Path, ids: Iterable[str], progress: bool = True, **options) -> Iterator[str]:
    """``make_nyud_hha`` for ``data fetch nyud`` / ``data hha``: nyud_dir is ``<data dir>/nyud``."""
    return make_nyud_hha(Path(data_dir) / "nyud", ids, progress, **options)
