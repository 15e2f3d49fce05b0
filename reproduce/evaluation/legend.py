"""A key for segmentation pictures: the classes present, each colour beside its name.

Every picture of labels this project draws (``infer``'s overlays, the demo's
``predictions.png``) carries one. The names and colours default to PASCAL VOC's 21 classes in
the ``vis.make_palette`` colours (``reproduce.evaluation.score.voc_palette``); a dataset with its
own names and palette passes them. Colours too dark to see against the legend's dark ground
(VOC's background is black, ``cat`` is 64,0,0) get a light outline.

* ``add_legend(image, classes, names, colors)``: the H×W×3 picture with a legend strip on its
  right (the picture itself untouched; the strip as tall as needed), drawn with Pillow;
* ``legend_layout(...)``: where each swatch of that strip lies (what a test checks);
* ``legend_handles(...)``: the same entries as matplotlib patches, for figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

VOID = 255
GROUND = (40, 40, 40)          # the strip's background
TEXT = (235, 235, 235)
OUTLINE = (200, 200, 200)      # around swatches darker than DARK
DARK = 60                      # luminance below which a colour gets the outline
ROW, SWATCH, PAD = 18, 12, 6   # px


@dataclass(frozen=True)
class Entry:
    index: int
    name: str
    rgb: tuple[int, int, int]

    @property
    def outlined(self) -> bool:
        return needs_outline(self.rgb)


def needs_outline(rgb: Sequence[int]) -> bool:
    """Whether a colour is too dark to see on the legend's ground (Rec. 601 luminance)."""
    r, g, b = (float(c) for c in rgb[:3])
    return 0.299 * r + 0.587 * g + 0.114 * b < DARK


def default_names() -> tuple[str, ...]:
    from reproduce.data.voc import VOC_CLASSES

    return tuple(VOC_CLASSES)


def default_colors() -> np.ndarray:
    from reproduce.evaluation.score import voc_palette

    return np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


def entries(classes: Iterable[int], names: Sequence[str] | None = None,
            colors: np.ndarray | Sequence[Sequence[int]] | None = None) -> list[Entry]:
    """The legend's rows for ``classes`` (ids, e.g. those present), in id order, void last."""
    names = default_names() if names is None else tuple(names)
    colors = default_colors() if colors is None else np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    rows = []
    for c in sorted({int(c) for c in classes}, key=lambda c: (c == VOID, c)):
        name = names[c] if c < len(names) else ("void" if c == VOID else f"class {c}")
        rgb = tuple(int(v) for v in colors[c]) if c < len(colors) else (255, 255, 255)
        rows.append(Entry(c, name, rgb))
    return rows


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:   # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def legend_layout(rows: Sequence[Entry], height: int) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """(strip width, canvas height, each row's swatch box ``(x0, y0, x1, y1)`` in strip coordinates)."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font()
    text = max((draw.textlength(f"{r.index} {r.name}", font=font) for r in rows), default=0)
    width = int(PAD + SWATCH + PAD + text + PAD)
    boxes = [(PAD, PAD + i * ROW, PAD + SWATCH, PAD + i * ROW + SWATCH) for i in range(len(rows))]
    return width, max(height, PAD + len(rows) * ROW + PAD), boxes


def add_legend(image: np.ndarray, classes: Iterable[int], names: Sequence[str] | None = None,
               colors=None) -> np.ndarray:
    """``image`` (H×W×3 uint8) with a legend of ``classes`` on its right; the picture is unchanged
    at ``[:H, :W]`` and the strip below it (if the legend is taller) is the legend's ground."""
    from PIL import Image, ImageDraw

    image = np.asarray(image, dtype=np.uint8)
    rows = entries(classes, names, colors)
    if not rows:
        return image
    h, w = image.shape[:2]
    width, height, boxes = legend_layout(rows, h)
    canvas = Image.new("RGB", (w + width, height), GROUND)
    canvas.paste(Image.fromarray(image[:, :, :3]), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for row, (x0, y0, x1, y1) in zip(rows, boxes):
        box = (w + x0, y0, w + x1 - 1, y1 - 1)
        draw.rectangle(box, fill=row.rgb, outline=OUTLINE if row.outlined else row.rgb)
        draw.text((w + x1 + PAD, y0 + SWATCH / 2), f"{row.index} {row.name}", fill=TEXT, font=font, anchor="lm")
    return np.asarray(canvas)


def legend_handles(classes: Iterable[int], names: Sequence[str] | None = None, colors=None):
    """matplotlib patches for ``fig.legend(handles=…)``: each colour with its name, near-black outlined."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=np.array(r.rgb) / 255.0, label=f"{r.index} {r.name}",
                  edgecolor=(0.55, 0.55, 0.55) if r.outlined else np.array(r.rgb) / 255.0, linewidth=1.0)
            for r in entries(classes, names, colors)]
