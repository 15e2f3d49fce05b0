"""pycaffe's net as Caffe builds it (``reproduce.pycaffe``): the split layers ``Net::Init``
inserts, listed and run as Caffe runs them; which parameters get a diff under
``force_backward`` (``set_param_propagate_down``); ``google.protobuf.text_format`` on
``caffe_pb2`` messages after ``import caffe``; the MemoryData layer and
``Net.set_input_arrays``.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import reproduce.pycaffe as caffe
from conftest import PROJECT_ROOT, VOC_NETS
from reproduce.caffe import wire
from reproduce.net import Net as ReproNet
from reproduce.net.net import NetError


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------------------ splits
SHARED_NET = """name: 'splits' force_backward: true
layer { name: 'in' type: 'Input' top: 'data' top: 'label'
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'ip1'
  inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 1 }
                        bias_filler { type: 'gaussian' std: 1 } } }
layer { name: 'relu' type: 'ReLU' bottom: 'ip1' top: 'ip1' }
layer { name: 'sum' type: 'Eltwise' bottom: 'ip1' bottom: 'ip1' top: 'sum'
  eltwise_param { operation: SUM coeff: 1 coeff: 3 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'sum' bottom: 'label' top: 'loss' }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'data' top: 'ip2' loss_weight: 0.5
  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 } } }
layer { name: 'pow' type: 'Power' bottom: 'ip2' top: 'pw' loss_weight: 1 power_param { power: 2 } }
"""

# What insert_splits.cpp makes of SHARED_NET, worked out by hand from its rules: a split after
# the layer whose top is read more than once (named <blob>_<layer>_<top index>_split, after the
# *last* layer to write the blob: relu, in place), its tops <…>_split_<k> handed to the readers
# in order (the same layer reading it twice takes two); a top with an explicit loss_weight
# counts as one more reader and its split carries the weight on top 0 (the readers get 1…),
# the producer's loss_weight cleared. "label" has one reader: no split.
SPLIT_LAYERS = [
    ("in", "Input", [], ["data", "label"]),
    ("data_in_0_split", "Split", ["data"], ["data_in_0_split_0", "data_in_0_split_1"]),
    ("ip1", "InnerProduct", ["data_in_0_split_0"], ["ip1"]),
    ("relu", "ReLU", ["ip1"], ["ip1"]),
    ("ip1_relu_0_split", "Split", ["ip1"], ["ip1_relu_0_split_0", "ip1_relu_0_split_1"]),
    ("sum", "Eltwise", ["ip1_relu_0_split_0", "ip1_relu_0_split_1"], ["sum"]),
    ("loss", "SoftmaxWithLoss", ["sum", "label"], ["loss"]),
    ("ip2", "InnerProduct", ["data_in_0_split_1"], ["ip2"]),
    ("ip2_ip2_0_split", "Split", ["ip2"], ["ip2_ip2_0_split_0", "ip2_ip2_0_split_1"]),
    ("pow", "Power", ["ip2_ip2_0_split_1"], ["pw"]),
]


def caffe_blob_order(layers) -> list[str]:
    """Net::AppendTop's order: every top once, when first produced (in place: not again)."""
    names: list[str] = []
    for _, _, _, tops in layers:
        names.extend(t for t in tops if t not in names)
    return names


def test_split_layers_and_blobs_listed_as_caffe(tmp_path):
    net = caffe.Net(write(tmp_path, "shared.prototxt", SHARED_NET), caffe.TRAIN)
    assert net._layer_names == [name for name, _, _, _ in SPLIT_LAYERS]
    assert list(net.layer_dict) == net._layer_names
    assert [layer.type for layer in net.layers] == [t for _, t, _, _ in SPLIT_LAYERS]
    assert dict(net.bottom_names) == {n: b for n, _, b, _ in SPLIT_LAYERS}
    assert dict(net.top_names) == {n: t for n, _, _, t in SPLIT_LAYERS}
    assert list(net.blobs) == caffe_blob_order(SPLIT_LAYERS) == net._blob_names
    assert net.outputs == ["ip2_ip2_0_split_0", "loss", "pw"]          # a std::set
    assert net.inputs == ["data", "label"]
    weights = {name: w for name, w in net.blob_loss_weights.items() if w}
    assert weights == {"loss": 1.0, "ip2_ip2_0_split_0": 0.5, "pw": 1.0}
    split = net.layer_dict["ip2_ip2_0_split"].layer_param
    assert list(split.loss_weight) == [0.5, 0.0] and split.phase == "TRAIN"
    assert not net.layer_dict["ip2"].layer_param.loss_weight         # cleared, as Caffe


def test_split_tops_share_data_and_hold_each_readers_diff(tmp_path):
    """A split top's data is its bottom's (the same memory, SplitLayer's ShareData); its diff is
    what its one reader wrote; the bottom's diff is their sum — checked against autograd of
    the net's loss computed here from the parameters."""
    caffe.set_random_seed(5)
    net = caffe.Net(write(tmp_path, "shared.prototxt", SHARED_NET), caffe.TRAIN)
    data = np.random.default_rng(3).normal(size=(2, 3)).astype(np.float32)
    net.blobs["data"].data[...] = data
    net.blobs["label"].data[...] = [0, 3]
    net.forward()
    blobs = net.blobs
    for split, source in [("data_in_0_split_0", "data"), ("data_in_0_split_1", "data"),
                          ("ip1_relu_0_split_1", "ip1"), ("ip2_ip2_0_split_0", "ip2")]:
        assert np.shares_memory(blobs[split].data, blobs[source].data)
        np.testing.assert_array_equal(blobs[split].data, blobs[source].data)
    net.backward()

    x = torch.tensor(data, requires_grad=True)
    w1, b1 = (torch.tensor(p.data) for p in net.params["ip1"])
    w2, b2 = (torch.tensor(p.data) for p in net.params["ip2"])
    h = torch.relu(x @ w1.T + b1)
    scores = h + 3 * h
    ip2 = x @ w2.T + b2
    loss = (torch.nn.functional.cross_entropy(scores, torch.tensor([0, 3]))
            + 0.5 * ip2.sum() + (ip2 ** 2).sum())
    loss.backward()
    np.testing.assert_allclose(blobs["data"].diff, x.grad.numpy(), rtol=1e-5, atol=1e-6)

    # every split's bottom diff is exactly the sum of its tops' diffs, in top order
    np.testing.assert_array_equal(blobs["data"].diff,
                                  blobs["data_in_0_split_0"].diff + blobs["data_in_0_split_1"].diff)
    np.testing.assert_array_equal(blobs["ip2"].diff,
                                  blobs["ip2_ip2_0_split_0"].diff + blobs["ip2_ip2_0_split_1"].diff)
    # each top holds its reader's own contribution
    np.testing.assert_allclose(blobs["ip1_relu_0_split_1"].diff, 3 * blobs["ip1_relu_0_split_0"].diff,
                               rtol=1e-6)
    assert blobs["ip1_relu_0_split_0"].diff.any()
    np.testing.assert_array_equal(blobs["ip2_ip2_0_split_0"].diff, np.full((2, 2), 0.5))  # its weight
    np.testing.assert_allclose(blobs["ip2_ip2_0_split_1"].diff, 2 * blobs["ip2"].data, rtol=1e-6)
    mask = blobs["ip1"].data > 0   # ReLU in place: ip1's diff is the masked sum of its split
    np.testing.assert_allclose(blobs["ip1"].diff, mask * 4 * blobs["ip1_relu_0_split_0"].diff,
                               rtol=1e-6)
    np.testing.assert_allclose(blobs["data_in_0_split_1"].diff,
                               (0.5 + 2 * torch.tensor(blobs["ip2"].data)).numpy() @ w2.numpy(),
                               rtol=1e-5)


CONV_SHARED_NET = """name: 'conv_splits'
layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'a' type: 'Power' bottom: 'conv' top: 'a' power_param { scale: 2 } }
layer { name: 'b' type: 'Power' bottom: 'conv' top: 'b' power_param { shift: 1 } }
"""


def test_split_tops_share_memory_after_an_inference_forward(tmp_path):
    """In an inference forward the net may hold activations channels-last; once asked for as
    arrays, a split top and its source are still one memory (SplitLayer's ShareData): a write
    through either is seen by both, whichever is asked for first."""
    for first in ("conv", "conv_conv_0_split_1"):
        caffe.set_random_seed(1)
        net = caffe.Net(write(tmp_path, "conv_shared.prototxt", CONV_SHARED_NET), caffe.TEST)
        net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(1, 3, 8, 8))
        out = net.forward()
        np.testing.assert_allclose(out["a"], 2 * net.blobs["conv"].data, rtol=1e-6)
        blobs = net.blobs
        names = [first] + [n for n in ("conv", "conv_conv_0_split_0", "conv_conv_0_split_1") if n != first]
        arrays = [blobs[n].data for n in names]
        assert all(a.flags.c_contiguous for a in arrays)
        for other in arrays[1:]:
            assert np.shares_memory(arrays[0], other), (first, names)
        blobs[names[2]].data[...] = 7
        assert (blobs[names[0]].data == 7).all() and (blobs["conv"].data == 7).all()


def test_saved_net_is_the_split_net_and_splits_take_the_net_phase(tmp_path):
    text = SHARED_NET.replace("layer { name: 'ip2' type: 'InnerProduct'",
                              "layer { name: 'ip2' type: 'InnerProduct' phase: TEST")
    net = caffe.Net(write(tmp_path, "shared.prototxt", text), caffe.TRAIN)
    saved = tmp_path / "saved.caffemodel"
    net.save(str(saved))
    layers = wire.decode(saved.read_bytes(), "NetParameter").layer
    assert [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in layers] == SPLIT_LAYERS
    phases = {lp.name: lp.phase for lp in layers}
    assert phases["ip2"] == "TEST" and phases["ip2_ip2_0_split"] == "TRAIN"   # ConfigureSplitLayer


def test_split_errors_are_caffes(tmp_path):
    unknown = write(tmp_path, "unknown.prototxt", """
        layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 1 } } }
        layer { name: 'r' type: 'ReLU' bottom: 'nope' top: 'r' }""")
    with pytest.raises(NetError, match=r"unknown.prototxt: Unknown bottom blob 'nope' \(layer 'r', "
                                       r"bottom index 0\)"):
        caffe.Net(unknown, caffe.TEST)
    # a blob read by another layer and then in place: the in-place reader reads a split top,
    # so its top is a second source of the blob — Caffe refuses such a net
    in_place = write(tmp_path, "in_place.prototxt", """
        layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 2 } } }
        layer { name: 'a' type: 'ReLU' bottom: 'data' top: 'a' }
        layer { name: 'b' type: 'ReLU' bottom: 'data' top: 'data' }""")
    with pytest.raises(NetError, match="'data' produced by multiple sources"):
        caffe.Net(in_place, caffe.TEST)
    assert ReproNet(in_place).layer_names == ["in", "a", "b"]   # the project's own Net: no splits


@pytest.mark.golden
@pytest.mark.parametrize("name", VOC_NETS)
def test_golden_listing_is_what_caffe_saved(golden, name):
    """Caffe's Net.save wrote its layer list, splits included: the shim's layers, types,
    bottoms and tops are that list, its blobs Caffe's blob order, and a forward fills every
    split top with its bottom's data."""
    folder = golden / name
    net = caffe.Net(str(folder / "deploy.prototxt"), caffe.TEST)
    saved = wire.decode((folder / "weights.caffemodel").read_bytes(), "NetParameter").layer
    expected = [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in saved]
    assert any(t == "Split" for _, t, _, _ in expected)
    got = [(layer_name, layer.type, net.bottom_names[layer_name], net.top_names[layer_name])
           for layer_name, layer in zip(net._layer_names, net.layers)]
    assert got == expected
    assert list(net.blobs) == caffe_blob_order(expected)
    if name != "voc-fcn8s":   # (one forward is enough for the data check)
        return
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=net.blobs["data"].shape)
    net.forward()
    for layer_name, layer_type, bottoms, tops in expected:
        if layer_type == "Split":
            for top in tops:
                np.testing.assert_array_equal(net.blobs[top].data, net.blobs[bottoms[0]].data)


# ------------------------------------------------------------------------------ param diffs
PARAM_NET = """name: 'params' {force}
layer {{ name: 'in' type: 'Input' top: 'data' input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: 'frozen' type: 'InnerProduct' bottom: 'data' top: 'frozen'
  param {{ lr_mult: 0 }} param {{ lr_mult: 0 decay_mult: 0 }}
  inner_product_param {{ num_output: 4 weight_filler {{ type: 'gaussian' std: 1 }}
                         bias_filler {{ type: 'gaussian' std: 1 }} }} }}
layer {{ name: 'ip' type: 'InnerProduct' bottom: 'frozen' top: 'ip'
  inner_product_param {{ num_output: 2 weight_filler {{ type: 'gaussian' std: 1 }} }} }}
layer {{ name: 'loss' type: 'Power' bottom: 'ip' top: 'loss' loss_weight: 1
  power_param {{ power: 2 }} }}
"""


def _param_net(tmp_path, force: bool):
    text = PARAM_NET.format(force="force_backward: true" if force else "")
    caffe.set_random_seed(11)
    net = caffe.Net(write(tmp_path, f"params{force}.prototxt", text), caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.default_rng(1).normal(size=(2, 3))
    net.forward()
    net.backward()
    return net


def _expected_param_grads(net):
    x = torch.tensor(net.blobs["data"].data)
    wf, bf = (torch.tensor(p.data, requires_grad=True) for p in net.params["frozen"])
    wi, bi = (torch.tensor(p.data, requires_grad=True) for p in net.params["ip"])
    ((((x @ wf.T + bf) @ wi.T + bi) ** 2).sum()).backward()
    return {"frozen": [wf.grad, bf.grad], "ip": [wi.grad, bi.grad]}


def test_force_backward_computes_diffs_of_lr_mult_0_params(tmp_path):
    """net.cpp, Net::Init: param_propagate_down is lr_mult != 0, and force_backward then sets
    set_param_propagate_down(param_id, true) for every parameter of every layer — so Caffe
    computes the diff of a frozen (lr_mult 0) parameter under force_backward."""
    net = _param_net(tmp_path, force=True)
    expected = _expected_param_grads(net)
    for layer in ("frozen", "ip"):
        for blob, grad in zip(net.params[layer], expected[layer]):
            assert blob.diff.any()
            np.testing.assert_allclose(blob.diff, grad.numpy(), rtol=1e-5, atol=1e-6)
    # they accumulate as Caffe's diffs do, and clear_param_diffs zeroes them
    first = net.params["frozen"][0].diff.copy()
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.params["frozen"][0].diff, 2 * first, rtol=1e-6)
    net.clear_param_diffs()
    assert not net.params["frozen"][0].diff.any()
    assert all(p.requires_grad for p in net.net.params["frozen"])   # the project Net follows net.cpp too


def test_without_force_backward_lr_mult_0_params_get_no_diff(tmp_path):
    net = _param_net(tmp_path, force=False)
    expected = _expected_param_grads(net)
    assert not net.params["frozen"][0].diff.any() and not net.params["frozen"][1].diff.any()
    for blob, grad in zip(net.params["ip"], expected["ip"]):
        np.testing.assert_allclose(blob.diff, grad.numpy(), rtol=1e-5, atol=1e-6)
    assert not net.blobs["data"].diff.any()


def test_a_sharer_with_its_own_lr_mult_computes_into_the_shared_diff(tmp_path):
    """Caffe decides param_propagate_down from each layer's own ParamSpec: 'b' shares 'a''s
    weight (whose lr_mult 0 is the shared blob's rate) but sets none itself (1), so its
    gradient reaches the shared diff; 'a''s does not."""
    path = write(tmp_path, "shared_param.prototxt", """name: 'share'
        layer { name: 'in' type: 'Input' top: 'x' top: 'y'
                input_param { shape { dim: 2 dim: 3 } } }
        layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'a' param { name: 'w' lr_mult: 0 }
                inner_product_param { num_output: 2 bias_term: false
                                      weight_filler { type: 'gaussian' std: 1 } } }
        layer { name: 'b' type: 'InnerProduct' bottom: 'y' top: 'b' param { name: 'w' }
                inner_product_param { num_output: 2 bias_term: false } }
        layer { name: 'sa' type: 'Power' bottom: 'a' top: 'sa' loss_weight: 1 power_param { power: 2 } }
        layer { name: 'sb' type: 'Power' bottom: 'b' top: 'sb' loss_weight: 1 power_param { power: 2 } }
        """)
    net = caffe.Net(path, caffe.TRAIN)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.blobs["y"].data[...] = y
    net.forward()
    net.backward()
    w = torch.tensor(net.params["a"][0].data, requires_grad=True)
    ((torch.tensor(y) @ w.T) ** 2).sum().backward()       # b's term only
    np.testing.assert_allclose(net.params["b"][0].diff, w.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert np.shares_memory(net.params["a"][0].diff, net.params["b"][0].diff)


# ------------------------------------------------------------------------------ text_format
def _run_with_shim(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    from reproduce.commands.pycaffe import shim_path

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim_path()), str(PROJECT_ROOT)]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)


TEXT_FORMAT_SCRIPT = r'''
import io
from google.protobuf import text_format as early        # held from before import caffe
originals = {n: getattr(early, n) for n in ("Merge", "Parse", "MessageToString", "PrintMessage")}
import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format, descriptor_pb2
assert text_format is early

net = caffe_pb2.NetParameter()
text_format.Merge(open("net.prototxt").read(), net)
assert net.name == "x" and net.layer[0].type == "ReLU" and list(net.layer[0].bottom) == ["b"]
solver = text_format.Parse("base_lr: 0.01 lr_policy: 'step' stepsize: 5", caffe_pb2.SolverParameter())
assert solver.stepsize == 5 and abs(solver.base_lr - 0.01) < 1e-9
again = caffe_pb2.NetParameter()
text_format.Merge(text_format.MessageToString(net), again)
assert again == net
out = io.StringIO()
text_format.PrintMessage(net, out)
assert out.getvalue() == text_format.MessageToString(net) == str(net)
assert text_format.MessageToBytes(net) == str(net).encode()
merged = text_format.MergeLines(open("net.prototxt").readlines(), caffe_pb2.NetParameter())
assert merged == net

# the layout protobuf prints, for a real message of the same structure
real = descriptor_pb2.FileDescriptorProto(name="x")
real.message_type.add(name="a", reserved_name=["b", "b"])
same = caffe_pb2.NetParameter(name="x")
same.layer.add(name="a", bottom=["b", "b"])
def as_caffe(s):
    return s.replace("message_type", "layer").replace("reserved_name", "bottom")
for options in ({}, {"as_one_line": True}, {"indent": 3}):
    assert as_caffe(text_format.MessageToString(real, **options)) == \
        text_format.MessageToString(same, **options), options
for options in ({}, {"as_one_line": True}):
    a, b = io.StringIO(), io.StringIO()
    text_format.PrintMessage(real, a, **options)
    text_format.PrintMessage(same, b, **options)
    assert as_caffe(a.getvalue()) == b.getvalue(), options

# protobuf's own messages: its functions, unchanged
for name in ("Merge", "Parse"):
    mine, theirs = descriptor_pb2.FileDescriptorProto(), descriptor_pb2.FileDescriptorProto()
    getattr(text_format, name)('name: "f" package: "p"', mine)
    originals[name]('name: "f" package: "p"', theirs)
    assert mine == theirs and mine.package == "p"
assert text_format.MessageToString(real) == originals["MessageToString"](real)
assert getattr(text_format.Merge, "_caffe_pb2_original") is originals["Merge"]
try:
    text_format.Merge("name: 'f' bogus: 1", descriptor_pb2.FileDescriptorProto())
except text_format.ParseError as err:
    assert "bogus" in str(err)
else:
    raise AssertionError("protobuf accepted an unknown field")

# the project's errors: protobuf's ParseError too, naming line and column
from reproduce.caffe.errors import CaffeFormatError
try:
    text_format.Merge('name: "x"\nbogus: 1', caffe_pb2.NetParameter())
except text_format.ParseError as err:
    assert isinstance(err, CaffeFormatError) and ":2:" in str(err), err
else:
    raise AssertionError("no parse error")
for call in (lambda: text_format.MessageToString(net, pointy_brackets=True),
             lambda: text_format.Merge("name: 'y'", caffe_pb2.NetParameter(), allow_unknown_field=True)):
    try:
        call()
    except ValueError as err:
        assert "not supported for caffe_pb2" in str(err)
    else:
        raise AssertionError("an option was ignored")
print("ok")
'''


def test_protobuf_text_format_takes_caffe_pb2_messages(tmp_path):
    pytest.importorskip("google.protobuf.text_format")
    (tmp_path / "net.prototxt").write_text('name: "x"\nlayer { name: "a" type: "ReLU" '
                                           'bottom: "b" top: "b" }\n')
    run = _run_with_shim(TEXT_FORMAT_SCRIPT, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "ok"


def test_without_protobuf_import_caffe_registers_a_minimal_text_format(tmp_path):
    code = r'''
    import sys
    class NoProtobuf:
        def find_spec(self, name, path=None, target=None):
            if name == "google.protobuf" or name.startswith("google.protobuf."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoProtobuf())
    try:
        from google.protobuf import text_format
    except ImportError:
        pass
    else:
        raise AssertionError("protobuf still importable")
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    import reproduce.pycaffe.proto.text_format as port
    assert text_format is port
    net = text_format.Merge('name: "x" layer { name: "a" }', caffe_pb2.NetParameter())
    assert net.layer[0].name == "a" and text_format.MessageToString(net).startswith('name: "x"')
    try:
        text_format.MessageToString(object())
    except TypeError as err:
        assert "caffe_pb2" in str(err)
    else:
        raise AssertionError("a foreign message was accepted")
    print("ok")
    '''
    run = _run_with_shim(code, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "ok"


# ------------------------------------------------------------------------------ MemoryData
MEMORY_NET = """name: 'memory'
layer { name: 'data' type: 'MemoryData' top: 'data' top: 'label'
  memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 6 weight_filler { type: 'gaussian' std: 1 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
layer { name: 'acc' type: 'Accuracy' bottom: 'ip' bottom: 'label' top: 'acc' }
"""


def _arrays(n: int):
    data = np.arange(n * 60, dtype=np.float32).reshape(n, 3, 4, 5) / 100
    labels = (np.arange(n) % 6).astype(np.float32)
    return data, labels


def test_memory_data_serves_batches_cycling(tmp_path):
    net = caffe.Net(write(tmp_path, "memory.prototxt", MEMORY_NET), caffe.TRAIN)
    assert net.inputs == [] and "MemoryData" in caffe.layer_type_list()
    assert net.blobs["data"].shape == (2, 3, 4, 5) and net.blobs["label"].shape == (2,)
    assert net._layer_names[:2] == ["data", "label_data_1_split"]   # label read twice: a split
    with pytest.raises(ValueError, match="'data' .*MemoryData.*initialized by calling Reset"):
        net.forward()
    data, labels = _arrays(6)
    net.set_input_arrays(data, labels)                    # 1-d labels: made N×1×1×1 (pycaffe.py)
    seen = []
    for k in range(4):
        net.forward()
        start = 2 * (k % 3)
        np.testing.assert_array_equal(net.blobs["data"].data, data[start:start + 2])
        np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[start:start + 2])
        assert net.blobs["label"].shape == (2, 1, 1, 1)     # Forward_cpu's Reshape
        seen.append(float(net.blobs["loss"].data))
    assert seen[3] == seen[0] and seen[1] != seen[0]
    # the arrays are kept, not copied: the data blob is a view of them (set_cpu_data)
    assert np.shares_memory(net.blobs["data"].data, data)
    data[2:4] += 1.0
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[2:4])
    net.backward()                                       # nothing below the data layer
    assert net.params["ip"][0].diff.any()
    net.reshape()                                        # a data layer's Reshape does nothing
    assert net.blobs["label"].shape == (2, 1, 1, 1)
    assert np.shares_memory(net.blobs["data"].data, data)


def test_set_input_arrays_checks_as_pycaffe(tmp_path):
    net = caffe.Net(write(tmp_path, "memory.prototxt", MEMORY_NET), caffe.TRAIN)
    data, labels = _arrays(4)
    labels4 = labels.reshape(4, 1, 1, 1)
    cases = [
        (np.asfortranarray(data), labels4, "data array must be C contiguous"),
        (data[0], labels4, "data array must be 4-d"),
        (data.astype(np.float64), labels4, "data array must be float32"),
        (np.zeros((4, 2, 4, 5), np.float32), labels4, "data array has wrong number of channels"),
        (np.zeros((4, 3, 5, 5), np.float32), labels4, "data array has wrong height"),
        (np.zeros((4, 3, 4, 6), np.float32), labels4, "data array has wrong width"),
        (data, labels.reshape(4, 1, 1), "labels array must be 4-d"),
        (data, labels.astype(np.int64), "labels array must be float32"),
        (data, labels.reshape(2, 2, 1, 1), "labels array has wrong number of channels"),
        (data, labels[:2], "data and labels must have the same first dimension"),
        (data[:3], labels[:3], "first dimensions of input arrays must be a multiple of batch size"),
    ]
    for d, lab, message in cases:
        with pytest.raises(RuntimeError, match=message):
            net.set_input_arrays(d, lab)
    with pytest.raises(TypeError, match="data array must be a numpy array"):
        net.set_input_arrays(data.tolist(), labels)
    plain = caffe.Net(write(tmp_path, "plain.prototxt", """
        layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 } } }"""),
        caffe.TEST)
    with pytest.raises(RuntimeError, match="first layer is a MemoryDataLayer"):
        plain.set_input_arrays(data, labels)


def test_memory_data_in_the_project_net_and_its_files(tmp_path):
    from reproduce.caffe import text

    path = write(tmp_path, "memory.prototxt", MEMORY_NET)
    net = ReproNet(path, phase="train")
    with pytest.raises(ValueError, match="layer 'data' \\(MemoryData\\): MemoryDataLayer needs "
                                         "to be initialized by calling Reset"):
        net.forward()
    data, labels = _arrays(2)
    net.layer("data").reset(torch.from_numpy(data), torch.from_numpy(labels))
    out = net.forward()
    assert set(out) == {"acc", "loss"} and net.blobs["label"].shape == (2, 1, 1, 1)
    torch.testing.assert_close(net.blobs["data"], torch.from_numpy(data))
    with pytest.raises(ValueError, match="n must be a multiple of batch size"):
        net.layer("data").reset(torch.zeros(3, 3, 4, 5), torch.zeros(3))
    bad = MEMORY_NET.replace("batch_size: 2 ", "")
    with pytest.raises(ValueError, match="must be specified and positive in memory_data_param"):
        ReproNet(write(tmp_path, "bad.prototxt", bad))
    # the schema, the prototxt writer and Net.save know memory_data_param
    parsed = text.parse(text.emit(text.read(path)))
    assert parsed.layer[0].memory_data_param.width == 5
    saved = tmp_path / "memory.caffemodel"
    caffe.Net(path, caffe.TEST).save(str(saved))
    layer = wire.decode(saved.read_bytes(), "NetParameter").layer[0]
    assert layer.type == "MemoryData" and layer.memory_data_param.batch_size == 2
