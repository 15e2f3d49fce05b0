"""Upsample only what the crop keeps: a Deconvolution whose top only a Crop reads.

FCN's last upsampling (upscore8: 21 channels, 18×18 → 152×152 for a 64×80 image) computes
every output, and the Crop after it (``score``, offset 31) keeps 64×80 of them — 22% of the
work. In an inference pass that frees its blobs (``keep_blobs = False``) nothing else can
see the uncropped blob, so the net asks the Deconvolution for the crop's window alone
(``Deconvolution.forward_window``): the input rows and columns that reach the window,
upsampled, and the window cut from that. Each kept output sums the same products of the
same inputs as in the full blob. The crop step then hands that window on.
"""
from __future__ import annotations

from typing import Sequence


def crop_fusions(plan: Sequence, outputs: Sequence[str], loss_blobs) -> dict[int, int]:
    """``{deconvolution step: crop step}`` for each 2-d Deconvolution (one bottom, one top)
    whose kernel spans its stride and whose top is read by exactly one later step, a Crop
    of the spatial axes (``axis: 2``) taking it as the blob to cut, and is neither a net output, a loss blob, nor written again."""
    from .layers.crop import Crop
    from .layers.deconvolution import Deconvolution

    readers: dict[str, list[tuple[int, int]]] = {}
    writers: dict[str, int] = {}
    for index, step in enumerate(plan):
        for position, bottom in enumerate(step.bottoms):
            readers.setdefault(bottom, []).append((index, position))
        for top in step.tops:
            writers[top] = writers.get(top, 0) + 1
    fusions = {}
    for index, step in enumerate(plan):
        layer = step.layer
        if (type(layer) is not Deconvolution or layer.num_spatial != 2
                or len(step.bottoms) != 1 or len(step.tops) != 1):
            continue
        top = step.tops[0]
        if top in outputs or top in loss_blobs or writers[top] != 1 or top in step.bottoms:
            continue
        read = readers.get(top, [])
        if len(read) != 1 or read[0][1] != 0 or read[0][0] <= index:
            continue
        crop = plan[read[0][0]]
        # the window's every output is reached by some input only where the kernel spans
        # the stride (no gaps between upsampled inputs)
        spans = all(e >= s for e, s in zip(layer.geometry.extent, layer.geometry.stride))
        if type(crop.layer) is Crop and crop.layer.axis == 2 and not crop.cut[0] and spans:
            fusions[index] = read[0][0]
    return fusions
