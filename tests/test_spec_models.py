"""Net descriptions (spec), coordinate mapping (crop offsets) and the FCN model family.

* spec: fields land where Caffe's net_spec puts them, names follow its rules, values are
  checked against the schema;
* coord_map: per-layer maps, composition and inversion, crop offsets derived from geometry
  for the five upstream nets (offsets cleared first), clear errors for misaligned nets;
* models: the emitted ``prototxt_ref/`` is fresh; train/val/solver equal the upstream
  release semantically, as does the voc-fcn8s deploy; the "tiny" deploys equal the nets the
  golden fixtures were made with; the PyTorch modules load the golden weights and reproduce
  Caffe's scores.
"""
from __future__ import annotations

import ast
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reproduce.caffe import Message, emit, parse, read
from reproduce.models import (MODELS, WIDTH_PRESETS, learnable_blob_count, model, net_param,
                              net_spec, param_groups, param_specs, solver_param, splits,
                              write_prototxt_ref)
from reproduce.models import voc
from reproduce.models.prototxt_ref import HEADER
from reproduce.net.coord_map import (CoordMap, CoordMapError, coord_map_from_to, crop_geometry,
                                     crop_layers, crop_offsets, fill_crop_offsets,
                                     layer_coord_map)
from reproduce.net.spec import NetSpec, SpecError, assign, layers as L, params as P, to_proto

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROTOTXT_REF = PROJECT_ROOT / "prototxt_ref"
# fcn32s, fcn16s, fcn8s, fcn8s-atonce, fcn-alexnet (fcn-googlenet was never released)
NAMES = tuple(m.name for m in voc.MODELS if m.released)
# every net of the release: VOC's, NYUDv2's, SIFT Flow's, PASCAL-Context's
ALL = tuple(name for name, m in MODELS.items() if m.released)
RELEASE_SPLITS = [(name, split) for name in ALL for split in splits(name)[:2]]
GOLDEN_SHAPE = (1, 3, 64, 80)


# ----------------------------------------------------------------------------- normalisation


def plain(value):
    """A message as nested dicts of its *present* fields; numbers as floats (1 == 1.0)."""
    if isinstance(value, Message):
        return {f.name: plain(v) for f, v in value.present_fields()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return value


def plain_layer(layer: Message) -> dict:
    """``plain`` with ParamSpec defaults filled in and ``param_str`` read as a literal."""
    result = plain(layer)
    if "param" in result:
        result["param"] = [{"lr_mult": p.get("lr_mult", 1.0), "decay_mult": p.get("decay_mult", 1.0),
                            **{k: v for k, v in p.items() if k not in ("lr_mult", "decay_mult")}}
                           for p in result["param"]]
    python = result.get("python_param", {})
    if "param_str" in python:
        python["param_str"] = ast.literal_eval(python["param_str"])
    return result


def assert_same_layers(ours: list[Message], theirs: list[Message], what: str) -> None:
    assert [l.name for l in ours] == [l.name for l in theirs], f"{what}: layer names differ"
    for mine, reference in zip(ours, theirs):
        assert plain_layer(mine) == plain_layer(reference), f"{what}: layer {mine.name!r} differs"


def assert_same_net(ours: Message, theirs: Message, what: str) -> None:
    ours_net = {k: v for k, v in plain(ours).items() if k != "layer"}
    theirs_net = {k: v for k, v in plain(theirs).items() if k != "layer"}
    assert ours_net == theirs_net, f"{what}: net-level fields differ"
    assert_same_layers(list(ours.layer), list(theirs.layer), what)


def without_layer_name_of_input(net: Message) -> list[Message]:
    """The layers, the Input layer's name blanked: it only labels the layer that feeds ``data``."""
    layers = [layer.copy() for layer in net.layer]
    for layer in layers:
        if layer.type == "Input":
            layer.name = "<input>"
    return layers


# ----------------------------------------------------------------------------- spec


def test_spec_routes_fields_like_net_spec():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, loss_weight=0,
                           param=[dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)],
                           weight_filler=dict(type="gaussian", std=0.01))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, kernel_size=2, stride=2)
    n.up = L.Deconvolution(n.pool, convolution_param=dict(num_output=4, kernel_size=4, stride=2))
    net = n.to_proto(name="toy")
    conv = net.layer[1]
    assert net.name == "toy"
    assert conv.convolution_param.kernel_size == [3]          # lone value → repeated field
    assert conv.convolution_param.num_output == 4
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert conv.loss_weight == [0.0]                          # not a ConvolutionParameter field
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1.0, 1.0), (2.0, 0.0)]
    assert net.layer[2].pooling_param.pool == "AVE"
    assert net.layer[3].convolution_param.stride == [2]
    assert net.layer[0].input_param.shape[0].dim == [1, 3, 8, 8]


def test_spec_names_tops_and_layers_like_net_spec():
    n = NetSpec()
    n.data, n.label = L.Python(module="m", layer="Data", ntop=2)
    n.conv = L.Convolution(n.data, num_output=1, kernel_size=1)
    n.relu = L.ReLU(n.conv, in_place=True)
    n.loss = L.SoftmaxWithLoss(L.Flatten(n.relu), n.label)  # an unnamed intermediate top
    net = n.to_proto()
    assert [(l.name, l.type, l.bottom, l.top) for l in net.layer] == [
        ("data", "Python", [], ["data", "label"]),
        ("conv", "Convolution", ["data"], ["conv"]),
        ("relu", "ReLU", ["conv"], ["conv"]),               # in place: top named after bottom
        ("Flatten1", "Flatten", ["conv"], ["Flatten1"]),     # automatic <Type><k>
        ("loss", "SoftmaxWithLoss", ["Flatten1", "label"], ["loss"]),
    ]
    assert net.layer[0].python_param.module == "m"
    # a layer may be named apart from its top (net_spec assigns ``name`` after naming)
    named = L.Input(name="input", shape=dict(dim=[1])).to_proto()
    assert (named.layer[0].name, named.layer[0].top) == ("input", ["Input1"])


def test_spec_emits_bottoms_before_their_consumers():
    a = L.Input(shape=dict(dim=[1]))
    b = L.ReLU(a)
    net = to_proto(L.Eltwise(b, a, operation="SUM"))
    assert [l.type for l in net.layer] == ["Input", "ReLU", "Eltwise"]
    assert net.layer[2].eltwise_param.operation == "SUM"


@pytest.mark.parametrize("fields, message", [
    (dict(no_such_field=1), "has no field 'no_such_field'"),
    (dict(num_output=2.5), "needs an integer"),
    (dict(num_output=-1), "out of range for a uint32"),
    (dict(bias_term="yes"), "needs True or False"),
    (dict(engine="FAST"), "is not a value of enum"),
    (dict(weight_filler=3), "is given as a dict"),
])
def test_spec_refuses_values_the_schema_refuses(fields, message):
    top = L.Convolution(L.Input(shape=dict(dim=[1])), kernel_size=1, **fields)
    with pytest.raises(SpecError, match=message) as err:
        to_proto(top)
    assert "Convolution1" in str(err.value)  # the error names the layer


def test_spec_rounds_floats_to_float32_and_checks_bottoms():
    message = Message("LRNParameter")
    assign(message, "alpha", 1e-4)
    assert message == parse("alpha: 0.0001", "LRNParameter")
    with pytest.raises(SpecError, match="bottom 0 is not a Top"):
        L.ReLU("data")
    with pytest.raises(AttributeError):
        P.Pooling.NOT_A_METHOD


# ----------------------------------------------------------------------------- coord_map: maps


def _layer(text: str) -> Message:
    return parse(text, "LayerParameter")


def test_layer_maps_follow_caffe_formulas():
    conv = layer_coord_map(_layer('name: "c" type: "Convolution" convolution_param '
                                  '{ kernel_size: 3 pad: 100 }'))
    assert conv == CoordMap.of(1, 1, 99)                     # (pad - (k-1)/2) / stride
    pool = layer_coord_map(_layer('name: "p" type: "Pooling" pooling_param '
                                  '{ pool: MAX kernel_size: 2 stride: 2 }'))
    assert pool == CoordMap.of(1, Fraction(1, 2), Fraction(-1, 4))
    floor = _layer('name: "p" type: "Pooling" pooling_param '
                  '{ pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR }')
    assert layer_coord_map(floor) == pool                    # rounding mode is not geometry
    deconv = layer_coord_map(_layer('name: "d" type: "Deconvolution" convolution_param '
                                    '{ kernel_size: 64 stride: 32 }'))
    assert deconv == CoordMap.of(1, 32, Fraction(63, 2))     # (k-1)/2 - pad
    dilated = layer_coord_map(_layer('name: "c" type: "Convolution" convolution_param '
                                     '{ kernel_size: 3 dilation: 2 }'))
    assert dilated == CoordMap.of(1, 1, -2)
    per_dim = layer_coord_map(_layer('name: "c" type: "Convolution" convolution_param '
                                     '{ kernel_h: 3 kernel_w: 5 stride_h: 1 stride_w: 2 }'))
    assert per_dim == CoordMap.of(1, (1, Fraction(1, 2)), (-1, -1))
    crop = layer_coord_map(_layer('name: "x" type: "Crop" crop_param { axis: 2 offset: 19 }'))
    assert crop == CoordMap.of(1, 1, -19)
    for kind in ("ReLU", "Dropout", "Scale", "Eltwise", "LRN", "Concat"):
        assert layer_coord_map(_layer(f'name: "x" type: "{kind}"')) == CoordMap.of(None, 1, 0)
    with pytest.raises(CoordMapError, match="InnerProduct has no coordinate map"):
        layer_coord_map(_layer('name: "fc" type: "InnerProduct"'))


fractions = st.fractions(min_value=-50, max_value=50, max_denominator=64)
scales = fractions.filter(lambda f: f != 0)


@settings(max_examples=60, deadline=None)
@given(a=scales, b=fractions, c=scales, d=fractions)
def test_compose_and_inverse_are_a_group(a, b, c, d):
    m, n = CoordMap.of(1, a, b), CoordMap.of(None, c, d)
    assert m.compose(m.inverse()) == CoordMap.of(1, 1, 0)
    assert m.inverse().inverse() == m
    # the inverse of a composition is the composition of inverses, reversed
    assert m.compose(n).inverse() == n.inverse().compose(m.inverse())
    # composing applies "then" inside the base map's frame: x ↦ a·(c·x + d) + b
    assert m.compose(n) == CoordMap.of(1, a * c, a * d + b)


def test_maps_on_different_axes_do_not_compose():
    with pytest.raises(CoordMapError, match="axis 1 and axis 2"):
        CoordMap.of(1, 1, 0).compose(CoordMap.of(2, 1, 0))


# ----------------------------------------------------------------------------- coord_map: crops


def _upstream_crops(net: Message) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {l.name: (l.crop_param.axis, tuple(l.crop_param.offset))
            for l in net.layer if l.type == "Crop"}


@pytest.mark.parametrize("name", ALL)
def test_offsets_derived_for_upstream_nets_equal_the_released_ones(upstream, name):
    train, test, _ = splits(name)
    released = read(upstream / model(name).folder / f"{train}.prototxt")
    expected = _upstream_crops(released)
    assert expected, "the upstream net has crops"
    cleared = released.copy()
    for layer in cleared.layer:
        if layer.type == "Crop":
            layer.clear("crop_param")
    assert _upstream_crops(fill_crop_offsets(cleared)) == expected
    for crop, (axis, offset) in expected.items():
        assert crop_offsets(cleared, crop) == offset
        assert crop_geometry(cleared, crop).axis == axis
    # the nets described here derive the same offsets
    assert {c: crop_offsets(net_spec(name, test), c) for c in expected} == \
        {c: offset for c, (_, offset) in expected.items()}


def test_upstream_offsets_are_the_published_numbers(upstream):
    # the derivation above must land on these (fcn.berkeleyvision.org prototxts)
    offsets = {name: [o for _, (_, (o,)) in
                      _upstream_crops(read(upstream / f"voc-{name}" / "val.prototxt")).items()]
               for name in NAMES}
    assert offsets["fcn32s"] == [19]
    assert offsets["fcn16s"] == [5, 27]
    assert offsets["fcn8s"] == offsets["fcn8s-atonce"] == [5, 9, 31]
    assert len(offsets["fcn-alexnet"]) == 1


def test_map_between_blobs_follows_in_place_layers_and_crops():
    net = net_param("fcn8s", "deploy", widths="tiny")
    assert coord_map_from_to(net, "upscore8", "data") == CoordMap.of(1, 1, -31)
    # fc7 is rewritten in place by relu7 and drop7; the map sees through them
    assert coord_map_from_to(net, "fc7", "data").scale == (Fraction(32),)
    assert crop_layers(net) == ["score_pool4c", "score_pool3c", "score"]


def _misaligned(down_stride: int, up_kernel: int, up_stride: int) -> NetSpec:
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 60, 60]))
    n.down = L.Convolution(n.data, num_output=1, kernel_size=down_stride, stride=down_stride)
    n.up = L.Deconvolution(n.down, convolution_param=dict(num_output=1, kernel_size=up_kernel,
                                                          stride=up_stride))
    n.cropped = L.Crop(n.up, n.data)
    return n


def test_crop_across_a_scale_mismatch_is_a_clear_error():
    # stride-2 upsampling of a stride-3 path: the map to data scales by 3/2, no crop aligns that
    with pytest.raises(CoordMapError) as err:
        fill_crop_offsets(_misaligned(3, 4, 2).to_proto())
    text = str(err.value)
    assert "crop layer 'cropped'" in text and "scale 3/2" in text and "scale ≠ 1" in text


def test_crop_by_a_fractional_shift_is_a_clear_error():
    # 2×2/2 down, then 3×3/2 up: scale 1 but shifted by half a pixel
    with pytest.raises(CoordMapError, match=r"crop layer 'cropped'.*shift -1/2.*not an integer"):
        crop_offsets(_misaligned(2, 3, 2), "cropped")


def test_crop_needing_a_negative_offset_is_a_clear_error():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 60, 60]))
    n.small = L.Convolution(n.data, num_output=1, kernel_size=5)
    n.fits = L.Crop(n.data, n.small)      # the 5×5 valid convolution lost 2 pixels a side
    assert crop_offsets(n, "fits") == (2,)
    n.cropped = L.Crop(n.small, n.data)   # the small map holds no window of the big one
    with pytest.raises(CoordMapError, match="crop layer 'cropped'.*shift 2.*negative crop offset"):
        crop_offsets(n, "cropped")


def test_misaligned_branches_and_unrelated_blobs_are_clear_errors():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 60, 60]))
    n.a = L.Convolution(n.data, num_output=1, kernel_size=3)
    n.b = L.Convolution(n.data, num_output=1, kernel_size=5)
    n.sum = L.Eltwise(n.a, n.b)
    n.cropped = L.Crop(n.sum, n.data)
    with pytest.raises(CoordMapError, match="two paths with different coordinate maps"):
        fill_crop_offsets(n.to_proto())
    m = NetSpec()
    m.x = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    m.y = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    m.cropped = L.Crop(L.Convolution(m.x, num_output=1, kernel_size=3), m.y)
    with pytest.raises(CoordMapError, match="share no ancestor"):
        fill_crop_offsets(m)


def test_fill_crop_offsets_serves_any_parsed_net():
    net = parse("""
        input: "data" input_shape { dim: 1 dim: 3 dim: 50 dim: 50 }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                convolution_param { num_output: 2 kernel_size: 3 pad: 10 } }
        layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
        layer { name: "crop" type: "Crop" bottom: "conv" bottom: "data" top: "crop"
                crop_param { offset: 77 } }
    """)
    filled = fill_crop_offsets(net)
    assert (filled.layer[2].crop_param.axis, filled.layer[2].crop_param.offset) == (2, [9])
    assert net.layer[2].crop_param.offset == [77]  # the input net is left alone


# ----------------------------------------------------------------------------- models: files


def test_prototxt_ref_is_fresh(tmp_path):
    written = write_prototxt_ref(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in written}
    assert len(fresh) == 4 * len(MODELS) == 4 * (len(ALL) + 1) == 64  # + voc-fcn-googlenet
    committed = {p.relative_to(PROTOTXT_REF).as_posix(): p.read_text()
                 for p in sorted(PROTOTXT_REF.glob("*/*.prototxt"))}
    assert sorted(committed) == sorted(fresh), "prototxt_ref/ lists other files: run `make prototxt`"
    stale = [path for path in fresh if committed[path] != fresh[path]]
    assert not stale, f"prototxt_ref/ is stale ({stale}): run `make prototxt`"
    for text in fresh.values():
        assert text.startswith(HEADER) and "make prototxt" in text.splitlines()[0]


@pytest.mark.parametrize("name", ALL)
def test_prototxt_ref_uses_the_release_file_names(upstream, name):
    folder = model(name).folder
    released = {p.name for p in (upstream / folder).glob("*.prototxt")}
    ours = {p.name for p in (PROTOTXT_REF / folder).glob("*.prototxt")}
    # the release's files (voc-fcn8s also ships its deploy), and a deploy net for every one
    assert released and released <= ours and ours - released <= {"deploy.prototxt"}, folder


@pytest.mark.parametrize("name, split", RELEASE_SPLITS)
def test_nets_equal_the_upstream_release(upstream, name, split):
    folder = model(name).folder
    released = read(upstream / folder / f"{split}.prototxt")
    assert_same_net(net_param(name, split), released, f"{folder}/{split}")


@pytest.mark.parametrize("name", ALL)
def test_data_layer_param_str_is_the_reference_string(upstream, name):
    for split in splits(name)[:2]:
        released = read(upstream / model(name).folder / f"{split}.prototxt").layer[0]
        ours = net_param(name, split).layer[0]
        assert ours.python_param.param_str == released.python_param.param_str
        assert (ours.python_param.module, ours.python_param.layer) == \
            (released.python_param.module, released.python_param.layer)


@pytest.mark.parametrize("name", ALL)
def test_solvers_equal_the_upstream_release(upstream, name):
    released = read(upstream / model(name).folder / "solver.prototxt", "SolverParameter")
    ours = solver_param(name)
    assert plain(ours) == plain(released)
    assert parse(emit(ours), "SolverParameter") == released


def test_fcn8s_deploy_equals_the_released_deploy(upstream):
    released = read(upstream / "voc-fcn8s" / "deploy.prototxt")
    ours = net_param("fcn8s", "deploy")
    # the hand-written released deploy leaves out drop6/drop7, which are the identity in the
    # TEST phase; everything else — the Input layer "input" 1×3×500×500 included — is equal
    kept = [layer for layer in ours.layer if layer.type != "Dropout"]
    assert len(ours.layer) - len(kept) == 2
    assert_same_layers(kept, list(released.layer), "voc-fcn8s/deploy")


@pytest.mark.parametrize("name", NAMES)
def test_tiny_deploy_equals_the_golden_net(golden, name):
    reference = read(golden / f"voc-{name}" / "deploy.prototxt")
    ours = net_param(name, "deploy", widths="tiny", input_shape=GOLDEN_SHAPE)
    assert reference.layer[0].input_param.shape[0].dim == list(GOLDEN_SHAPE)
    # the golden net is named "fcn" and its Input layer "input_data": labels, not semantics
    assert_same_layers(without_layer_name_of_input(ours), without_layer_name_of_input(reference),
                       f"golden voc-{name}/deploy")


def test_width_presets_and_class_count():
    assert WIDTH_PRESETS["tiny"] == {64: 4, 128: 8, 256: 8, 512: 16, 4096: 32, 96: 8, 384: 16,
                                     # GoogLeNet's further widths (no golden net has them)
                                     16: 2, 24: 2, 32: 2, 48: 3, 112: 7, 144: 9, 160: 10, 192: 12,
                                     208: 13, 224: 14, 288: 18, 320: 20, 1024: 32}
    assert all(full == width for full, width in WIDTH_PRESETS["full"].items())
    net = net_param("fcn8s", "deploy", num_classes=40, widths={512: 24})
    outputs = {l.name: l.convolution_param.num_output for l in net.layer
               if l.type in ("Convolution", "Deconvolution")}
    assert {outputs[k] for k in ("score_fr", "score_pool4", "score_pool3", "upscore2",
                                 "upscore_pool4", "upscore8")} == {40}
    assert (outputs["conv1_1"], outputs["conv4_1"], outputs["fc6"]) == (64, 24, 4096)
    with pytest.raises(ValueError, match="unknown width preset"):
        net_param("fcn8s", widths="huge")
    with pytest.raises(ValueError, match="split must be one of"):
        net_param("fcn8s", "test")
    with pytest.raises(KeyError, match="unknown FCN model"):
        model("fcn4s")
    assert model("voc-fcn16s").folder == "voc-fcn16s"


def test_param_groups_follow_the_description():
    vgg = param_groups("fcn8s-atonce")
    assert vgg["conv1_1"] == vgg["fc7"] == vgg["score_pool3"] == [(1.0, 1.0), (2.0, 0.0)]
    assert vgg["upscore2"] == vgg["upscore8"] == [(0.0, 1.0)]        # fixed, no bias
    assert vgg["scale_pool4"] == vgg["scale_pool3"] == [(0.0, 1.0)]  # fixed scale
    assert "relu1_1" not in vgg and "pool1" not in vgg and "loss" not in vgg
    alex = param_groups("fcn-alexnet")
    assert alex["conv2"] == alex["fc6"] == [(1.0, 1.0), (1.0, 1.0)]  # Caffe's defaults
    assert alex["score_fr"] == [(1.0, 1.0), (2.0, 0.0)] and alex["upscore"] == [(0.0, 1.0)]
    assert learnable_blob_count(_layer('type: "Scale" bottom: "a" bottom: "b"')) == 0


@pytest.mark.parametrize("name", ALL)
def test_param_groups_agree_with_the_built_net(name):
    from reproduce.net import Net

    deploy = net_param(name, "deploy", widths="tiny", input_shape=GOLDEN_SHAPE)
    assert param_specs(deploy) == Net(deploy).param_specs
    assert list(param_specs(deploy).items()) == list(param_groups(name, widths="tiny").items())


# ----------------------------------------------------------------------------- models: torch


@pytest.mark.parametrize("name", NAMES)
def test_module_reproduces_caffe_scores_with_converted_weights(golden, name):
    import torch

    from reproduce.caffe.weights import read_weights
    from reproduce.weights.convert import weights_to_state_dict
    from reproduce.models import FCN_CLASSES

    folder = golden / f"voc-{name}"
    module = FCN_CLASSES[name](widths="tiny")
    assert isinstance(module, torch.nn.Module)
    weights = read_weights(folder / "weights.caffemodel")
    module.load_state_dict(weights_to_state_dict(weights), strict=True)  # keys = layer names
    blobs = np.load(folder / "forward_64x80.npz")
    with torch.no_grad():
        scores = module(torch.from_numpy(blobs["blob/data"]))
    reference = blobs["blob/score"]
    assert tuple(scores.shape) == reference.shape == (1, 21, 64, 80)
    error = np.abs(scores.numpy() - reference).max() / np.abs(reference).max()
    assert error <= 1e-5, f"{name}: relative error {error:.2e}"


def test_module_takes_num_classes_and_any_size():
    import torch

    from reproduce.models import FCN, FCN16s

    module = FCN16s(num_classes=5, widths="tiny")
    assert module.num_classes == 5
    assert module.state_dict()["score_fr.weight"].shape == (5, 32, 1, 1)
    with torch.no_grad():
        assert tuple(module(torch.zeros(2, 3, 37, 53)).shape) == (2, 5, 37, 53)
    with pytest.raises(TypeError, match="abstract"):
        FCN()


# ----------------------------------------------------------------------------- the other datasets


@pytest.mark.parametrize("name, inputs, outputs", [
    ("nyud-fcn32s-color", ["data"], ["score"]),
    ("nyud-fcn32s-color-d", ["color", "depth"], ["score"]),
    ("nyud-fcn32s-color-hha", ["color", "hha"], ["score"]),
    ("siftflow-fcn8s", ["data"], ["score_sem", "score_geo"]),
    ("pascalcontext-fcn16s", ["data"], ["score"]),
])
def test_deploy_nets_take_the_release_inputs_and_keep_its_outputs(name, inputs, outputs):
    from reproduce.net import Net

    deploy = net_param(name, "deploy", widths="tiny", input_shape=(1, 3, 48, 56))
    (input_layer,) = [layer for layer in deploy.layer if layer.type == "Input"]
    assert list(input_layer.top) == inputs
    channels = [shape.dim[1] for shape in input_layer.input_param.shape]
    assert channels == [1 if top == "depth" else 3 for top in inputs]
    assert not [layer for layer in deploy.layer if "Loss" in layer.type]
    net = Net(deploy)
    assert list(net.inputs) == inputs and sorted(net.outputs) == sorted(outputs)


def test_late_fusion_is_two_suffixed_streams_averaged():
    net = net_param("nyud-fcn32s-color-hha", "trainval", widths="tiny")
    names = [layer.name for layer in net.layer]
    vgg = [layer.name for layer in net_param("nyud-fcn32s-color", "trainval", widths="tiny").layer
           if layer.name.startswith(("conv", "relu", "pool", "fc", "drop"))]
    for stream in ("color", "hha"):
        assert [n for n in names if n.endswith(stream) and n != stream and not n.startswith("score")] == \
            [f"{n}{stream}" for n in vgg]
    fused = next(layer for layer in net.layer if layer.name == "score_fused")
    assert list(fused.bottom) == ["score_frcolor", "score_frhha"]
    assert list(fused.eltwise_param.coeff) == [0.5, 0.5]


def test_multi_head_modules_return_every_head_and_take_class_counts():
    import torch

    from reproduce.models import FCN

    module = FCN.from_model("siftflow-fcn16s", widths="tiny", num_classes={"score_geo": 4})
    with torch.no_grad():
        out = module(torch.zeros(1, 3, 40, 44))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "score_sem": (1, 33, 40, 44), "score_geo": (1, 4, 40, 44)}
    with pytest.raises(ValueError, match="2 heads"):
        net_param("siftflow-fcn8s", "deploy", num_classes=5)
    with pytest.raises(ValueError, match="not outputs"):
        net_param("siftflow-fcn8s", "deploy", num_classes={"score": 5})
    fused = FCN.from_model("nyud-fcn32s-color-d", widths="tiny")
    with torch.no_grad():
        scores = fused(color=torch.zeros(1, 3, 40, 44), depth=torch.zeros(1, 1, 40, 44))
    assert tuple(scores.shape) == (1, 40, 40, 44)
    assert fused.state_dict()["conv1_1_bgrd.weight"].shape[1] == 4
    assert type(FCN.from_model("fcn8s", widths="tiny")).__name__ == "FCN8s"
