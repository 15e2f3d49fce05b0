"""Dense scores by shift-and-stitch in place of an FCN's upsampling (``infer --dense F``).

CVPR 2015 Sec. 3.2 offers shift-and-stitch as one way to densify the coarse outputs of a
convnet, Sec. 3.3 bilinear interpolation (the fixed deconvolution of the release's nets) as
another; the paper's nets use the latter (Sec. 3.2 reports preliminary experiments with
shift-and-stitch and keeps learned upsampling with skip fusion as more effective and
efficient). ``DenseScorer(net, factor)`` combines them for a net
whose scores are one upsampling of its coarse scores — ``score = Crop(Deconvolution(coarse),
data)``, as FCN-32s and FCN-AlexNet are — :

1. the coarse net (everything up to the Deconvolution's bottom, e.g. ``score_fr``; its
   weights are the net's own tensors) runs ``factor²`` times on shifted inputs
   (``reproduce.shift_and_stitch``), giving coarse scores on a grid of stride ``t = S/factor``
   (``S`` the coarse stride, 32 for the VGG16 and AlexNet FCNs);
2. each image pixel takes the bilinear interpolation of that grid at its position, the
   coordinate map (``reproduce.net.coord_map``) giving where coarse cell ``k`` lies: at
   ``S·k + c`` (FCN-32s: ``c = 12.5``), dense cell ``m`` at ``t·m + c``; beyond the outermost
   cells the edge value holds.

With ``factor = 1`` this is the net's own bilinear upsampling wherever the image pixel lies
between coarse cells (its fixed deconvolution interpolates the same two neighbours with the
same weights; the tests check it); a larger factor replaces interpolation by computed scores
on the finer grid, at ``factor²`` times the coarse net's cost (BENCHMARKS.md).

Nets whose scores fuse skips after an upsampling (FCN-16s, FCN-8s) are refused: their
coarse scores alone are not the model. Everything runs on the net's device; the
interpolation is two gathers along rows and columns with weights built there.
"""
from __future__ import annotations

from fractions import Fraction

import torch

from reproduce.net.coord_map import BlobGraph, CoordMapError
from reproduce.net.rarefy import coarse_net
from reproduce.net.shift_and_stitch import net_parameter, output_stride, shift_and_stitch

__all__ = ["DenseError", "DenseScorer"]


class DenseError(ValueError):
    """A net that ``--dense`` cannot score."""


class DenseScorer:
    """Scores at image size from shift-and-stitch of the coarse net (see the module docstring)."""

    def __init__(self, net, factor: int, score_blob: str = "score"):
        from reproduce.net import Net
        from reproduce.net.rarefy import RarefyError, check_factor

        try:
            self.factor = check_factor(factor)
        except RarefyError as err:
            raise DenseError(f"--dense: {err}") from None
        param = net_parameter(net)
        graph = BlobGraph(param)
        if score_blob not in graph.final:
            raise DenseError(f"net {net.name!r} has no blob {score_blob!r}")
        score_layer = graph.layers[graph.blob(score_blob)[0]] if graph.blob(score_blob)[0] >= 0 else None
        deconvs = [l.name for l in param.layer if l.type == "Deconvolution"]
        upsampled = None
        if score_layer is not None and score_layer.type == "Crop":
            ref = graph.bottoms[graph.index[score_layer.name]][0]
            upsampled = graph.layers[ref[0]] if ref[0] >= 0 else None
        if upsampled is None or upsampled.type != "Deconvolution" or len(deconvs) != 1:
            raise DenseError(
                f"--dense needs a net whose {score_blob!r} is one upsampling of its coarse scores "
                f"(Crop of a Deconvolution: FCN-32s, FCN-AlexNet); net {net.name!r} has "
                f"{len(deconvs)} Deconvolution(s) ({', '.join(deconvs) or 'none'})"
                + ("; its skips are fused after upsampling, so its coarse scores alone are not "
                   "the model — use its 32s net" if len(deconvs) > 1 else ""))
        self.coarse_blob = upsampled.bottom[0]
        self.reference = score_layer.bottom[1]
        with torch.device("meta"):   # no memory, no filling: every blob is the net's own
            coarse = Net(coarse_net(param, self.coarse_blob), phase=net.phase)
        coarse.share_with(net)
        left = [name for name, blobs in coarse.params.items() if any(b.is_meta for b in blobs)]
        if left:
            raise DenseError(f"--dense: the coarse net's layers {left} have no weights in net {net.name!r}")
        coarse.keep_blobs = False
        self.coarse = coarse
        self.stride = output_stride(coarse)
        if self.stride[0] % self.factor or self.stride[1] % self.factor:
            raise DenseError(f"--dense {self.factor}: the factor must divide the stride "
                             f"{self.stride[0]}×{self.stride[1]} of {self.coarse_blob!r}, the "
                             f"coarse scores of net {net.name!r}")
        if len(coarse.inputs) != 1:
            raise DenseError(f"--dense takes one image input; the coarse net of {net.name!r} "
                             f"reads {coarse.inputs}")
        self.input = coarse.inputs[0]
        try:
            cgraph = BlobGraph(net_parameter(coarse))
            m = cgraph.map_from_to(cgraph.blob(self.coarse_blob), cgraph.blob(self.input))
        except CoordMapError as err:
            raise DenseError(f"--dense: {err}") from None
        shift = m.shift * 2 if len(m.shift) == 1 else m.shift
        self.centre: tuple[Fraction, Fraction] = (shift[0], shift[1])   # cell k lies at S·k + c

    def grid(self) -> tuple[Fraction, Fraction]:
        """The spacing ``t`` (input pixels) of the dense grid, per axis."""
        return tuple(Fraction(s, self.factor) for s in self.stride)

    def coarse_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The coarse scores on the grid of stride ``t``: ``shift_and_stitch`` of the coarse net."""
        return shift_and_stitch(self.coarse, self.factor, **{self.input: x})[self.coarse_blob]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """N×classes×H×W scores for the N×C×H×W input ``x``."""
        dense = self.coarse_dense(x)
        t = self.grid()
        out = dense
        for axis, size in ((2, x.shape[2]), (3, x.shape[3])):
            out = _interpolate(out, axis, size, t[axis - 2], self.centre[axis - 2])
        return out


def _interpolate(values: torch.Tensor, axis: int, size: int, spacing: Fraction,
                 centre: Fraction) -> torch.Tensor:
    """Linear interpolation along ``axis`` of cells lying at ``spacing·m + centre``, sampled
    at pixels ``0 … size-1`` (edge values beyond the outermost cells)."""
    cells = values.shape[axis]
    device = values.device
    position = (torch.arange(size, device=device, dtype=torch.float64) - float(centre)) / float(spacing)
    position = position.clamp(0, cells - 1)
    low = position.floor().to(torch.long).clamp(max=max(cells - 2, 0))
    high = (low + 1).clamp(max=cells - 1)
    weight = (position - low.to(torch.float64)).to(values.dtype)
    shape = [1] * values.dim()
    shape[axis] = size
    weight = weight.view(shape)
    return (values.index_select(axis, low) * (1 - weight)
            + values.index_select(axis, high) * weight)
