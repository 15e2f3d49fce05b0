"""The CPU shortcuts for small inputs against the plain operators they replace.

* MAX pooling as maxima of strided views (``pooling.max_by_taps``): the same values as
  ``max_pool2d`` on Caffe's clipped windows, over random kernels, strides, sizes, both
  layouts and with ties; taken only where no gradient is wanted.
* A Deconvolution whose weight is exactly diagonal (FCN's bilinear upscore) runs one group per
  channel: the same blob as the full product, not taken when a weight gradient is wanted,
  when the weight has an off-diagonal entry (checked every call: pycaffe writes through numpy
  views), or when the input is not finite (Caffe's 0·inf is NaN).
"""
from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from reproduce.caffe.text import parse
from reproduce.net import Net
from reproduce.net.layers import pooling
from reproduce.net.layers.pooling import max_by_taps, pooled_size


@pytest.mark.parametrize("seed", range(200))
def test_max_by_taps_equals_max_pool(seed):
    rng = random.Random(seed)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride = (rng.randint(1, kernel[0]), rng.randint(1, kernel[1]))
    height, width = rng.randint(kernel[0], 20), rng.randint(kernel[1], 20)
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))
    if seed % 3 == 0:
        x = torch.round(x)  # ties
    if seed % 2:
        x = x.contiguous(memory_format=torch.channels_last)
    out = tuple(pooled_size(s, k, st, 0) for s, k, st in zip((height, width), kernel, stride))
    padded = F.pad(x, (0, kernel[1] + stride[1], 0, kernel[0] + stride[0]), value=-math.inf)
    expected = F.max_pool2d(padded, kernel, stride)[:, :, :out[0], :out[1]]
    got = max_by_taps(x, kernel, stride, out)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


POOL_NET = """
name: "p"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 9 dim: 7 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def test_the_pooling_shortcut_is_for_inference_only():
    net = Net(parse(POOL_NET), phase="test")
    x = torch.randn(1, 2, 9, 7)
    plain = F.max_pool2d(x, 2, 2, ceil_mode=True)
    with torch.no_grad():
        assert torch.equal(net.forward(data=x)["pool"], plain)
    # a gradient wanted: ATen's pooling, whose indices route it (a shortcut measured for
    # training — maxima of taps, diff routed tap by tap — was no faster, BENCHMARKS.md)
    out = net.layer("pool")(x.clone().requires_grad_(True))[0]
    assert "MaxPool2DWithIndices" in type(out.grad_fn).__name__
    assert torch.equal(out.detach(), plain)


DECONV_NET = """
name: "d"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 5 dim: 6 dim: 7 } } }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
  param { lr_mult: 0 } convolution_param { num_output: 5 kernel_size: 8 stride: 4 bias_term: false } }
"""


def _bilinear_net(lr_mult: float = 0):
    from reproduce.weights.surgery import upsample_filt

    net = Net(parse(DECONV_NET.replace("lr_mult: 0", f"lr_mult: {lr_mult}")), phase="test")
    with torch.no_grad():
        weight = net.params["up"][0]
        for c in range(5):
            weight[c, c] = torch.from_numpy(upsample_filt(8)) * (c + 1)
    return net


def _spy_groups(monkeypatch):
    from reproduce.net.layers import deconvolution

    groups = []
    original = deconvolution._CONV_TRANSPOSE[2]

    def spy(x, weight, bias, stride, pad, output_padding, group, dilation):
        groups.append(group)
        return original(x, weight, bias, stride, pad, output_padding, group, dilation)
    monkeypatch.setitem(deconvolution._CONV_TRANSPOSE, 2, spy)
    return groups


def test_diagonal_deconvolution_runs_grouped_with_the_same_blob(monkeypatch):
    groups = _spy_groups(monkeypatch)
    net = _bilinear_net()
    x = torch.randn(1, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    full = F.conv_transpose2d(x, net.params["up"][0].detach(), None, 4)
    with torch.no_grad():
        got = net.forward(data=x)["up"]
    assert groups == [5]
    assert torch.allclose(got, full, rtol=0, atol=1e-5 * float(full.abs().max()))


def test_deconvolution_keeps_every_product_where_the_shortcut_would_differ(monkeypatch):
    groups = _spy_groups(monkeypatch)
    net = _bilinear_net()
    x = torch.randn(1, 5, 6, 7, generator=torch.Generator().manual_seed(1))
    x[0, 2, 3, 3] = math.inf  # Caffe: 0·inf = NaN in every channel's sum
    with torch.no_grad():
        got = net.forward(data=x)["up"]
    assert groups == [1] and torch.isnan(got).any()
    weight = net.params["up"][0]
    weight.data.numpy()[1, 3, 0, 0] = 0.5  # a write no version counter sees (pycaffe's way)
    x = torch.randn(1, 5, 6, 7)
    with torch.no_grad():
        got = net.forward(data=x)["up"]
    assert groups == [1, 1]
    assert torch.allclose(got, F.conv_transpose2d(x, weight.detach(), None, 4), atol=1e-5)
    learnable = _bilinear_net(lr_mult=1)  # a weight gradient wanted: every product needed
    learnable.forward(data=torch.randn(1, 5, 6, 7))
    assert groups == [1, 1, 1]




def test_diagonal_deconvolution_follows_every_write_to_its_weight(monkeypatch):
    """The diagonal judgement is kept between calls but follows each write pycaffe's way
    (numpy views, no version counter): a new diagonal value, an off-diagonal entry and its
    removal all change the next call's products, each equal to the full product."""
    groups = _spy_groups(monkeypatch)
    net = _bilinear_net()
    weight = net.params["up"][0]
    x = torch.randn(1, 5, 6, 7, generator=torch.Generator().manual_seed(2))

    def check(group):
        with torch.no_grad():
            got = net.forward(data=x)["up"]
        full = F.conv_transpose2d(x, weight.detach(), None, 4)
        assert groups[-1] == group
        assert torch.allclose(got, full, rtol=0, atol=1e-5 * float(full.abs().max()))

    check(5)
    check(5)  # judged once, kept
    weight.data.numpy()[2, 2, 3, 4] = 7.0  # on the diagonal: still grouped, the new value
    check(5)
    weight.data.numpy()[0, 4, 1, 1] = -0.25  # off the diagonal: every product
    check(1)
    weight.data.numpy()[0, 4, 1, 1] = 0.0  # diagonal again
    check(5)
    weight.data.numpy()[3, 3, 0, 0] = -0.0  # a zero's sign flips the bytes, not the answer
    check(5)
    assert len(groups) == 6

@pytest.mark.parametrize("seed", range(8))
def test_inference_gemm_with_outputs_as_rows_equals_direct(seed):
    """fc6/fc7's im2col + GEMM without gradients multiplies (pixels × K)·(K × out): the same
    convolution as the direct one (float64, so only the summation order could differ)."""
    from reproduce.net.conv_geometry import ConvGeometry
    from reproduce.net.layers.convolution import conv2d_as_gemm

    rng = random.Random(seed)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride, pad = (rng.randint(1, 2), rng.randint(1, 2)), (rng.randint(0, 2), rng.randint(0, 2))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rng.randint(1, 3), 3, rng.randint(6, 10), rng.randint(6, 10), generator=gen,
                    dtype=torch.float64)
    weight = torch.randn(5, 3, *kernel, generator=gen, dtype=torch.float64)
    bias = torch.randn(5, generator=gen, dtype=torch.float64) if seed % 2 else None
    with torch.no_grad():
        ours = conv2d_as_gemm(x, weight, bias, ConvGeometry(kernel, stride, pad, (1, 1)))
    theirs = F.conv2d(x, weight, bias, stride, pad)
    assert ours.shape == theirs.shape and ours.is_contiguous()
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape,outputs,taken", [
    ((1, 3, 68, 84), 4, True),     # tiny conv1_1's window: NCHW
    ((1, 3, 68, 84), 64, False),   # full width: converting 64 channels back costs more
    ((1, 4, 70, 86), 4, False),    # 4 channels: channels-last is as fast
    ((1, 3, 164, 164), 4, False),  # past ATen's slow-path limit: oneDNN, channels-last
])
def test_small_narrow_convolution_runs_nchw_with_the_same_blob(shape, outputs, taken):
    """``conv_layout.conv2d`` convolves a small 1–3-channel channels-last input in NCHW:
    the same values as ``F.conv2d`` (the same kernel), handed back channels-last."""
    from reproduce.net import conv_layout

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(outputs, shape[1], 3, 3, generator=gen), torch.randn(outputs)
    with torch.no_grad():
        assert conv_layout.runs_nchw(x, weight, 1) is taken
        got = conv_layout.conv2d(x, weight, bias, 1, 1, 1, 1)
        loose = conv_layout.conv2d(x, weight, bias, 1, 1, 1, 1, keep_layout=False)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, loose)
    assert torch.allclose(got, F.conv2d(x.contiguous(), weight, bias, 1, 1), rtol=0, atol=1e-5)
    x.requires_grad_(True)  # training keeps the plain call
    assert not conv_layout.runs_nchw(x, weight, 1)


@pytest.mark.parametrize("channels", [1, 4, 16, 32])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_band_fill_by_rows_sets_every_band_pixel(channels, layout):
    """The banded convolution's band filled from broadcast rows: every band pixel holds its
    channel's value, every other pixel is left as it was."""
    from reproduce.net.banded import fill_band
    from reproduce.net.constant_band import conv_band

    plan = conv_band(None, (20, 24), (28, 32), (3, 3), (1, 1), (5, 5))  # a 3-pixel band
    assert plan is not None and len(plan.out.band_rects()) == 4
    band = plan.out
    y = torch.full((2, channels, 28, 32), math.nan).contiguous(memory_format=layout)
    value = torch.randn(2, channels, 1, 1)
    fill_band(y, value, band)
    expected = torch.full((2, channels, 28, 32), math.nan)
    for y0, y1, x0, x1 in band.band_rects():
        expected[:, :, y0:y1, x0:x1] = value
    assert torch.equal(y.isnan(), expected.isnan())
    assert torch.equal(y.nan_to_num(), expected.nan_to_num())


CROPPED_DECONV_NET = """
name: "c"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 9 dim: 11 }} }} }}
layer {{ name: "ref" type: "Input" top: "ref" input_param {{ shape {{ dim: 1 dim: 1 dim: {rh} dim: {rw} }} }} }}
layer {{ name: "up" type: "Deconvolution" bottom: "data" top: "up"
  convolution_param {{ num_output: {out} group: {group} kernel_size: {k} stride: {s} pad: {p}
                      dilation: {d} bias_term: {bias} }} }}
layer {{ name: "crop" type: "Crop" bottom: "up" bottom: "ref" top: "crop"
  crop_param {{ axis: 2 offset: {oy} offset: {ox} }} }}
"""


@pytest.mark.parametrize("seed", range(40))
def test_deconvolution_of_the_crop_window_equals_the_cropped_deconvolution(seed):
    """An upsampling read only by a crop computes only the crop's window when blobs are
    freed (``reproduce.net.crop_fusion``): the same top as the full blob cropped, over random
    kernels, strides, pads, dilations, groups and offsets; not when blobs are kept, when kernels
    leave gaps, or when gradients are recorded."""
    rng = random.Random(seed)
    s = rng.randint(1, 4)
    k, d = rng.randint(1, 2 * s + 1), rng.choice([1, 1, 2])
    p, group = rng.randint(0, k // 2), rng.choice([1, 3])
    out = group * rng.randint(1, 2)
    full = ((9 - 1) * s + d * (k - 1) + 1 - 2 * p, (11 - 1) * s + d * (k - 1) + 1 - 2 * p)
    if min(full) < 1:
        pytest.skip("no output")
    rh, rw = rng.randint(1, full[0]), rng.randint(1, full[1])
    oy, ox = rng.randint(0, full[0] - rh), rng.randint(0, full[1] - rw)
    text = CROPPED_DECONV_NET.format(rh=rh, rw=rw, out=out, group=group, k=k, s=s, p=p, d=d,
                                     bias=str(bool(seed % 2)).lower(), oy=oy, ox=ox)
    net = Net(parse(text), phase="test")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for blob in net.params["up"]:
            blob.copy_(torch.randn(blob.shape, generator=gen))
    x, ref = torch.randn(1, 3, 9, 11, generator=gen), torch.zeros(1, 1, rh, rw)
    spans = d * (k - 1) + 1 >= s
    assert net._crop_fusions == ({0: 1} if spans else {})
    with torch.no_grad():
        kept = net.forward(data=x, ref=ref)["crop"]
        assert "up" in net.blobs  # kept: the full blob, cropped
        net.keep_blobs = False
        windowed = net.forward(data=x, ref=ref)["crop"]
        assert "up" not in net.blobs
    assert windowed.shape == kept.shape == (1, out, rh, rw)
    assert torch.allclose(windowed, kept, rtol=0, atol=1e-5 * float(kept.abs().max()))
    trained = net.forward(data=x, ref=ref)["crop"]  # gradients recorded: the full blob
    assert trained.grad_fn is not None and torch.allclose(trained.detach(), kept, atol=1e-5)
