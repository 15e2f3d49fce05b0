"""Shift-and-stitch is filter rarefaction (CVPR 2015 Sec. 3.2), as tests.

On small nets and on a tiny FCN-32s (the golden widths, its coarse net up to ``score_fr``):
the ``rarefy``-ed net equals the coarse net at the stride-aligned positions, everywhere, and
has every position ``shift_and_stitch`` has; the two are equal wherever both are defined and
no top/left padding enters (the shifted input moves the top edge against the padding; the
tests take the positions whose receptive field does not reach above or left of the shifted
input). Nets compute in float32 (Caffe's blobs are float), so results are compared with
``torch.testing.assert_close``'s float32 tolerance (the two sum the same products in another
order).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import reproduce
from reproduce.caffe import NotCaffeError, emit, encode, parse
from reproduce.net import Net
from reproduce.net.coord_map import BlobGraph
from reproduce.net.rarefy import RarefyError, coarse_net, rarefy
from reproduce.net.shift_and_stitch import ShiftAndStitchError, output_stride, shift_and_stitch

from nonzero import assert_varies, randomize

TOL: dict = {}   # assert_close's defaults for float32: rtol 1.3e-6, atol 1e-5


def _net(text: str):
    return parse(text)


def _small(pool_method: str = "MAX", pad_before: int = 0, round_mode: str = "CEIL") -> str:
    """conv (pad_before) → pool s2 → conv pad 1 → pool s2 (ceil/floor) → conv 3×3 → ReLU."""
    return f"""
name: "small"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 29 dim: 31 }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 4 kernel_size: 3 pad: {pad_before} weight_filler {{ type: "gaussian" std: 0.3 }}
                            bias_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param {{ pool: {pool_method} kernel_size: 3 stride: 2 round_mode: {round_mode} }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param {{ num_output: 5 kernel_size: 3 pad: 1 weight_filler {{ type: "gaussian" std: 0.3 }}
                            bias_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param {{ pool: {pool_method} kernel_size: 2 stride: 2 pad: 1 round_mode: {round_mode} }} }}
layer {{ name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param {{ num_output: 3 kernel_size: 3 weight_filler {{ type: "gaussian" std: 0.3 }}
                            bias_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }}
"""


def _build(param, generator_seed=0, weights_from=None):
    net = Net(param, generator=torch.Generator().manual_seed(generator_seed))
    if weights_from is not None:
        net.load_state_dict(weights_from.state_dict())
    return net


def _receptive(param, output: str, input_: str = "data") -> tuple[int, Fraction]:
    """Receptive field size (input pixels) and the centre offset ``c`` of output position
    ``k`` (centre ``S·k + c``) of a chain net, along H."""
    graph = BlobGraph(param)
    m = graph.map_from_to(graph.blob(output), graph.blob(input_))
    field, stride = 1, 1
    for layer in param.layer:
        if layer.type == "Convolution":
            p = layer.convolution_param
            k, s = p.kernel_size[0], (p.stride[0] if len(p.stride) else 1)
            d = p.dilation[0] if len(p.dilation) else 1
        elif layer.type == "Pooling":
            p = layer.pooling_param
            k, s, d = p.kernel_size, p.stride, p.dilation
        else:
            continue
        field += (d * (k - 1)) * stride
        stride *= s
    return field, m.shift[0]


def _top_left_clear(param, output, factor, stride, out_len) -> np.ndarray:
    """Dense positions (one axis) whose receptive field does not reach above (left of) the
    shifted input: no top/left padding enters them. (The bottom/right edge is the same for
    every shift, and enters both computations alike.)"""
    field, centre = _receptive(param, output)
    ok = np.zeros(out_len, dtype=bool)
    for m in range(out_len):
        k = m // factor
        ok[m] = stride * k + centre - Fraction(field - 1, 2) >= 0
    return ok


def _check_equivalence(param, layers_and_factors, data, output, min_interior=4, fill=False):
    """``fill``: draw every blob (``tests/nonzero.py``), for a net without fillers."""
    coarse = _build(param)
    if fill:
        randomize(coarse, seed=3)
    total = 1
    rarefied_param = param
    for layer, factor in layers_and_factors:
        rarefied_param = rarefy(rarefied_param, layer, factor)
        total *= factor
    rarefied = _build(rarefied_param, weights_from=coarse)
    with torch.no_grad():
        base = coarse.forward(data=data)[output]
        dense = shift_and_stitch(coarse, total, data=data)[output]
        rare = rarefied.forward(data=data)[output]
    assert_varies(base, f"{output} of the coarse net")
    stride = output_stride(coarse)
    assert stride[0] % total == 0
    # stride-aligned positions: both are the coarse net, everywhere
    torch.testing.assert_close(dense[:, :, ::total, ::total], base[:, :, :dense.shape[2] // total,
                                                                     :dense.shape[3] // total], **TOL)
    # the rarefied net at the aligned positions: the coarse net, everywhere (borders, padding,
    # overhanging ceil-mode windows and all), and every position shift-and-stitch has
    torch.testing.assert_close(rare[:, :, ::total, ::total], base, **TOL)
    assert rare.shape[2] >= dense.shape[2] and rare.shape[3] >= dense.shape[3]
    # wherever no top/left padding enters: shift-and-stitch is the rarefied net
    rows, cols = dense.shape[2:]
    inside_r = _top_left_clear(param, output, total, stride[0], rows)
    inside_c = _top_left_clear(param, output, total, stride[1], cols)
    assert inside_r.sum() >= min_interior and inside_c.sum() >= min_interior
    mask = torch.from_numpy(inside_r[:, None] & inside_c[None, :])
    a, b = dense[..., mask], rare[:, :, :rows, :cols][..., mask]
    torch.testing.assert_close(a, b, **TOL)
    # every shift contributes: the interior holds positions of all factor² phases
    phases = {(r % total, c % total) for r in np.flatnonzero(inside_r) for c in np.flatnonzero(inside_c)}
    assert len(phases) == total * total
    return coarse, dense, rare


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("round_mode", ["CEIL", "FLOOR"])
def test_rarefy_first_pool_equals_shift_and_stitch_by_two(method, round_mode):
    """Rarefying pool1 by 2: output stride 4 → 2; shifts of 2 input pixels."""
    param = _net(_small(method, round_mode=round_mode))
    data = torch.randn(2, 3, 41, 43, generator=torch.Generator().manual_seed(1))
    _check_equivalence(param, [("pool1", 2)], data, "conv3")


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_rarefying_every_stride_is_the_papers_one_pixel_shift_and_stitch(method):
    """pool1 then pool2 by 2 (factor 4 = the output stride): shifts of single pixels, with
    padding before the rarefied layers."""
    param = _net(_small(method, pad_before=1))
    data = torch.randn(1, 3, 40, 37, generator=torch.Generator().manual_seed(2))
    _check_equivalence(param, [("pool1", 2), ("pool2", 2)], data, "conv3")


def test_tiny_fcn_coarse_net_rarefied_at_pool5():
    """FCN-32s at the golden widths, its coarse net (to score_fr): pool5 rarefied by 2."""
    from reproduce.models import net_param

    param = coarse_net(net_param("fcn32s", "deploy", num_classes=5, widths="tiny"), "score_fr")
    assert [l.name for l in param.layer][-1] == "score_fr"
    data = torch.randn(1, 3, 468, 468, generator=torch.Generator().manual_seed(3))
    _check_equivalence(param, [("pool5", 2)], data, "score_fr", min_interior=4, fill=True)


def test_constant_band_stays_exact_with_dilated_pooling():
    """Large padding before the rarefied layer gives the later (dilated) poolings a constant
    band; the banded and the plain forward agree, and shift-and-stitch with them."""
    param = _net(_small("AVE", pad_before=9))
    data = torch.randn(1, 3, 36, 38, generator=torch.Generator().manual_seed(4))
    coarse, dense, rare = _check_equivalence(param, [("pool1", 2)], data, "conv3")
    rarefied = _build(rarefy(param, "pool1", 2), weights_from=coarse)
    with torch.no_grad():
        banded = rarefied.forward(data=data)["conv3"]
        plain = rarefied.use_constant_band(False).forward(data=data)["conv3"]
    torch.testing.assert_close(banded, plain, **TOL)
    torch.testing.assert_close(banded, rare, **TOL)


CROP_NET = """
name: "crop"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 30 dim: 30 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 3 kernel_size: 2 stride: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
        convolution_param { num_output: 3 kernel_size: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "crop" type: "Crop" bottom: "conv2" bottom: "conv3" top: "crop" crop_param { axis: 2 offset: 2 } }
layer { name: "fuse" type: "Eltwise" bottom: "crop" bottom: "conv3" top: "fuse" }
"""


def test_crop_after_the_rarefied_layer_follows_the_denser_grid():
    """A skip-style Crop + Eltwise after the rarefied conv: offsets scale with the factor, and
    the coordinate map of the rarefied net derives the same offsets."""
    from reproduce.net.coord_map import crop_offsets

    param = _net(CROP_NET)
    assert crop_offsets(param, "crop") == (2,)
    rarefied = rarefy(param, "conv1", 2)
    assert list(rarefied.layer[4].crop_param.offset) == [4]
    assert crop_offsets(rarefied, "crop") == (4,)
    data = torch.randn(1, 2, 30, 33, generator=torch.Generator().manual_seed(5))
    _check_equivalence(param, [("conv1", 2)], data, "fuse")


def test_rarefied_net_keeps_parameter_shapes_and_its_coordinate_map():
    param = _net(_small())
    rarefied_param = rarefy(param, "pool1", 2)
    pool2 = next(l for l in rarefied_param.layer if l.name == "pool2").pooling_param
    conv2 = next(l for l in rarefied_param.layer if l.name == "conv2").convolution_param
    pool1 = next(l for l in rarefied_param.layer if l.name == "pool1").pooling_param
    assert (pool2.dilation, pool2.pad, pool2.stride, pool2.has("rarefaction")) == (2, 2, 2, False)
    assert (list(conv2.dilation), list(conv2.pad)) == ([2], [2])
    assert (pool1.stride, pool1.rarefaction, pool1.has("dilation")) == (1, 2, False)
    assert param.layer[3].pooling_param.stride == 2        # the original is not touched
    coarse, rarefied = _build(param), _build(rarefied_param)
    assert {k: v.shape for k, v in coarse.state_dict().items()} == \
        {k: v.shape for k, v in rarefied.state_dict().items()}
    assert output_stride(coarse) == (4, 4) and output_stride(rarefied) == (2, 2)
    assert reproduce.rarefy is rarefy and reproduce.shift_and_stitch is shift_and_stitch


def test_writers_refuse_dilated_pooling_for_caffe():
    floor = _small(round_mode="FLOOR")
    for param, message in ((rarefy(_net(floor), "pool1", 2), r"layer 'pool2' \(Pooling\): pooling_param.dilation"),
                           (rarefy(_net(_small()), "pool1", 2), r"layer 'pool1' \(Pooling\): pooling_param.rarefaction")):
        for write in (emit, encode):
            with pytest.raises(NotCaffeError, match=message + r" is this project's extension"):
                write(param)
    # rarefying the last (floor-mode) pooling dilates only a convolution: Caffe's, and written
    conv_only = rarefy(_net(floor), "pool2", 2)
    assert parse(emit(conv_only)) == conv_only


def test_write_caffemodel_refuses_and_leaves_no_file(tmp_path):
    from reproduce.caffe import write_caffemodel

    rarefied = rarefy(_net(_small()), "pool1", 2)
    weights = {"conv1": [np.zeros((4, 3, 3, 3), np.float32), np.zeros(4, np.float32)]}
    with pytest.raises(NotCaffeError, match=r"layer 'pool1' \(Pooling\): pooling_param.rarefaction .*\(and 1 more\)"):
        write_caffemodel(tmp_path / "r.caffemodel", weights, rarefied)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layer, factor, message", [
    ("pool1", 3, r"layer 'pool1' has stride 2×2; factor 3 does not divide it"),
    ("pool9", 2, r"no layer named 'pool9' in net 'small' \(its convolutions and poolings: conv1, pool1"),
    ("relu1", 2, r"layer 'relu1' is a ReLU; only a Convolution or Pooling"),
    ("pool1", 0, r"factor must be a positive integer, got 0"),
    ("pool1", True, r"factor must be a positive integer, got True"),
    ("pool1", 2.0, r"factor must be a positive integer, got 2.0"),
])
def test_rarefy_refuses_bad_layers_and_factors(layer, factor, message):
    with pytest.raises(RarefyError, match=message):
        rarefy(_net(_small()), layer, factor)


def test_rarefy_refuses_what_follows_and_cannot_be_rarefied():
    from reproduce.models import net_param

    fcn = net_param("fcn32s", "deploy", num_classes=5, widths="tiny")
    with pytest.raises(RarefyError, match=r"layer 'upscore' \(Deconvolution\) follows the rarefied "
                                          r"layer 'pool5': a Deconvolution upsamples"):
        rarefy(fcn, "pool5", 2)
    mixed = _net(CROP_NET.replace("kernel_size: 5", "kernel_size: 5 stride: 2"))
    with pytest.raises(RarefyError, match=r"layer 'crop' \(Crop\) reads 'conv2' \(not rarefied\), "
                                          r"'conv3' \(rarefied\): after rarefying 'conv3' by 2"):
        rarefy(mixed, "conv3", 2)
    glob = _net(_small().replace("pool: MAX kernel_size: 2 stride: 2 pad: 1", "pool: MAX global_pooling: true"))
    with pytest.raises(RarefyError, match=r"'pool2': a global pooling after the rarefied layer"):
        rarefy(glob, "pool1", 2)


def test_shift_and_stitch_refuses_bad_factors_and_inputs():
    net = _build(_net(_small()))
    data = torch.randn(1, 3, 29, 31)
    with pytest.raises(ShiftAndStitchError, match=r"factor 3 does not divide the output stride 4×4"):
        shift_and_stitch(net, 3, data=data)
    with pytest.raises(ShiftAndStitchError, match=r"factor must be a positive integer"):
        shift_and_stitch(net, -1, data=data)
    with pytest.raises(ShiftAndStitchError, match=r"takes inputs \['data'\], got \['image'\]"):
        shift_and_stitch(net, 2, image=data)
    with pytest.raises(ShiftAndStitchError, match=r"N×C×H×W"):
        shift_and_stitch(net, 2, data=data[0])
    with pytest.raises(ShiftAndStitchError, match=r"refused the input shifted by 3 rows and 0 columns"):
        shift_and_stitch(net, 4, data=torch.randn(1, 3, 12, 40))
    with pytest.raises(ShiftAndStitchError, match=r"is 2×40: too small for shift-and-stitch by 4"):
        shift_and_stitch(net, 4, data=torch.randn(1, 3, 2, 40))


def test_shift_and_stitch_interlaces_the_shifted_passes():
    """The definition itself: dense[f·k + i, f·l + j] is the pass on the input without its
    first i·t rows and j·t columns (here t = 1: factor 4 = the stride)."""
    net = _build(_net(_small()))
    data = torch.randn(1, 3, 33, 35, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        dense = shift_and_stitch(net, 4, data=data)["conv3"]
        for i, j in [(0, 0), (1, 3), (3, 2)]:
            one = net.forward(data=data[:, :, i:, j:])["conv3"]
            part = dense[:, :, i::4, j::4]
            torch.testing.assert_close(part, one[:, :, :part.shape[2], :part.shape[3]], rtol=0, atol=0)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_dilated_pooling_is_the_coarse_pooling_of_each_sublattice(method):
    """The layer-level identity behind rarefaction: a stride-1 pooling dilated by d with pad
    d·p, at output d·o + r, is the undilated pooling (pad p) of the sub-grid x[r::d] at o —
    window clipping, padding and AVE's divisor included."""
    from reproduce.net.layers import layer_class

    def pooling(dilation, pad):
        text = (f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {method} '
                f'kernel_size: 3 stride: 1 pad: {pad}' + (f' dilation: {dilation}' if dilation > 1 else '') + ' }')
        return layer_class("Pooling", "p")(parse(text, "LayerParameter"), [(2, 3, 17, 14)])

    x = torch.randn(2, 3, 17, 14, generator=torch.Generator().manual_seed(7))
    (dense,) = pooling(3, 3)(x)
    coarse = pooling(1, 1)
    assert dense.shape == x.shape
    for r in range(3):
        for c in range(3):
            (part,) = coarse(x[:, :, r::3, c::3])
            torch.testing.assert_close(dense[:, :, r::3, c::3], part, **TOL)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size", [(17, 18), (18, 17)])
def test_strided_dilated_pooling_has_every_coarse_output(method, size):
    """A pooling after a layer rarefied by 2 keeps its stride 2 and is dilated by 2: output
    2·o + j is the coarse pooling's output o on the sub-grid x[0::2] without its first j
    elements, for every o that coarse pooling has (its last, overhanging ceil-mode window
    too) — and there are no other outputs."""
    from reproduce.net.layers import layer_class

    def pooling(dilation, pad, shape):
        text = (f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {method} '
                f'kernel_size: 2 stride: 2 pad: {pad}' + (f' dilation: {dilation}' if dilation > 1 else '') + ' }')
        return layer_class("Pooling", "p")(parse(text, "LayerParameter"), [shape])

    x = torch.randn(1, 2, *size, generator=torch.Generator().manual_seed(8))
    (dense,) = pooling(2, 0, tuple(x.shape))(x)   # no pad: the sub-grids' top edges agree
    sub = x[:, :, 0::2, 0::2]
    expected_shape = []
    for axis in (2, 3):
        counts = [pooling(1, 0, (1, 2, sub.shape[2] - j, sub.shape[3]))
                  .top_shapes([(1, 2, sub.shape[2] - j, sub.shape[3] - j)])[0][axis] for j in (0, 1)]
        expected_shape.append(max(2 * (c - 1) + j + 1 for j, c in enumerate(counts)))
    assert tuple(dense.shape[2:]) == tuple(expected_shape)
    for i in (0, 1):
        for j in (0, 1):
            part = sub[:, :, i:, j:]
            (coarse,) = pooling(1, 0, tuple(part.shape))(part)
            got = dense[:, :, i::2, j::2]
            torch.testing.assert_close(got, coarse[:, :, :got.shape[2], :got.shape[3]], **TOL)
            assert got.shape[2:] == coarse.shape[2:]
