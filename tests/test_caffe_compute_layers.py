"""The compute and loss layers beyond the FCN family (issue 23) against references written
from Caffe's C++ (``src/caffe/layers/*.cpp`` at 9b89154) in plain numpy, independent of the
torch code: forward values, and backward as Caffe's own formulas give it (which for MVN,
BNLL, ContrastiveLoss and InfogainLoss differ from the exact derivative). The golden test
(``test_golden_layers.py``) checks the same layers against the real Caffe's blobs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.caffe.schema import Message
from reproduce.caffe.text import parse
from reproduce.net import Net
from reproduce.net.layers import LayerError, layer_class

RNG = np.random.default_rng(23)


def make(type_: str, bottom_shapes, tops: int = 1, **fields):
    lp = Message("LayerParameter", name="L", type=type_, phase="TRAIN",
                 top=[f"top{i}" for i in range(tops)], bottom=[f"b{i}" for i in range(len(bottom_shapes))])
    for key, value in fields.items():
        setattr(lp, key, value)
    return layer_class(type_, "L")(lp, [tuple(s) for s in bottom_shapes])


def msg(type_name: str, **fields) -> Message:
    return Message(type_name, **fields)


def run(layer, *arrays, grad=None, requires=None):
    """Forward ``layer`` on float32 ``arrays``; backward ``grad`` (default: random) into the
    top; returns (tops, bottom diffs, parameter diffs) as numpy."""
    requires = requires if requires is not None else [True] * len(arrays)
    bottoms = [torch.tensor(np.asarray(a, np.float32), requires_grad=r)
               for a, r in zip(arrays, requires)]
    tops = layer(*bottoms)
    top = tops[0]
    g = torch.tensor(np.asarray(grad, np.float32)) if grad is not None else \
        torch.tensor(RNG.normal(size=top.shape).astype(np.float32))
    if top.requires_grad:
        top.backward(g)
    diffs = [None if b.grad is None else b.grad.numpy() for b in bottoms]
    params = [None if p.grad is None else p.grad.numpy() for p in layer.blobs()]
    return [t.detach().numpy() for t in tops], diffs, params, g.numpy()


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max(initial=0))))


# ----------------------------------------------------------------------------- neurons

def test_absval_bnll_exp_log_swish_elu_forward_and_caffe_backward():
    x = RNG.normal(0, 2, (2, 3, 4)).astype(np.float32)
    x[0, 0, 0] = 0.0
    (y,), (dx,), _, g = run(make("AbsVal", [x.shape]), x)
    close(y, np.abs(x)); close(dx, g * np.sign(x))
    xb = x.copy(); xb[0, 0, 1] = 80.0   # past BNLL's threshold of 50
    (y,), (dx,), _, g = run(make("BNLL", [x.shape]), xb)
    close(y, np.where(xb > 0, xb + np.log1p(np.exp(-xb)), np.log1p(np.exp(xb))))
    e = np.exp(np.minimum(xb, 50.0)); close(dx, g * e / (e + 1))
    (y,), (dx,), _, g = run(make("Exp", [x.shape], exp_param=msg("ExpParameter", base=2.0,
                                                                  scale=0.5, shift=-1.0)), x)
    close(y, 2.0 ** (-1.0 + 0.5 * x)); close(dx, g * y * 0.5 * np.log(2.0))
    (y,), (dx,), _, g = run(make("Exp", [x.shape]), x)   # base -1: e
    close(y, np.exp(x)); close(dx, g * np.exp(x))
    xp = np.abs(x) + 0.5
    (y,), (dx,), _, g = run(make("Log", [x.shape], log_param=msg("LogParameter", base=10.0,
                                                                  scale=2.0, shift=0.25)), xp)
    close(y, np.log10(0.25 + 2 * xp)); close(dx, g * 2.0 / np.log(10.0) / (0.25 + 2 * xp))
    (y,), (dx,), _, g = run(make("Swish", [x.shape], swish_param=msg("SwishParameter", beta=1.5)), x)
    s = 1 / (1 + np.exp(-1.5 * x))
    close(y, x * s); close(dx, g * (1.5 * y + s * (1 - 1.5 * y)), 1e-4)
    (y,), (dx,), _, g = run(make("ELU", [x.shape], elu_param=msg("ELUParameter", alpha=0.7)), x)
    close(y, np.where(x > 0, x, 0.7 * (np.exp(x) - 1)))
    close(dx, np.where(x > 0, g, g * (y + 0.7)))


def test_absval_refuses_in_place_like_caffe():
    lp = Message("LayerParameter", name="L", type="AbsVal", bottom=["x"], top=["x"])
    with pytest.raises(LayerError, match="in-place"):
        layer_class("AbsVal")(lp, [(2, 3)])


def test_clip_threshold_and_their_gradients():
    x = np.array([[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]], np.float32)
    (y,), (dx,), _, g = run(make("Clip", [x.shape], clip_param=msg("ClipParameter", min=-1.0,
                                                                    max=1.0)), x)
    close(y, np.clip(x, -1, 1)); close(dx, g * ((x >= -1) & (x <= 1)))   # both ends pass
    (y,), _, _, _ = run(make("Clip", [x.shape], clip_param=msg("ClipParameter", min=1.0,
                                                                max=-1.0)), x)
    close(y, np.full_like(x, 1.0))   # Caffe's max(min, min(x, max)) when min > max
    with pytest.raises(LayerError, match="min and max"):
        make("Clip", [x.shape], clip_param=msg("ClipParameter", min=1.0))
    (y,), (dx,), _, _ = run(make("Threshold", [x.shape],
                                 threshold_param=msg("ThresholdParameter", threshold=0.5)), x)
    close(y, (x > 0.5).astype(np.float32))
    assert dx is None   # Caffe: no backward


@pytest.mark.parametrize("shared", [False, True])
def test_prelu_forward_and_slope_gradient(shared):
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0
    layer = make("PReLU", [x.shape], prelu_param=msg(
        "PReLUParameter", channel_shared=shared,
        filler=msg("FillerParameter", type="uniform", min=-1.0, max=1.0)))
    a = layer.weight.detach().numpy()
    assert a.shape == (() if shared else (3,))
    av = a if shared else a.reshape(1, 3, 1, 1)
    (y,), (dx,), (da,), g = run(layer, x)
    close(y, np.where(x > 0, x, av * x))
    close(dx, g * np.where(x > 0, 1.0, av))
    contrib = g * x * (x <= 0)
    close(da, contrib.sum() if shared else contrib.sum(axis=(0, 2, 3)), 1e-4)
    assert float(make("PReLU", [x.shape]).weight.detach()[0]) == pytest.approx(0.25)  # default filler


@pytest.mark.parametrize("across,variance", [(False, True), (True, True), (False, False)])
def test_mvn_forward_and_caffes_backward(across, variance):
    x = RNG.normal(1, 3, (2, 3, 4, 5)).astype(np.float32)
    layer = make("MVN", [x.shape], mvn_param=msg("MVNParameter", across_channels=across,
                                                 normalize_variance=variance, eps=1e-3))
    (y,), (dx,), _, g = run(layer, x)
    groups = 2 if across else 6
    xf, gf = x.reshape(groups, -1).astype(np.float64), g.reshape(groups, -1)
    centred = xf - xf.mean(1, keepdims=True)
    if variance:
        std = np.sqrt((centred ** 2).mean(1, keepdims=True)) + 1e-3
        yf = centred / std
        dim = yf.shape[1]
        ref = (gf - ((yf * gf).sum(1, keepdims=True) * yf + gf.sum(1, keepdims=True)) / dim) / std
    else:
        yf, ref = centred, gf - gf.mean(1, keepdims=True)
    close(y, yf.reshape(x.shape)); close(dx, ref.reshape(x.shape), 1e-4)


# ------------------------------------------------------------------- shape and selection

def test_argmax_without_axis_ranks_count1_and_breaks_ties_to_the_larger_index():
    x = np.array([[[[1.0, 5.0, 5.0, 2.0]]], [[[0.0, -1.0, 3.0, 3.0]]]], np.float32)
    layer = make("ArgMax", [x.shape], argmax_param=msg("ArgMaxParameter", top_k=2,
                                                       out_max_val=True))
    (y,), _, _, _ = run(layer, x, requires=[False])
    assert y.shape == (2, 2, 2, 1)
    close(y[:, 0, :, 0], np.array([[2, 1], [3, 2]]))
    close(y[:, 1, :, 0], np.array([[5, 5], [3, 3]]))
    (y,), _, _, _ = run(make("ArgMax", [(2, 7)]), RNG.normal(size=(2, 7)), requires=[False])
    assert y.shape == (2, 1, 1)


def test_argmax_along_an_axis_gives_indices_or_values():
    x = RNG.normal(size=(2, 5, 3, 4)).astype(np.float32)
    (y,), _, _, _ = run(make("ArgMax", [x.shape], argmax_param=msg("ArgMaxParameter", axis=1)),
                        x, requires=[False])
    assert y.shape == (2, 1, 3, 4)
    close(y[:, 0], np.argmax(x, axis=1))
    (y,), _, _, _ = run(make("ArgMax", [x.shape], argmax_param=msg(
        "ArgMaxParameter", axis=-1, top_k=2, out_max_val=True)), x, requires=[False])
    close(y, -np.sort(-x, axis=-1)[..., :2])
    with pytest.raises(LayerError, match="top_k"):
        make("ArgMax", [x.shape], argmax_param=msg("ArgMaxParameter", axis=1, top_k=6))


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduction_operations_axis_and_coeff(op, axis):
    x = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    x[0, 0, 0] = 0.0
    layer = make("Reduction", [x.shape], reduction_param=msg("ReductionParameter", operation=op,
                                                             axis=axis, coeff=-1.5))
    (y,), (dx,), _, g = run(layer, x)
    a = axis % 3
    flat = x.reshape(x.shape[:a] + (-1,)).astype(np.float64)
    value = {"SUM": flat, "ASUM": np.abs(flat), "SUMSQ": flat ** 2, "MEAN": flat}[op].sum(-1)
    dim = flat.shape[-1]
    close(y, -1.5 * (value / dim if op == "MEAN" else value))
    gb = g.reshape(g.shape + (1,) * (3 - a))
    local = {"SUM": np.ones_like(x), "ASUM": np.sign(x), "SUMSQ": 2 * x,
             "MEAN": np.full_like(x, 1.0 / dim)}[op]
    close(dx, -1.5 * local * gb)


def test_tile_repeats_along_the_axis_and_sums_back():
    x = RNG.normal(size=(2, 3, 2)).astype(np.float32)
    (y,), (dx,), _, g = run(make("Tile", [x.shape], tile_param=msg("TileParameter", axis=1,
                                                                    tiles=3)), x)
    close(y, np.tile(x, (1, 3, 1)))
    close(dx, g.reshape(2, 3, 3, 2).sum(1))
    with pytest.raises(LayerError, match="tiles"):
        make("Tile", [x.shape])


def test_embed_looks_up_rows_and_accumulates_repeated_indices():
    index = np.array([[0, 3], [3, 1]], np.float32)
    layer = make("Embed", [index.shape], embed_param=msg(
        "EmbedParameter", num_output=5, input_dim=4,
        weight_filler=msg("FillerParameter", type="gaussian", std=1.0),
        bias_filler=msg("FillerParameter", type="gaussian", std=1.0)))
    W, b = (p.detach().numpy() for p in layer.blobs())
    (y,), (dx,), (dW, db), g = run(layer, index, requires=[False])
    assert y.shape == (2, 2, 5)
    close(y, W[index.astype(int)] + b)
    ref = np.zeros_like(W)
    np.add.at(ref, index.astype(int).reshape(-1), g.reshape(-1, 5))
    close(dW, ref); close(db, g.reshape(-1, 5).sum(0))
    with pytest.raises(LayerError, match="out of the table"):
        run(layer, np.array([[4.0]], np.float32), requires=[False])


def test_filter_keeps_selected_items_and_zeroes_the_others_diffs():
    a = RNG.normal(size=(4, 3)).astype(np.float32)
    b = RNG.normal(size=(4, 2, 2)).astype(np.float32)
    sel = np.array([1, 0, 2.5, 0], np.float32).reshape(4, 1)
    layer = make("Filter", [a.shape, b.shape, sel.shape], tops=2)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ya, yb = layer(ta, tb, torch.tensor(sel))
    close(ya.detach().numpy(), a[[0, 2]]); close(yb.detach().numpy(), b[[0, 2]])
    (ya.sum() + 2 * yb.sum()).backward()
    close(ta.grad.numpy(), np.array([1, 0, 1, 0], np.float32)[:, None] * np.ones_like(a))
    with pytest.raises(LayerError, match="singletons"):
        make("Filter", [a.shape, (4, 2)])


def test_batch_reindex_gathers_and_sums_diffs_back():
    x = RNG.normal(size=(3, 2)).astype(np.float32)
    permut = np.array([2, 0, 2, 2], np.float32)
    (y,), (dx, _), _, g = run(make("BatchReindex", [x.shape, permut.shape]), x, permut,
                              requires=[True, False])
    close(y, x[[2, 0, 2, 2]])
    close(dx, np.stack([g[1], np.zeros(2), g[0] + g[2] + g[3]]))
    with pytest.raises(LayerError, match="out of the batch"):
        run(make("BatchReindex", [x.shape, (1,)]), x, np.array([3.0]), requires=[True, False])


def test_im2col_orders_columns_like_caffe():
    x = RNG.normal(size=(2, 3, 5, 6)).astype(np.float32)
    conv = msg("ConvolutionParameter", kernel_size=[3], stride=[2], pad=[1], dilation=[1])
    layer = make("Im2col", [x.shape], convolution_param=conv)
    (y,), (dx,), _, g = run(layer, x)
    out_h, out_w = (5 + 2 - 3) // 2 + 1, (6 + 2 - 3) // 2 + 1
    assert y.shape == (2, 27, out_h, out_w)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros_like(y)
    grad = np.zeros_like(padded)
    for c in range(3):
        for i in range(3):
            for j in range(3):
                row = (c * 3 + i) * 3 + j
                ref[:, row] = padded[:, c, i:i + 2 * out_h:2, j:j + 2 * out_w:2]
                grad[:, c, i:i + 2 * out_h:2, j:j + 2 * out_w:2] += g[:, row]
    close(y, ref); close(dx, grad[:, :, 1:-1, 1:-1])


@pytest.mark.parametrize("height,width", [(7, 9), (4, 4), (13, 6)])
@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_spp_pools_each_level_with_caffes_geometry(height, width, pool):
    x = RNG.normal(size=(2, 3, height, width)).astype(np.float32)
    layer = make("SPP", [x.shape], spp_param=msg("SPPParameter", pyramid_height=3, pool=pool))
    (y,), _, _, _ = run(layer, x)
    assert y.shape == (2, 3 * (1 + 4 + 16))
    # level 0 is the global pool; the test of each level's geometry is Caffe's own Pooling's
    level0 = x.max(axis=(2, 3)) if pool == "MAX" else x.mean(axis=(2, 3))
    close(y[:, :3], level0)
    one = make("SPP", [x.shape], spp_param=msg("SPPParameter", pyramid_height=1, pool=pool))
    assert one.top_shapes([x.shape]) == [(2, 3, 1, 1)]
    # width 5 at 4 bins: kernel 2, pad 2 — Caffe's Pooling refuses pad >= kernel, so do we
    with pytest.raises(LayerError, match="L level 2"):
        make("SPP", [(1, 1, 8, 5)], spp_param=msg("SPPParameter", pyramid_height=3, pool=pool))


def test_parameter_layer_is_its_blob():
    lp = parse('layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 '
               'dim: 3 } } }\nlayer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "t" }\n'
               'layer { name: "t" type: "Parameter" top: "t" parameter_param { shape { dim: 2 dim: 3 } } }',
               "NetParameter")
    # the Parameter feeding the loss must come before it: reorder
    lp.layer = [lp.layer[0], lp.layer[2], lp.layer[1]]
    net = Net(lp)
    with torch.no_grad():
        net.layer("p").weight.copy_(torch.arange(6.0).reshape(2, 3))
    net.forward()
    assert float(net.loss.detach()) == pytest.approx((np.arange(6.0) ** 2).sum() / 2 / 2)
    net.backward()
    close(net.layer("p").weight.grad.numpy(), np.arange(6.0).reshape(2, 3) / 2)
    close(net.layer("t").weight.grad.numpy(), -np.arange(6.0).reshape(2, 3) / 2)


# ------------------------------------------------------------------------------- losses

def test_euclidean_loss_and_both_diffs():
    a, b = RNG.normal(size=(3, 4)).astype(np.float32), RNG.normal(size=(3, 2, 2)).astype(np.float32)
    (y,), (da, db), _, g = run(make("EuclideanLoss", [a.shape, b.shape]), a, b, grad=2.0)
    diff = a - b.reshape(3, 4)
    close(y, (diff ** 2).sum() / 3 / 2)
    close(da, 2.0 * diff / 3); close(db, -2.0 * diff.reshape(b.shape) / 3)


@pytest.mark.parametrize("loss_fields,normalizer", [
    ({}, "batch"), ({"normalization": "VALID"}, "valid"), ({"normalization": "FULL"}, "full"),
    ({"normalization": "NONE"}, "none"), ({"normalize": True}, "valid"),
    ({"normalize": False}, "batch")])
def test_sigmoid_cross_entropy_loss_normalization_and_ignore(loss_fields, normalizer):
    x = RNG.normal(0, 3, (3, 4)).astype(np.float32)
    t = (RNG.random((3, 4)) > 0.5).astype(np.float32)
    t[0, 0] = t[1, 2] = -1
    lp = msg("LossParameter", ignore_label=-1, **loss_fields)
    (y,), (dx, _), _, _ = run(make("SigmoidCrossEntropyLoss", [x.shape, t.shape], loss_param=lp),
                              x, t, grad=1.5, requires=[True, False])
    valid = t != -1
    xd = x.astype(np.float64)
    terms = -(xd * (t - (xd >= 0)) - np.log1p(np.exp(xd - 2 * xd * (xd >= 0))))
    n = {"batch": 3, "valid": valid.sum(), "full": 12, "none": 1}[normalizer]
    close(y, terms[valid].sum() / n)
    close(dx, 1.5 * (1 / (1 + np.exp(-xd)) - t) * valid / n)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_loss_l1_l2(norm):
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    label = np.array([0, 3, 4, 1], np.float32)
    (y,), (dx, _), _, _ = run(make("HingeLoss", [x.shape, label.shape],
                                   hinge_loss_param=msg("HingeLossParameter", norm=norm)),
                              x, label, grad=0.5, requires=[True, False])
    s = np.ones_like(x); s[np.arange(4), label.astype(int)] = -1
    m = np.maximum(0, 1 + s * x)
    close(y, (m if norm == "L1" else m ** 2).sum() / 4)
    close(dx, 0.5 / 4 * s * (np.sign(m) if norm == "L1" else 2 * m))


def test_multinomial_logistic_loss_floors_probabilities():
    p = RNG.random((3, 4)).astype(np.float32)
    p[1, 2] = 0.0
    label = np.array([1, 2, 0], np.float32).reshape(3, 1, 1, 1)
    (y,), (dp, _), _, _ = run(make("MultinomialLogisticLoss", [p.shape, label.shape]), p, label,
                              grad=1.0, requires=[True, False])
    picked = np.maximum(p[np.arange(3), [1, 2, 0]].astype(np.float64), 1e-20)
    close(y, -np.log(picked).sum() / 3)
    ref = np.zeros_like(p); ref[np.arange(3), [1, 2, 0]] = -1 / 3 / picked
    close(dp, ref)


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_and_caffes_epsilon_gradient(legacy):
    a = RNG.normal(size=(6, 3, 1, 1)).astype(np.float32)
    b = RNG.normal(size=(6, 3, 1, 1)).astype(np.float32)
    sim = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)
    margin = 2.0
    (y,), (da, db, _), _, _ = run(make("ContrastiveLoss", [a.shape, b.shape, sim.shape],
                                       contrastive_loss_param=msg("ContrastiveLossParameter",
                                                                  margin=margin,
                                                                  legacy_version=legacy)),
                                  a, b, sim, grad=1.0, requires=[True, True, False])
    d = (a - b).reshape(6, 3).astype(np.float64)
    dsq = (d ** 2).sum(1)
    s = sim.reshape(-1) != 0
    if legacy:
        mdist = margin - dsq
        term, beta = np.maximum(mdist, 0), -np.ones(6)
    else:
        mdist = margin - np.sqrt(dsq)
        term, beta = np.maximum(mdist, 0) ** 2, -mdist / (np.sqrt(dsq) + 1e-4)
    close(y, np.where(s, dsq, term).sum() / 6 / 2)
    coef = np.where(s, 1.0, np.where(mdist > 0, beta, 0.0))
    close(da.reshape(6, 3), coef[:, None] * d / 6, 1e-4)
    close(db, -da)


@pytest.mark.parametrize("mode", ["VALID", "FULL", "BATCH_SIZE", "NONE"])
def test_infogain_loss_softmax_inside_with_h_bottom_and_ignore(mode):
    scores = RNG.normal(size=(2, 3, 2, 2)).astype(np.float32)
    label = RNG.integers(0, 3, (2, 1, 2, 2)).astype(np.float32)
    label[0, 0, 0, 0] = 7
    H = RNG.random((3, 3)).astype(np.float32)
    layer = make("InfogainLoss", [scores.shape, label.shape, H.shape],
                 loss_param=msg("LossParameter", ignore_label=7, normalization=mode))
    (y,), (ds, _, _), _, _ = run(layer, scores, label, H, grad=1.0,
                                 requires=[True, False, False])
    e = np.exp(scores - scores.max(1, keepdims=True)); p = e / e.sum(1, keepdims=True)
    lab = label[:, 0].astype(int)
    valid = lab != 7
    n = {"VALID": valid.sum(), "FULL": 8, "BATCH_SIZE": 2, "NONE": 1}[mode]
    rows = H[np.where(valid, lab, 0)]                    # 2, 2, 2, K
    loss = -(rows * np.log(np.moveaxis(p, 1, -1))).sum(-1)
    close(y, loss[valid].sum() / n)
    grad = np.moveaxis(p, 1, -1) * rows.sum(-1, keepdims=True) - rows
    close(ds, np.moveaxis(grad * valid[..., None], -1, 1) / n, 1e-4)


def test_infogain_loss_reads_h_from_a_binaryproto(tmp_path):
    from reproduce.caffe.blobs import blob_message
    from reproduce.caffe.wire import encode

    H = RNG.random((3, 3)).astype(np.float32)
    path = tmp_path / "H.binaryproto"
    path.write_bytes(encode(blob_message(H[None, None])))
    scores = RNG.normal(size=(4, 3)).astype(np.float32)
    label = np.array([0, 2, 1, 1], np.float32)
    from_file = make("InfogainLoss", [scores.shape, label.shape],
                     infogain_loss_param=msg("InfogainLossParameter", source=str(path)))
    from_bottom = make("InfogainLoss", [scores.shape, label.shape, H.shape])
    (y1,), _, _, _ = run(from_file, scores, label, requires=[True, False], grad=1.0)
    (y2,), _, _, _ = run(from_bottom, scores, label, H, requires=[True, False, False], grad=1.0)
    close(y1, y2)
    with pytest.raises(LayerError, match="source"):
        make("InfogainLoss", [scores.shape, label.shape])
    with pytest.raises(LayerError, match="normalize"):
        make("InfogainLoss", [scores.shape, label.shape, H.shape],
             loss_param=msg("LossParameter", normalize=True))


def test_loss_weight_scales_the_new_losses_in_a_net():
    text = ('layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 '
            'dim: 3 } shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "y" loss_weight: 3 }\n')
    net = Net(parse(text, "NetParameter"))
    x, y = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    net.forward(x=x, y=y)
    assert float(net.loss) == pytest.approx(3 * ((x - y) ** 2).sum() / 4, rel=1e-5)


# ---------------------------------------------------------------------------- recurrent

def recurrent(kind, T=4, N=2, static=False, expose=False):
    rp = msg("RecurrentParameter", num_output=3, expose_hidden=expose,
             weight_filler=msg("FillerParameter", type="gaussian", std=0.5),
             bias_filler=msg("FillerParameter", type="gaussian", std=0.5))
    shapes = [(T, N, 4), (T, N)] + ([(N, 2)] if static else [])
    if expose:
        shapes += [(1, N, 3)] * (2 if kind == "LSTM" else 1)
    tops = 1 + (expose and (2 if kind == "LSTM" else 1))
    return make(kind, shapes, tops=tops, recurrent_param=rp)


def numpy_lstm(layer, x, cont, static=None, h=None, c=None):
    blobs = [b.detach().numpy().astype(np.float64) for b in layer.blobs()]
    W_xc, b_c = blobs[:2]
    W_s = blobs[2] if static is not None else None
    W_hc = blobs[-1]
    T, N = cont.shape
    h = np.zeros((N, 3)) if h is None else h
    c = np.zeros((N, 3)) if c is None else c
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    out = []
    for t in range(T):
        gates = (cont[t][:, None] * h) @ W_hc.T + x[t] @ W_xc.T + b_c
        if W_s is not None:
            gates = gates + static @ W_s.T
        i, f, o, g = np.split(gates, 4, axis=1)
        c = cont[t][:, None] * sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        out.append(h)
    return np.stack(out), h, c


@pytest.mark.parametrize("static", [False, True])
def test_lstm_steps_with_caffes_gate_order_and_cont(static):
    layer = recurrent("LSTM", static=static)
    assert [tuple(b.shape) for b in layer.blobs()] == [(12, 4), (12,)] + \
        ([(12, 2)] if static else []) + [(12, 3)]
    x = RNG.normal(size=(4, 2, 4)).astype(np.float32)
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], np.float32)
    s = RNG.normal(size=(2, 2)).astype(np.float32)
    args = (x, cont, s) if static else (x, cont)
    (y,), _, _, _ = run(layer, *args, requires=[True, False] + [True] * static)
    close(y, numpy_lstm(layer, x, cont, s if static else None)[0])


def test_lstm_and_rnn_expose_hidden_states():
    layer = recurrent("LSTM", expose=True)
    x = RNG.normal(size=(4, 2, 4)).astype(np.float32)
    cont = np.ones((4, 2), np.float32)
    h0, c0 = RNG.normal(size=(2, 1, 2, 3)).astype(np.float32)
    y, hT, cT = (t.detach().numpy() for t in layer(*map(torch.tensor, (x, cont, h0, c0))))
    ref, h, c = numpy_lstm(layer, x, cont, h=h0[0], c=c0[0])
    close(y, ref); close(hT[0], h); close(cT[0], c)
    rnn = recurrent("RNN", expose=True)
    W_xh, b_h, W_hh, W_ho, b_o = (b.detach().numpy().astype(np.float64) for b in rnn.blobs())
    y, hT = (t.detach().numpy() for t in rnn(*map(torch.tensor, (x, cont, h0))))
    h = h0[0].astype(np.float64)
    for t in range(4):
        h = np.tanh(h @ W_hh.T + x[t] @ W_xh.T + b_h)
        close(y[t], np.tanh(h @ W_ho.T + b_o))
    close(hT[0], h)


def test_recurrent_layer_refuses_another_number_of_time_steps_like_caffe():
    layer = recurrent("RNN", T=4)
    assert layer.top_shapes([(4, 5, 4), (4, 5)]) == [(4, 5, 3)]   # streams may change
    with pytest.raises(LayerError, match="timesteps changed"):
        layer.top_shapes([(3, 2, 4), (3, 2)])
