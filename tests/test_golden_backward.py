"""Backward passes against the real Caffe: loss values and every parameter gradient.

``Net(train.prototxt, weights.caffemodel, phase="train")`` (the fixture nets have
``dropout_ratio: 0``, so TRAIN is deterministic) is fed ``input/<top>``; the loss must agree
with ``loss/<top>`` and every ``diff/<layer>/<i>`` within 1e-4 relative to its largest
magnitude. Parameters with ``lr_mult: 0`` get no gradient at all (Caffe's fixture holds
zeros there), and the data blob gets none either: Caffe does not backpropagate into net
inputs without ``force_backward``, and its ``datadiff/data`` is zero.

The fixture was recorded with pycaffe's ``net.backward()`` at 64×80 and then at 37×53 on the
same net, which — like Caffe's iter_size accumulation — *adds* parameter diffs until a solver
clears them. So the 37×53 gradients are checked as accumulated on top of the 64×80 ones,
without ``zero_grad`` in between, exactly as Caffe held them.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import VOC_NETS
from golden_compare import assert_all_close, npz_group, relative_error
from reproduce.net import Net
from reproduce.net.layers import convolution

GRADIENT_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-4


@pytest.mark.golden
@pytest.mark.parametrize("band", ["default", "every_band", "no_constant_band"])
@pytest.mark.parametrize("name", VOC_NETS)
def test_loss_and_gradients_match_caffe(golden, name, band, monkeypatch):
    if band == "every_band":  # the band's sub-windows wherever it has one, paying or not
        monkeypatch.setattr(convolution, "BANDED_COST_MODEL", False)
        monkeypatch.setattr(convolution, "BANDED_MAX_EXPLICIT_FRACTION", 1.0)
    folder = golden / name
    net = Net(folder / "train.prototxt", folder / "weights.caffemodel", phase="train")
    net.use_constant_band(band != "no_constant_band")
    assert all(net.layer(layer).ratio == 0 for layer in net.layer_names
               if net.layer(layer).layer_type == "Dropout")
    frozen = {f"{layer}/{i}" for layer, specs in net.param_specs.items()
              for i, (lr_mult, _) in enumerate(specs) if lr_mult == 0}
    assert frozen, "the FCN nets freeze their upsampling deconvolutions"
    for size in ("64x80", "37x53"):  # no zero_grad between: Caffe accumulated (see docstring)
        reference = np.load(folder / f"backward_{size}.npz")
        net.forward(**npz_group(reference, "input/"))
        net.backward()
        what = f"{name} {size}"

        for top, caffe_loss in npz_group(reference, "loss/").items():
            assert top in net.loss_blobs
            error = relative_error(net.blobs[top].detach().numpy(), caffe_loss)
            assert error <= LOSS_TOLERANCE, f"{what}: loss {top} off by {error:.3g} relative"
        assert net.loss.item() == pytest.approx(float(reference["loss/loss"]), rel=LOSS_TOLERANCE)

        expected = npz_group(reference, "diff/")
        assert set(expected) == {f"{layer}/{i}" for layer, blobs in net.params.items()
                                 for i in range(len(blobs))}
        got = {}
        for key in expected:
            layer, index = key.rsplit("/", 1)
            param = net.params[layer][int(index)]
            if key in frozen:
                assert param.grad is None and not param.requires_grad, key
                assert not expected[key].any(), f"Caffe computed a gradient for frozen {key}"
            else:
                got[key] = param.grad.numpy()
        assert_all_close(got, {k: v for k, v in expected.items() if k not in frozen},
                         GRADIENT_TOLERANCE, what)

        caffe_data_diff = reference["datadiff/data"]
        assert not caffe_data_diff.any()
        assert not net.blobs["data"].requires_grad
        np.testing.assert_array_equal(net.input_diff("data").numpy(), caffe_data_diff)
