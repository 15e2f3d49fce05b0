"""Export out of PyTorch: ``.pt2`` (torch.export) and ``.onnx``, exact at every input size.

Each golden VOC net is exported once to both formats; the reloaded program
(``torch.export.load``) and onnxruntime then run it at both golden sizes against Caffe's
``score`` blob, and at a third size and batch against our own forward (which the golden
tests hold to Caffe), within the golden forward tolerance. Generated nets cover the rest:
NYUDv2-style two inputs, SIFT Flow-style two heads, and one net with every layer type the
registry knows (its loss and accuracy layers left out of the deploy graph, its sizes probed).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import VOC_NETS
from golden_compare import relative_error
from nonzero import assert_varies, randomize
from reproduce import export
from reproduce.net import Net, registered_types
from reproduce.net.plain import plain_ops

onnx = pytest.importorskip("onnx", reason="pip install -e .[export]")
ort = pytest.importorskip("onnxruntime", reason="pip install -e .[export]")

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # torch.export internals

TOLERANCE = 1e-5
GOLDEN_SIZES = ("64x80", "37x53")


def run_onnx(path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {k: np.ascontiguousarray(v, np.float32)
                                              for k, v in inputs.items()})))


def run_pt2(program, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = program.module()(**{k: torch.from_numpy(np.asarray(v, np.float32))
                                  for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def run_eager(net: Net, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = net.forward(**inputs)
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def exported_golden(golden, tmp_path_factory):
    """{net: (Net, reloaded .pt2 program, .onnx path)}, each exported once."""
    cache = {}

    def get(name):
        if name not in cache:
            folder = golden / name
            net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
            out = tmp_path_factory.mktemp(name)
            program = export.to_exported_program(net)
            export.save_exported_program(program, out / "net.pt2")
            export.to_onnx(net, out / "net.onnx", program=program)
            cache[name] = (net, torch.export.load(out / "net.pt2"), out / "net.onnx")
        return cache[name]

    return get


@pytest.mark.golden
@pytest.mark.parametrize("name", VOC_NETS)
def test_exported_golden_net_matches_caffe_at_every_size(golden, exported_golden, name):
    net, program, onnx_path = exported_golden(name)
    for size in GOLDEN_SIZES:
        reference = np.load(golden / name / f"forward_{size}.npz")
        data, expected = reference["blob/data"], reference["blob/score"]
        for runtime, got in (("pt2", run_pt2(program, {"data": data})),
                             ("onnx", run_onnx(onnx_path, {"data": data}))):
            assert list(got) == ["score"]
            error = relative_error(got["score"], expected)
            assert error <= TOLERANCE, f"{name} {size} {runtime}: {error:.3g}"
    # a third size, and another batch: the graph holds no size of the example
    data = np.random.default_rng(3).normal(0, 50, (2, 3, 45, 101)).astype(np.float32)
    expected = run_eager(net, {"data": data})["score"]
    assert expected.shape == (2, 21, 45, 101)
    for runtime, got in (("pt2", run_pt2(program, {"data": data})),
                         ("onnx", run_onnx(onnx_path, {"data": data}))):
        error = relative_error(got["score"], expected)
        assert error <= TOLERANCE, f"{name} 45x101 batch 2 {runtime}: {error:.3g}"


@pytest.mark.golden
def test_onnx_graph_names_the_blobs_and_keeps_batch_height_width_symbolic(exported_golden):
    _, program, onnx_path = exported_golden("voc-fcn8s")
    model = onnx.load(str(onnx_path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (data,), (score,) = model.graph.input, model.graph.output
    assert (data.name, score.name) == ("data", "score")
    dims = data.type.tensor_type.shape.dim
    assert [d.HasField("dim_param") for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3
    # the .pt2 module takes the input by keyword and gives {blob: tensor}
    out = program.module()(data=torch.zeros(1, 3, 9, 300))
    assert set(out) == {"score"} and tuple(out["score"].shape) == (1, 21, 9, 300)


@pytest.mark.golden
def test_opencv_onnx_importer_runs_the_exported_fcn8s(golden, exported_golden, tmp_path):
    """OpenCV 4's importer cannot read symbolic shapes (its Shape node refuses them), so it
    gets the export at a fixed size (``dynamic=False``, the command's ``--static``)."""
    cv2 = pytest.importorskip("cv2")
    net, _, _ = exported_golden("voc-fcn8s")
    reference = np.load(golden / "voc-fcn8s" / "forward_64x80.npz")
    path = export.to_onnx(net, tmp_path / "static.onnx", dynamic=False,
                          input_shapes={"data": (1, 3, 64, 80)})
    dnn = cv2.dnn.readNetFromONNX(str(path))
    dnn.setInput(reference["blob/data"], "data")
    got = dnn.forward("score")
    assert relative_error(got, reference["blob/score"]) <= TOLERANCE


def export_both(net, tmp_path):
    program = export.to_exported_program(net)
    export.save_exported_program(program, tmp_path / "net.pt2")
    export.to_onnx(net, tmp_path / "net.onnx", program=program)
    return torch.export.load(tmp_path / "net.pt2"), tmp_path / "net.onnx"


def assert_runtimes_agree(net, program, onnx_path, inputs, what):
    """pt2 and onnxruntime give our forward's outputs (the default path, not the plain one)."""
    graph = export.DeployGraph(net)
    n, _, h, w = np.shape(next(iter(inputs.values())))
    fed = {name: np.zeros((n, net.blob_shapes[name][1], h, w), np.float32)
           for name in net.inputs if name not in inputs}  # what only left-out layers read
    with torch.no_grad():
        net.forward(**inputs, **fed)
    expected = {blob: net.blobs[blob].numpy() for blob in graph.outputs}
    for blob, value in expected.items():  # zeros agreeing with zeros would prove nothing
        assert_varies(value, f"{what} {blob}")
    for runtime, got in (("pt2", run_pt2(program, inputs)), ("onnx", run_onnx(onnx_path, inputs))):
        assert sorted(got) == sorted(graph.outputs), f"{what} {runtime}"
        for blob in graph.outputs:
            error = relative_error(got[blob], expected[blob])
            assert error <= TOLERANCE, f"{what} {runtime} {blob}: {error:.3g}"
    return expected


def test_two_input_net_exports_whole(tmp_path):
    from reproduce.models import FCN

    net = randomize(FCN.from_model("nyud-fcn32s-color-d", widths="tiny"))
    program, onnx_path = export_both(net, tmp_path)
    assert [i.name for i in onnx.load(str(onnx_path)).graph.input] == ["color", "depth"]
    rng = np.random.default_rng(0)
    for n, h, w in ((1, 64, 80), (2, 37, 53), (1, 21, 130)):
        inputs = {"color": rng.normal(0, 50, (n, 3, h, w)), "depth": rng.normal(0, 50, (n, 1, h, w))}
        out = assert_runtimes_agree(net, program, onnx_path, inputs, f"nyud {n}x{h}x{w}")
        assert out["score"].shape == (n, 40, h, w) and np.abs(out["score"]).max() > 0


def test_two_headed_net_exports_whole(tmp_path):
    from reproduce.models import FCN

    net = randomize(FCN.from_model("siftflow-fcn8s", widths="tiny"))
    program, onnx_path = export_both(net, tmp_path)
    assert [o.name for o in onnx.load(str(onnx_path)).graph.output] == ["score_geo", "score_sem"]
    rng = np.random.default_rng(1)
    for n, h, w in ((1, 64, 80), (2, 37, 53), (1, 21, 130)):
        out = assert_runtimes_agree(net, program, onnx_path,
                                    {"data": rng.normal(0, 50, (n, 3, h, w))}, f"siftflow {h}x{w}")
        assert out["score_sem"].shape == (n, 33, h, w) and out["score_geo"].shape == (n, 3, h, w)


def _layer(name, type_, bottoms, tops, params=""):
    text = f'layer {{ name: "{name}" type: "{type_}" '
    text += "".join(f'bottom: "{b}" ' for b in bottoms) + "".join(f'top: "{t}" ' for t in tops)
    return text + params + " }\n"


GAUSS = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 }'
# Every layer type but InnerProduct (which fixes the plane: its own test), in one net whose
# sizes stay valid for every width and for heights from 3 on (slice_h cuts row 1 of a plane
# of ceil(H/2) rows).
ZOO = (
    'name: "zoo"\n'
    'layer { name: "input" type: "Input" top: "data" top: "label" input_param { '
    'shape { dim: 1 dim: 3 dim: 20 dim: 24 } shape { dim: 1 dim: 1 dim: 20 dim: 24 } } }\n'
    + _layer("conv", "Convolution", ["data"], ["conv"],
             f"convolution_param {{ num_output: 6 kernel_size: 3 pad: 2 dilation: 2 {GAUSS} }}")
    + _layer("gconv", "Convolution", ["conv"], ["gconv"],
             f"convolution_param {{ num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 3 {GAUSS} }}")
    + _layer("bn", "BatchNorm", ["gconv"], ["bn"])
    + _layer("scale", "Scale", ["bn"], ["scale"],
             'scale_param { bias_term: true filler { type: "gaussian" std: 1 } }')
    + _layer("bias", "Bias", ["scale"], ["bias"], 'bias_param { filler { type: "gaussian" } }')
    + _layer("relu", "ReLU", ["bias"], ["bias"], "relu_param { negative_slope: 0.1 }")
    + _layer("lrn_a", "LRN", ["bias"], ["lrn_a"], "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 }")
    + _layer("lrn_w", "LRN", ["lrn_a"], ["lrn_w"],
             "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }")
    + _layer("pool_cut", "Pooling", ["lrn_w"], ["pool_cut"],
             "pooling_param { pool: MAX kernel_size: 2 stride: 3 pad: 1 }")
    + _layer("pool_ave", "Pooling", ["lrn_w"], ["pool_ave"],
             "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }")
    + _layer("pool_ave_cut", "Pooling", ["lrn_w"], ["pool_ave_cut"],
             "pooling_param { pool: AVE kernel_size: 2 stride: 3 pad: 1 }")
    + _layer("pool_mask", "Pooling", ["lrn_w"], ["pool_m", "mask"],
             "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }")
    + _layer("pool_gmax", "Pooling", ["lrn_w"], ["gmax"],
             "pooling_param { pool: MAX global_pooling: true }")
    + _layer("pool_gave", "Pooling", ["lrn_w"], ["gave"],
             "pooling_param { pool: AVE global_pooling: true }")
    + _layer("esum", "Eltwise", ["pool_ave", "pool_m"], ["esum"],
             "eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 }")
    + _layer("eprod", "Eltwise", ["esum", "pool_m"], ["eprod"], "eltwise_param { operation: PROD }")
    + _layer("emax", "Eltwise", ["eprod", "pool_ave"], ["emax"], "eltwise_param { operation: MAX }")
    + _layer("sigmoid", "Sigmoid", ["emax"], ["sigmoid"])
    + _layer("tanh", "TanH", ["sigmoid"], ["tanh"])
    + _layer("power", "Power", ["tanh"], ["power"], "power_param { power: 2 scale: 1.5 shift: 0.5 }")
    + _layer("up", "Deconvolution", ["power"], ["up"],
             'convolution_param { num_output: 6 kernel_size: 4 stride: 2 bias_term: false '
             'weight_filler { type: "gaussian" std: 0.3 } }')
    + _layer("crop", "Crop", ["up", "gconv"], ["crop"], "crop_param { axis: 2 offset: 1 }")
    + _layer("concat", "Concat", ["crop", "gconv"], ["concat"])
    + _layer("slice", "Slice", ["concat"], ["s1", "s2", "s3"],
             "slice_param { axis: 1 slice_point: 2 slice_point: 7 }")
    + _layer("slice_h", "Slice", ["s2"], ["h1", "h2"], "slice_param { axis: 2 slice_point: 1 }")
    + _layer("split", "Split", ["s1"], ["sp1", "sp2"])
    + _layer("drop", "Dropout", ["sp1"], ["drop"], "dropout_param { dropout_ratio: 0.3 }")
    + _layer("reshape", "Reshape", ["drop"], ["reshape"],
             "reshape_param { shape { dim: 0 dim: -1 dim: 1 dim: 0 } }")
    + _layer("flatten", "Flatten", ["reshape"], ["flat"], "flatten_param { axis: 1 }")
    + _layer("softmax", "Softmax", ["s3"], ["prob"])
    + _layer("silence", "Silence", ["sp2"], [])
    + _layer("score", "Convolution", ["conv"], ["score"],
             f"convolution_param {{ num_output: 3 kernel_size: 1 {GAUSS} }}")
    + _layer("loss", "SoftmaxWithLoss", ["score", "label"], ["loss"])
    + _layer("accuracy", "Accuracy", ["score", "label"], ["accuracy"])
    # the compute layers of issue 23, on a branch off conv
    + _layer("pbias", "Parameter", [], ["pbias"], "parameter_param { shape { dim: 6 } }")
    + _layer("biased", "Bias", ["conv", "pbias"], ["biased"])
    + _layer("abs", "AbsVal", ["biased"], ["abs"])
    + _layer("exp", "Exp", ["abs"], ["exp"], "exp_param { base: 2 scale: -0.5 shift: 0.25 }")
    + _layer("log", "Log", ["exp"], ["log"], "log_param { base: 10 scale: 2 shift: 0.1 }")
    + _layer("bnll", "BNLL", ["log"], ["bnll"])
    + _layer("clip", "Clip", ["bnll"], ["clip"], "clip_param { min: -0.5 max: 0.9 }")
    + _layer("elu", "ELU", ["clip"], ["elu"], "elu_param { alpha: 0.7 }")
    + _layer("prelu", "PReLU", ["elu"], ["prelu"])
    + _layer("swish", "Swish", ["prelu"], ["swish"], "swish_param { beta: 1.3 }")
    + _layer("mvn", "MVN", ["swish"], ["mvn"], "mvn_param { across_channels: true }")
    + _layer("threshold", "Threshold", ["mvn"], ["threshold"], "threshold_param { threshold: 0.2 }")
    + _layer("tile", "Tile", ["threshold"], ["tile"], "tile_param { axis: 1 tiles: 2 }")
    + _layer("red", "Reduction", ["tile"], ["red"], "reduction_param { operation: SUMSQ axis: 2 }")
    + _layer("argmax", "ArgMax", ["biased"], ["argmax"], "argmax_param { axis: 1 top_k: 2 }")
    + _layer("embed", "Embed", ["argmax"], ["embed"],
             'embed_param { num_output: 3 input_dim: 6 weight_filler { type: "gaussian" } }')
    + _layer("cols", "Im2col", ["biased"], ["cols"],
             "convolution_param { kernel_size: 3 pad: 1 stride: 2 }")
    + _layer("rsum", "Reduction", ["biased"], ["rsum"], "reduction_param { axis: 1 }")
    + _layer("zero", "Power", ["rsum"], ["zero"], "power_param { scale: 0 }")
    + _layer("reindex", "BatchReindex", ["biased", "zero"], ["reindex"])
)
NOT_IN_ZOO = {"SPP", "Filter", "RNN", "LSTM", "LSTMUnit"} | {
    t for t in registered_types() if t.endswith("Loss")}
ZOO_OUTPUTS = ["cols", "embed", "flat", "gave", "gmax", "h1", "h2", "mask", "pool_ave_cut",
               "pool_cut", "prob", "red", "reindex", "score"]


def test_every_layer_type_exports_or_is_left_out(tmp_path):
    from reproduce.caffe.text import parse

    param = parse(ZOO, "NetParameter")
    used = {layer.type for layer in param.layer}
    # InnerProduct has its own test; a Python layer is a data layer (an input) or a
    # user's registered port (its own code); DummyData and MemoryData are data sources,
    # refused below
    # SPP, Filter and the recurrent layers have export tests of their own; fork layers (Interp,
    # SSD's) have theirs in test_fork_layers.py; Caffe's data layers are refused like DummyData
    # (test_data_layers.py)
    forks = {"Interp", "Normalize", "Permute", "PriorBox", "DetectionOutput"}
    data = {"Data", "ImageData", "HDF5Data", "HDF5Output", "WindowData"}
    assert (set(registered_types()) - used - NOT_IN_ZOO
            == {"InnerProduct", "Python", "DummyData", "MemoryData"} | forks | data)
    net = randomize(Net(param))
    graph = export.DeployGraph(net)
    assert graph.inputs == ["data"] and graph.outputs == ZOO_OUTPUTS  # label only fed the loss
    axes = export.dynamic_axes(graph)["data"]
    assert {a: axes[a].minimum for a in axes} == {0: 1, 2: 3, 3: 1}
    program, onnx_path = export_both(net, tmp_path)
    rng = np.random.default_rng(2)
    for n, h, w in ((1, 20, 24), (2, 13, 31), (1, 3, 1), (3, 38, 9)):
        assert_runtimes_agree(net, program, onnx_path, {"data": rng.normal(0, 2, (n, 3, h, w))},
                              f"zoo {n}x{h}x{w}")


def test_inner_product_keeps_the_plane_static_and_the_batch_dynamic(tmp_path):
    from reproduce.caffe.text import parse

    text = ('layer { name: "input" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 2 dim: 5 dim: 7 } } }\n'
            + _layer("conv", "Convolution", ["data"], ["conv"],
                     f"convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 {GAUSS} }}")
            + _layer("ip", "InnerProduct", ["conv"], ["ip"],
                     f"inner_product_param {{ num_output: 4 {GAUSS} }}")
            + _layer("prob", "Softmax", ["ip"], ["prob"]))
    net = randomize(Net(parse(text, "NetParameter")))
    axes = export.dynamic_axes(export.DeployGraph(net))["data"]
    assert list(axes) == [0]
    program, onnx_path = export_both(net, tmp_path)
    data = np.random.default_rng(4).normal(size=(3, 2, 5, 7))
    assert_runtimes_agree(net, program, onnx_path, {"data": data}, "inner product batch 3")


@pytest.mark.parametrize("kernel,stride,pad", [(2, 2, 0), (3, 2, 0), (3, 2, 1), (2, 3, 1),
                                               (3, 3, 2), (3, 3, 0), (3, 1, 1), (4, 3, 3)])
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_plain_pooling_is_caffes_at_every_size(method, kernel, stride, pad):
    from test_layers import caffe_pool, make
    from reproduce.caffe.schema import Message
    from reproduce.net.layers.pooling import pooled_size

    pool = Message("PoolingParameter", pool=method, kernel_size=kernel, stride=stride, pad=pad)
    for size in range(max(1, kernel - 2 * pad), 14):
        x = torch.randn(1, 2, size, size + 1, generator=torch.Generator().manual_seed(size))
        layer = make("Pooling", [tuple(x.shape)], pooling_param=pool)
        out = [pooled_size(s, kernel, stride, pad) for s in x.shape[2:]]
        expected = caffe_pool(x.numpy(), method, kernel, stride, pad, *out)
        with plain_ops():
            (got,) = layer(x)
        assert got.shape[2:] == tuple(out), size
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_export_refuses_what_it_cannot_serve(tmp_path):
    from reproduce.caffe.text import parse

    text = ('layer { name: "input" type: "Input" top: "data" top: "label" '
            'input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
            + _layer("loss", "SoftmaxWithLoss", ["data", "label"], ["loss"]))
    with pytest.raises(export.ExportError, match="nothing to export"):
        export.DeployGraph(Net(parse(text, "NetParameter")))
    with pytest.raises(export.ExportError, match="opset 11"):
        export.to_onnx(randomize(Net(parse(ZOO, "NetParameter"))), tmp_path / "x.onnx",
                       opset=11)


@pytest.mark.slow
def test_full_width_fcn8s_writes_and_reloads_at_the_size_of_its_weights(tmp_path):
    """The released FCN-8s's shape (134M parameters): both files hold the weights once —
    nothing traced at the example's size is baked in — and reload to the same scores."""
    from reproduce.models import FCN8s

    model = randomize(FCN8s(), seed=5, keep_fixed=True)  # every learned blob, scores included
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weight_bytes > 5e8
    program, onnx_path = export_both(model, tmp_path)
    for path in (tmp_path / "net.pt2", onnx_path):
        on_disk = sum(f.stat().st_size for f in tmp_path.glob(path.name + "*"))
        assert weight_bytes <= on_disk <= 1.02 * weight_bytes + 2**20, (path.name, on_disk)
    data = np.random.default_rng(6).normal(0, 50, (1, 3, 36, 52))
    assert_runtimes_agree(model, program, onnx_path, {"data": data}, "full-width fcn8s")


def test_a_layer_that_cannot_be_traced_is_named(monkeypatch, tmp_path):
    """A Python layer's port whose forward branches on values is refused, naming it."""
    from reproduce.caffe.text import parse
    from reproduce.net import CaffeLayer, python_layers

    monkeypatch.setattr(python_layers, "_PORTED_LAYERS", {})

    @python_layers.register_python_layer("my_layers", "Branchy")
    class Branchy(CaffeLayer):
        def top_shapes(self, bottom_shapes):
            return [tuple(bottom_shapes[0])]

        def forward(self, x):
            return (x if float(x.sum()) > 0 else -x,)

    text = ('layer { name: "input" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 2 dim: 5 dim: 7 } } }\n'
            'layer { name: "branchy" type: "Python" bottom: "data" top: "out" '
            'python_param { module: "my_layers" layer: "Branchy" } }\n')
    net = Net(parse(text, "NetParameter"))
    with pytest.raises(export.ExportError, match=r"in layer 'branchy' \(Python\)"):
        export.to_exported_program(net)


@pytest.mark.golden
def test_torchscript_onnx_export_as_a_new_user_tries_it_is_exact_too(golden, tmp_path):
    """``torch.onnx.export(FCN8s(), x, dynamic_axes=…)`` (the TorchScript exporter) straight on
    the module: the layers notice the export and take the plain formulation."""
    from reproduce.models import FCN8s

    folder = golden / "voc-fcn8s"
    model = FCN8s(widths="tiny", weights=folder / "weights.caffemodel")
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 80),), str(tmp_path / "ts.onnx"),
                          dynamo=False, input_names=["data"], output_names=["score"],
                          dynamic_axes={"data": axes, "score": axes}, opset_version=17)
    for size in GOLDEN_SIZES:
        reference = np.load(folder / f"forward_{size}.npz")
        got = run_onnx(tmp_path / "ts.onnx", {"data": reference["blob/data"]})["score"]
        assert relative_error(got, reference["blob/score"]) <= TOLERANCE, size


@pytest.mark.golden
def test_torch_export_straight_on_the_module_is_exact_at_other_sizes(golden):
    """``torch.export.export(FCN8s(), …, dynamic_shapes=…)`` as a user writes it: the layers
    notice the tracer, so the program is not frozen at the example's size."""
    from torch.export import Dim

    from reproduce.models import FCN8s

    folder = golden / "voc-fcn8s"
    model = FCN8s(widths="tiny", weights=folder / "weights.caffemodel")
    dynamic = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    program = torch.export.export(model, (torch.zeros(2, 3, 64, 80),), dynamic_shapes=(dynamic,))
    for size in GOLDEN_SIZES:
        reference = np.load(folder / f"forward_{size}.npz")
        with torch.no_grad():
            got = program.module()(torch.from_numpy(reference["blob/data"])).numpy()
        assert relative_error(got, reference["blob/score"]) <= TOLERANCE, size


@pytest.mark.parametrize("source", [
    'type: "DummyData" top: "data" dummy_data_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } }',
    'type: "MemoryData" top: "data" top: "label" '
    'memory_data_param { batch_size: 1 channels: 1 height: 4 width: 4 }'])
def test_a_data_source_layer_is_refused(source):
    from reproduce.caffe.text import parse

    param = parse(f"""name: "d"
        layer {{ name: "data" {source} }}
        layer {{ name: "relu" type: "ReLU" bottom: "data" top: "out" }}""", "NetParameter")
    kind = source.split('"')[1]
    with pytest.raises(export.ExportError, match=f"layer 'data' is a {kind} source"):
        export.DeployGraph(Net(param))


@pytest.mark.parametrize("kind,params", [
    ("SPP", "spp_param { pyramid_height: 2 }"), ("Filter", "")])
def test_a_layer_with_data_dependent_geometry_is_refused_by_name(kind, params):
    from reproduce.caffe.text import parse

    inputs = {"SPP": ["data"], "Filter": ["data", "sel"]}[kind]
    param = parse(f"""name: "r"
        layer {{ name: "in" type: "Input" top: "data" top: "sel" top: "seq" top: "cont"
          input_param {{ shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }} shape {{ dim: 2 }}
                         shape {{ dim: 3 dim: 2 dim: 5 }} shape {{ dim: 3 dim: 2 }} }} }}
        layer {{ name: "x" type: "{kind}" {"".join(f'bottom: "{b}" ' for b in inputs)}
          top: "out" {params} }}""", "NetParameter")
    with pytest.raises(export.ExportError, match=f"layer 'x' \\({kind}\\) cannot be exported"):
        export.DeployGraph(Net(param))


def test_recurrent_layers_export_unrolled_at_their_time_steps(tmp_path):
    """RNN, LSTM (with x_static) and LSTMUnit: Caffe fixes the number of time steps when it
    unrolls, so the program is static; every runtime agrees with the eager net."""
    from reproduce.caffe.text import parse

    rp = ('recurrent_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } '
          'bias_filler { type: "gaussian" std: 0.5 } }')
    text = ('name: "seq"\n'
            'layer { name: "in" type: "Input" top: "x" top: "cont" top: "s" input_param { '
            'shape { dim: 4 dim: 2 dim: 5 } shape { dim: 4 dim: 2 } shape { dim: 2 dim: 3 } } }\n'
            + _layer("lstm", "LSTM", ["x", "cont", "s"], ["h"], rp)
            + _layer("rnn", "RNN", ["h", "cont"], ["o"], rp)
            + _layer("first", "Slice", ["o"], ["o0", "orest"], "slice_param { axis: 0 slice_point: 1 }")
            + _layer("gates", "Tile", ["o0"], ["g"], "tile_param { axis: 2 tiles: 4 }")
            + _layer("cfirst", "Slice", ["cont"], ["c0", "crest"], "slice_param { axis: 0 slice_point: 1 }")
            + _layer("unit", "LSTMUnit", ["o0", "g", "c0"], ["uc", "uh"]))
    net = randomize(Net(parse(text, "NetParameter")))
    graph = export.DeployGraph(net)
    assert export.dynamic_axes(graph) == {"x": {}, "cont": {}, "s": {}}
    program, onnx_path = export_both(net, tmp_path)
    rng = np.random.default_rng(5)
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float32)
    inputs = {"x": rng.normal(size=(4, 2, 5)), "cont": cont, "s": rng.normal(size=(2, 3))}
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in net.forward(**inputs).items()}
    assert sorted(expected) == ["crest", "orest", "uc", "uh"]
    assert np.abs(expected["uh"]).max() > 0
    for runtime, got in (("pt2", run_pt2(program, inputs)), ("onnx", run_onnx(onnx_path, inputs))):
        assert sorted(got) == sorted(expected), runtime
        for blob, value in expected.items():
            assert relative_error(got[blob], value) <= TOLERANCE, f"{runtime} {blob}"
