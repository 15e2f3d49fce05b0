"""Convolution's faster paths change no blob: the constant band, and im2col + GEMM.

The constant band — computing only the non-constant part of convolutions:

Geometry is checked against FCN's own numbers and against brute force (the dense result must
really be constant wherever a band is claimed); values and gradients of the banded path are
checked against the dense path in float64, over random convolution geometries and through
whole nets with ReLU, MAX and AVE pooling. The golden tests check the default (banded) path
against Caffe itself.

im2col + GEMM (used for fc6/fc7-like layers) is checked against the direct convolution in
float64 with gradients, here, and against Caffe with every convolution forced through it in
``tests/test_golden_forward.py``.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from reproduce.caffe.text import parse
from reproduce.net import Net
from reproduce.net.banded import banded_conv2d
from reproduce.net.constant_band import AxisBand, conv_band, pool_band
from reproduce.net.layers.convolution import ConvGeometry


def test_fcn_conv1_band_is_the_padding():
    # 500 + 2*100 - 2 = 698 outputs; those seeing only padding: 0..97 and 600..697
    plan = conv_band(None, (500, 500), (698, 698), (3, 3), (1, 1), (100, 100))
    assert plan.from_padding
    assert plan.out.h == AxisBand(698, 0, 98, 600, 698)
    # conv1_2 (pad 1): a one-pixel ring touches the zero padding, the band shrinks by one
    plan2 = conv_band(plan.out, (698, 698), (698, 698), (3, 3), (1, 1), (1, 1))
    assert not plan2.from_padding
    assert plan2.out.h == AxisBand(698, 1, 97, 601, 697)
    pooled = pool_band(plan2.out, (698, 698), (349, 349), (2, 2), (2, 2), (0, 0), False)
    assert pooled.h == AxisBand(349, 1, 48, 301, 348)


def test_a_net_without_large_padding_has_no_band():
    assert conv_band(None, (64, 64), (64, 64), (3, 3), (1, 1), (1, 1)) is None


def _random_case(rng: random.Random):
    groups = rng.choice([1, 1, 2])
    channels = groups * rng.randint(1, 3)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 2), rng.randint(1, 2))
    pad = (rng.randint(0, 3), rng.randint(0, 3))
    size = (rng.randint(6, 14), rng.randint(6, 14))
    return groups, channels, kernel, stride, dilation, pad, size


def _dense_input_with_band(rng: random.Random, channels: int, size, dtype):
    """An input made by a large-padding convolution, so it carries a band; plus that band."""
    gen = torch.Generator().manual_seed(rng.randint(0, 10**6))
    pad = rng.randint(3, 8)
    image = torch.randn(2, 2, *size, generator=gen, dtype=dtype)
    weight = torch.randn(channels, 2, 3, 3, generator=gen, dtype=dtype)
    bias = torch.randn(channels, generator=gen, dtype=dtype)
    out_size = tuple(s + 2 * pad - 2 for s in size)
    plan = conv_band(None, size, out_size, (3, 3), (1, 1), (pad, pad))
    x = torch.relu(F.conv2d(image, weight, bias, 1, pad))
    return x, plan.out


@pytest.mark.parametrize("dense_mode", [False, True], ids=["sub-windows", "dense-pass"])
@pytest.mark.parametrize("seed", range(40))
def test_banded_convolution_equals_dense_with_gradients(seed, dense_mode):
    rng = random.Random(seed)
    groups, channels, kernel, stride, dilation, pad, size = _random_case(rng)
    dtype = torch.float64
    x, band_in = _dense_input_with_band(rng, channels, size, dtype)
    if seed % 5 == 0:
        band_in = None  # a band-less input: only a padding band can appear
    gen = torch.Generator().manual_seed(seed)
    out_ch = groups * rng.randint(1, 3)
    weight = torch.randn(out_ch, channels // groups, *kernel, generator=gen, dtype=dtype)
    bias = torch.randn(out_ch, generator=gen, dtype=dtype)
    geometry = ConvGeometry(kernel, stride, pad, dilation)
    in_size = tuple(x.shape[2:])
    out_size = tuple((s + 2 * p - e) // st + 1
                     for s, p, e, st in zip(in_size, pad, geometry.extent, stride))
    if min(out_size) <= 0:
        pytest.skip("input too small for this kernel")
    plan = conv_band(band_in, in_size, out_size, geometry.extent, stride, pad)
    dense_args = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    dense = F.conv2d(*dense_args, stride, pad, dilation, groups)
    if plan is None:
        return
    # the claimed band really is one value per (image, channel) in the dense output
    for y0, y1, x0, x1 in plan.out.band_rects():
        region = dense[:, :, y0:y1, x0:x1].detach()
        y, x_ = plan.out.sample_point()
        assert torch.allclose(region, dense[:, :, y:y + 1, x_:x_ + 1].detach().expand_as(region),
                              rtol=0, atol=1e-12)
    banded_args = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    banded = banded_conv2d(*banded_args, band_in, plan, geometry, groups, dense_mode)
    assert torch.allclose(banded, dense, rtol=0, atol=1e-10)
    top_diff = torch.randn(dense.shape, generator=gen, dtype=dtype)
    dense.backward(top_diff)
    banded.backward(top_diff)
    for ours, theirs in zip(banded_args[1:], dense_args[1:]):  # weight and bias: exact
        assert torch.allclose(ours.grad, theirs.grad, rtol=0, atol=1e-9)
    assert_input_gradients_agree(banded_args[0].grad, dense_args[0].grad, band_in)


def assert_input_gradients_agree(ours, theirs, band_in):
    """Exact off the input's band; on it, exact in the per-(image, channel) sum."""
    off_band = torch.ones(ours.shape[2:], dtype=torch.bool)
    if band_in is not None:
        for y0, y1, x0, x1 in band_in.band_rects():
            off_band[y0:y1, x0:x1] = False
        ours_sum = sum(ours[:, :, y0:y1, x0:x1].sum((2, 3)) for y0, y1, x0, x1 in band_in.band_rects())
        theirs_sum = sum(theirs[:, :, y0:y1, x0:x1].sum((2, 3)) for y0, y1, x0, x1 in band_in.band_rects())
        assert torch.allclose(ours_sum, theirs_sum, rtol=0, atol=1e-9)
    assert torch.allclose(ours[:, :, off_band], theirs[:, :, off_band], rtol=0, atol=1e-9)


BANDED_NET = """
name: "banded"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 13 dim: 11 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 dim: 1 dim: 5 dim: 5 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 20 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 5 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv2" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool1" top: "conv3"
  convolution_param { num_output: 4 kernel_size: 3 pad: 2 dilation: 2 group: 1 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool2" type: "Pooling" bottom: "conv3" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "conv4" type: "Convolution" bottom: "pool2" top: "conv4"
  convolution_param { num_output: 3 kernel_size: 2 stride: 2 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "crop" type: "Crop" bottom: "conv4" bottom: "label" top: "score" crop_param { axis: 2 offset: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
"""


@pytest.mark.parametrize("max_explicit_fraction", [0.0, 0.75, 1.0],
                         ids=["dense-passes", "default", "sub-windows"])
def test_net_blobs_and_gradients_agree_with_and_without_the_band(max_explicit_fraction,
                                                                monkeypatch):
    from reproduce.net.layers import convolution

    monkeypatch.setattr(convolution, "BANDED_MAX_EXPLICIT_FRACTION", max_explicit_fraction)
    monkeypatch.setattr(convolution, "BANDED_COST_MODEL", False)  # the band wherever allowed
    generator = torch.Generator().manual_seed(3)
    net = Net(parse(BANDED_NET), phase="train", generator=generator)
    data = torch.randn(2, 3, 13, 11, generator=generator) * 4
    label = torch.randint(0, 3, (2, 1, 5, 5), generator=generator).float()
    results = {}
    for banded in (False, True):
        net.use_constant_band(banded)
        net.zero_grad(set_to_none=True)
        net.forward(data=data, label=label)
        net.backward()
        results[banded] = ({k: v.detach().clone() for k, v in net.blobs.items()},
                           {k: p.grad.clone() for k, p in net.named_parameters()})
    (blobs_dense, grads_dense), (blobs_band, grads_band) = results[False], results[True]
    for name, blob in blobs_dense.items():
        scale = max(float(blob.abs().max()), 1e-6)
        assert float((blobs_band[name] - blob).abs().max()) <= 1e-5 * scale, name
    for name, grad in grads_dense.items():
        scale = max(float(grad.abs().max()), 1e-6)
        assert float((grads_band[name] - grad).abs().max()) <= 1e-4 * scale, name


def test_the_band_path_is_taken_in_fcn_like_nets(monkeypatch):
    calls = []
    import reproduce.net.layers.convolution as convolution

    original = convolution.banded_conv2d
    monkeypatch.setattr(convolution, "banded_conv2d",
                        lambda *a, **k: calls.append(a[4]) or original(*a, **k))
    monkeypatch.setattr(convolution, "BANDED_COST_MODEL", False)  # toy sizes: pays at any cost
    net = Net(parse(BANDED_NET), phase="test")
    with torch.no_grad():
        net.forward(data=torch.randn(2, 3, 13, 11), label=torch.zeros(2, 1, 5, 5))
    assert len(calls) >= 3  # conv1 (padding band), conv2 and conv3 (value band)
    assert calls[0].from_padding and not calls[1].from_padding


def test_the_band_is_planned_once_per_shape_and_only_where_it_pays(monkeypatch):
    """The cost model: at the toy net's sizes the extra operators cost more than the band's
    multiplications, so every convolution runs whole (yet its top still carries the band);
    the plan is made once per input shape and reused; a new size is planned anew."""
    import reproduce.net.layers.convolution as convolution

    planned, banded = [], []
    original_plan, original_conv = convolution.conv_band, convolution.banded_conv2d
    monkeypatch.setattr(convolution, "conv_band",
                        lambda *a: planned.append(a[1]) or original_plan(*a))
    monkeypatch.setattr(convolution, "banded_conv2d",
                        lambda *a, **k: banded.append(a) or original_conv(*a, **k))
    net = Net(parse(BANDED_NET), phase="test")
    with torch.no_grad():
        for size in ((13, 11), (13, 11), (13, 11), (17, 11)):
            net.forward(data=torch.randn(2, 3, *size), label=torch.zeros(2, 1, 5, 5))
    convolutions = sum(1 for n in net.layer_names if net.layer(n).layer_type == "Convolution")
    assert len(planned) == 2 * convolutions  # once per layer and shape, not per pass
    assert banded == []                      # nothing pays at these sizes
    assert net.layer("conv2")._band_plans    # yet the bands were planned and carried on


@pytest.mark.parametrize("channels, side, pays", [(64, 262, True), (4, 262, True),
                                                  (8, 70, False), (512, 40, True)])
def test_band_cost_model(channels, side, pays):
    """FCN's padding band: worth it on every full-width layer; at the golden fixtures' tiny
    widths only on the first, large maps (measured crossover, BENCHMARKS.md)."""
    from reproduce.net.constant_band import AxisBand, Band, conv_band
    from reproduce.net.layers.convolution import band_pays

    core = max(side // 4, 3)
    lo = (side - core) // 2
    axis = AxisBand(side, 0, lo, lo + core, side)
    plan = conv_band(Band(axis, axis), (side, side), (side, side), (3, 3), (1, 1), (1, 1))
    assert plan is not None
    assert band_pays(plan, channels, channels, 9) is pays


def test_band_decisions_on_the_tiny_fcn8s():
    """The cost model on FCN-8s's real plans at the golden fixtures' widths (measured per
    layer, BENCHMARKS.md "Small inputs"): the band pays on conv1 at 64×80, where 91% of the
    outputs are band, and not on conv2 (8 channels: copying a pixel costs about as much as
    convolving it) nor, at 224×224, anywhere (70% band there)."""
    from reproduce.models import net_param

    def decisions(height, width):
        net = Net(net_param("fcn8s", "deploy", num_classes=21, widths="tiny"), phase="test")
        with torch.no_grad():
            net.forward(data=torch.zeros(1, 3, height, width))
        found = {}
        for name in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"):
            (plan, banded), = net.layer(name)._band_plans.values()
            assert plan is not None  # every one of them has a band to skip
            found[name] = banded
        return found

    assert decisions(64, 80) == {"conv1_1": True, "conv1_2": True, "conv2_1": False,
                                 "conv2_2": False, "conv3_1": False}
    assert not any(decisions(224, 224).values())


@pytest.mark.parametrize("seed", range(12))
def test_im2col_gemm_convolution_equals_direct_with_gradients(seed):
    from reproduce.net.layers.convolution import conv2d_as_gemm

    rng = random.Random(1000 + seed)
    kernel = (1, 1) if seed % 4 == 0 else (rng.randint(1, 4), rng.randint(1, 4))
    stride = (1, 1) if seed % 4 == 0 else (rng.randint(1, 3), rng.randint(1, 3))
    pad = (0, 0) if seed % 4 == 0 else (rng.randint(0, 2), rng.randint(0, 2))
    dilation = (1, 1) if seed % 4 == 0 else (rng.randint(1, 2), rng.randint(1, 2))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rng.randint(1, 3), 3, rng.randint(8, 12), rng.randint(8, 12), generator=gen,
                    dtype=torch.float64)
    weight = torch.randn(5, 3, *kernel, generator=gen, dtype=torch.float64)
    bias = torch.randn(5, generator=gen, dtype=torch.float64) if seed % 3 else None
    args = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    ref_args = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    ours = conv2d_as_gemm(args[0], args[1], args[2] if bias is not None else None,
                          ConvGeometry(kernel, stride, pad, dilation))
    theirs = F.conv2d(ref_args[0], ref_args[1], ref_args[2] if bias is not None else None,
                      stride, pad, dilation)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-10)
    top_diff = torch.randn(theirs.shape, generator=gen, dtype=torch.float64)
    ours.backward(top_diff)
    theirs.backward(top_diff)
    for a, b in zip(args, ref_args):
        assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-10)
