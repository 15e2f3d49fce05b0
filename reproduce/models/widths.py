"""Layer widths of the FCN nets: the published ("full") ones and the width-reduced ("tiny") ones.

A width preset maps each full hidden width to the width used; class scores keep
``num_classes``. ``"tiny"`` is the reduction the Caffe golden fixtures were produced with
(``../shared/caffe-golden``): 64→4, 128→8, 256→8, 512→16, 4096→32, and for AlexNet 96→8,
384→16 — so a tiny net built here is layer for layer the net Caffe ran. GoogLeNet's further
widths (its inception branches, and its auxiliary classifiers' 1024) shrink by about 16 as well
(no golden fixture exists for it): 16, 24, 32→2, 48→3, 112→7, 144→9, 160→10, 192→12, 208→13,
224→14, 288→18, 320→20, 1024→32.
"""
from __future__ import annotations

from typing import Callable, Mapping, Union

FULL_WIDTHS = (64, 96, 128, 256, 384, 512, 4096)
# GoogLeNet's other widths (reproduce.models.backbones.GOOGLENET_INCEPTION, the aux fc)
GOOGLENET_WIDTHS = (16, 24, 32, 48, 112, 144, 160, 192, 208, 224, 288, 320, 1024)

WIDTH_PRESETS: dict[str, dict[int, int]] = {
    "full": {width: width for width in FULL_WIDTHS + GOOGLENET_WIDTHS},
    "tiny": {64: 4, 96: 8, 128: 8, 256: 8, 384: 16, 512: 16, 4096: 32,
             16: 2, 24: 2, 32: 2, 48: 3, 112: 7, 144: 9, 160: 10, 192: 12, 208: 13, 224: 14,
             288: 18, 320: 20, 1024: 32},
}

Widths = Union[str, Mapping[int, int]]


def width_map(widths: Widths) -> Callable[[int], int]:
    """``widths`` (a preset name or a ``{full width: width}`` table) as a function of the full
    width; a table need not list every width — the ones it leaves out stay full."""
    if isinstance(widths, str):
        try:
            table = WIDTH_PRESETS[widths]
        except KeyError:
            raise ValueError(f"unknown width preset {widths!r} (presets: "
                             f"{', '.join(WIDTH_PRESETS)})") from None
    else:
        table = dict(widths)
        bad = {k: v for k, v in table.items() if not (isinstance(v, int) and v > 0)}
        if bad:
            raise ValueError(f"widths must be positive integers, got {bad}")
    return lambda full: table.get(full, full)
