"""Prototxt parsing, emitting and legacy upgrade against the reference prototxts and Caffe's rules.

The upstream and golden prototxts (../shared) must parse and survive parse → emit → parse;
spot checks read facts of the FCN release back out of them; the V1 VGG16 net must upgrade as
``upgrade_proto.cpp`` does (cross-checked with OpenCV's copy of Caffe's importer when present);
model-zoo style snippets must parse; malformed text must fail with the right line:column.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from reproduce.caffe import (Message, PrototxtError, UpgradeError, emit, parse, read, read_net,
                             read_solver, upgrade_net, upgrade_solver)
from reproduce.caffe import text as text_module
from reproduce.caffe.schema import MESSAGES
from reproduce.caffe.text import format_float

UPSTREAM_NETS = ("voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "voc-fcn-alexnet")


def _message_type(path: Path) -> str:
    return "SolverParameter" if path.name.startswith("solver") else "NetParameter"


def _reference_prototxts(upstream: Path, golden: Path) -> list[Path]:
    files = sorted(upstream.glob("*/*.prototxt")) + sorted(golden.glob("*/*.prototxt"))
    expected = {f"{net}/{kind}.prototxt" for net in UPSTREAM_NETS
                for kind in ("train", "val", "solver")}
    found = {f"{p.parent.name}/{p.name}" for p in files}
    assert expected <= found, f"missing reference prototxts: {sorted(expected - found)}"
    assert (golden / "vgg16-v1" / "deploy.prototxt") in files
    return files


def _layer(net: Message, name: str) -> Message:
    matches = [layer for layer in net.layer if layer.name == name]
    assert len(matches) == 1, f"layer {name!r} found {len(matches)} times"
    return matches[0]


# ------------------------------------------------------------------ the reference prototxts


def test_every_reference_prototxt_parses_and_round_trips(upstream, golden):
    for path in _reference_prototxts(upstream, golden):
        message = read(path, _message_type(path))
        assert message.present_fields(), path
        text = emit(message)
        again = parse(text, _message_type(path))
        assert again == message, f"{path}: parse → emit → parse changed the message"
        assert emit(again) == text, f"{path}: emit is not stable"


def test_emit_reproduces_a_protobuf_printed_file_byte_for_byte(upstream):
    # upstream train/val prototxts were written by protobuf's printer (pycaffe net_spec)
    path = upstream / "voc-fcn8s" / "train.prototxt"
    assert emit(read(path)) == path.read_text()


def test_fcn8s_semantics(upstream):
    net = read(upstream / "voc-fcn8s" / "train.prototxt")
    offsets = {name: list(_layer(net, name).crop_param.offset)
               for name in ("score_pool4c", "score_pool3c", "score")}
    assert offsets == {"score_pool4c": [5], "score_pool3c": [9], "score": [31]}
    assert all(_layer(net, name).crop_param.axis == 2 for name in offsets)

    deconvs = [layer for layer in net.layer if layer.type == "Deconvolution"]
    assert [d.name for d in deconvs] == ["upscore2", "upscore_pool4", "upscore8"]
    for layer in deconvs:
        assert [spec.lr_mult for spec in layer.param] == [0.0]
        assert layer.convolution_param.has("bias_term") and not layer.convolution_param.bias_term

    loss = _layer(net, "loss")
    assert loss.type == "SoftmaxWithLoss"
    assert loss.loss_param.ignore_label == 255
    assert loss.loss_param.has("normalize") and loss.loss_param.normalize is False

    pools = [layer for layer in net.layer if layer.type == "Pooling"]
    assert len(pools) == 5
    assert all(p.pooling_param.pool == "MAX" and p.pooling_param.kernel_size == 2 for p in pools)

    conv1 = _layer(net, "conv1_1")
    assert list(conv1.convolution_param.pad) == [100]
    assert [(s.lr_mult, s.decay_mult) for s in conv1.param] == [(1.0, 1.0), (2.0, 0.0)]


def test_python_param_str_is_intact(upstream):
    data = _layer(read(upstream / "voc-fcn8s" / "train.prototxt"), "data")
    assert (data.python_param.module, data.python_param.layer) == ("voc_layers", "SBDDSegDataLayer")
    param_str = data.python_param.param_str
    assert param_str == ("{'sbdd_dir': '../data/sbdd/dataset', 'seed': 1337, 'split': 'train', "
                         "'mean': (104.00699, 116.66877, 122.67892)}")
    params = ast.literal_eval(param_str)  # what voc_layers.py evaluates
    assert params["sbdd_dir"] == "../data/sbdd/dataset" and params["split"] == "train"
    assert params["seed"] == 1337 and params["mean"] == (104.00699, 116.66877, 122.67892)


def test_solver_semantics(upstream):
    solver = read(upstream / "voc-fcn8s" / "solver.prototxt", "SolverParameter")
    assert solver.base_lr == np.float32(1e-14)  # float fields hold float32 values
    assert solver.momentum == np.float32(0.99)
    assert solver.test_initialization is False and solver.test_iter == [736]
    assert "base_lr: 1e-14\n" in emit(solver) and "momentum: 0.99\n" in emit(solver)


def test_deploy_with_one_line_shape_and_comments(upstream):
    net = read(upstream / "voc-fcn8s" / "deploy.prototxt")
    first = net.layer[0]
    assert first.type == "Input" and list(first.input_param.shape[0].dim) == [1, 3, 500, 500]


# ------------------------------------------------------------------ V1 upgrade


V1_TYPES = {"CONVOLUTION": "Convolution", "RELU": "ReLU", "POOLING": "Pooling",
            "INNER_PRODUCT": "InnerProduct", "DROPOUT": "Dropout", "SOFTMAX": "Softmax"}


def test_vgg16_v1_upgrades_as_caffe_does(golden):
    path = golden / "vgg16-v1" / "deploy.prototxt"
    v1 = read(path)
    assert v1.has("layers") and not v1.has("layer")
    net, done = upgrade_net(v1, str(path))
    assert done == ["V1", "input-fields"]
    assert not net.has("layers") and not net.has("input") and not net.has("input_dim")
    assert net.name == v1.name

    # UpgradeNetInput: one "Input" layer named "input", first, shape from the 4 input_dim
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", list(v1.input))
    assert [list(s.dim) for s in first.input_param.shape] == [list(v1.input_dim)]

    # UpgradeV1LayerParameter, layer by layer
    assert len(net.layer) == len(v1.layers) + 1
    for old, new in zip(v1.layers, net.layer[1:]):
        assert (new.name, list(new.bottom), list(new.top)) == (old.name, old.bottom, old.top)
        assert new.type == V1_TYPES[old.type]
        assert [s.lr_mult for s in new.param] == list(old.blobs_lr)
        assert [s.decay_mult for s in new.param] == list(old.weight_decay)
        assert all(not s.has("name") and not s.has("share_mode") for s in new.param)
        for name in ("convolution_param", "pooling_param", "inner_product_param", "dropout_param"):
            assert new.has(name) == old.has(name) and getattr(new, name) == getattr(old, name)
    assert _layer(net, "fc6").param[1].decay_mult == 0.0

    assert read_net(path) == net
    assert upgrade_net(net)[1] == []  # already current


def test_vgg16_v1_upgrade_matches_what_caffe_ran(golden):
    net, _ = upgrade_net(read(golden / "vgg16-v1" / "deploy.prototxt"))
    with np.load(golden / "vgg16-v1" / "forward_224x224.npz") as arrays:
        keys = set(arrays.files)
    blobs = {k.split("/", 1)[1] for k in keys if k.startswith("blob/")}
    assert blobs == {top for layer in net.layer for top in layer.top}
    with_params = {k.split("/")[1] for k in keys if k.startswith("param/")}
    assert with_params == {layer.name for layer in net.layer if layer.param}


def test_vgg16_v1_upgrade_agrees_with_opencv_caffe_importer(golden):
    cv2 = pytest.importorskip("cv2")
    path = golden / "vgg16-v1" / "deploy.prototxt"
    cv_net = cv2.dnn.readNetFromCaffe(str(path))  # runs its copy of UpgradeNetAsNeeded
    theirs = [(name, cv_net.getLayer(name).type) for name in cv_net.getLayerNames()]
    ours = [(layer.name, layer.type) for layer in read_net(path).layer if layer.type != "Input"]
    assert theirs == ours


V1_SNIPPET = """
name: "legacy"
input: "data"
input: "label"
input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }
input_shape { dim: 2 dim: 1 dim: 8 dim: 8 }
layers {
  name: "src" type: DATA top: "x"
  data_param { source: "db" batch_size: 4 scale: 0.5 mirror: true crop_size: 7 mean_file: "m" }
  include { phase: TRAIN }
}
layers { name: "src2" type: DATA top: "y" data_param { source: "db2" } }
layers {
  name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip"
  param: "w_shared" param: "b_shared"
  blob_share_mode: PERMISSIVE
  blobs_lr: 1 blobs_lr: 2 blobs_lr: 3
  weight_decay: 1
  inner_product_param { num_output: 10 }
  exclude { stage: "deploy" }
}
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss"
         loss_weight: 2 loss_param { ignore_label: 255 } }
layers { name: "up" type: DECONVOLUTION bottom: "ip" top: "up" }
"""


def test_v1_snippet_upgrade_moves_every_legacy_field():
    net, done = upgrade_net(parse(V1_SNIPPET))
    assert done == ["data-transform", "V1", "input-fields"]
    inputs = net.layer[0]
    assert (inputs.name, inputs.type, list(inputs.top)) == ("input", "Input", ["data", "label"])
    assert [list(s.dim) for s in inputs.input_param.shape] == [[2, 3, 8, 8], [2, 1, 8, 8]]

    src, src2, ip, loss, up = net.layer[1:]
    assert src.type == "Data" and src.include[0].phase == "TRAIN"
    t = src.transform_param
    assert (t.scale, t.mirror, t.crop_size, t.mean_file) == (0.5, True, 7, "m")
    assert [f.name for f, _ in src.data_param.present_fields()] == ["source", "batch_size"]
    # Caffe attaches transform_param to every DATA layer once any of them needs the upgrade
    assert src2.has("transform_param")
    assert src2.transform_param == Message("TransformationParameter")

    assert ip.type == "InnerProduct" and ip.exclude[0].stage == ["deploy"]
    assert [(s.name, s.has("share_mode") and s.share_mode, s.lr_mult) for s in ip.param] == [
        ("w_shared", "PERMISSIVE", 1.0), ("b_shared", False, 2.0), ("", False, 3.0)]
    assert [s.has("decay_mult") for s in ip.param] == [True, False, False]
    assert loss.type == "SoftmaxWithLoss" and loss.loss_weight == [2.0]
    assert loss.loss_param.ignore_label == 255
    assert up.type == "Deconvolution" and not up.param


def test_every_v1_param_field_has_a_current_counterpart():
    v1_params = [n for n in MESSAGES["V1LayerParameter"].fields if n.endswith("_param")]
    assert len(v1_params) == 30  # the 30 CopyFrom calls of UpgradeV1LayerParameter
    for name in v1_params:
        current = MESSAGES["LayerParameter"].fields[name]
        assert MESSAGES["V1LayerParameter"].fields[name].type == current.type
        assert not current.repeated


def test_upgrade_leaves_its_input_alone_and_shares_blob_arrays():
    v1 = parse('layers { name: "ip" type: INNER_PRODUCT blobs_lr: 1 }')
    v1.layers[0].add("blobs").data = np.arange(6, dtype=np.float32)  # as read from a caffemodel
    before = v1.copy()
    net, _ = upgrade_net(v1)
    assert v1 == before and v1.has("layers") and not v1.has("layer")
    assert net.layer[0].blobs[0].data is v1.layers[0].blobs[0].data


def test_input_fields_upgrade_on_a_current_format_net():
    text = 'input: "data" input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227\n' \
           'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" }'
    net, done = upgrade_net(parse(text))
    assert done == ["input-fields"]
    assert [layer.name for layer in net.layer] == ["input", "conv1"]
    assert list(net.layer[0].input_param.shape[0].dim) == [10, 3, 227, 227]
    bare, _ = upgrade_net(parse('input: "data" layer { name: "a" type: "ReLU" }'))
    assert [layer.name for layer in bare.layer] == ["a"] and not bare.has("input")


@pytest.mark.parametrize("text, message", [
    ('layer { name: "a" } layers { name: "b" type: RELU }', "both 'layer' and 'layers'"),
    ('input: "a" input: "b" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4', "input_dim"),
    ('input: "a" input: "b" input_shape { dim: 1 }', "input_shape"),
    ('layers { bottom: "x" top: "y" }', "V0"),
    ('layers { name: "x" type: 12345 }', None),  # unknown enum number: already a parse error
])
def test_upgrade_refuses_what_caffe_refuses(text, message):
    if message is None:
        with pytest.raises(PrototxtError, match="unknown value 12345"):
            parse(text)
        return
    with pytest.raises(UpgradeError, match=message):
        upgrade_net(parse(text), "legacy.prototxt")


def test_v0_net_is_refused_with_a_clear_error():
    with pytest.raises(PrototxtError, match=r"<string>:1:10: .*V0 net"):
        parse('layers { layer { name: "conv1" type: "conv" } bottom: "data" top: "conv1" }')


def test_batch_norm_upgrade():
    text = ('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param {} '
            'param { decay_mult: 3 } } '
            'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } }')
    net, done = upgrade_net(parse(text))
    assert done == ["batch-norm"]
    assert [(s.lr_mult, s.decay_mult) for s in net.layer[0].param] == [(0.0, 0.0)] * 3
    assert net.layer[1].param[0].lr_mult == 1.0


def test_solver_type_upgrade_and_snapshot_prefix(tmp_path):
    solver, done = upgrade_solver(parse("solver_type: NESTEROV base_lr: 0.01", "SolverParameter"))
    assert done == ["solver-type"] and solver.type == "Nesterov" and not solver.has("solver_type")
    with pytest.raises(UpgradeError, match="both"):
        upgrade_solver(parse('solver_type: ADAM type: "Adam"', "SolverParameter"))
    path = tmp_path / "my_solver.prototxt"
    path.write_text("solver_type: ADAGRAD\n")
    solver = read_solver(path)
    assert solver.type == "AdaGrad" and solver.snapshot_prefix == str(tmp_path / "my_solver")
    path.write_text(f'snapshot_prefix: "{tmp_path}"\n')
    assert read_solver(path).snapshot_prefix == str(tmp_path / "my_solver")


# ------------------------------------------------------------------ model-zoo style snippets


CAFFENET_DEPLOY = """
name: "CaffeNet"
input: "data"
input_shape {
  dim: 10
  dim: 3
  dim: 227
  dim: 227
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  convolution_param {
    num_output: 96
    kernel_size: 11
    stride: 4
  }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 }
}
layer {
  name: "norm1"
  type: "LRN"
  bottom: "pool1"
  top: "norm1"
  lrn_param {
    local_size: 5
    alpha: 0.0001
    beta: 0.75
  }
}
layer {
  name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2 }
}
layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }
"""

GOOGLENET_DEPLOY = """
name: "GoogleNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape: { dim: 10 dim: 3 dim: 224 dim: 224 } } }
layer {
  name: "inception_3a/output"
  type: "Concat"
  bottom: "inception_3a/1x1"
  bottom: "inception_3a/3x3"
  bottom: "inception_3a/5x5"
  bottom: "inception_3a/pool_proj"
  top: "inception_3a/output"
}
layer {
  name: "pool5/7x7_s1" type: "Pooling" bottom: "inception_5b/output" top: "pool5/7x7_s1"
  pooling_param { pool: AVE kernel_size: 7 stride: 1 }
}
layer {
  name: "pool5/drop_7x7_s1" type: "Dropout" bottom: "pool5/7x7_s1" top: "pool5/7x7_s1"
  dropout_param { dropout_ratio: 0.4 }
}
layer {
  name: "loss3/classifier" type: "InnerProduct" bottom: "pool5/7x7_s1" top: "loss3/classifier"
  param { lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  inner_product_param {
    num_output: 1000
    weight_filler { type: "xavier" }
    bias_filler { type: "constant" value: 0 }
  }
}
layer { name: "prob" type: "Softmax" bottom: "loss3/classifier" top: "prob" }
"""

SOLVERS = {
    "step": ('net: "models/bvlc_reference_caffenet/train_val.prototxt"\ntest_iter: 1000\n'
             'test_interval: 1000\nbase_lr: 0.01\nlr_policy: "step"\ngamma: 0.1\nstepsize: 100000\n'
             'display: 20\nmax_iter: 450000\nmomentum: 0.9\nweight_decay: 0.0005\n'
             'snapshot: 10000\nsnapshot_prefix: "models/caffenet_train"\nsolver_mode: GPU\n'),
    "multistep": ('net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "multistep"\ngamma: 0.1\n'
                  'stepvalue: 320000\nstepvalue: 640000\nstepvalue: 960000\nmax_iter: 1000000\n'
                  'solver_mode: CPU\nrandom_seed: -1\n'),
    "poly": ('net: "train_val.prototxt"\ntest_iter: [1000, 50]\nbase_lr: 0.01\nlr_policy: "poly"\n'
             'power: 0.5\nmax_iter: 2400000\ntype: "Nesterov"\ndelta: 1e-8\nclip_gradients: 10\n'),
}


def test_caffenet_deploy_snippet():
    net = parse(CAFFENET_DEPLOY)
    norm1 = _layer(net, "norm1").lrn_param
    assert (norm1.local_size, norm1.alpha, norm1.beta) == (5, np.float32(0.0001), 0.75)
    assert norm1.norm_region == "ACROSS_CHANNELS" and not norm1.has("norm_region")
    assert _layer(net, "conv2").convolution_param.group == 2
    upgraded, done = upgrade_net(net)
    assert done == ["input-fields"]
    assert upgraded.layer[0].input_param.shape[0] == net.input_shape[0]
    assert parse(emit(net)) == net


def test_googlenet_deploy_snippet():
    net = parse(GOOGLENET_DEPLOY)
    assert len(_layer(net, "inception_3a/output").bottom) == 4
    assert _layer(net, "pool5/7x7_s1").pooling_param.pool == "AVE"
    assert _layer(net, "pool5/drop_7x7_s1").dropout_param.dropout_ratio == np.float32(0.4)
    classifier = _layer(net, "loss3/classifier").inner_product_param
    assert classifier.weight_filler.type == "xavier" and classifier.bias_filler.has("value")
    assert parse(emit(net)) == net


@pytest.mark.parametrize("policy", sorted(SOLVERS))
def test_solver_snippets(policy):
    solver = parse(SOLVERS[policy], "SolverParameter")
    assert solver.lr_policy == policy
    if policy == "multistep":
        assert solver.stepvalue == [320000, 640000, 960000] and solver.solver_mode == "CPU"
        assert solver.random_seed == -1 and solver.has("random_seed")
    if policy == "poly":
        assert solver.test_iter == [1000, 50] and solver.delta == np.float32(1e-8)
    assert parse(emit(solver), "SolverParameter") == solver


# ------------------------------------------------------------------ lexical details


@pytest.mark.parametrize("text, expected", [
    ('name: "a\\n\\t\\"\\\'\\\\b"', 'a\n\t"\'\\b'),
    ("name: 'single \"quoted\"'", 'single "quoted"'),
    ('name: "\\101\\x42\\103" "D" \'E\'', "ABCD" + "E"),
    ('name: "caf\\303\\251"', "café"),
    ('name: "\\u00e9\\U0001F600"', "é\U0001F600"),
    ('name: "é # not a comment"  # a comment', "é # not a comment"),
])
def test_strings(text, expected):
    net = parse(text)
    assert net.name == expected
    assert parse(emit(net)) == net


@pytest.mark.parametrize("text, field, expected", [
    ("axis: -2", "axis", -2),
    ("axis: 0x10", "axis", 16),
    ("axis: 010", "axis", 8),          # protobuf reads a leading zero as octal
    ("axis: -0x80000000", "axis", -2**31),
    ("offset: [1, 2, 3] offset: 4", "offset", [1, 2, 3, 4]),
    ("offset: []", "offset", []),
])
def test_integers(text, field, expected):
    assert getattr(parse(text, "CropParameter"), field) == expected


@pytest.mark.parametrize("literal, expected", [
    ("1e-10", np.float32(1e-10)), (".5", 0.5), ("5.", 5.0), ("1f", 1.0), ("2.5F", 2.5),
    ("-3", -3.0), ("inf", np.inf), ("-inf", -np.inf), ("-Infinity", -np.inf), ("1e39", np.inf),
    ("18446744073709551616", np.float32(2.0**64)),
])
def test_floats(literal, expected):
    assert parse(f"value: {literal}", "FillerParameter").value == expected


def test_nan_round_trips():
    filler = parse("value: nan", "FillerParameter")
    assert np.isnan(filler.value) and emit(filler) == "value: nan\n"


@pytest.mark.parametrize("value", [1e-10, 0.99, 0.1, 1.0, 3.4028234663852886e38,
                                   1.401298464324817e-45,
                                   -0.0, 123456789.0, 0.0005, 1e-14, 104.00699])
def test_floats_print_shortest_float32_text(value):
    def read_back(text):
        return parse(f"value: {text}", "FillerParameter").value

    stored = read_back(repr(value))
    text = format_float(value)
    assert read_back(text) == stored and str(read_back(text)) == str(stored)  # sign of zero too
    significant = text.split("e")[0].lstrip("-").replace(".", "").lstrip("0") or "0"
    assert all(read_back("%.*g" % (p, stored)) != stored for p in range(1, len(significant)))


def test_float_overflow_follows_protobuf_safe_double_to_float():
    flt_max = float(np.finfo(np.float32).max)
    assert parse(f"value: {flt_max!r}", "FillerParameter").value == flt_max
    # 3.4028235e38 is above FLT_MAX as a double: protobuf's SafeDoubleToFloat makes it inf
    assert parse("value: 3.4028235e38", "FillerParameter").value == np.inf
    assert parse("value: -3.4028235e38", "FillerParameter").value == -np.inf


@pytest.mark.parametrize("literal, expected", [
    ("true", True), ("True", True), ("t", True), ("1", True),
    ("false", False), ("False", False), ("f", False), ("0", False),
])
def test_bools(literal, expected):
    assert parse(f"bias_term: {literal}", "ConvolutionParameter").bias_term is expected


def test_enums_by_name_and_number_and_separators():
    pooling = parse("pool: 1; kernel_size: 3, stride: 2", "PoolingParameter")
    assert (pooling.pool, pooling.kernel_size, pooling.stride) == ("AVE", 3, 2)
    assert emit(pooling) == "pool: AVE\nkernel_size: 3\nstride: 2\n"


def test_adjacent_strings_concatenate_inside_lists_too():
    assert parse('layer { bottom: ["a" "b", \'c\'] }').layer[0].bottom == ["ab", "c"]


def test_message_delimiters():
    for text in ('layer { name: "a" }', 'layer: { name: "a" }', 'layer < name: "a" >',
                 'layer: [{ name: "a" }]', 'layer [< name: "a" >]'):
        net = parse(text)
        assert [layer.name for layer in net.layer] == ["a"], text


def test_emit_orders_fields_by_number_and_escapes_strings():
    layer = Message("LayerParameter", top=["t"], name="it's\n\x01é", type="X")
    assert emit(layer) == 'name: "it\\\'s\\n\\001\\303\\251"\ntype: "X"\ntop: "t"\n'
    layer.mutable("relu_param")
    assert emit(layer).endswith("relu_param {\n}\n")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("text, where, message", [
    ('name: "x"\nlayer {\n  name: "a"\n', "4:1", "expected '}' but found end of file"),
    ('layer {\n  nmae: "a"\n}', "2:3", 'message type "LayerParameter" has no field named "nmae"'),
    ('layer {\n  convolution_param { num_output: 1.5 } }', "2:35",
     'expected an integer for uint32 field "num_output"'),
    ('layer { convolution_param {\n kernel_size: -3 } }', "2:16",
     'negative value -3 is out of range for uint32 field "kernel_size"'),
    ("layer { pooling_param { pool: MAXIMUM } }", "1:31",
     'unknown value MAXIMUM for enum field "pool"'),
    ("layer { pooling_param { pool: 7 } }", "1:31", "unknown value 7"),
    ('name: "abc', "1:11", "Unexpected end of string."),
    ('name: "ab\nc"', "1:10", "String literals cannot cross line boundaries."),
    ('name: "a\\qb"', "1:9", "Invalid escape sequence"),
    ('name: "a" name: "b"', "1:11",
     'non-repeated field "name" of NetParameter is specified multiple times'),
    ('layer { name: "a" }\n}', "2:1", "expected a field name but found '}'"),
    ('layer { name: "a" >', "1:19", "expected '}' but found '>'"),
    ('layer < name: "a" }', "1:19", "expected '>' but found '}'"),
    ("layer { loss_param { ignore_label: 2147483648 } }", "1:36", "out of range for int32"),
    ("force_backward: yes", "1:17", "expected true or false"),
    ("force_backward: 2", "1:17", "expected true or false"),
    ('name "x"', "1:6", "expected ':' but found '\"x\"'"),
    ("name: 5", "1:7", "expected a quoted string"),
    ("input_dim: 12abc", "1:14", "Need space between number and identifier."),
    ("input_dim: 09", "1:13", "Numbers starting with leading zero must be in octal."),
    ("input_dim: 1.2.3", "1:15", "Already saw decimal point"),
    ("layer { crop_param { offset: [1 2] } }", "1:33", "expected ','"),
    ("name: [\"a\"]", "1:1", "cannot take a list"),
    ("layer { blobs { data: 0x10 } }", "1:23", "expected a decimal number"),
    ("name: \"a\" \x01", "1:11", "unexpected character"),
    ("state { phase: TRAIN } state { }", "1:24", 'non-repeated field "state"'),
    ("layer {\n\tname: \"\\xzz\" }", "2:11", "Expected hex digits"),
    ('name: "\\xff"', "1:7", "not valid UTF-8"),
])
def test_syntax_errors_name_the_place(text, where, message):
    with pytest.raises(PrototxtError) as info:
        parse(text, path="net.prototxt")
    err = info.value
    assert (err.path, err.where) == ("net.prototxt", f"line {where}")
    assert message in err.message
    assert str(err).startswith(f"net.prototxt:{where}: ")


def test_deep_nesting_is_an_error_not_a_crash(monkeypatch):
    depth = 50_000
    with pytest.raises(PrototxtError, match=r"1:9: .*no field named \"layer\""):
        parse("layer { " * depth + "}" * depth)
    with pytest.raises(PrototxtError, match="expected a field name but found '{'"):
        parse("{" * depth)
    # The schema nests at most a few levels, so the recursion limit (protobuf's 100) is
    # exercised with a lower one.
    nested = "layer { convolution_param { weight_filler { } } }"
    assert parse(nested).layer[0].convolution_param.has("weight_filler")
    monkeypatch.setattr(text_module, "MAX_DEPTH", 2)
    with pytest.raises(PrototxtError, match=r"1:43: messages nested deeper than 2 levels"):
        parse(nested)


def test_read_reports_the_file(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_bytes(b'layer {\n  name: "a"\n  type: Convolution\n}\n')
    with pytest.raises(PrototxtError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}:3:9: expected a quoted string")
    with pytest.raises(PrototxtError, match="cannot read"):
        read(tmp_path / "missing.prototxt")
