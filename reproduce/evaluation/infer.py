"""Segment images with a trained FCN, as the reference ``infer.py`` and ``vis.py`` do.

Per image (any size; the net runs at the image's native size):

* preprocessing of ``infer.py``: ``PIL.Image.open`` → float32 array → RGB to BGR → minus the
  mean ``(104.00698793, 116.66876762, 122.67891434)`` (the constants ``infer.py`` spells out,
  subtracted in place so the float64 mean rounds back to float32 as there) → C×H×W; 8-bit
  images that are not RGB (grey, RGBA, palette) are converted to RGB first, and images of
  more than 8 bits per channel are refused (PIL would clip them to 0–255);
* forward of the deploy net, ``argmax`` over the classes of ``score``; with ``dense=F``
  (``infer --dense F``) the scores come instead from shift-and-stitch of the coarse net by
  ``F`` (CVPR 2015 Sec. 3.2), interpolated to the image (``reproduce.evaluation.dense``);
* ``<stem>.png``: the label map as a palette PNG in the PASCAL VOC colours (its RGB is
  ``vis.color_seg``'s, what the reference saves as ``demo/output.png``);
* ``<stem>_overlay.png``: ``vis.vis_seg`` — non-background pixels blended half and half with
  their class colour, background left as is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

__all__ = ["INFER_MEAN_BGR", "IMAGE_SUFFIXES", "preprocess", "predict", "color_seg", "vis_seg",
           "palette_array", "labels_from_rgb", "collect_images", "InferResult", "infer_images"]

INFER_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class UnsupportedImageError(ValueError):
    """A readable image the nets cannot take as it is."""


# PIL's conversion to RGB clips these to 0..255 without a word
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


# bytes per pixel an image holds while it is segmented: the decoded RGB (3), its float32 copy
# and the transposed, contiguous preprocessed array (12 + 12), the label map (8, int64) and its
# uint8 copy (1), the overlay (3 + 3 float blend as float64 → 24 + 3)
IMAGE_BYTES_PER_PIXEL = 3 + 12 + 12 + 8 + 1 + 24 + 3


def load_rgb(path: str | Path) -> Image.Image:
    """The image as 8-bit RGB; 16-bit, 32-bit and float images are refused, not clipped.

    PIL's decompression-bomb limit (about 89 megapixels, an error past twice that) is a guard,
    not a law: an image over it is read here when its decoded size and the copies segmenting
    it makes fit in the memory available (``IMAGE_BYTES_PER_PIXEL``), and refused in one line
    with its size otherwise — before anything is decoded."""
    with _opened_unbounded(path) as image:
        if image.mode in _WIDE_MODES:
            raise UnsupportedImageError(f"{path}: a {image.mode} image (more than 8 bits per "
                                        f"channel); the nets take 8-bit RGB, so convert it "
                                        f"first, choosing how its range maps to 0–255")
        return image.convert("RGB") if image.mode != "RGB" else image.copy()


class _opened_unbounded:
    """``Image.open(path)`` with PIL's pixel limit replaced by a check against memory."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import warnings

        from reproduce.evaluation.memory import available_bytes, format_bytes

        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                self.image = Image.open(self.path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        width, height = self.image.size
        need = width * height * IMAGE_BYTES_PER_PIXEL
        available = available_bytes(None)
        if available is not None and need > available:
            self.image.close()
            raise UnsupportedImageError(
                f"{self.path}: a {width}×{height} image ({width * height / 1e6:,.0f} megapixels) needs about "
                f"{format_bytes(need)} to decode and preprocess, more than the {format_bytes(available)} "
                f"available (--tile bounds the net's blobs, not the image); shrink or crop it first")
        return self.image

    def __exit__(self, *exc):
        self.image.close()


def preprocess(image: Image.Image, mean=INFER_MEAN_BGR) -> np.ndarray:
    """The reference ``infer.py`` preprocessing of an RGB PIL image → 3×H×W float32."""
    in_ = np.array(image, dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= np.array(mean)
    return np.ascontiguousarray(in_.transpose((2, 0, 1)))


def predict(net, array: np.ndarray, score_blob: str = "score", dense=None) -> np.ndarray:
    """The argmax label map (H×W, int64) of one preprocessed 3×H×W image; ``dense`` a
    ``reproduce.evaluation.dense.DenseScorer`` of ``net`` to score by shift-and-stitch."""
    import torch

    from reproduce.net import Net

    try:
        device = next(net.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    x = torch.from_numpy(array[np.newaxis]).to(device)
    with torch.no_grad():
        if dense is not None:
            scores = dense(x)[0]
        elif isinstance(net, Net):
            Net.forward(net, **{net.inputs[0]: x})
            scores = net.blobs[score_blob][0]
        else:
            scores = net(x)[0]
    return scores.float().cpu().numpy().argmax(axis=0)


def palette_array(num_classes: int = 256) -> np.ndarray:
    """The VOC colours as a ``num_classes × 3`` uint8 array (``vis.make_palette``)."""
    from reproduce.evaluation.score import voc_palette

    return np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)[:num_classes]


def color_seg(seg: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """``vis.color_seg``: H×W class ids → H×W×3 colours."""
    palette = palette_array() if palette is None else palette
    return palette[np.asarray(seg).flat].reshape(np.shape(seg) + (3,))


def vis_seg(image, seg: np.ndarray, palette: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
    """``vis.vis_seg``: the image with non-background pixels blended with their class colour."""
    palette = palette_array() if palette is None else palette
    vis = np.array(image, dtype=np.float32)
    mask = seg > 0
    vis[mask] *= 1.0 - alpha
    vis[mask] += alpha * palette[seg[mask].flat]
    return vis.astype(np.uint8)


def labels_from_rgb(rgb: np.ndarray, num_classes: int = 256) -> np.ndarray:
    """Decode a VOC-coloured H×W×3 image back to class ids; a colour not in the palette raises."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    palette = palette_array(num_classes).astype(np.int64)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {int(r) << 16 | int(g) << 8 | int(b): index for index, (r, g, b) in enumerate(palette)}
    unique, inverse = np.unique(codes, return_inverse=True)
    unknown = [f"#{c:06x}" for c in unique if int(c) not in table]
    if unknown:
        raise ValueError(f"colours not in the VOC palette: {', '.join(unknown[:5])}")
    return np.array([table[int(c)] for c in unique], dtype=np.int64)[inverse].reshape(codes.shape)


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Files given directly, and the image files (sorted) of folders given."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such image or folder")
    return found


@dataclass(frozen=True)
class InferResult:
    image: Path
    label_png: Path
    overlay: Path | None
    classes: tuple[int, ...]   # the classes present in the prediction
    names: tuple[str, ...] = ()   # their names, where the class names are known


def infer_images(net, images: Sequence[Path], out_dir: str | Path, *, overlay: bool = True,
                 alpha: float = 0.5, progress: bool = True, mean=INFER_MEAN_BGR,
                 score_blob: str = "score", dense: int | None = None,
                 tile: int | None = None, palette: Sequence[int] | None = None,
                 class_names: Sequence[str] | None = None, legend: bool = True) -> list[InferResult]:
    """Segment ``images`` into ``out_dir`` (see the module docstring); ``mean`` is the BGR
    mean the net's data layer subtracted in training, ``score_blob`` the head to label by,
    ``dense`` a shift-and-stitch factor (None: the net's own upsampling). An image whose
    forward would not fit in memory is refused with the estimate, or with ``tile`` segmented
    in overlapping tiles (``reproduce.evaluation.memory.segment``; not with ``dense``).
    ``palette``: a flat 256-entry ``[r, g, b, …]`` palette for the label maps and overlays (a
    dataset's colours, ``DatasetDescription.palette()``; default VOC's); ``class_names``: the
    names of the classes, in order (each result's ``names`` are those present). Each overlay
    carries a legend of the classes present in those names and colours
    (``reproduce.evaluation.legend``) unless ``legend`` is False."""
    from reproduce.evaluation.memory import segment
    from reproduce.evaluation.score import save_image_atomic, save_palette_png

    scorer = None
    if dense is not None and tile is not None:
        raise ValueError("--dense and --tile cannot be combined: shift-and-stitch scores are not "
                         "assembled from tiles (drop one)")
    if dense is not None:
        from reproduce.evaluation.dense import DenseScorer

        scorer = DenseScorer(net, dense, score_blob or "score")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise ValueError(f"{path} and {stems[path.stem]} would both write {out_dir / (path.stem + '.png')}; "
                             f"segment them into different folders")
        stems[path.stem] = path
    results = []
    iterator: Iterable[Path] = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc="segmenting", unit="img", dynamic_ncols=True, leave=False)
    for path in iterator:
        try:
            image = load_rgb(path)
        except UnsupportedImageError:
            raise
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable image ({err})") from None
        seg = segment(net, preprocess(image, mean), lambda n, a, b: predict(n, a, b, scorer),
                      score_blob, tile=tile, what=str(path),
                      extra_bytes=image.width * image.height * IMAGE_BYTES_PER_PIXEL)
        label_png = out_dir / f"{path.stem}.png"
        save_palette_png(label_png, seg.astype(np.uint8), palette)
        overlay_path = None
        if overlay:
            overlay_path = out_dir / f"{path.stem}_overlay.png"
            colours = palette_array(256) if palette is None else np.array(palette, dtype=np.uint8).reshape(256, 3)
            picture = vis_seg(image, seg, colours, alpha)
            if legend:
                from reproduce.evaluation.legend import add_legend

                picture = add_legend(picture, np.unique(seg), class_names, colours)
            save_image_atomic(Image.fromarray(picture), overlay_path)
        present = tuple(int(c) for c in np.unique(seg))
        names = tuple(class_names[c] if class_names is not None and c < len(class_names) else str(c)
                      for c in present)
        results.append(InferResult(path, label_png, overlay_path, present, names))
    return results
