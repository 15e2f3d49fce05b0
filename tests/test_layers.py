"""Unit tests of the Caffe layers and fillers against hand computations and Caffe's loops.

References here are written from Caffe's C++ (the loops of ``pooling_layer.cpp``,
``lrn_layer.cpp``, ``softmax_loss_layer.cpp`` …) in plain numpy, independent of the torch code.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reproduce.caffe.schema import Message
from reproduce.net.fillers import FillerError, bilinear_kernel, fill
from reproduce.net.layers import LayerError, UnsupportedLayerError, layer_class, registered_types
from reproduce.net.layers.pooling import pooled_size

FLT_MIN = np.finfo(np.float32).tiny
RNG = np.random.default_rng(0)


def make(type_: str, bottom_shapes, tops: int = 1, phase: str = "TEST", **fields):
    """Build layer ``type_`` from a hand-made LayerParameter."""
    lp = Message("LayerParameter", name="L", type=type_, phase=phase,
                 top=[f"top{i}" for i in range(tops)])
    for key, value in fields.items():
        setattr(lp, key, value)
    return layer_class(type_, "L")(lp, [tuple(s) for s in bottom_shapes])


def t(array) -> torch.Tensor:
    return torch.tensor(np.asarray(array, dtype=np.float32))


# --------------------------------------------------------------------------- registry

def test_registry_knows_the_fcn_layer_types():
    for name in ("Input", "Python", "Convolution", "Deconvolution", "Pooling", "ReLU", "Dropout",
                 "LRN", "InnerProduct", "Crop", "Eltwise", "Scale", "Concat", "Split", "Slice",
                 "Flatten", "Reshape", "Softmax", "SoftmaxWithLoss", "Accuracy", "Silence",
                 "Sigmoid", "TanH", "Power", "BatchNorm"):
        assert name in registered_types()


def test_unknown_layer_type_error_names_the_layer():
    with pytest.raises(UnsupportedLayerError, match=r"'my_layer'.*'Frobnicate'"):
        layer_class("Frobnicate", "my_layer")


# --------------------------------------------------------------------------- pooling

def caffe_pool(x: np.ndarray, method: str, k: int, s: int, p: int, out_h: int, out_w: int):
    """Caffe's Forward_cpu loops for MAX and AVE pooling, verbatim in numpy."""
    n, c, height, width = x.shape
    top = np.zeros((n, c, out_h, out_w), np.float32)
    for ph in range(out_h):
        for pw in range(out_w):
            hstart, wstart = ph * s - p, pw * s - p
            if method == "MAX":
                hend, wend = min(hstart + k, height), min(wstart + k, width)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                top[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].max(axis=(2, 3))
            else:
                hend, wend = min(hstart + k, height + p), min(wstart + k, width + p)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, height), min(wend, width)
                top[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3)) / pool_size
    return top


@pytest.mark.parametrize("size, kernel, stride, pad, expected", [
    (5, 2, 2, 0, 3),     # ceil((5-2)/2)+1 = 3: the last window hangs over the edge
    (4, 2, 2, 0, 2),     # ceil(1)+1: exact fit, no overhang
    (6, 3, 2, 0, 3),     # ceil(1.5)+1
    (2, 3, 3, 1, 1),     # ceil(1/3)+1 = 2, but window 2 would start at 3 >= 2+1: dropped
    (3, 2, 2, 1, 2),     # ceil(3/2)+1 = 3, 2·2 = 4 >= 3+1: dropped
    (4, 3, 2, 1, 3),     # ceil(3/2)+1 = 3, 4 < 5: kept
    (500, 2, 2, 0, 250),
])
def test_pooled_size_follows_caffes_ceil_rule(size, kernel, stride, pad, expected):
    assert pooled_size(size, kernel, stride, pad) == expected


def test_pooled_size_floor_mode():
    assert pooled_size(5, 2, 2, 0, "FLOOR") == 2
    assert pooled_size(3, 2, 2, 1, "FLOOR") == 2


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size, kernel, stride, pad", [
    ((7, 9), 2, 2, 0), ((7, 9), 3, 2, 1), ((5, 6), 3, 3, 2), ((4, 4), 3, 2, 1), ((3, 3), 2, 2, 1),
    ((6, 5), 3, 1, 1),
])
def test_pooling_matches_caffes_loops(method, size, kernel, stride, pad):
    x = RNG.standard_normal((2, 3, *size)).astype(np.float32)
    pool = Message("PoolingParameter", pool=method, kernel_size=kernel, stride=stride, pad=pad)
    layer = make("Pooling", [x.shape], pooling_param=pool)
    (top,) = layer(t(x))
    out_h, out_w = (pooled_size(n, kernel, stride, pad) for n in size)
    assert tuple(top.shape) == (2, 3, out_h, out_w) == layer.top_shapes([x.shape])[0]
    np.testing.assert_allclose(top.numpy(), caffe_pool(x, method, kernel, stride, pad, out_h, out_w),
                               rtol=1e-6, atol=1e-6)


def test_ave_pooling_divides_by_the_window_clipped_to_size_plus_pad():
    # 3x3 ones, kernel 2, stride 2, pad 1: 2x2 outputs, each window counts 4 cells, holds 1-2 ones
    pool = Message("PoolingParameter", pool="AVE", kernel_size=2, stride=2, pad=1)
    (top,) = make("Pooling", [(1, 1, 3, 3)], pooling_param=pool)(torch.ones(1, 1, 3, 3))
    np.testing.assert_array_equal(top[0, 0].numpy(), [[0.25, 0.5], [0.5, 1.0]])


def test_max_pooling_gradient_goes_to_the_first_maximum():
    pool = Message("PoolingParameter", pool="MAX", kernel_size=2, stride=2)
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    (top,) = make("Pooling", [(1, 1, 2, 2)], pooling_param=pool)(x)
    top.sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0].numpy(), [[1, 0], [0, 0]])


def test_max_pooling_mask_top_is_caffes_plane_index():
    x = t(RNG.standard_normal((1, 2, 5, 5)))
    pool = Message("PoolingParameter", pool="MAX", kernel_size=3, stride=2, pad=1)
    top, mask = make("Pooling", [x.shape], tops=2, pooling_param=pool)(x)
    flat = x.reshape(1, 2, 25)
    np.testing.assert_array_equal(flat.gather(2, mask.reshape(1, 2, -1).long()).numpy(),
                                  top.reshape(1, 2, -1).numpy())


def test_global_pooling_uses_the_whole_plane():
    x = t(RNG.standard_normal((2, 3, 4, 5)))
    ave = make("Pooling", [x.shape], pooling_param=Message("PoolingParameter", pool="AVE",
                                                             global_pooling=True))
    (top,) = ave(x)
    np.testing.assert_allclose(top.numpy()[..., 0, 0], x.numpy().mean(axis=(2, 3)), rtol=1e-6)
    (top,) = ave(t(RNG.standard_normal((2, 3, 7, 2))))
    assert tuple(top.shape) == (2, 3, 1, 1)


@pytest.mark.parametrize("pool", [
    Message("PoolingParameter", kernel_size=2, kernel_h=2, kernel_w=2),
    Message("PoolingParameter", kernel_size=2, pad=2),
    Message("PoolingParameter", global_pooling=True, kernel_size=2),
    Message("PoolingParameter", pool="STOCHASTIC", kernel_size=2),
])
def test_pooling_refuses_what_caffe_refuses(pool):
    with pytest.raises(LayerError, match="'L'"):
        make("Pooling", [(1, 1, 8, 8)], pooling_param=pool)


# --------------------------------------------------------------------------- (de)convolution

def test_convolution_reads_h_w_forms_and_computes_output_size():
    conv = Message("ConvolutionParameter", num_output=4, kernel_h=3, kernel_w=2, pad_h=1,
                   pad_w=0, stride_h=2, stride_w=1)
    layer = make("Convolution", [(1, 2, 9, 7)], convolution_param=conv)
    assert tuple(layer.weight.shape) == (4, 2, 3, 2) and tuple(layer.bias.shape) == (4,)
    assert layer.top_shapes([(1, 2, 9, 7)]) == [(1, 4, 5, 6)]
    (top,) = layer(torch.zeros(1, 2, 9, 7))
    assert tuple(top.shape) == (1, 4, 5, 6)


def test_convolution_values_group_and_dilation_by_hand():
    # two groups of one channel; a dilated 2x2 kernel of ones sums the 4 corners of a 3x3
    conv = Message("ConvolutionParameter", num_output=2, kernel_size=[2], dilation=[2], group=2,
                   bias_term=False)
    layer = make("Convolution", [(1, 2, 3, 3)], convolution_param=conv)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.weight[1] *= 10
    x = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    (top,) = layer(t(x))
    corners = x[0][:, [0, 0, 2, 2], [0, 2, 0, 2]].sum(axis=1)
    np.testing.assert_allclose(top.detach().numpy().reshape(2), corners * [1, 10])


def test_convolution_refuses_mixed_kernel_forms():
    conv = Message("ConvolutionParameter", num_output=1, kernel_size=[3], kernel_h=3, kernel_w=3)
    with pytest.raises(LayerError, match="not both"):
        make("Convolution", [(1, 1, 5, 5)], convolution_param=conv)


def test_deconvolution_shape_and_scatter_by_hand():
    conv = Message("ConvolutionParameter", num_output=3, kernel_size=[4], stride=[2], pad=[1],
                   bias_term=False)
    layer = make("Deconvolution", [(1, 2, 3, 5)], convolution_param=conv)
    assert tuple(layer.weight.shape) == (2, 3, 4, 4)  # (channels, num_output/group, k, k)
    assert layer.top_shapes([(1, 2, 3, 5)]) == [(1, 3, 6, 10)]  # (in-1)·2 - 2 + 4
    weight = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x = RNG.standard_normal((1, 2, 3, 5)).astype(np.float32)
    with torch.no_grad():
        layer.weight.copy_(t(weight))
    (top,) = layer(t(x))
    full = np.zeros((3, 2 * 2 + 4, 4 * 2 + 4), np.float32)  # scatter each input, then crop pad
    for c in range(2):
        for i in range(3):
            for j in range(5):
                full[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += x[0, c, i, j] * weight[c]
    np.testing.assert_allclose(top[0].detach().numpy(), full[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- crop, eltwise

def test_crop_single_offset_applies_to_all_axes_from_axis():
    x = t(np.arange(2 * 3 * 6 * 7).reshape(2, 3, 6, 7))
    crop = make("Crop", [x.shape, (1, 1, 3, 4)], crop_param=Message("CropParameter", axis=2,
                                                                     offset=[2]))
    (top,) = crop(x, torch.zeros(1, 1, 3, 4))
    np.testing.assert_array_equal(top.numpy(), x.numpy()[:, :, 2:5, 2:6])


def test_crop_per_axis_offsets_and_bounds():
    x = t(np.arange(2 * 3 * 6 * 7).reshape(2, 3, 6, 7))
    crop = make("Crop", [x.shape, (1, 2, 3, 4)], crop_param=Message("CropParameter", axis=1,
                                                                     offset=[1, 0, 3]))
    (top,) = crop(x, torch.zeros(1, 2, 3, 4))
    np.testing.assert_array_equal(top.numpy(), x.numpy()[:, 1:3, 0:3, 3:7])
    with pytest.raises(LayerError, match="out of bounds"):
        make("Crop", [x.shape, (1, 1, 3, 4)], crop_param=Message("CropParameter", offset=[4]))


def test_eltwise_sum_with_coefficients():
    a, b = t(RNG.standard_normal((2, 3))), t(RNG.standard_normal((2, 3)))
    layer = make("Eltwise", [a.shape, b.shape],
                 eltwise_param=Message("EltwiseParameter", operation="SUM", coeff=[1.0, -0.5]))
    (top,) = layer(a, b)
    np.testing.assert_allclose(top.numpy(), a.numpy() - 0.5 * b.numpy(), rtol=1e-6)
    (top,) = make("Eltwise", [a.shape] * 2,
                  eltwise_param=Message("EltwiseParameter", operation="PROD"))(a, b)
    np.testing.assert_allclose(top.numpy(), a.numpy() * b.numpy(), rtol=1e-6)


def test_eltwise_max_routes_ties_like_caffe():
    # Caffe: bottoms 0/1 tie → bottom 1; later bottoms must be strictly greater
    xs = [torch.ones(3, requires_grad=True) for _ in range(3)]
    layer = make("Eltwise", [(3,)] * 3, eltwise_param=Message("EltwiseParameter", operation="MAX"))
    (top,) = layer(*xs)
    top.sum().backward()
    assert [x.grad.tolist() for x in xs] == [[0, 0, 0], [1, 1, 1], [0, 0, 0]]


def test_eltwise_refuses_wrong_coefficient_count():
    with pytest.raises(LayerError, match="one coefficient per bottom"):
        make("Eltwise", [(2,)] * 2, eltwise_param=Message("EltwiseParameter", coeff=[1.0]))


# --------------------------------------------------------------------------- LRN

def lrn_reference(x, size, alpha, beta, k, region):
    n, c, h, w = x.shape
    half = (size - 1) // 2
    x64 = x.astype(np.float64)
    if region == "ACROSS_CHANNELS":
        padded = np.zeros((n, c + size - 1, h, w))
        padded[:, half:half + c] = x64 ** 2
        window = np.stack([padded[:, i:i + size].sum(axis=1) for i in range(c)], axis=1)
        scale = k + alpha / size * window
    else:
        padded = np.zeros((n, c, h + size - 1, w + size - 1))
        padded[:, :, half:half + h, half:half + w] = x64 ** 2
        window = np.zeros_like(x64)
        for i in range(h):
            for j in range(w):
                window[:, :, i, j] = padded[:, :, i:i + size, j:j + size].sum(axis=(2, 3))
        scale = 1 + alpha * window / size ** 2
    return x64 * scale ** -beta


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_lrn_matches_the_formula(region):
    x = (RNG.standard_normal((2, 7, 5, 6)) * 30).astype(np.float32)
    param = Message("LRNParameter", local_size=5, alpha=1e-2, beta=0.75, k=2.0, norm_region=region)
    (top,) = make("LRN", [x.shape], lrn_param=param)(t(x))
    np.testing.assert_allclose(top.numpy(), lrn_reference(x, 5, 1e-2, 0.75, 2.0, region),
                               rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_lrn_across_fewer_channels_than_its_window(channels):
    # a width-reduced GoogLeNet's pool1/norm1: 4 channels under a 5-channel window, as Caffe allows
    x = (RNG.standard_normal((2, channels, 5, 6)) * 30).astype(np.float32)
    param = Message("LRNParameter", local_size=5, alpha=1e-2, beta=0.75, k=2.0)
    (top,) = make("LRN", [x.shape], lrn_param=param)(t(x))
    np.testing.assert_allclose(top.numpy(), lrn_reference(x, 5, 1e-2, 0.75, 2.0, "ACROSS_CHANNELS"),
                               rtol=2e-6, atol=1e-6)


def test_lrn_refuses_even_size():
    with pytest.raises(LayerError, match="odd"):
        make("LRN", [(1, 4, 3, 3)], lrn_param=Message("LRNParameter", local_size=4))


# --------------------------------------------------------------------------- softmax loss

def loss_layer(shape, label_shape, tops=1, **loss_fields):
    return make("SoftmaxWithLoss", [shape, label_shape], tops=tops,
                loss_param=Message("LossParameter", **loss_fields))


def softmax_np(scores):
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("fields, expected_normalizer", [
    ({}, "valid"),
    ({"normalization": "VALID"}, "valid"),
    ({"normalization": "FULL"}, "full"),
    ({"normalization": "BATCH_SIZE"}, "batch"),
    ({"normalization": "NONE"}, "none"),
    ({"normalize": True}, "valid"),
    ({"normalize": False}, "batch"),
    ({"normalize": False, "normalization": "FULL"}, "full"),  # normalization wins when set
])
def test_softmax_loss_normalization_modes(fields, expected_normalizer):
    scores = RNG.standard_normal((2, 4, 3, 5)).astype(np.float32)
    labels = RNG.integers(0, 4, (2, 1, 3, 5)).astype(np.float32)
    labels[0, 0, 0, :3] = 255
    layer = loss_layer(scores.shape, labels.shape, ignore_label=255, **fields)
    (loss,) = layer(t(scores), t(labels))
    prob = softmax_np(scores.astype(np.float64))
    lab = labels[:, 0].astype(int)
    valid = lab != 255
    picked = np.take_along_axis(prob, np.where(valid, lab, 0)[:, None], axis=1)[:, 0]
    total = -np.log(picked[valid]).sum()
    divisor = {"valid": valid.sum(), "full": lab.size, "batch": 2, "none": 1}[expected_normalizer]
    assert loss.shape == ()
    assert float(loss) == pytest.approx(total / divisor, rel=1e-5)


def test_softmax_loss_normalizer_is_at_least_one():
    labels = np.full((1, 1, 2, 2), 255, np.float32)
    (loss,) = loss_layer((1, 3, 2, 2), labels.shape, ignore_label=255)(torch.zeros(1, 3, 2, 2),
                                                                       t(labels))
    assert float(loss) == 0.0


@pytest.mark.parametrize("value, shown", [(4, "4"), (-1, "-1"), (254, "254"), (math.nan, "nan")])
def test_softmax_loss_refuses_labels_outside_the_classes_naming_the_layer(value, shown):
    labels = np.zeros((1, 1, 2, 2), np.float32)
    labels[0, 0, 1, 0] = value
    layer = loss_layer((1, 4, 2, 2), labels.shape, ignore_label=255)
    with pytest.raises(LayerError, match=rf"layer '\w+' \(SoftmaxWithLoss\): label value {shown} "
                                         rf"out of range \[0, 4\) \(and not the ignore_label 255\)"):
        layer(torch.zeros(1, 4, 2, 2), t(labels))
    labels[0, 0, 1, 0] = 255
    layer(torch.zeros(1, 4, 2, 2), t(labels))


def test_softmax_loss_caps_underflowed_probabilities_at_flt_min():
    scores = np.zeros((1, 3, 1, 2), np.float32)
    scores[0, 0] = 200.0  # class 0 dominates: softmax of classes 1, 2 underflows to exactly 0
    labels = np.array([1, 2], np.float32).reshape(1, 1, 1, 2)
    (loss,) = loss_layer(scores.shape, labels.shape, normalization="NONE")(t(scores), t(labels))
    assert float(loss) == pytest.approx(2 * -math.log(FLT_MIN), rel=1e-6)  # 2 × 87.3365
    assert float(loss) < float(-torch.log_softmax(t(scores), 1)[0, 1:, 0].sum())


def test_softmax_loss_gradient_is_caffes():
    scores = RNG.standard_normal((2, 4, 3)).astype(np.float32)
    labels = np.array([[0, 3, 255], [1, 255, 2]], np.float32)
    x = t(scores).requires_grad_(True)
    (loss,) = loss_layer(scores.shape, labels.shape, ignore_label=255)(x, t(labels))
    (loss * 3.0).backward()  # a loss_weight of 3 arrives as the top diff
    prob = softmax_np(scores.astype(np.float64))
    expected = prob.copy()
    for i in range(2):
        for j in range(3):
            if labels[i, j] == 255:
                expected[i, :, j] = 0
            else:
                expected[i, int(labels[i, j]), j] -= 1
    np.testing.assert_allclose(x.grad.numpy(), expected * 3.0 / 4, rtol=1e-5, atol=1e-7)


def test_softmax_loss_second_top_is_prob_without_gradient():
    scores = t(RNG.standard_normal((1, 3, 2)))
    loss, prob = loss_layer((1, 3, 2), (1, 2), tops=2)(scores, torch.zeros(1, 2))
    np.testing.assert_allclose(prob.numpy(), softmax_np(scores.numpy()), rtol=1e-6)
    assert not prob.requires_grad


def test_softmax_loss_refuses_labels_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        loss_layer((1, 3, 2), (1, 2))(torch.zeros(1, 3, 2), t([[0, 3]]))


# --------------------------------------------------------------------------- dropout

def test_dropout_train_scales_kept_units_and_test_is_identity():
    x = torch.ones(200, 100)
    train = make("Dropout", [x.shape], phase="TRAIN",
                 dropout_param=Message("DropoutParameter", dropout_ratio=0.25))
    torch.manual_seed(0)
    (top,) = train(x)
    kept = top != 0
    assert torch.allclose(top[kept], torch.full_like(top[kept], 1 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    test = make("Dropout", [x.shape], phase="TEST",
                dropout_param=Message("DropoutParameter", dropout_ratio=0.25))
    assert test(x)[0] is x


# --------------------------------------------------------------------------- fillers

def test_constant_and_uniform_fillers():
    assert torch.equal(fill(Message("FillerParameter", value=0.5), (2, 3)), torch.full((2, 3), 0.5))
    data = fill(Message("FillerParameter", type="uniform", min=-2.0, max=3.0), (20000,))
    assert data.min() >= -2 and data.max() < 3
    assert abs(data.mean().item() - 0.5) < 0.05


def test_gaussian_filler_statistics_and_sparsity():
    torch.manual_seed(1)
    data = fill(Message("FillerParameter", type="gaussian", mean=1.0, std=2.0), (100, 400))
    assert abs(data.mean().item() - 1.0) < 0.03 and abs(data.std().item() - 2.0) < 0.03
    sparse = fill(Message("FillerParameter", type="gaussian", sparse=25), (100, 400))
    assert abs((sparse != 0).float().mean().item() - 0.25) < 0.01  # sparse / num_outputs


@pytest.mark.parametrize("norm, n", [("FAN_IN", 60), ("FAN_OUT", 400), ("AVERAGE", 230)])
def test_xavier_and_msra_use_caffes_fans(norm, n):
    shape = (400, 60, 1, 1)  # Caffe: fan_in = count/shape[0] = 60, fan_out = count/shape[1] = 400
    torch.manual_seed(2)
    xavier = fill(Message("FillerParameter", type="xavier", variance_norm=norm), shape)
    bound = math.sqrt(3 / n)
    assert 0.99 * bound < xavier.abs().max().item() <= bound
    msra = fill(Message("FillerParameter", type="msra", variance_norm=norm), shape)
    assert msra.mean().item() == pytest.approx(0.0, abs=0.03 * math.sqrt(2 / n))
    assert msra.std().item() == pytest.approx(math.sqrt(2 / n), rel=0.03)


def test_bilinear_filler_kernel():
    # k = 4: f = 2, c = 0.75 → 1 - |x/2 - 0.75| = [0.25, 0.75, 0.75, 0.25]
    weights_1d = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    np.testing.assert_array_equal(bilinear_kernel(4), np.outer(weights_1d, weights_1d))
    # odd k = 3: f = 2, c = 0.5 → [0.5, 1, 0.5]
    np.testing.assert_array_equal(bilinear_kernel(3)[1], [0.5, 1.0, 0.5])
    data = fill(Message("FillerParameter", type="bilinear"), (3, 2, 4, 4))
    assert all(torch.equal(data[i, j], torch.from_numpy(bilinear_kernel(4)))
               for i in range(3) for j in range(2))


def test_fillers_refuse_what_caffe_refuses():
    with pytest.raises(FillerError, match="unknown filler"):
        fill(Message("FillerParameter", type="orthogonal"), (2, 2), owner="fc")
    with pytest.raises(FillerError, match="sparsity"):
        fill(Message("FillerParameter", type="xavier", sparse=3), (2, 2))
    with pytest.raises(FillerError, match="square"):
        fill(Message("FillerParameter", type="bilinear"), (1, 1, 3, 4))


# --------------------------------------------------------------------------- inner product, scale

@pytest.mark.parametrize("transpose", [False, True])
def test_inner_product_axis_and_transpose(transpose):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    param = Message("InnerProductParameter", num_output=6, axis=2, transpose=transpose,
                    weight_filler=Message("FillerParameter", type="gaussian"),
                    bias_filler=Message("FillerParameter", type="gaussian"))
    layer = make("InnerProduct", [x.shape], inner_product_param=param)
    assert tuple(layer.weight.shape) == ((20, 6) if transpose else (6, 20))
    (top,) = layer(t(x))
    weight = layer.weight.detach().numpy()
    expected = x.reshape(2, 3, 20) @ (weight if transpose else weight.T) + layer.bias.detach().numpy()
    assert tuple(top.shape) == (2, 3, 6) == layer.top_shapes([x.shape])[0]
    np.testing.assert_allclose(top.detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_scale_learned_default_one_with_bias_and_two_bottom_form():
    x = t(RNG.standard_normal((2, 3, 4)))
    learned = make("Scale", [x.shape], scale_param=Message(
        "ScaleParameter", bias_term=True, bias_filler=Message("FillerParameter", value=0.5)))
    assert torch.equal(learned.weight, torch.ones(3)) and torch.equal(learned.bias, torch.full((3,), 0.5))
    with torch.no_grad():
        learned.weight.copy_(t([1.0, 2.0, 3.0]))
    (top,) = learned(x)
    np.testing.assert_allclose(top.detach().numpy(),
                               x.numpy() * np.array([1, 2, 3])[:, None] + 0.5, rtol=1e-6)
    factor = t(RNG.standard_normal((3, 4)))
    (top,) = make("Scale", [x.shape, factor.shape])(x, factor)
    np.testing.assert_allclose(top.numpy(), x.numpy() * factor.numpy(), rtol=1e-6)


def test_scale_constant_filler_and_shape_check():
    layer = make("Scale", [(1, 5, 2, 2)], scale_param=Message(
        "ScaleParameter", filler=Message("FillerParameter", value=0.01)))
    assert torch.allclose(layer.weight, torch.full((5,), 0.01))
    with pytest.raises(LayerError, match="does not match"):
        make("Scale", [(1, 5, 2, 2), (4,)])


# --------------------------------------------------------------------------- shapes

def test_concat_slice_flatten_reshape_shapes():
    concat = make("Concat", [(2, 3, 4), (2, 5, 4)])
    assert concat.top_shapes([(2, 3, 4), (2, 5, 4)]) == [(2, 8, 4)]
    slicer = make("Slice", [(2, 8, 4)], tops=3, slice_param=Message("SliceParameter", slice_point=[1, 5]))
    parts = slicer(torch.arange(64.0).reshape(2, 8, 4))
    assert [tuple(p.shape) for p in parts] == [(2, 1, 4), (2, 4, 4), (2, 3, 4)]
    assert torch.equal(make("Concat", [p.shape for p in parts])(*parts)[0],
                       torch.arange(64.0).reshape(2, 8, 4))
    assert make("Flatten", [(2, 3, 4, 5)]).top_shapes([(2, 3, 4, 5)]) == [(2, 60)]
    flat = make("Flatten", [(2, 3, 4, 5)], flatten_param=Message("FlattenParameter", axis=1, end_axis=2))
    assert flat.top_shapes([(2, 3, 4, 5)]) == [(2, 12, 5)]
    reshape = make("Reshape", [(2, 3, 4, 5)], reshape_param=Message(
        "ReshapeParameter", shape=Message("BlobShape", dim=[0, -1, 5])))
    assert reshape.top_shapes([(2, 3, 4, 5)]) == [(2, 12, 5)]
    partial = make("Reshape", [(2, 3, 4, 5)], reshape_param=Message(
        "ReshapeParameter", axis=1, num_axes=2, shape=Message("BlobShape", dim=[2, -1])))
    assert partial.top_shapes([(2, 3, 4, 5)]) == [(2, 2, 6, 5)]
    with pytest.raises(LayerError, match="evenly"):
        make("Slice", [(2, 7)], tops=2)


# --------------------------------------------------------------------------- accuracy, BN, misc

def test_accuracy_counts_ties_against_the_true_class_and_skips_ignored():
    scores = t([[[1.0, 2.0, 0.0, 5.0]], [[1.0, 1.0, 3.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]])  # (3, 1, 4)
    scores = scores.permute(1, 0, 2)  # (1, 3 classes, 4 positions)
    labels = t([[1, 0, 2, 255]])
    layer = make("Accuracy", [scores.shape, labels.shape], tops=2,
                 accuracy_param=Message("AccuracyParameter", ignore_label=255))
    accuracy, per_class = layer(scores, labels)
    # position 0: true class 1 scores 1.0 vs 1.0 tie → wrong; 1: class 0 scores 2 > 1 → right;
    # 2: class 2 scores 1 vs 0, 3 → wrong
    assert float(accuracy) == pytest.approx(1 / 3)
    np.testing.assert_array_equal(per_class.numpy(), [1.0, 0.0, 0.0])


def test_batch_norm_train_statistics_and_running_update():
    x = RNG.standard_normal((4, 3, 5)).astype(np.float32) * 2 + 1
    layer = make("BatchNorm", [x.shape], phase="TRAIN")
    assert layer.param_specs() == [(0.0, 1.0)] * 3
    (top,) = layer(t(x))
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    np.testing.assert_allclose(top.numpy(), (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.detach().numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(layer.bias.detach().numpy(), var * 20 / 19, rtol=1e-5)
    assert layer.blob2.tolist() == [1.0]
    test = make("BatchNorm", [x.shape], phase="TEST")
    with torch.no_grad():
        test.weight.copy_(layer.weight * 2)
        test.bias.copy_(layer.bias * 2)
        test.blob2.fill_(2.0)
    (top,) = test(t(x))
    np.testing.assert_allclose(top.numpy(), (x - mean[:, None]) / np.sqrt(var[:, None] * 20 / 19 + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_relu_power_sigmoid_tanh():
    x = t([-2.0, 0.0, 3.0])
    assert make("ReLU", [(3,)], relu_param=Message("ReLUParameter", negative_slope=0.1))(x)[0].tolist() \
        == pytest.approx([-0.2, 0.0, 3.0])
    power = make("Power", [(3,)], power_param=Message("PowerParameter", power=2.0, scale=0.5, shift=1.0))
    assert power(x)[0].tolist() == pytest.approx([0.0, 1.0, 6.25])
    assert make("Sigmoid", [(3,)])(x)[0].tolist() == pytest.approx(list(1 / (1 + np.exp(-x.numpy()))))
    assert make("TanH", [(3,)])(x)[0].tolist() == pytest.approx(list(np.tanh(x.numpy())), rel=1e-6)
