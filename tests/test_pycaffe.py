"""pycaffe on PyTorch (``reproduce.pycaffe``, ``import caffe``), in the spirit of pycaffe's own
python tests (test_net, test_python_layer, test_python_layer_with_param_str, test_solver,
test_net_spec, test_coord_map, test_io), written here, plus the golden fixtures of the real
Caffe driven through the shim: forward blobs, reshaped forward, backward diffs and solver steps.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import reproduce.pycaffe as caffe
from conftest import PROJECT_ROOT, VOC_NETS
from golden_compare import assert_all_close, npz_group, relative_error
from reproduce.net import Net as ReproNet
from reproduce.pycaffe.blob import Blob

SIMPLE_NET = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 }
    data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 }
    bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 2.5 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""

LAYERS_MODULE = "pycaffe_test_layers"
LAYERS_SOURCE = '''
import numpy as np
import caffe


class TimesTen(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class Squares(caffe.Layer):
    """y = x**2 with its true gradient."""
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 2

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 2 * bottom[0].data * top[0].diff


class NoBackward(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data + 1


class Raises(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("setup refused")


class WithParameter(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class Phase(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class ParamStr(caffe.Layer):
    """Scales by a value it reads from its param_str (its own business, as in Caffe)."""
    def setup(self, bottom, top):
        self.seen = self.param_str
        first = self.param_str.split(",")[0]
        self.value = float(first.split("=")[1]) if "=" in first else 0.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff


class Counter(caffe.Layer):
    """A data layer: two tops, a new sample per forward, reshaping the net as voc_layers do."""
    def setup(self, bottom, top):
        if len(top) != 2 or bottom:
            raise Exception("two tops, no bottoms")
        self.i = 0

    def reshape(self, bottom, top):
        self.size = 4 + self.i % 3
        top[0].reshape(1, 3, self.size, self.size)
        top[1].reshape(1, 1, self.size, self.size)

    def forward(self, bottom, top):
        top[0].data[...] = np.arange(3 * self.size ** 2).reshape(1, 3, self.size, self.size) + self.i
        top[1].data[...] = self.i % 2
        self.i += 1
'''


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def layers_module(tmp_path, monkeypatch):
    """The Python layer module above, on sys.path (fresh for every test)."""
    folder = tmp_path / "pylayers"
    folder.mkdir()
    (folder / f"{LAYERS_MODULE}.py").write_text(LAYERS_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(sys.modules, "caffe", caffe)
    sys.modules.pop(LAYERS_MODULE, None)
    yield folder
    sys.modules.pop(LAYERS_MODULE, None)


@pytest.fixture
def simple_net(tmp_path):
    caffe.set_random_seed(1701)
    net = caffe.Net(write(tmp_path, "simple.prototxt", SIMPLE_NET), caffe.TRAIN)
    net.blobs["label"].data[...] = np.random.default_rng(0).integers(13, size=net.blobs["label"].data.shape)
    return net


def python_net(tmp_path, chain, *, extra="", force_backward=True, shape=(10, 9, 8)):
    layers = "".join(
        f"layer {{ type: 'Python' name: '{name}' bottom: '{bottom}' top: '{name}' "
        f"python_param {{ module: '{LAYERS_MODULE}' layer: '{cls}' {params} }} }}\n"
        for name, bottom, cls, params in chain)
    dims = " ".join(f"dim: {d}" for d in shape)
    text = (f"name: 'pythonnet' force_backward: {'true' if force_backward else 'false'}\n"
            f"input: 'data' input_shape {{ {dims} }}\n{layers}{extra}")
    return write(tmp_path, "python.prototxt", text)


# ------------------------------------------------------------------------------ test_net
def test_names_and_structure(simple_net):
    net = simple_net
    assert net._layer_names == ["data", "conv", "ip", "loss"]
    assert list(net.layer_dict) == net._layer_names
    assert [layer.type for layer in net.layers] == ["DummyData", "Convolution", "InnerProduct",
                                                     "SoftmaxWithLoss"]
    assert net.inputs == [] and net.outputs == ["loss"]
    assert net.top_names == OrderedDict([("data", ["data", "label"]), ("conv", ["conv"]),
                                         ("ip", ["ip_blob"]), ("loss", ["loss"])])
    assert net.bottom_names == OrderedDict([("data", []), ("conv", ["data"]), ("ip", ["conv"]),
                                            ("loss", ["ip_blob", "label"])])
    assert list(net.blobs) == ["data", "label", "conv", "ip_blob", "loss"]
    assert net.blob_loss_weights == OrderedDict([("data", 0.0), ("label", 0.0), ("conv", 0.0),
                                                 ("ip_blob", 0.0), ("loss", 1.0)])
    assert list(net.params) == ["conv", "ip"]
    conv = net.params["conv"][0]
    assert conv.shape == (11, 2, 2, 2) and conv.count == 88
    assert (conv.num, conv.channels, conv.height, conv.width) == (11, 2, 2, 2)
    ip_bias = net.params["ip"][1]
    assert ip_bias.shape == (13,) and (ip_bias.num, ip_bias.channels, ip_bias.width) == (13, 1, 1)
    assert net.blobs["conv"].shape == (5, 11, 8, 9)     # from the shapes, before any forward


def test_arrays_are_the_tensors(simple_net):
    net = simple_net
    weight = net.net.params["conv"][0]
    assert np.shares_memory(net.params["conv"][0].data, weight.detach().numpy())
    net.params["conv"][1].data[...] = 0.5
    assert torch.all(net.net.params["conv"][1] == 0.5)
    # a kept array is the blob: what is written into it is what the next forward reads
    label = net.blobs["label"].data
    label[...] = 3
    net.forward()
    torch.testing.assert_close(net.net.layer("data").kept1, torch.full((5, 1, 1, 1), 3.0))


def test_forward_matches_the_project_net(simple_net):
    net = simple_net
    out = net.forward()
    data = net.blobs["data"].data.copy()
    label = net.blobs["label"].data.copy()
    # the same layers on the same inputs, through the project's autograd path
    inner = net.net
    conv = inner.layer("conv")(torch.from_numpy(data))[0]
    ip = inner.layer("ip")(conv)[0]
    loss = inner.layer("loss")(ip, torch.from_numpy(label))[0]
    # (the shim runs the constant-band path, the modules here convolve every pixel: float32
    # summation order differs, so compare relative to the largest magnitude)
    assert relative_error(out["loss"], loss.detach().numpy()) <= 1e-6
    assert relative_error(net.blobs["ip_blob"].data, ip.detach().numpy()) <= 1e-6


def test_forward_start_end(simple_net):
    net = simple_net
    conv = net.blobs["conv"]
    sample = np.random.default_rng(1).uniform(size=conv.data.shape).astype(np.float32)
    conv.data[:] = sample
    out = net.forward(start="ip", end="ip")
    assert set(out) == {"ip_blob"}
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    manual = np.stack([w @ sample[i].reshape(-1) + b for i in range(sample.shape[0])])
    assert relative_error(net.blobs["ip_blob"].data, manual) <= 1e-6


def test_backward_start_end(simple_net):
    net = simple_net
    ip = net.blobs["ip_blob"]
    sample = np.random.default_rng(2).uniform(size=ip.data.shape).astype(np.float32)
    ip.diff[:] = sample
    out = net.backward(start="ip", end="ip")
    assert "conv" in out
    w = net.params["ip"][0].data
    manual = np.stack([w.T @ sample[i] for i in range(sample.shape[0])])
    assert relative_error(net.blobs["conv"].diff, manual.reshape(net.blobs["conv"].shape)) <= 1e-6


def test_backward_equals_autograd_and_diffs_accumulate(simple_net):
    net = simple_net
    net.forward()
    net.backward()
    first = net.params["conv"][0].diff.copy()
    assert np.abs(first).max() > 0
    # the whole net by the project's autograd: the same gradients
    inner = net.net
    data = torch.from_numpy(net.blobs["data"].data.copy()).requires_grad_(True)
    conv = inner.layer("conv")(data)[0]
    ip = inner.layer("ip")(conv)[0]
    loss = inner.layer("loss")(ip, torch.from_numpy(net.blobs["label"].data.copy()))[0].sum()
    weight_grad, data_grad = torch.autograd.grad(loss, [inner.params["conv"][0], data])
    np.testing.assert_allclose(first, weight_grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.blobs["data"].diff, data_grad.numpy(), rtol=1e-5, atol=1e-7)
    held = net.params["conv"][0].diff
    net.backward()   # parameter diffs add up until cleared, as Caffe's
    np.testing.assert_allclose(held, 2 * first, rtol=1e-6)
    net.clear_param_diffs()
    assert not held.any()   # zeroed in place: the array kept is the diff


def test_constructors_and_saving(simple_net, tmp_path):
    prototxt = write(tmp_path, "simple.prototxt", SIMPLE_NET)
    binary, hdf5 = str(tmp_path / "w.caffemodel"), str(tmp_path / "w.h5")
    simple_net.save(binary)
    simple_net.save_hdf5(hdf5)
    nets = [caffe.Net(prototxt, binary, caffe.TRAIN), caffe.Net(prototxt, caffe.TRAIN, weights=binary),
            caffe.Net(prototxt, phase=caffe.TEST, weights=binary)]
    loaded = caffe.Net(prototxt, caffe.TRAIN)
    loaded.load_hdf5(hdf5)
    nets.append(loaded)
    for net in nets:
        for name, blobs in simple_net.params.items():
            for i, blob in enumerate(blobs):
                np.testing.assert_array_equal(net.params[name][i].data, blob.data)
    assert nets[2].phase == caffe.TEST
    with pytest.raises(FileNotFoundError, match="nope.prototxt"):
        caffe.Net(str(tmp_path / "nope.prototxt"), caffe.TEST)
    with pytest.raises(ValueError, match="phase"):
        caffe.Net(prototxt, 7)
    with pytest.raises(TypeError, match="needs a phase"):
        caffe.Net(prototxt)


def test_levels_and_stages(tmp_path):
    text = """
    layer { name: "data" type: "DummyData" top: "data"
            dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
    layer { name: "A" type: "InnerProduct" bottom: "data" top: "A" include { stage: "A" }
            inner_product_param { num_output: 1 } }
    layer { name: "L1" type: "InnerProduct" bottom: "data" top: "L1" include { min_level: 1 }
            inner_product_param { num_output: 1 } }
    layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB"
            include { stage: "A" stage: "B" } inner_product_param { num_output: 1 } }
    """
    path = write(tmp_path, "levels.prototxt", text)
    assert list(caffe.Net(path, caffe.TEST).blobs) == ["data"]
    # "data" feeds two kept layers: Caffe's split of it comes first (pycaffe's own test_net
    # leaves the blobs naming "data" out for that reason)
    split = ["data_data_0_split_0", "data_data_0_split_1"]
    assert list(caffe.Net(path, caffe.TEST, level=1, stages=["A"]).blobs) == ["data", *split, "A", "L1"]
    assert list(caffe.Net(path, caffe.TEST, stages=["A", "B"]).blobs) == ["data", *split, "A", "AandB"]


def test_memory_outlives_the_net(simple_net):
    params = sum((list(blobs) for blobs in simple_net.params.values()), [])
    blobs = list(simple_net.blobs.values())
    del simple_net
    total = sum(float(p.data.sum() + p.diff.sum()) for p in params + blobs)
    assert np.isfinite(total)


# ------------------------------------------------------------------------------ golden, via the shim
@pytest.mark.golden
@pytest.mark.parametrize("name", ["voc-fcn32s", "voc-fcn8s"])
def test_golden_forward_and_reshape(golden, name):
    folder = golden / name
    net = caffe.Net(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"), caffe.TEST)
    for size in ("64x80", "37x53"):
        reference = np.load(folder / f"forward_{size}.npz")
        blobs = npz_group(reference, "blob/")
        net.blobs["data"].reshape(*blobs["data"].shape)     # re-planned on forward, as Caffe
        net.blobs["data"].data[...] = blobs["data"]
        out = net.forward()
        assert set(out) == set(net.outputs)
        got = {b: net.blobs[b].data for b in blobs}
        assert all(a.flags["C_CONTIGUOUS"] for a in got.values())
        assert_all_close(got, blobs, 1e-5, f"{name} {size} through pycaffe")
    # reshape() propagates shapes without computing: what a forward at that size gives
    shapes = {b: blob.shape for b, blob in net.blobs.items()}
    net.blobs["data"].reshape(1, 3, 64, 80)
    net.reshape()
    reference = npz_group(np.load(folder / "forward_64x80.npz"), "blob/")
    assert {b: net.blobs[b].shape for b in reference} == {b: a.shape for b, a in reference.items()}
    assert shapes["score"] != net.blobs["score"].shape


@pytest.mark.golden
@pytest.mark.parametrize("name", ["voc-fcn16s", "voc-fcn8s-atonce"])
def test_golden_backward_through_the_shim(golden, name):
    """Layer-by-layer backward: every parameter diff within 1e-4 of Caffe's (skip branches and
    the blob read by the crops included, whose diffs Caffe's splits sum)."""
    folder = golden / name
    net = caffe.Net(str(folder / "train.prototxt"), caffe.TRAIN, weights=str(folder / "weights.caffemodel"))
    reference = np.load(folder / "backward_64x80.npz")
    for top, value in npz_group(reference, "input/").items():
        net.blobs[top].data[...] = value
    net.forward()
    net.backward()
    assert relative_error(net.blobs["loss"].data, reference["loss/loss"]) <= 1e-4
    expected = npz_group(reference, "diff/")
    got = {key: net.params[key.rsplit("/", 1)[0]][int(key.rsplit("/", 1)[1])].diff
           for key in expected}
    assert_all_close(got, expected, 1e-4, f"{name} pycaffe backward")
    assert not net.blobs["data"].diff.any()   # no force_backward: no input diff, as Caffe


@pytest.mark.golden
def test_golden_solver_steps_through_the_shim(golden, monkeypatch):
    folder = golden / "voc-fcn8s"
    monkeypatch.chdir(folder)          # Caffe takes the prototxt's relative paths from the cwd
    solver = caffe.SGDSolver("solver.prototxt")
    solver.net.copy_from("weights.caffemodel")
    steps = np.load(folder / "solver_steps.npz")
    for k in range(3):
        for top, value in npz_group(steps, f"step{k}/input/").items():
            solver.net.blobs[top].data[...] = value
        solver.step(1)
        assert solver.iter == k + 1
        got = {f"{layer}/{i}": blob.data for layer, blobs in solver.net.params.items()
               for i, blob in enumerate(blobs)}
        assert_all_close(got, npz_group(steps, f"step{k}/param/"), 1e-5, f"step {k}")


# ------------------------------------------------------------------------------ the host-copy path
def test_host_copies_are_written_back(simple_net, monkeypatch):
    """A net on another device hands out copies, written back before each call (run here on
    the CPU with the copy path forced)."""
    net = simple_net
    net.forward()                   # (DummyData redraws "data" each forward: start after it)
    expected = net.forward(start="ip")["loss"].copy()
    monkeypatch.setattr(Blob, "always_copy", True)
    weight = net.params["ip"][1].data
    assert not np.shares_memory(weight, net.net.params["ip"][1].detach().numpy())
    weight[0] += 100.0              # a write into the copy reaches the parameter on the next call
    changed = net.forward(start="ip")["loss"]
    assert changed != expected
    np.testing.assert_allclose(net.net.params["ip"][1].detach().numpy(), weight)
    net.params["ip"][1].data[0] -= 100.0
    assert net.forward(start="ip")["loss"] == expected
    net.blobs["ip_blob"].diff[...] = 1      # diffs too: written back before backward reads them
    net.backward(start="ip")
    np.testing.assert_allclose(net.params["ip"][1].diff, np.full(13, 5.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_net_copies_in_and_out(tmp_path):
    caffe.set_mode_gpu()
    try:
        net = caffe.Net(write(tmp_path, "simple.prototxt", SIMPLE_NET), caffe.TRAIN)
    finally:
        caffe.set_mode_cpu()
    assert net.net.params["conv"][0].device.type == "cuda"
    net.blobs["label"].data[...] = 1
    net.params["conv"][1].data[...] = 0.25
    net.forward()
    net.backward()
    assert torch.all(net.net.params["conv"][1] == 0.25)
    assert np.isfinite(net.blobs["loss"].data).all() and np.abs(net.params["conv"][0].diff).max() > 0


# ------------------------------------------------------------------------------ Python layers
def test_python_layers_forward_backward_reshape(layers_module, tmp_path):
    chain = [("one", "data", "TimesTen", ""), ("two", "one", "TimesTen", ""),
             ("three", "two", "TimesTen", "")]
    net = caffe.Net(python_net(tmp_path, chain), caffe.TRAIN)
    assert [layer.type for layer in net.layers] == ["Input", "Python", "Python", "Python"]
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.all(net.blobs["three"].data == 8000)
    net.blobs["three"].diff[...] = 7
    net.backward()
    assert np.all(net.blobs["data"].diff == 7000)
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    assert all(blob.shape == (4, 4, 4, 4) for blob in net.blobs.values())


def test_python_layer_gradient_feeds_autograd(layers_module, tmp_path):
    """A Python layer between built-in ones: the shim's backward and the project Net's
    autograd (through the layer's own numpy backward) agree with the analytic gradient."""
    # loss = Σ ip² through Power (the analytic gradient below is this loss's)
    extra = """
    layer { type: 'InnerProduct' name: 'ip' bottom: 'sq' top: 'ip'
      inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 } } }
    layer { type: 'Power' name: 'pw' bottom: 'ip' top: 'loss' loss_weight: 1
      power_param { power: 2 } }
    """
    chain = [("sq", "data", "Squares", "")]
    net = caffe.Net(python_net(tmp_path, chain, extra=extra, shape=(2, 5)), caffe.TRAIN)
    x = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward()
    net.backward()
    w = net.params["ip"][0].data.astype(np.float64)
    ip = (x.astype(np.float64) ** 2) @ w.T
    analytic = (2 * ip @ w) * 2 * x
    np.testing.assert_allclose(net.blobs["data"].diff, analytic, rtol=1e-5, atol=1e-6)
    # the same Python layer inside the plain reproduce Net, by autograd
    inner = net.net
    inner.forward(data=x)
    inner.loss.backward()
    np.testing.assert_allclose(inner.input_diff("data").numpy(), analytic, rtol=1e-5, atol=1e-6)


def test_python_layer_without_backward_stops_gradients(layers_module, tmp_path):
    chain = [("plus", "data", "NoBackward", ""), ("ten", "plus", "TimesTen", "")]
    net = caffe.Net(python_net(tmp_path, chain), caffe.TRAIN)
    net.blobs["data"].data[...] = 1
    net.forward()
    assert np.all(net.blobs["ten"].data == 20)
    net.blobs["ten"].diff[...] = 1
    net.backward()
    assert np.all(net.blobs["plus"].diff == 10) and not net.blobs["data"].diff.any()


def test_python_layer_exception_parameter_phase(layers_module, tmp_path):
    with pytest.raises(RuntimeError, match="setup refused"):
        caffe.Net(python_net(tmp_path, [("bad", "data", "Raises", "")]), caffe.TEST)
    path = python_net(tmp_path, [("layer", "data", "WithParameter", "")])
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[net._layer_names.index("layer")]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    saved = str(tmp_path / "p.caffemodel")
    net.save(saved)
    layer.blobs[0].data[0] = -1
    net.copy_from(saved)
    assert layer.blobs[0].data[0] == 1
    other = caffe.Net(path, caffe.TRAIN)
    other.share_with(net)
    assert other.layer_dict["layer"].blobs[0].data[0] == 1
    phase = write(tmp_path, "phase.prototxt", f"""name: 'p'
        layer {{ type: 'Python' name: 'layer' top: 'phase'
          python_param {{ module: '{LAYERS_MODULE}' layer: 'Phase' }} }}""")
    for value in (caffe.TRAIN, caffe.TEST):
        assert caffe.Net(phase, value).forward()["phase"] == value


def test_python_layer_param_str(layers_module, tmp_path):
    text = "value=2.5, __import__('os').system('exit 1')"
    chain = [("scaled", "data", "ParamStr", f'param_str: "{text}"')]
    net = caffe.Net(python_net(tmp_path, chain), caffe.TRAIN)
    layer = net.layer_dict["scaled"]
    assert layer.param_str == layer.seen == text     # the string as written, not evaluated
    net.blobs["data"].data[...] = 2
    net.forward()
    assert np.all(net.blobs["scaled"].data == 5.0)
    net.blobs["scaled"].diff[...] = 1
    net.backward()
    assert np.all(net.blobs["data"].diff == 2.5)
    empty = caffe.Net(python_net(tmp_path, [("scaled", "data", "ParamStr", "")]), caffe.TEST)
    assert empty.layer_dict["scaled"].param_str == ""


def test_python_data_layer_trains(layers_module, tmp_path):
    """A bottomless Python layer feeds a net that reshapes every forward, through a solver."""
    net_text = f"""name: 'data'
    layer {{ type: 'Python' name: 'data' top: 'data' top: 'label'
      python_param {{ module: '{LAYERS_MODULE}' layer: 'Counter' }} }}
    layer {{ type: 'Convolution' name: 'score' bottom: 'data' top: 'score'
      convolution_param {{ num_output: 2 kernel_size: 1 weight_filler {{ type: 'gaussian' std: 0.01 }} }} }}
    layer {{ type: 'SoftmaxWithLoss' name: 'loss' bottom: 'score' bottom: 'label' top: 'loss' }}
    """
    write(tmp_path, "train.prototxt", net_text)
    write(tmp_path, "solver.prototxt", """train_net: "train.prototxt"
        base_lr: 0.001 lr_policy: "fixed" momentum: 0.9 display: 0 snapshot_after_train: false
        random_seed: 5""")
    os.chdir(tmp_path)
    solver = caffe.SGDSolver("solver.prototxt")
    before = solver.net.params["score"][0].data.copy()
    sizes = []
    solver.add_callback(lambda: None, lambda: sizes.append(solver.net.blobs["data"].shape[-1]))
    solver.step(4)
    assert sizes == [4, 5, 6, 4]                     # one new sample per iteration
    assert solver.net.layer_dict["data"].i == 4
    assert not np.array_equal(before, solver.net.params["score"][0].data)


def test_project_commands_refuse_python_layers(tmp_path):
    """Only this API imports what a net names: the project's Net and commands do not."""
    folder = tmp_path / "mods"
    folder.mkdir()
    sentinel = tmp_path / "imported"
    (folder / "tripwire.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n"
                                        "class Layer: pass\n")
    prototxt = write(tmp_path, "t.prototxt", """name: 't'
        input: 'data' input_shape { dim: 1 dim: 1 dim: 2 dim: 2 }
        layer { type: 'Python' name: 'p' bottom: 'data' top: 'p'
          python_param { module: 'tripwire' layer: 'Layer' } }""")
    np.savez(tmp_path / "x.npz", data=np.zeros((1, 1, 2, 2), np.float32))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(PROJECT_ROOT)]))
    run = subprocess.run([sys.executable, "-m", "reproduce", "forward", "--prototxt", prototxt,
                          "--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "register_python_layer" in run.stderr
    assert not sentinel.exists()
    with pytest.raises(Exception, match="register_python_layer"):
        ReproNet(prototxt)
    assert not sentinel.exists()


# ------------------------------------------------------------------------------ solvers
def _solver_file(tmp_path, net_path, extra=""):
    return write(tmp_path, "solver.prototxt", f"""net: '{net_path}'
        test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9
        weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
        display: 100 max_iter: 30 snapshot_after_train: false
        snapshot_prefix: "{tmp_path / 'model'}" {extra}""")


def test_solver_solve_update_snapshot_restore(tmp_path):
    net_path = write(tmp_path, "simple.prototxt", SIMPLE_NET)
    solver = caffe.SGDSolver(_solver_file(tmp_path, net_path))
    assert caffe.get_solver(_solver_file(tmp_path, net_path)).type == "SGD"
    assert len(solver.test_nets) == 1 and solver.test_nets[0].phase == caffe.TEST
    assert solver.test_nets[0].params["conv"][0].data.ctypes.data == \
        solver.net.params["conv"][0].data.ctypes.data        # the test net shares the weights
    rng = np.random.default_rng(4)
    for net in [solver.net] + solver.test_nets:
        net.blobs["label"].data[...] = rng.integers(13, size=net.blobs["label"].shape)
    # ApplyUpdate from the diffs the net holds, at iteration 0: -lr where the weights were 0
    data = solver.net.layers[1].blobs[0].data
    data[...] = 0
    solver.net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()
    np.testing.assert_allclose(data, -0.01, rtol=1e-6)
    assert solver.iter == 0
    solver.step(10)
    assert solver.iter == 10
    solver.snapshot()
    for suffix in (".caffemodel", ".solverstate", ".solverstate.pt"):
        assert (tmp_path / f"model_iter_10{suffix}").is_file()
    after_10 = solver.net.params["ip"][0].data.copy()
    solver.step(5)
    continued = solver.net.params["ip"][0].data.copy()
    # the project's state: the identical continuation (the generators' states included)
    solver.restore(str(tmp_path / "model_iter_10.solverstate.pt"))
    assert solver.iter == 10
    np.testing.assert_array_equal(solver.net.params["ip"][0].data, after_10)
    history = [h.clone() for h in solver._engine.rule.state_dict()["history"]]
    solver.step(5)
    np.testing.assert_array_equal(solver.net.params["ip"][0].data, continued)
    # Caffe's .solverstate: iteration, weights and momentum history as Caffe restores them
    solver.restore(str(tmp_path / "model_iter_10.solverstate"))
    assert solver.iter == 10
    np.testing.assert_array_equal(solver.net.params["ip"][0].data, after_10)
    restored = solver._engine.rule.state_dict()["history"]
    assert len(restored) == len(history) == 4 and any(h.abs().max() > 0 for h in history)
    for mine, saved in zip(restored, history):
        torch.testing.assert_close(mine, saved, rtol=0, atol=0)
    solver.solve()
    assert solver.iter == 30


INPUT_NET = SIMPLE_NET.replace("""layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 }
    data_filler { type: 'constant' } } }""", """layer { type: 'Input' name: 'data' top: 'data' top: 'label'
  input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 dim: 1 dim: 1 dim: 1 } } }""")


def test_solver_classes_pick_their_rule(tmp_path):
    from reproduce.solver import SGDSolver as ProjectSolver

    net_path = write(tmp_path, "input.prototxt", INPUT_NET)
    path = write(tmp_path, "s.prototxt", f"""train_net: '{net_path}' type: "SGD" random_seed: 3
        base_lr: 0.01 momentum: 0.9 lr_policy: "fixed" display: 0 snapshot_after_train: false""")
    for cls, rule in ((caffe.SGDSolver, "SGD"), (caffe.NesterovSolver, "Nesterov"),
                      (caffe.AdamSolver, "Adam")):
        assert cls(path).type == rule
    rms = write(tmp_path, "r.prototxt", f"""train_net: '{net_path}' type: "RMSProp" rms_decay: 0.9
        base_lr: 0.01 lr_policy: "fixed" display: 0""")
    assert caffe.get_solver(rms).type == "RMSProp"
    # the numbers are the project's solver's: the same trajectory from the same seed and data
    ours = caffe.NesterovSolver(path)
    reference = ProjectSolver(ours._engine.param.copy())
    rng = np.random.default_rng(8)
    for _ in range(3):
        feed = {"data": rng.normal(size=(5, 2, 3, 4)).astype(np.float32),
                "label": rng.integers(13, size=(5, 1, 1, 1)).astype(np.float32)}
        for name, value in feed.items():
            ours.net.blobs[name].data[...] = value
        ours.step(1)
        reference.step(1, feed=feed)
    for name, blobs in ours.net.params.items():
        for i, blob in enumerate(blobs):
            assert relative_error(blob.data, reference.net.params[name][i].detach().numpy()) <= 1e-6
    assert relative_error(ours.net.params["ip"][0].data, ours._engine.net.inner.params["ip"][0]
                          .detach().numpy()) == 0


# ------------------------------------------------------------------------------ io
def test_io_protos_and_datums():
    a = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(a, diff=2 * a)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), a)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), 2 * a)
    legacy = caffe.proto.caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3)
    legacy.data.extend(range(6))
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    arrays = [a, a[0]]
    back = caffe.io.blobprotovector_str_to_arraylist(caffe.io.arraylist_to_blobprotovector_str(arrays))
    assert [x.shape for x in back] == [(2, 3, 4), (3, 4)]
    np.testing.assert_array_equal(back[1], a[0])
    u8 = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(u8, label=7)
    assert datum.label == 7 and isinstance(datum.data, bytes) and not datum.float_data
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), u8)
    datum = caffe.io.array_to_datum(a)
    parsed = caffe.proto.caffe_pb2.Datum()
    parsed.ParseFromString(datum.SerializeToString())
    np.testing.assert_allclose(caffe.io.datum_to_array(parsed), a, rtol=1e-6)
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(a[0])


def test_io_transformer_and_images(tmp_path):
    from PIL import Image

    t = caffe.io.Transformer({"data": (1, 3, 6, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.5)
    image = np.random.default_rng(6).uniform(size=(6, 5, 3)).astype(np.float32)
    x = t.preprocess("data", image)
    assert x.shape == (3, 6, 5)
    np.testing.assert_allclose(x[0], (image[:, :, 2] * 255 - 104) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", x), image, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        t.set_channel_swap("data", (1, 0))
    # load_image: RGB in [0, 1]; grey images repeated; color=False keeps one channel
    rgb = (np.random.default_rng(7).uniform(size=(4, 6, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "g.png")
    np.testing.assert_allclose(caffe.io.load_image(str(tmp_path / "c.png")), rgb / 255.0, rtol=1e-6)
    grey = caffe.io.load_image(str(tmp_path / "g.png"))
    assert grey.shape == (4, 6, 3) and np.array_equal(grey[:, :, 0], grey[:, :, 2])
    assert caffe.io.load_image(str(tmp_path / "g.png"), color=False).shape == (4, 6, 1)
    # resize: a constant stays, upsampling by 2 interpolates on the pixel-centre grid
    assert np.all(caffe.io.resize_image(np.full((3, 3, 3), 0.3, np.float32), (5, 7)) == np.float32(0.3))
    ramp = np.repeat(np.arange(4, dtype=np.float32)[None, :, None], 2, axis=0)
    up = caffe.io.resize_image(ramp, (2, 8))[0, :, 0]
    np.testing.assert_allclose(up[1:7], [0.25, 0.75, 1.25, 1.75, 2.25, 2.75], atol=1e-6)
    crops = caffe.io.oversample([image], (4, 3))
    assert crops.shape == (10, 4, 3, 3)
    np.testing.assert_array_equal(crops[0], image[:4, :3])
    np.testing.assert_array_equal(crops[5], image[:4, :3][:, ::-1])


# ------------------------------------------------------------------------------ caffe_pb2
def test_caffe_pb2_messages():
    from reproduce.caffe import text, wire

    pb2 = caffe.proto.caffe_pb2
    net = pb2.NetParameter(name="n")
    layer = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    layer.convolution_param.num_output = 4
    layer.convolution_param.kernel_size.append(3)
    layer.include.add(phase=pb2.TEST)
    assert layer.include[0].phase == pb2.TEST == caffe.TEST == 1
    assert pb2.PoolingParameter.MAX == 0 and pb2.PoolingParameter.AVE == 1
    assert layer.HasField("convolution_param") and not layer.HasField("pooling_param")
    layer.pooling_param  # reading leaves an unset message unset
    assert not layer.HasField("pooling_param")
    encoded = net.SerializeToString()
    parsed = pb2.NetParameter()
    parsed.ParseFromString(encoded)
    assert parsed == net and parsed.layer[0].convolution_param.num_output == 4
    plain = text.parse(str(net), "NetParameter")       # str() is the text format
    assert wire.encode(plain) == encoded
    solver = caffe.proto.text_format.Merge('base_lr: 0.01 lr_policy: "step" stepsize: 5',
                                           pb2.SolverParameter())
    assert solver.lr_policy == "step" and solver.stepsize == 5 and not solver.HasField("gamma")
    copy = pb2.SolverParameter()
    copy.CopyFrom(solver)
    copy.ClearField("stepsize")
    assert solver.stepsize == 5 and not copy.HasField("stepsize")
    with pytest.raises(ValueError):
        layer.include.add(phase=7)


# ------------------------------------------------------------------------------ net_spec, coord_map
def _fcn32s_spec(L, P, crop):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 80]))
    bottom = n.data
    for stage, (convs, width) in enumerate([(2, 4), (2, 8), (3, 8), (3, 16), (3, 16)], 1):
        for i in range(1, convs + 1):
            conv = L.Convolution(bottom, num_output=width, kernel_size=3,
                                 pad=100 if (stage, i) == (1, 1) else 1)
            n[f"conv{stage}_{i}"] = conv
            n[f"relu{stage}_{i}"] = bottom = L.ReLU(conv, in_place=True)
        n[f"pool{stage}"] = bottom = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.fc6 = L.Convolution(bottom, num_output=32, kernel_size=7)
    n.fc7 = L.Convolution(n.fc6, num_output=32, kernel_size=1)
    n.score_fr = L.Convolution(n.fc7, num_output=21, kernel_size=1)
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(num_output=21, kernel_size=64,
                                                                   stride=32, bias_term=False))
    n.score = crop(n.upscore, n.data)
    return n


def test_net_spec_and_coord_map_crop(tmp_path, upstream):
    """The release's voc-fcn32s geometry at the golden widths: the crop is offset 19, as the
    release's prototxt has it; the spec emits a prototxt the shim builds and runs."""
    from reproduce.caffe import read_net

    n = _fcn32s_spec(caffe.layers, caffe.params, caffe.coord_map.crop)
    proto = n.to_proto()
    assert isinstance(proto, caffe.proto.caffe_pb2.NetParameter)
    crop_layer = [layer for layer in proto.layer if layer.type == "Crop"][0]
    released = [layer for layer in read_net(upstream / "voc-fcn32s" / "train.prototxt").layer
                if layer.type == "Crop"][0]
    assert list(crop_layer.crop_param.offset) == list(released.crop_param.offset) == [19]
    assert crop_layer.crop_param.axis == released.crop_param.axis == 2
    assert proto.layer[2].type == "ReLU" and proto.layer[2].top == proto.layer[2].bottom
    path = tmp_path / "spec.prototxt"
    path.write_text(str(proto))
    net = caffe.Net(str(path), caffe.TEST)
    assert net.forward()["score"].shape == (1, 21, 64, 80)
    with pytest.raises(caffe.coord_map.CoordMapError, match="scale"):
        caffe.coord_map.crop(n.score_fr, n.data)    # 32× coarser: no translation aligns them
    top = caffe.layers.Pooling(n.data, pool=caffe.params.Pooling.AVE, kernel_size=2, ntop=1)
    assert "pool: AVE" in str(caffe.to_proto(top))


# ------------------------------------------------------------------------------ import caffe
def test_the_shim_makes_import_caffe_this_port(tmp_path):
    from reproduce.commands.pycaffe import shim_path

    code = ("import caffe, caffe.io, caffe.net_spec, caffe.coord_map\n"
            "from caffe.proto import caffe_pb2\n"
            "from caffe import layers as L, params as P\n"
            "import reproduce.pycaffe as port\n"
            "assert caffe is port and caffe.io is port.io and caffe_pb2 is port.proto.caffe_pb2\n"
            "assert L is port.layers and caffe.coord_map.crop is port.crop\n"
            "print(caffe.Net.__module__, caffe.TEST)\n")
    printed = subprocess.run([sys.executable, "-m", "reproduce", "pycaffe", "--path"],
                             env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0 and Path(printed.stdout.strip()) == shim_path()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([printed.stdout.strip(), str(PROJECT_ROOT)]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["reproduce.pycaffe.net", "1"]


# ------------------------------------------------------------------------------ the release's calls
@pytest.mark.golden
def test_surgery_through_the_shim_is_caffes_transplant(golden, tmp_path):
    """What the release's surgery.transplant and surgery.interp do, written here on pycaffe
    calls: every blob copied flat by layer name (fc6/fc7 coerced), up* bilinear; the result
    is Caffe's transplant bit for bit, and net.save writes Caffe's file byte for byte."""
    from reproduce.weights.surgery import upsample_filt

    old = caffe.Net(str(golden / "vgg16-v1" / "deploy.prototxt"),
                    str(golden / "vgg16-v1" / "weights.caffemodel"), caffe.TEST)
    new = caffe.Net(str(golden / "voc-fcn32s" / "deploy.prototxt"), caffe.TEST)
    dropped = []
    for name, blobs in old.params.items():
        if name not in new.params:
            dropped.append(name)
            continue
        for i, blob in enumerate(blobs):
            new.params[name][i].data.flat = blob.data.flat
    assert dropped == ["fc8"]
    for name in [k for k in new.params if "up" in k]:
        m, k, h, w = new.params[name][0].data.shape
        new.params[name][0].data[range(m), range(k), :, :] = upsample_filt(h)
    reference = np.load(golden / "vgg16-v1" / "fcn32s-transplanted-params.npz")
    for key in reference.files:
        _, layer, i = key.split("/")
        np.testing.assert_array_equal(new.params[layer][int(i)].data, reference[key], err_msg=key)
    saved = tmp_path / "transplanted.caffemodel"
    new.save(str(saved))
    assert saved.read_bytes() == (golden / "vgg16-v1" / "fcn32s-transplanted.caffemodel").read_bytes()


@pytest.mark.golden
def test_infer_idiom_gives_the_infer_command_label_map(golden, upstream, tmp_path):
    """infer.py's calls (reshape the data blob to the image, write it, forward, argmax of
    score) give the label map of `python -m reproduce infer --prototxt` with the same weights."""
    from PIL import Image

    from reproduce.cli import main
    from reproduce.evaluation.infer import preprocess

    folder = golden / "voc-fcn8s"
    image = Image.open(upstream / "demo" / "image.jpg")
    in_ = preprocess(image.convert("RGB"))
    net = caffe.Net(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"), caffe.TEST)
    net.blobs["data"].reshape(1, *in_.shape)
    net.blobs["data"].data[...] = in_
    net.forward()
    out = net.blobs["score"].data[0].argmax(axis=0)
    assert main(["infer", "--prototxt", str(folder / "deploy.prototxt"), "--weights",
                 str(folder / "weights.caffemodel"), str(upstream / "demo" / "image.jpg"),
                 "-o", str(tmp_path), "--quiet", "--no-overlay"]) == 0
    label_map = np.asarray(Image.open(tmp_path / "image.png"))
    assert label_map.shape == out.shape and len(np.unique(out)) > 1
    np.testing.assert_array_equal(label_map, out)


VOC_LAYER_SOURCE = '''
import ast
import random

import numpy as np
from PIL import Image

import caffe


class VOCSegDataLayer(caffe.Layer):
    """Written here after the release's voc_layers.VOCSegDataLayer: one image and label per
    forward from a VOC layout, BGR minus the mean, reshaping the net to each image."""

    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str)
        self.voc_dir, self.split = params["voc_dir"], params["split"]
        self.mean = np.array(params["mean"])
        self.random = params.get("randomize", True) and "train" in self.split
        with open(f"{self.voc_dir}/ImageSets/Segmentation/{self.split}.txt") as f:
            self.indices = f.read().splitlines()
        self.idx = 0
        if self.random:
            random.seed(params.get("seed"))
            self.idx = random.randint(0, len(self.indices) - 1)

    def reshape(self, bottom, top):
        name = self.indices[self.idx]
        image = np.array(Image.open(f"{self.voc_dir}/JPEGImages/{name}.jpg"), dtype=np.float32)
        self.data = (image[:, :, ::-1] - self.mean).transpose((2, 0, 1))
        self.label = np.array(Image.open(f"{self.voc_dir}/SegmentationClass/{name}.png"),
                              dtype=np.uint8)[np.newaxis]
        top[0].reshape(1, *self.data.shape)
        top[1].reshape(1, *self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.data
        top[1].data[...] = self.label
        if self.random:
            self.idx = random.randint(0, len(self.indices) - 1)
        else:
            self.idx = (self.idx + 1) % len(self.indices)

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_training_through_a_python_data_layer_follows_the_suite(tmp_path, monkeypatch):
    """A Python data layer written here (voc_layers' calls) feeding width-reduced FCN-32s
    trained by caffe.SGDSolver: the same parameters, bit for bit, as reproduce.solver.SGDSolver
    on the same solver, seed and data, fed by the project's own port of that layer."""
    from reproduce.caffe import text
    from reproduce.data.registry import make_data_source
    from reproduce.data.synthetic import make_synthetic_dataset
    from reproduce.models import net_param
    from reproduce.solver import SGDSolver as ProjectSolver

    data = make_synthetic_dataset(tmp_path / "data", n_train=5, n_val=1, seed=2, sides=(32, 32))
    folder = tmp_path / "pylayers"
    folder.mkdir()
    (folder / "pycaffe_test_voc.py").write_text(VOC_LAYER_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(sys.modules, "caffe", caffe)
    net = net_param("fcn32s", "train", num_classes=21, widths="tiny")
    param_str = repr(dict(voc_dir=str(data.voc_dir), split="train", seed=1337,
                          mean=(104.00699, 116.66877, 122.67892)))
    layer = net.layer[0]
    layer.python_param.module, layer.python_param.layer = "pycaffe_test_voc", "VOCSegDataLayer"
    layer.python_param.param_str = param_str
    (tmp_path / "train.prototxt").write_text(text.emit(net))
    (tmp_path / "solver.prototxt").write_text('train_net: "train.prototxt"\nbase_lr: 1e-6\n'
                                              'lr_policy: "fixed"\nmomentum: 0.99\nweight_decay: '
                                              '0.0005\ndisplay: 0\nrandom_seed: 1337\n')
    monkeypatch.chdir(tmp_path)
    ours = caffe.SGDSolver("solver.prototxt")
    from reproduce.weights.surgery import upsample_filt

    rng = np.random.default_rng(9)   # the release's nets have no fillers: a random init
    for name, blobs in ours.net.params.items():
        if "up" in name:                                       # surgery.interp's calls
            m, k, h, w = blobs[0].data.shape
            blobs[0].data[range(m), range(k), :, :] = upsample_filt(h)
            continue
        blobs[0].data[...] = rng.normal(size=blobs[0].shape) * np.sqrt(2 / blobs[0].data[0].size)
        blobs[1].data[...] = rng.normal(size=blobs[1].shape) * 0.1
    suite = ProjectSolver(tmp_path / "solver.prototxt")
    suite.net.copy_from(ours.net.net.weights_dict())   # the same init (fillers drew alike too)
    suite.feeder.sources["data"] = make_data_source("voc_layers", "VOCSegDataLayer", param_str,
                                                    sampler_flavor="python3")
    ours.step(2)
    suite.step(2)
    np.testing.assert_array_equal(ours.net.blobs["data"].data, suite.net.blobs["data"].numpy())
    for name, blobs in ours.net.params.items():
        for i, blob in enumerate(blobs):
            theirs = suite.net.params[name][i].detach().numpy()
            np.testing.assert_array_equal(blob.data, theirs, err_msg=f"{name}/{i}")
    assert np.abs(ours.net.params["score_fr"][0].data).max() > 0     # training moved it


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_set_mode_gpu_without_a_gpu_runs_on_the_cpu(tmp_path, monkeypatch):
    from reproduce.pycaffe import mode

    monkeypatch.setitem(mode._state, "warned", False)
    caffe.set_mode_gpu()
    try:
        with pytest.warns(RuntimeWarning, match="no GPU"):
            net = caffe.Net(write(tmp_path, "simple.prototxt", SIMPLE_NET), caffe.TEST)
    finally:
        caffe.set_mode_cpu()
    assert net.net.params["conv"][0].device.type == "cpu"
    assert np.isfinite(net.forward()["loss"])


def test_forward_all_and_backward_all_batch_and_cut_the_padding(tmp_path):
    path = write(tmp_path, "ip.prototxt", """name: 'ip' force_backward: true
        layer { type: 'Input' name: 'data' top: 'data' input_param { shape { dim: 2 dim: 3 } } }
        layer { type: 'InnerProduct' name: 'ip' bottom: 'data' top: 'out'
          inner_product_param { num_output: 4 weight_filler { type: 'gaussian' std: 1 } } }""")
    caffe.set_random_seed(11)
    net = caffe.Net(path, caffe.TEST)
    x = np.random.default_rng(10).normal(size=(5, 3)).astype(np.float32)
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    out = net.forward_all(data=x)
    assert set(out) == {"out"} and out["out"].shape == (5, 4)
    np.testing.assert_allclose(out["out"], x @ w.T + b, rtol=1e-5, atol=1e-6)
    grads = net.backward_all(out=np.ones((5, 4), np.float32))
    assert grads["data"].shape == (5, 3)
    np.testing.assert_allclose(grads["data"], np.tile(w.sum(0), (5, 1)), rtol=1e-5)
    outs, diffs = net.forward_backward_all(data=x, out=np.ones((5, 4), np.float32))
    np.testing.assert_allclose(outs["out"], out["out"], rtol=1e-6)
    np.testing.assert_allclose(diffs["data"], grads["data"], rtol=1e-6)
    with pytest.raises(ValueError, match="do not match net inputs"):
        net.forward(label=x)
    with pytest.raises(ValueError, match="not batch sized"):
        net.forward(data=x)


def test_snapshots_inside_step_are_caffes_too(tmp_path):
    net_path = write(tmp_path, "input.prototxt", INPUT_NET)
    solver = caffe.SGDSolver(write(tmp_path, "s.prototxt", f"""train_net: '{net_path}'
        base_lr: 0.01 lr_policy: "fixed" display: 0 snapshot: 2
        snapshot_prefix: "{tmp_path / 'snap'}" """))
    solver.net.blobs["label"].data[...] = 1
    solver.step(3)
    for suffix in (".caffemodel", ".solverstate", ".solverstate.pt"):
        assert (tmp_path / f"snap_iter_2{suffix}").is_file()
    assert not (tmp_path / "snap_iter_3.caffemodel").exists()
    solver.restore(str(tmp_path / "snap_iter_2.solverstate"))
    assert solver.iter == 2


def _coord_spec(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [s * 2 for s in dstride] if isinstance(dstride, list) else dstride * 2
    n.deconv = L.Deconvolution(n.pool, convolution_param=dict(num_output=10, kernel_size=deconv_ks,
                                                              stride=dstride, pad=dpad))
    return n


def test_coord_map_from_to_on_tops():
    """pycaffe's coord_map cases: conv/pool/deconv, pass-through, padding, anisotropy."""
    from_to = caffe.coord_map.coord_map_from_to
    n = _coord_spec()
    ax, a, b = from_to(n.deconv, n.data)
    assert (ax, list(a), list(b)) == (1, [1.0], [0.0])
    n = _coord_spec(pool=4, dstride=4)
    ax, a, b = from_to(n.deconv, n.data)
    assert (ax, list(a), list(b)) == (1, [1.0], [-1.0])
    n = _coord_spec()
    n.relu = caffe.layers.ReLU(n.deconv)
    n.conv1x1 = caffe.layers.Convolution(n.relu, num_output=10, kernel_size=1)
    assert list(from_to(n.conv1x1, n.data)[2]) == [0.0]
    for pad in (3, 7):
        n = _coord_spec(pad=pad)
        assert list(from_to(n.deconv, n.data)[2]) == [-pad]
        n = _coord_spec(dpad=pad)
        assert list(from_to(n.deconv, n.data)[2]) == [pad]
        n = _coord_spec(pad=pad, dpad=pad)
        assert list(from_to(n.deconv, n.data)[2]) == [0.0]
    n3, n5 = _coord_spec(ks=3, stride=1, pad=0), _coord_spec(ks=5, stride=2, pad=10)
    n35 = _coord_spec(ks=[3, 5], stride=[1, 2], pad=[0, 10])
    _, a3, b3 = from_to(n3.deconv, n3.data)
    _, a5, b5 = from_to(n5.deconv, n5.data)
    _, a35, b35 = from_to(n35.deconv, n35.data)
    assert list(a35) == [a3[0], a5[0]] and list(b35) == [b3[0], b5[0]]
    # tops of different nets have no common ancestor: one error naming both
    with pytest.raises(caffe.coord_map.CoordMapError, match="no ancestor"):
        from_to(_coord_spec().deconv, _coord_spec().data)
    # the crop helper: crop(deconv, data) offsets are the negated shift
    n = _coord_spec(pool=4, dstride=4)
    n.crop = caffe.coord_map.crop(n.deconv, n.data)
    layer = [l for l in n.to_proto().layer if l.type == "Crop"][0]
    assert list(layer.crop_param.offset) == [1] and layer.crop_param.axis == 2


def _lenet(L, P, named: bool):
    data, label = L.DummyData(shape=[dict(dim=[4, 1, 28, 28]), dict(dim=[4, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    n = caffe.NetSpec()
    if named:
        n.data, n.label = data, label
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    loss = L.SoftmaxWithLoss(ip2, label)
    if not named:
        return loss.to_proto()
    n.conv1, n.pool1, n.conv2, n.pool2, n.ip1, n.relu1, n.ip2, n.loss = \
        conv1, pool1, conv2, pool2, ip1, relu1, ip2, loss
    return n.to_proto()


def test_net_spec_lenet_and_zero_tops(tmp_path):
    L, P = caffe.layers, caffe.params
    for named in (True, False):
        proto = _lenet(L, P, named)
        assert isinstance(proto, caffe.proto.caffe_pb2.NetParameter)
        assert proto.layer[6].type == "ReLU" and list(proto.layer[6].bottom) == list(proto.layer[6].top)
        path = tmp_path / f"lenet{named}.prototxt"
        path.write_text(str(proto))
        net = caffe.Net(str(path), caffe.TEST)
        assert len(net.layers) == 9 and net.forward()["loss" if named else net.outputs[0]].shape == ()
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    path = tmp_path / "silent.prototxt"
    path.write_text(str(n.to_proto()))
    assert caffe.Net(str(path), caffe.TEST).forward() == {}
    with pytest.raises(caffe.net_spec.SpecError, match="bottom 0 is not a Top"):
        L.Silence(L.DummyData(ntop=2), ntop=0)


def test_layer_type_list_and_the_rest_of_the_namespace():
    types = caffe.layer_type_list()
    assert types == sorted(types) and {"Python", "Convolution", "DummyData", "Crop"} <= set(types)
    assert {"PReLU", "ArgMax", "LSTM", "RNN", "InfogainLoss", "EuclideanLoss"} <= set(types)
    assert (caffe.TRAIN, caffe.TEST) == (caffe.proto.caffe_pb2.TRAIN, caffe.proto.caffe_pb2.TEST) == (0, 1)
    for name in ("Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
                 "AdaDeltaSolver", "AdamSolver", "get_solver", "Layer", "set_mode_cpu",
                 "set_mode_gpu", "set_device", "set_random_seed", "io", "NetSpec", "layers",
                 "params", "to_proto"):
        assert hasattr(caffe, name), name
