"""``Net`` wiring on small hand-written nets: Caffe's state rules, in-place blobs, outputs,
loss weights, frozen parameters, weight copying and gradient accumulation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.caffe.text import parse
from reproduce.net import LayerError, Net, NetError, UnsupportedLayerError
from reproduce.net.state_rules import NetStateError

RNG = np.random.default_rng(0)

SMALL = """
name: "small"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.2 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up" param { lr_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 1 bias_term: false weight_filler { type: "bilinear" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "up" bottom: "label" top: "loss"
        include { phase: TRAIN } loss_param { ignore_label: 255 } }
layer { name: "prob" type: "Softmax" bottom: "up" top: "prob" include { phase: TEST } }
"""


def small_net(phase="test", text=SMALL, **kwargs) -> Net:
    return Net(parse(text), phase=phase, **kwargs)


def feed(net: Net, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {"data": rng.standard_normal((1, 2, 6, 6)).astype(np.float32)}
    if "label" in net.inputs:
        inputs["label"] = rng.integers(0, 3, (1, 1, 6, 6)).astype(np.float32)
    return inputs


# --------------------------------------------------------------------------- structure

def test_phase_filters_layers_and_sets_inputs_outputs():
    test, train = small_net("test"), small_net("train")
    assert test.layer_names == ["input", "conv", "relu", "up", "prob"]
    assert train.layer_names == ["input", "conv", "relu", "up", "loss"]
    assert test.inputs == train.inputs == ["data", "label"]
    assert test.outputs == ["label", "prob"]  # unconsumed blobs, sorted like Caffe's std::set
    assert train.outputs == ["loss"]
    assert train.loss_blobs == {"loss": 1.0} and test.loss_blobs == {}


def test_in_place_layer_overwrites_the_blob():
    net = small_net()
    out = net.forward(**feed(net))
    assert list(net.blobs) == ["data", "label", "conv", "up", "prob"]
    assert (net.blobs["conv"] >= 0).all()  # after the in-place ReLU, as Caffe's blob
    assert set(out) == {"label", "prob"}


def test_state_dict_keys_params_and_specs():
    net = small_net("train")
    assert list(net.state_dict()) == ["conv.weight", "conv.bias", "up.weight"]
    assert list(net.params) == ["conv", "up"]
    assert net.param_specs == {"conv": [(1.0, 1.0), (2.0, 0.0)], "up": [(0.0, 1.0)]}
    assert net.params["conv"][1].requires_grad and not net.params["up"][0].requires_grad
    assert torch.allclose(net.params["conv"][1], torch.full((3,), 0.2))


@pytest.mark.parametrize("rules, kept", [
    ("include { phase: TRAIN }", False),
    ("include { phase: TEST }", True),
    ("exclude { phase: TEST }", False),
    ("include { min_level: 2 }", False),
    ("include { max_level: 1 }", True),
    ("include { stage: 'a' }", True),
    ("include { stage: 'a' stage: 'b' }", False),  # a rule needs all of its stages
    ("include { stage: 'b' } include { stage: 'a' }", True),  # any include rule suffices
    ("include { not_stage: 'a' }", False),
    ("exclude { stage: 'b' }", True),
])
def test_state_rules_follow_caffe(rules, kept):
    text = SMALL.replace('layer { name: "prob" type: "Softmax" bottom: "up" top: "prob" include { phase: TEST } }',
                         f'layer {{ name: "prob" type: "Softmax" bottom: "up" top: "prob" {rules} }}')
    net = small_net("test", text=text, level=1, stages=["a"])
    assert ("prob" in net.layer_names) is kept


def test_both_include_and_exclude_is_an_error():
    text = SMALL.replace("include { phase: TEST }", "include { phase: TEST } exclude { phase: TRAIN }")
    with pytest.raises(NetStateError, match="'prob'"):
        small_net("test", text=text)


def test_wiring_errors_name_the_layer():
    with pytest.raises(NetError, match=r"unknown bottom blob 'nothing' \(layer 'relu'"):
        small_net(text=SMALL.replace('bottom: "conv" top: "conv" }', 'bottom: "nothing" top: "conv" }'))
    with pytest.raises(NetError, match="multiple sources"):
        small_net(text=SMALL.replace('layer { name: "up"',
                                     'layer { name: "again" type: "ReLU" bottom: "data" top: "conv" }\n'
                                     'layer { name: "up"'))
    with pytest.raises(UnsupportedLayerError, match="'relu'.*'Frobnicate'"):
        small_net(text=SMALL.replace('type: "ReLU"', 'type: "Frobnicate"'))


def test_layer_names_clashing_with_module_attributes_or_holding_dots():
    text = SMALL.replace('name: "conv"', 'name: "forward.conv"').replace('name: "up"', 'name: "blobs"')
    net = small_net("train", text=text)
    assert list(net.state_dict()) == ["forward.conv.weight", "forward.conv.bias", "blobs.weight"]
    net.forward(**feed(net))
    assert isinstance(net.blobs, dict) and callable(net.forward)
    assert net.layer("blobs").layer_type == "Deconvolution"
    clone = small_net("train", text=text)
    clone.load_state_dict(net.state_dict())
    assert torch.equal(clone.layer("forward.conv").weight, net.layer("forward.conv").weight)


def test_python_data_layers_are_inputs_of_any_size():
    text = SMALL.replace(
        'layer { name: "input" type: "Input" top: "data" top: "label"\n'
        '        input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }',
        'layer { name: "data" type: "Python" top: "data" top: "label"\n'
        '        python_param { module: "voc_layers" layer: "VOCSegDataLayer" } }')
    voc = small_net("train", text=text)
    assert voc.inputs == ["data", "label"]
    assert voc.blob_shapes["data"] == (1, 3, 500, 500) and voc.blob_shapes["label"] == (1, 1, 500, 500)
    assert tuple(voc.layer("conv").weight.shape) == (3, 3, 3, 3)
    net = small_net("train", text=text.replace('module: "voc_layers" layer: "VOCSegDataLayer"',
                                               'module: "my_layers" layer: "Mine"'),
                    input_shapes={"data": (1, 2, 10, 10), "label": (1, 1, 10, 10)})
    assert net.inputs == ["data", "label"] and net.blob_shapes["up"] == (1, 3, 10, 10)
    net.forward(data=np.zeros((1, 2, 7, 9), np.float32), label=np.zeros((1, 1, 7, 9), np.float32))
    assert tuple(net.blobs["up"].shape) == (1, 3, 7, 9)


PYTHON_SCALE_NET = """
name: "ported"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "scale" type: "Python" bottom: "data" top: "scaled"
        python_param { module: "my_layers" layer: "ScaleBy" param_str: "2.5" } }
"""


def test_a_python_layer_with_bottoms_runs_its_registered_port(monkeypatch):
    from reproduce.net import CaffeLayer
    from reproduce.net import python_layers

    with pytest.raises(LayerError, match=r"layer 'scale' \(Python\): Python layer "
                                         r"my_layers.ScaleBy has bottoms.*register_python_layer"
                                         r"\('my_layers', 'ScaleBy'\)"):
        small_net(text=PYTHON_SCALE_NET)

    monkeypatch.setattr(python_layers, "_PORTED_LAYERS", {})

    @python_layers.register_python_layer("my_layers", "ScaleBy")
    class ScaleBy(CaffeLayer):
        def __init__(self, layer_param, bottom_shapes, generator=None):
            super().__init__(layer_param, bottom_shapes, generator)
            self.factor = float(layer_param.python_param.param_str)

        def top_shapes(self, bottom_shapes):
            return [tuple(bottom_shapes[0])]

        def forward(self, x):
            return (x * self.factor,)

    net = small_net(text=PYTHON_SCALE_NET)
    assert net.inputs == ["data"] and net.blob_shapes["scaled"] == (1, 2, 3, 3)
    data = RNG.standard_normal((1, 2, 3, 3)).astype(np.float32)
    assert torch.equal(net.forward(data=data)["scaled"], torch.from_numpy(data) * 2.5)
    with pytest.raises(TypeError, match="needs a CaffeLayer subclass"):
        python_layers.register_python_layer("my_layers", "Other")(lambda *args: None)


def test_missing_input_is_reported():
    net = small_net("train")
    with pytest.raises(NetError, match=r"missing \['label'\]"):
        net.forward(data=np.zeros((1, 2, 6, 6), np.float32))


def test_input_with_other_channels_is_an_error_naming_the_layer_and_shapes():
    net = small_net("test")
    with pytest.raises(NetError, match=r"layer 'conv' \(Convolution\) failed on bottoms "
                                       r"\{'data': \(1, 3, 6, 6\)\}.*channels.*"
                                       r"Inputs \['data'\] were fed with shapes \[\(1, 3, 6, 6\)\], "
                                       r"but the net was built for \[\(1, 2, 6, 6\)\]"):
        net.forward(data=np.zeros((1, 3, 6, 6), np.float32), label=np.zeros((1, 1, 6, 6)))
    net.forward(data=np.zeros((1, 2, 9, 4), np.float32), label=np.zeros((1, 1, 9, 4)))  # other H×W


@pytest.mark.parametrize("data, message", [
    (np.zeros((2, 6, 6), np.float32), r"input 'data' has 3 axes \(2, 6, 6\); net 'small' was built "
                                      r"for 4 \(1, 2, 6, 6\)"),
    (np.full((1, 2, 6, 6), "a"), r"input 'data' has dtype <U1"),
    (np.zeros((1, 2, 6, 6), np.complex64), r"input 'data' has dtype complex64"),
    (torch.zeros((1, 2, 6, 6), dtype=torch.complex64), r"input 'data' is complex"),
])
def test_inputs_that_are_not_real_arrays_of_the_built_axes_are_refused(data, message):
    net = small_net("test")
    with pytest.raises(NetError, match=message):
        net.forward(data=data, label=np.zeros((1, 1, 6, 6)))
    net.forward(data=np.ones((1, 2, 6, 6), np.int64), label=np.zeros((1, 1, 6, 6), bool))


# --------------------------------------------------------------------------- loss and gradients

def test_loss_weight_scales_loss_and_gradient():
    weighted = small_net("train", text=SMALL.replace('top: "loss"\n', 'top: "loss" loss_weight: 2.5\n'))
    plain = small_net("train")
    plain.load_state_dict(weighted.state_dict())
    inputs = feed(plain)
    for net in (plain, weighted):
        net.forward(**inputs)
        net.backward()
    assert weighted.loss_blobs == {"loss": 2.5}
    assert weighted.loss.item() == pytest.approx(2.5 * plain.loss.item(), rel=1e-6)
    assert torch.allclose(weighted.layer("conv").weight.grad, 2.5 * plain.layer("conv").weight.grad,
                          rtol=1e-5, atol=1e-7)
    assert plain.layer("up").weight.grad is None  # lr_mult 0: no gradient computed


def test_two_top_loss_layer_needs_a_weight_per_top():
    text = SMALL.replace('top: "loss"\n', 'top: "loss" top: "p"\n')
    with pytest.raises(NetError, match="once per top"):
        small_net("train", text=text)
    net = small_net("train", text=text.replace('top: "p"', 'top: "p" loss_weight: 1 loss_weight: 0'))
    assert net.loss_blobs == {"loss": 1.0}


def test_backward_accumulates_like_caffe_diffs():
    net = small_net("train")
    first, second = feed(net, 1), feed(net, 2)
    grads = []
    for inputs in (first, second):
        net.zero_grad()
        net.forward(**inputs)
        net.backward()
        grads.append(net.layer("conv").weight.grad.clone())
    net.zero_grad()
    for inputs in (first, second):  # iter_size 2: diffs add up until cleared
        net.forward(**inputs)
        net.backward()
    assert torch.allclose(net.layer("conv").weight.grad, grads[0] + grads[1], rtol=1e-5, atol=1e-7)


def test_inputs_get_gradients_only_with_force_backward():
    net = small_net("train")
    net.forward(**feed(net))
    net.backward()
    assert not net.input_diff("data").any()
    forced = small_net("train", text="force_backward: true\n" + SMALL)
    forced.load_state_dict(net.state_dict())
    forced.forward(**feed(forced))
    forced.backward()
    assert forced.input_diff("data").abs().sum() > 0


def test_force_backward_gives_lr_mult_0_parameters_a_diff():
    """net.cpp: force_backward sets param_propagate_down on every parameter, so the lr_mult 0
    deconvolution gets a diff — the one it would have with lr_mult 1; without it, none."""
    net = small_net("train")
    net.forward(**feed(net))
    net.backward()
    assert net.layer("up").weight.grad is None
    forced = small_net("train", text="force_backward: true\n" + SMALL)
    learned = small_net("train", text=SMALL.replace('top: "up" param { lr_mult: 0 }', 'top: "up"'))
    for other in (forced, learned):
        other.load_state_dict(net.state_dict())
        other.forward(**feed(other))
        other.backward()
    assert forced.param_specs["up"][0][0] == 0
    grad = forced.layer("up").weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert torch.equal(grad, learned.layer("up").weight.grad)
    assert torch.equal(forced.layer("conv").weight.grad, learned.layer("conv").weight.grad)


def test_no_grad_inference():
    net = small_net("test")
    with torch.no_grad():
        out = net.forward(**feed(net))
    assert not out["prob"].requires_grad
    assert torch.allclose(out["prob"].sum(dim=1), torch.ones(1, 6, 6))


# --------------------------------------------------------------------------- weights

def test_copy_from_by_name_keeps_others_and_checks_shapes():
    net = small_net("train")
    before_up = net.layer("up").weight.detach().clone()
    weight = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    net.copy_from({"conv": [weight, np.zeros(3, np.float32)], "not_in_net": [np.ones(2)]})
    assert np.array_equal(net.layer("conv").weight.detach().numpy(), weight)
    assert torch.equal(net.layer("up").weight, before_up)  # absent from the weights: kept
    with pytest.raises(NetError, match=r"layer 'conv'.*\(3, 2, 2, 2\).*\(3, 2, 3, 3\)"):
        net.copy_from({"conv": [np.zeros((3, 2, 2, 2)), np.zeros(3)]})
    with pytest.raises(NetError, match="number of blobs for layer 'conv'"):
        net.copy_from({"conv": [weight]})


def test_copy_from_accepts_legacy_four_axis_shapes_only_when_caffe_does():
    net = small_net("train")
    net.copy_from({"conv": [np.ones((3, 2, 3, 3)), np.arange(3).reshape(1, 1, 1, 3)]})
    assert net.layer("conv").bias.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(NetError, match="shape mismatch"):
        net.copy_from({"conv": [np.ones((3, 2, 3, 3)), np.arange(3).reshape(1, 3, 1, 1)]})


def test_copy_from_file_error_names_the_file(tmp_path):
    from reproduce.caffe.weights import write_caffemodel

    path = tmp_path / "bad.caffemodel"
    write_caffemodel(path, {"conv": [np.zeros((4, 2, 3, 3), np.float32), np.zeros(4, np.float32)]})
    with pytest.raises(NetError, match="bad.caffemodel.*'conv'"):
        small_net("train", weights=path)


def test_share_with_uses_the_other_nets_tensors_by_layer_name():
    train = small_net("train")
    test = small_net("test", generator=torch.Generator().manual_seed(5))
    keys = list(test.state_dict())
    assert test.share_with(train) == ["conv", "up"]
    assert test.params["conv"][0] is train.params["conv"][0] is test.layer("conv").weight
    assert list(test.state_dict()) == keys
    with torch.no_grad():
        train.params["conv"][1].add_(1.0)  # what a solver step on the train net does
    copied = small_net("test")
    copied.copy_from(train.weights_dict())
    inputs = feed(test)
    with torch.no_grad():
        assert torch.equal(test.forward(**inputs)["prob"], copied.forward(**inputs)["prob"])


def test_share_with_keeps_layers_the_other_net_lacks_and_checks_blobs():
    train = small_net("train")
    renamed = small_net("test", text=SMALL.replace('name: "up"', 'name: "upsample"'))
    own = renamed.layer("upsample").weight
    assert renamed.share_with(train) == ["conv"]
    assert renamed.layer("upsample").weight is own
    wider = small_net("test", text=SMALL.replace("num_output: 3 kernel_size: 3",
                                                 "num_output: 4 kernel_size: 3")
                      .replace("num_output: 3 kernel_size: 1", "num_output: 4 kernel_size: 1"))
    with pytest.raises(NetError, match=r"param 0 of layer 'conv'.*\(3, 2, 3, 3\).*\(4, 2, 3, 3\)"):
        wider.share_with(train)
    no_bias = small_net("test", text=SMALL.replace(" param { lr_mult: 2 decay_mult: 0 }", "")
                        .replace("kernel_size: 3 pad: 1", "kernel_size: 3 pad: 1 bias_term: false"))
    with pytest.raises(NetError, match="layer 'conv'.*number of blobs"):
        no_bias.share_with(train)


def test_blobs_embedded_in_the_net_definition_are_used():
    from reproduce.caffe.weights import blob_message

    net_param = parse(SMALL)
    conv = next(layer for layer in net_param.layer if layer.name == "conv")
    weight = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    conv.blobs = [blob_message(weight), blob_message(np.ones(3, np.float32))]
    net = Net(net_param, phase="train")
    assert np.array_equal(net.layer("conv").weight.detach().numpy(), weight)
    assert net.layer("conv").bias.tolist() == [1.0, 1.0, 1.0]


def test_too_many_param_specs_is_an_error():
    with pytest.raises(NetError, match="too many params.*'up'"):
        small_net(text=SMALL.replace("param { lr_mult: 0 }", "param { lr_mult: 0 } param { lr_mult: 0 }"))


def test_shared_params_use_one_tensor():
    text = SMALL.replace('param { lr_mult: 0 }\n', 'param { name: "shared" lr_mult: 0 }\n').replace(
        'layer { name: "loss"',
        'layer { name: "up2" type: "Deconvolution" bottom: "up" top: "up2" param { name: "shared" lr_mult: 0 }\n'
        '        convolution_param { num_output: 3 kernel_size: 1 bias_term: false } }\n'
        'layer { name: "loss"').replace('bottom: "up" bottom: "label"', 'bottom: "up2" bottom: "label"')
    net = small_net("train", text=text)
    assert net.layer("up2").weight is net.layer("up").weight
    assert net.params["up2"][0] is net.params["up"][0]



def shared_up_text(up_spec: str, up2_spec: str) -> str:
    """SMALL with a second deconvolution ``up2`` sharing ``up``'s weight under the name "w"."""
    return SMALL.replace('param { lr_mult: 0 }\n', f'param {{ name: "w" {up_spec} }}\n').replace(
        'layer { name: "loss"',
        f'layer {{ name: "up2" type: "Deconvolution" bottom: "up" top: "up2" param {{ name: "w" {up2_spec} }}\n'
        '        convolution_param { num_output: 3 kernel_size: 1 bias_term: false } }\n'
        'layer { name: "loss"').replace('bottom: "up" bottom: "label"', 'bottom: "up2" bottom: "label"')


def test_shared_param_multipliers_follow_caffe_append_param():
    """The first explicit lr_mult/decay_mult among the sharers wins, even when the owner
    leaves it unset (Caffe's 1 only when nobody sets it); learnable_params sees it once."""
    from reproduce.solver.solver import learnable_params

    net = small_net("train", text=shared_up_text("", "lr_mult: 0 decay_mult: 3"))
    assert net.param_specs["up"] == [(0.0, 3.0)] and net.param_specs["up2"] == [(0.0, 3.0)]
    assert not net.layer("up").weight.requires_grad
    up = [entry for entry in learnable_params(net) if entry[0] is net.layer("up").weight]
    assert len(up) == 1 and (float(up[0][1]), float(up[0][2])) == (0.0, 3.0)

    net = small_net("train", text=shared_up_text("", ""))
    assert net.param_specs["up"] == [(1.0, 1.0)] and net.layer("up").weight.requires_grad

    net = small_net("train", text=shared_up_text("lr_mult: 0", ""))   # a sharer sees the owner's
    assert net.param_specs["up"] == [(0.0, 1.0)] and net.param_specs["up2"] == [(0.0, 1.0)]

    net = small_net("train", text=shared_up_text("lr_mult: 2", "lr_mult: 2 decay_mult: 0"))
    assert net.param_specs["up"] == [(2.0, 0.0)] and net.param_specs["up2"] == [(2.0, 0.0)]


def test_shared_param_with_mismatched_lr_mult_is_an_error():
    with pytest.raises(NetError, match=r"layer 'up2' param 0: shared param 'w' has mismatched "
                                       r"lr_mult \(0; layer 'up' set 2\)"):
        small_net("train", text=shared_up_text("lr_mult: 2", "lr_mult: 0"))
    with pytest.raises(NetError, match="mismatched decay_mult"):
        small_net("train", text=shared_up_text("decay_mult: 2", "decay_mult: 1"))

def test_weights_dict_round_trips_through_copy_from():
    net, other = small_net("train"), small_net("train", generator=torch.Generator().manual_seed(5))
    weights = net.weights_dict()
    assert list(weights) == ["conv", "up"] and [w.shape for w in weights["conv"]] == [(3, 2, 3, 3), (3,)]
    assert not torch.equal(net.layer("conv").weight, other.layer("conv").weight)
    other.copy_from(weights)
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)
