"""The FCN heads: class scores, learned-free upsampling, skip fusion and the final crop.

From the features after fc7, ``score_fr`` scores every class; the scores are upsampled by
fixed deconvolutions (``lr_mult: 0``, no bias: surgery fills them with bilinear kernels) and,
for FCN-16s/8s, fused with scores of ``pool4`` (and ``pool3``) — each skip's scores cropped to
the upsampled map and summed (Eltwise SUM); a final deconvolution brings the map to the input
resolution and a crop aligns it with ``data``. Every crop is left without offsets here:
``reproduce.net.coord_map.fill_crop_offsets`` derives them from the geometry, as the
reference's ``coord_map.crop`` does.

The score layers set no filler: Caffe's default filler is the constant 0, the zero
initialisation of the paper. The at-once variant scales the skips before scoring them by
fixed ``Scale`` layers (0.01 for pool4, 0.0001 for pool3, ``lr_mult: 0``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from reproduce.net.spec import NetSpec, Top, layers as L

from .backbones import LEARNED

FIXED = ({"lr_mult": 0},)  # a parameter the solver never updates


def score(bottom: Top, num_classes: int) -> Top:
    """1×1 class scores."""
    return L.Convolution(bottom, num_output=num_classes, kernel_size=1, pad=0, param=list(LEARNED))


def upsample(bottom: Top, num_classes: int, factor: int, kernel_size: int | None = None) -> Top:
    """A fixed ``factor``× upsampling deconvolution (kernel 2·factor unless given)."""
    return L.Deconvolution(bottom, convolution_param=dict(
        num_output=num_classes, kernel_size=kernel_size or 2 * factor, stride=factor,
        bias_term=False), param=list(FIXED))


def fcn_head(n: NetSpec, features: Top | None, data: Top, num_classes: int, *,
             skips: Sequence[str] = (), skip_scales: Mapping[str, float] | None = None,
             stride: int = 32, final_kernel: int | None = None, suffix: str = "",
             scores: Top | None = None) -> Top:
    """Scores of ``features`` (at ``stride`` to the input), fused 2× at a time with the
    scores of the ``skips`` pooling layers, upsampled to the input and cropped to ``data``.

    Names follow the reference: ``upscore2`` then ``upscore_<skip>`` for the 2× steps,
    ``score_<skip>``, ``score_<skip>c``, ``fuse_<skip>``; the last upsampling is ``upscore``
    (no skips) or ``upscore<factor>``; the cropped result is ``score``. ``suffix`` ends every
    name (SIFT Flow's two heads: ``score_fr_sem``, ``score_pool4_semc``, ``score_sem``);
    ``scores`` replaces ``score_fr`` by scores already made (late fusion's ``score_fused``).
    """
    if scores is None:
        n[f"score_fr{suffix}"] = scores = score(features, num_classes)
    fused = scores
    up_name = f"upscore2{suffix}"
    for skip in skips:
        n[up_name] = upsample(fused, num_classes, 2)
        skip_top = n[skip]
        if skip_scales and skip in skip_scales:
            n[f"scale_{skip}{suffix}"] = skip_top = L.Scale(
                skip_top, filler=dict(type="constant", value=skip_scales[skip]), param=list(FIXED))
        skip_score = f"score_{skip}{suffix}"
        n[skip_score] = score(skip_top, num_classes)
        n[f"{skip_score}c"] = L.Crop(n[skip_score], n[up_name])
        n[f"fuse_{skip}{suffix}"] = fused = L.Eltwise(n[up_name], n[f"{skip_score}c"],
                                                      operation="SUM")
        stride //= 2
        up_name = f"upscore_{skip}{suffix}"
    final_name = f"upscore{stride}{suffix}" if skips else f"upscore{suffix}"
    n[final_name] = upsample(fused, num_classes, stride, final_kernel)
    n[f"score{suffix}"] = L.Crop(n[final_name], data)
    return n[f"score{suffix}"]
