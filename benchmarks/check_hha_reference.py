"""Check: ``reproduce.data.hha`` against an HHA image that Gupta et al.'s MATLAB code wrote.

The reference is read at run time from ``--reference DIR``, a checkout (or a bare git dir) of
charlesCXK/Depth2HHA-python kept outside the project (nothing of it is bundled here). Its
``demo/`` holds one NYUDv2 frame (480 × 640): ``0.png`` the hole-filled depth and
``0_raw.png`` the raw Kinect depth (16-bit, 1/10 mm: the repository reads them as
``png / 10000`` metres) and ``matlab_hha.png``, "HHA from MATLAB" — the output of Gupta's
MATLAB pipeline (saveHHA → processDepthImage → computeNormalsSquareSupport, getYDir,
getRMatrix), RGB = disparity, height, angle. The frame is uncropped, so the camera is
``getCameraParam('color')`` (``nyud_camera_matrix(crop=False)``).

Rows: our ``hha_from_depth`` of the depth (in mm) with the missing-data mask taken from the
depth itself and from the raw depth, against ``matlab_hha.png`` — per channel, the pixels that
differ and the largest difference. The MATLAB image is the one made without the raw mask
(that row must be identical: exit 1 otherwise); the raw-mask row is shown for information
(the reference holds no MATLAB output made with it).

    python benchmarks/check_hha_reference.py --reference DIR
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FILES = ("demo/0.png", "demo/0_raw.png", "demo/matlab_hha.png")


def _reference_files(reference: Path, work: Path) -> dict[str, Path]:
    """The reference's three files, from a checkout or (a bare git dir) its HEAD."""
    if (reference / FILES[0]).is_file():
        found = {name: reference / name for name in FILES}
    elif (reference / "HEAD").is_file() and (reference / "objects").is_dir():
        found = {}
        for name in FILES:
            blob = subprocess.run(["git", f"--git-dir={reference}", "show", f"HEAD:{name}"],
                                  capture_output=True)
            if blob.returncode:
                raise SystemExit(f"error: {reference}: no {name} at HEAD "
                                 f"({blob.stderr.decode().strip()})")
            found[name] = work / Path(name).name
            found[name].write_bytes(blob.stdout)
    else:
        raise SystemExit(f"error: {reference}: neither a checkout nor a git dir of "
                         f"Depth2HHA-python (no {FILES[0]})")
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"error: {missing[0]}: missing")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="a checkout (or git dir) of charlesCXK/Depth2HHA-python")
    args = parser.parse_args(argv)

    from PIL import Image

    from host import describe
    from reproduce.data import hha

    with tempfile.TemporaryDirectory() as tmp:
        files = _reference_files(args.reference, Path(tmp))
        depth = np.array(Image.open(files["demo/0.png"])).astype(np.float64) / 10   # mm
        raw = np.array(Image.open(files["demo/0_raw.png"])).astype(np.float64) / 10
        matlab = np.array(Image.open(files["demo/matlab_hha.png"]).convert("RGB")).astype(np.int64)
    if depth.shape != matlab.shape[:2] or raw.shape != depth.shape:
        raise SystemExit(f"error: {args.reference}: depth {depth.shape}, raw {raw.shape} and "
                         f"HHA {matlab.shape[:2]} differ in size")
    camera = hha.nyud_camera_matrix(crop=False)
    print(describe())
    print(f"reference: {args.reference} — {depth.shape[1]}×{depth.shape[0]} frame, "
          f"{int((raw == 0).sum()):,} raw-depth holes, {int((depth == 0).sum()):,} in the filled depth")
    print(f"{'ours vs matlab_hha.png':<34} {'differing pixels (disparity, height, angle)':<46} max |diff|")
    status = 0
    for label, mask, must_match in (("mask: depth == 0", depth == 0, True),
                                    ("mask: raw depth == 0 (information)", raw == 0, False)):
        ours = hha.hha_from_depth(depth, mask, camera).astype(np.int64)
        diff = np.abs(ours - matlab)
        counts = [int((diff[..., c] > 0).sum()) for c in range(3)]
        print(f"{label:<34} {', '.join(f'{c:,}' for c in counts):<46} "
              f"{', '.join(str(int(diff[..., c].max())) for c in range(3))}   of {depth.size:,}")
        if must_match and any(counts):
            status = 1
    print("identical to MATLAB's output" if status == 0 else "MISMATCH against MATLAB's output")
    return status


if __name__ == "__main__":
    sys.exit(main())
