"""Gupta et al.'s HHA encoding (``reproduce.data.hha``) and its place in ``data fetch nyud``.

The geometry is generated here and known exactly: a floor and a wall seen by the NYUDv2
camera (the 425 × 560 crop's intrinsics), the camera tilted down, so each channel's value
follows from saveHHA's formulas — disparity ``31000 / max(Z, 100)``, height above the lowest
point, angle ``acosd(N·g) + 128 − 90`` (38 on the floor, whose normal is gravity's, 128 on
the wall). Then the fetch: a small NYUDv2 layout packed without ``data/hha`` (as the
release's nyud.tar.gz) gets an HHA image for each id, a rerun computes nothing, an existing
file is kept, and a bad depth PNG is one line naming it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reproduce.cli import main
from reproduce.data import fetch, hha
from reproduce.data.nyud import NYUDSegmentation
from reproduce.data.synthetic_layouts import make_synthetic_nyud

CAMERA = hha.nyud_camera_matrix()
H, W = 425, 560


def _rays(height=H, width=W) -> np.ndarray:
    """H × W × 3 ray directions (x/z, y/z, 1) of the crop camera, pixels counted from 1."""
    u = np.arange(1, width + 1, dtype=np.float64)[np.newaxis, :]
    v = np.arange(1, height + 1, dtype=np.float64)[:, np.newaxis]
    x, y = np.broadcast_arrays((u - CAMERA[0, 2]) / CAMERA[0, 0], (v - CAMERA[1, 2]) / CAMERA[1, 1])
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def _room(camera_height_cm=130.0, wall_cm=350.0, pitch_deg=15.0):
    """Depth (cm) of a floor below and a wall ahead, camera pitched down: (Z, floor mask,
    gravity g and the wall's normal f in camera coordinates, points P)."""
    pitch = np.radians(pitch_deg)
    g = np.array([0.0, np.cos(pitch), np.sin(pitch)])       # world "down" seen by the camera
    f = np.array([0.0, -np.sin(pitch), np.cos(pitch)])      # world "forward", the wall's normal
    rays = _rays()
    with np.errstate(divide="ignore"):
        to_floor = np.where(rays @ g > 0, camera_height_cm / (rays @ g), np.inf)
        to_wall = np.where(rays @ f > 0, wall_cm / (rays @ f), np.inf)
    z = np.minimum(to_floor, to_wall)
    return z, to_floor < to_wall, g, f, rays * z[..., np.newaxis]


def _inside(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose whole (2r+1)² window (within the image) lies in ``mask``."""
    padded = np.pad(mask, radius, constant_values=True)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1,) * 2)
    return windows.all(axis=(-1, -2))


def test_camera_matrix_is_the_crops_and_pixels_count_from_one():
    # getCameraParam('color') less the crop's 40 columns and 45 rows (cropCamera)
    assert CAMERA[0, 2] == pytest.approx(325.58244941119034 - 40, abs=0)
    assert CAMERA[1, 2] == pytest.approx(253.73616633400465 - 45, abs=0)
    assert (CAMERA[0, 0], CAMERA[1, 1]) == (5.1885790117450188e+02, 5.1946961112127485e+02)
    z = np.full((3, 4), 200.0)
    x, y, z3 = hha.point_cloud_from_z(z, CAMERA)
    assert x[0, 0] == (1 - CAMERA[0, 2]) * 200 / CAMERA[0, 0]          # MATLAB's meshgrid(1:W, 1:H)
    assert y[2, 3] == (3 - CAMERA[1, 2]) * 200 / CAMERA[1, 1]
    assert z3 is z


@pytest.mark.parametrize("shape, radius", [((9, 13), 3), ((5, 7), 10), ((30, 21), 10)])
def test_box_sum_is_filter2_same_with_zeros_outside(shape, radius):
    rng = np.random.default_rng(1)
    f = rng.normal(size=shape + (2,))
    padded = np.pad(f, ((radius, radius), (radius, radius), (0, 0)))
    size = 2 * radius + 1
    expected = np.array([[padded[i:i + size, j:j + size].sum(axis=(0, 1)) for j in range(shape[1])]
                         for i in range(shape[0])])
    np.testing.assert_allclose(hha.box_sum(f, radius), expected, rtol=0, atol=1e-12)


def test_the_normals_of_a_plane_are_recovered_exactly():
    rng = np.random.default_rng(2)
    normal = np.array([0.3, -0.8, -0.5])
    normal /= np.linalg.norm(normal)
    rays = _rays(60, 80)
    z = -250.0 / (rays @ normal)                  # the plane n·P = −250 (cm), in front of the camera
    assert (z > 0).all()
    missing = rng.random(z.shape) < 0.1
    missing[20:29, 30:39] = True                 # a 9 × 9 hole: windows of radius 3 at its centre see nothing
    n = hha.compute_normals(np.where(missing, 0, z) / 100, missing, 3, CAMERA)
    hole = _inside(missing, 3)
    assert hole.sum() == 9 and hole[23:26, 33:36].all()
    assert np.isnan(n[hole]).all()
    # away from the hole (whose rim sees collinear points) each window holds ~44 of its 49 points;
    # oriented as Gupta orients them: n·P > 0, i.e. −normal here. The 7 × 7 window's rays span
    # ~0.01 rad, so AᵀA is ill-conditioned: exact up to ~1e-7, in MATLAB's doubles as here
    clear = np.ones_like(missing)
    clear[17:32, 27:42] = False
    assert np.abs(n[clear] + normal).max() < 2e-6
    assert np.median(np.abs(n[clear] + normal)) < 1e-7


def test_gravity_direction_finds_the_floor_normal():
    pitch, roll = np.radians(20), np.radians(-7)
    g = np.array([np.sin(roll), np.cos(roll) * np.cos(pitch), np.cos(roll) * np.sin(pitch)])
    wall = np.cross(g, [1.0, 0.0, 0.0])
    wall /= np.linalg.norm(wall)
    side = np.cross(g, wall)
    field = np.empty((40, 50, 3))
    field[:24] = g
    field[24:32] = wall
    field[32:38] = -side
    field[38:] = np.nan
    y = hha.gravity_direction(field)
    np.testing.assert_allclose(y, g, rtol=0, atol=1e-12)
    y_up = hha.gravity_direction(-field)         # the sign follows y0 = [0 1 0], not the normals'
    np.testing.assert_allclose(y_up, g, rtol=0, atol=1e-12)


def test_rotation_matrix_takes_y0_to_the_gravity_direction():
    g = np.array([0.1, 0.9, 0.3])
    r = hha.rotation_matrix([0, 1, 0], g)
    np.testing.assert_allclose(r @ [0, 1, 0], g / np.linalg.norm(g), atol=1e-14)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-14)
    tiny = [0, 1, np.tan(np.radians(0.05))]     # within 0.1°: the identity, as getRMatrix
    assert (hha.rotation_matrix([0, 1, 0], tiny) == np.eye(3)).all()


def test_uint8_rounds_half_away_from_zero_and_saturates_as_matlab():
    values = np.array([-3.0, -0.5, 0.49999999999999994, 0.5, 1.5, 2.5, 37.5, 254.49, 254.5, 255.7, 400.0, np.nan])
    expected = [0, 0, 0, 1, 2, 3, 38, 254, 255, 255, 255, 0]
    assert hha.matlab_uint8(values).tolist() == expected
    assert hha.matlab_uint8(values).dtype == np.uint8


def test_hha_of_a_floor_and_a_wall():
    z, floor, g, f, points = _room()
    depth_mm = z * 10
    pc, normals, y_dir, height = hha.process_depth_image(depth_mm / 1000 * 100, depth_mm == 0, CAMERA)
    image = hha.encode_hha(pc, normals, y_dir, height)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    # getYDir finds the floor's normal: within 0.1° (the crease's normals pull it a little)
    assert np.degrees(np.arccos(min(1.0, y_dir @ g))) < 0.1
    # disparity: 31000 / max(Z, 100), as uint8
    assert (image[..., 0] == hha.matlab_uint8(31000 / np.fmax(pc[..., 2], 100))).all()
    wall_only = _inside(~floor, 3)
    assert (image[..., 0][wall_only & (np.abs(z - 350) < 1e-9)] == 89).all()   # 31000/350 = 88.57
    # angle: the floor's normal is gravity's, acosd(1) + 128 − 90 = 38; a wall's is ⟂, acosd(0) → 128
    assert (image[..., 2][_inside(floor, 3)] == 38).all()
    assert (image[..., 2][wall_only] == 128).all()
    # height above the lowest point (the floor, 130 cm below the camera), in cm
    above_floor = 130.0 - points @ g
    assert np.abs(height - above_floor).max() < 0.5
    assert (np.abs(image[..., 1].astype(int) - hha.matlab_uint8(above_floor)) <= 1).all()
    assert (image[..., 1][_inside(floor, 0)] == 0).all()


@pytest.mark.parametrize("camera_height, floor_reads", [(150.0, 0), (60.0, 70)])
def test_height_channel_and_its_offset_when_the_lowest_point_is_above_minus_90(camera_height, floor_reads):
    # the camera pitched 35° down at a floor filling the image: every normal is gravity's
    z, floor, g, *_ = _room(camera_height_cm=camera_height, wall_cm=1e9, pitch_deg=35.0)
    assert floor.all()
    depth_mm = z * 10
    pc, normals, y_dir, height = hha.process_depth_image(depth_mm / 1000 * 100, depth_mm == 0, CAMERA)
    np.testing.assert_allclose(y_dir, g, rtol=0, atol=1e-9)
    # h = −(camera height) on the floor; prctile(h, 0) = −150 stays, −60 > −90 becomes −130
    assert np.abs(height[floor] - floor_reads).max() < 1e-9
    assert (hha.encode_hha(pc, normals, y_dir, height)[..., 1] == floor_reads).all()


def test_disparity_saturates_near_the_camera():
    z, *_ = _room()
    depth_mm = np.minimum(z * 10, 800.0)[::8, ::8]   # all nearer than 1 m: 31000/100 = 310 → 255
    assert (hha.hha_from_depth(depth_mm)[..., 0] == 255).all()


def test_missing_depth_is_left_out_of_the_normals():
    z, floor, *_ = _room()
    depth_mm = z * 10
    depth_mm[300:303, 100:103] = 0               # a small hole in the floor: its neighbours' fits ignore it
    image = hha.hha_from_depth(depth_mm)
    assert (image[290:313, 90:113, 2] == 38).all()
    assert image[301, 101, 0] == 255 and image[301, 101, 1] == 130   # Z = 0: P at the camera, h = 0 − (−130)


# -- the fetch -------------------------------------------------------------------------------
def _tar(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for src, arcname in members:
            for path in sorted(src.rglob("*")):
                if path.is_file():
                    tar.add(path, f"{arcname}/{path.relative_to(src).as_posix()}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A folder with nyud.tar.gz (images, depth, segmentation: no data/hha, as the release's)
    and the split lists; the release's facts with these files' sha1s and counts."""
    src = tmp_path_factory.mktemp("src")
    make_synthetic_nyud(src, n_trainval=3, n_test=2)
    folder = tmp_path_factory.mktemp("mirror")
    nyud = src / "nyud"
    files = {"nyud.tar.gz": _tar([(nyud / "data" / "images", "nyud/data/images"),
                                  (nyud / "data" / "depth", "nyud/data/depth"),
                                  (nyud / "segmentation", "nyud/segmentation")])}
    trainval = (nyud / "trainval.txt").read_text().split()
    files["data/nyud/train.txt"] = "\n".join(trainval[:2]).encode()
    files["data/nyud/val.txt"] = (trainval[2] + "\n").encode()
    files["data/nyud/test.txt"] = (nyud / "test.txt").read_bytes()
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    real = fetch.datasets()["nyud"]
    archives = tuple(dataclasses.replace(a, sha1=hashlib.sha1(files[a.file]).hexdigest()) if a.sha1 else a
                     for a in real.files)
    splits = tuple(dataclasses.replace(s, count=c) for s, c in zip(real.splits, (3, 2)))
    ids = trainval + (nyud / "test.txt").read_text().split()
    return folder, dataclasses.replace(real, files=archives, splits=splits), ids


@pytest.fixture
def nyud_facts(mirror, monkeypatch):
    folder, release, ids = mirror
    monkeypatch.setattr(fetch, "datasets", lambda: {"nyud": release})
    return folder, ids


def _run(capsys, *args):
    rc = main(["data", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fetch_nyud_computes_hha_for_every_id_and_a_rerun_is_a_no_op(nyud_facts, tmp_path, capsys):
    folder, ids = nyud_facts
    data = tmp_path / "data"
    rc, out, err = _run(capsys, "fetch", "nyud", "--dir", str(data), "--from", str(folder), "--quiet")
    assert rc == 0, err
    assert "nyud: data/hha: computed 5 HHA image(s)" in out and "nyud: complete" in out
    assert "nyud/data/hha: 5 of 5 HHA images" in out
    hha_dir = data / "nyud" / "data" / "hha"
    for sample_id in ids:
        depth = hha.read_depth_png(data / "nyud" / "data" / "depth" / f"img_{sample_id}.png")
        with Image.open(hha_dir / f"img_{sample_id}.png") as image:
            assert image.mode == "RGB"
            assert (np.array(image) == hha.hha_from_depth(depth)).all()
    sample = NYUDSegmentation(data / "nyud", "test", tops=("hha", "label"))[1]
    assert sample[0].shape[0] == 3 and sample[0].shape[1:] == sample[1].shape[1:]
    assert not list(hha_dir.glob(".*"))          # no temporary file left

    stamps = {p.name: p.stat().st_mtime_ns for p in hha_dir.iterdir()}
    rc, out, _ = _run(capsys, "fetch", "nyud", "--dir", str(data), "--from", "http://127.0.0.1:9/", "--quiet")
    assert rc == 0 and "computed 0 HHA image(s)" in out and "5 already there kept" in out
    assert {p.name: p.stat().st_mtime_ns for p in hha_dir.iterdir()} == stamps

    # a user's own HHA (Gupta's) is kept; a missing one is counted, named and made by `data hha`
    own = np.full((4, 4, 3), 7, dtype=np.uint8)
    Image.fromarray(own).save(hha_dir / f"img_{ids[0]}.png")
    (hha_dir / f"img_{ids[3]}.png").unlink()
    rc, _, err = _run(capsys, "check", "nyud", "--dir", str(data))
    assert rc == 1
    assert (f"1 of 5 HHA images missing, first {hha_dir / f'img_{ids[3]}.png'}; make them with: "
            f"python -m reproduce data hha --dir {data}") in err
    rc, out, err = _run(capsys, "hha", "--dir", str(data), "--quiet")
    assert rc == 0, err
    assert "nyud: data/hha: computed 1 HHA image(s)" in out and "nyud: complete" in out
    assert (np.array(Image.open(hha_dir / f"img_{ids[0]}.png")) == own).all()
    assert (hha_dir / f"img_{ids[3]}.png").stat().st_mtime_ns != stamps.get(f"img_{ids[3]}.png")


@pytest.mark.parametrize("damage", ["truncated", "not a png", "8-bit", "missing"])
def test_a_bad_depth_png_is_one_line_naming_it(nyud_facts, tmp_path, capsys, damage):
    folder, ids = nyud_facts
    data = tmp_path / "data"
    rc, _, err = _run(capsys, "fetch", "nyud", "--dir", str(data), "--from", str(folder), "--quiet")
    assert rc == 0, err
    depth = data / "nyud" / "data" / "depth" / f"img_{ids[2]}.png"
    target = data / "nyud" / "data" / "hha" / f"img_{ids[2]}.png"
    target.unlink()
    if damage == "truncated":
        depth.write_bytes(depth.read_bytes()[:200])
    elif damage == "not a png":
        depth.write_bytes(b"not an image at all")
    elif damage == "8-bit":
        Image.fromarray(np.full((8, 8), 100, dtype=np.uint8)).save(depth)
    else:
        depth.unlink()
    rc, _, err = _run(capsys, "hha", "--dir", str(data), "--quiet")
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {depth}: ")
    assert not target.exists() and not list(target.parent.glob(".*"))
    rc, _, err = _run(capsys, "fetch", "nyud", "--dir", str(data), "--from", str(folder), "--quiet")
    assert rc == 1 and f"error: nyud: {depth}: " in err


def test_data_hha_without_split_lists_names_the_fetch(tmp_path, capsys):
    rc, _, err = _run(capsys, "hha", "--dir", str(tmp_path), "--quiet")
    assert rc == 2 and f"python -m reproduce data fetch nyud --dir {tmp_path} first" in err



def test_data_hha_raw_depth_mask_and_jobs(nyud_facts, tmp_path, capsys):
    """--raw-depth DIR: the raw depth's zeros are the mask (Gupta's saveHHA); --jobs 2 writes
    the same files as one process; a raw depth missing for one image is refused before any
    image is made."""
    folder, ids = nyud_facts
    data = tmp_path / "data"
    rc, _, err = _run(capsys, "fetch", "nyud", "--dir", str(data), "--from", str(folder), "--quiet")
    assert rc == 0, err
    nyud = data / "nyud"
    hha_dir = nyud / "data" / "hha"
    raw_dir = tmp_path / "rawdepth"
    raw_dir.mkdir()
    rng = np.random.default_rng(0)
    masks = {}
    for sample_id in ids:
        depth = hha.read_depth_png(nyud / "data" / "depth" / f"img_{sample_id}.png")
        holes = np.zeros(depth.shape, dtype=bool)
        top, left = rng.integers(0, depth.shape[0] // 2), rng.integers(0, depth.shape[1] // 2)
        holes[top:top + depth.shape[0] // 3, left:left + depth.shape[1] // 3] = True
        masks[sample_id] = holes
        Image.fromarray(np.where(holes, 0, depth).astype(np.uint16)).save(raw_dir / f"img_{sample_id}.png")
    for path in hha_dir.iterdir():
        path.unlink()

    (raw_dir / f"img_{ids[1]}.png").rename(tmp_path / "aside.png")
    rc, _, err = _run(capsys, "hha", "--dir", str(data), "--quiet", "--raw-depth", str(raw_dir))
    assert rc == 2 and err.startswith(f"error: {raw_dir / f'img_{ids[1]}.png'}: raw depth missing (1 of the 5")
    assert not list(hha_dir.iterdir())
    (tmp_path / "aside.png").rename(raw_dir / f"img_{ids[1]}.png")

    rc, out, err = _run(capsys, "hha", "--dir", str(data), "--quiet", "--raw-depth", str(raw_dir),
                        "--jobs", "2")
    assert rc == 0, err
    assert f"computed 5 HHA image(s) from data/depth (Gupta et al.'s encoding, mask raw depth == 0 from {raw_dir})" in out
    differs = 0
    for sample_id in ids:
        depth = hha.read_depth_png(nyud / "data" / "depth" / f"img_{sample_id}.png")
        made = np.array(Image.open(hha_dir / f"img_{sample_id}.png"))
        assert (made == hha.hha_from_depth(depth, masks[sample_id])).all()
        differs += int((made != hha.hha_from_depth(depth)).any())
    assert differs > 0          # the mask mattered somewhere: the option is not a no-op

    two_jobs = {p.name: p.read_bytes() for p in hha_dir.iterdir()}
    for path in hha_dir.iterdir():
        path.unlink()
    rc, _, err = _run(capsys, "hha", "--dir", str(data), "--quiet", "--raw-depth", str(raw_dir))
    assert rc == 0, err
    assert {p.name: p.read_bytes() for p in hha_dir.iterdir()} == two_jobs


def test_the_matlab_reference_check_on_a_reference_laid_out_here(tmp_path):
    """benchmarks/check_hha_reference.py (the comparison with MATLAB's output in a
    Depth2HHA-python checkout, run by hand): a reference laid out as that checkout is, whose
    "MATLAB" image is our own encoding, passes; one pixel changed fails; a folder without the
    files is one error line."""
    tool = [sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "check_hha_reference.py")]
    demo = tmp_path / "ref" / "demo"
    demo.mkdir(parents=True)
    yy, xx = np.mgrid[0:48, 0:64]
    depth_tenth_mm = (20000 + 40 * yy + 10 * xx).astype(np.uint16)
    raw = depth_tenth_mm.copy()
    raw[5:9, 5:9] = 0
    Image.fromarray(depth_tenth_mm).save(demo / "0.png")
    Image.fromarray(raw).save(demo / "0_raw.png")
    ours = hha.hha_from_depth(depth_tenth_mm / 10, None, hha.nyud_camera_matrix(crop=False))
    Image.fromarray(ours, mode="RGB").save(demo / "matlab_hha.png")
    done = subprocess.run(tool + ["--reference", str(tmp_path / "ref")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mask: depth == 0                   0, 0, 0" in done.stdout and "identical" in done.stdout
    ours[10, 20, 1] ^= 1          # one height value off by one
    Image.fromarray(ours, mode="RGB").save(demo / "matlab_hha.png")
    done = subprocess.run(tool + ["--reference", str(tmp_path / "ref")], capture_output=True, text=True)
    assert done.returncode == 1 and "MISMATCH" in done.stdout
    assert "mask: depth == 0                   0, 1, 0" in done.stdout
    done = subprocess.run(tool + ["--reference", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {tmp_path}: neither a checkout nor a git dir")
