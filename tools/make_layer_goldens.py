"""Write the per-layer golden fixtures (``tests/golden_layers/*.npz``) from the real Caffe.

Needs pycaffe of BVLC/caffe at commit 9b89154, CPU build, importable (``PYTHONPATH`` or
``--caffe-python DIR``), and the numpy that pycaffe was built against; it imports nothing of
this project. Usage::

    PYTHONPATH=<caffe>/python python3 tools/make_layer_goldens.py [--out tests/golden_layers]
        [--only NAME ...]

Every case is one small net: each bottom of the layer under test is the top of a ``Parameter``
layer — a learnable one for real-valued data (so Caffe backpropagates into it and its diff is
the bottom diff), one with ``lr_mult: 0`` for labels, indices and selectors (no backward, as
Caffe needs for them) — followed by the layer (or layers) under test. All parameter blobs get
non-zero random values. Caffe backpropagates only from a loss, so a non-loss layer's tops
``y`` each feed ``Eltwise PROD(y, g_y)`` with ``loss_weight: 1`` and a random ``g_y``: the
diff reaching ``y`` is ``g_y``. Each ``<case>.npz`` holds ``prototxt`` (the whole net; an
InfogainLoss source is the placeholder ``@H@``, its matrix stored as ``file/H``),
``param/<layer>/<i>`` (values), ``blob/<top>`` after forward and ``diff/<layer>/<i>`` after
backward (zero where Caffe computes none). ``caffe_layer_types.txt`` lists the build's layer
registry (``caffe.layer_type_list()``). ``has_backward`` is 0
for layers Caffe cannot backpropagate (ArgMax, Threshold).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

import numpy as np

RNG = np.random.default_rng(2023)


def data(shape, scale=1.0):
    return (RNG.normal(0, scale, shape)).astype(np.float32)


def ints(shape, high, low=0):
    return RNG.integers(low, high, shape).astype(np.float32)


def param_layer(name, value, learn=True):
    dims = " ".join(f"dim: {d}" for d in value.shape)
    lr = "" if learn else " param { lr_mult: 0 }"
    return (f'layer {{ name: "{name}" type: "Parameter" top: "{name}"{lr} '
            f'parameter_param {{ shape {{ {dims} }} }} }}\n')


def layer(name, type_, bottoms, tops, params="", extra=""):
    text = f'layer {{ name: "{name}" type: "{type_}" '
    text += "".join(f'bottom: "{b}" ' for b in bottoms)
    text += "".join(f'top: "{t}" ' for t in tops)
    return text + extra + (" " + params if params else "") + " }\n"


def case(inputs, layers, backward=True, files=None):
    """``inputs``: [(name, array, learn)]; ``layers``: prototxt text of the layers under test."""
    return {"inputs": inputs, "layers": layers, "backward": backward, "files": files or {}}


def cases():
    c = {}
    x = data((2, 3, 4, 5), 1.5)
    x[0, 0, 0, :3] = 0.0
    one = lambda name, type_, params="", xv=x, learn=True, backward=True, extra="": case(  # noqa
        [("x", xv, learn)], layer("L", type_, ["x"], ["y"], params, extra), backward)
    c["absval"] = one("L", "AbsVal")
    c["bnll"] = one("L", "BNLL", xv=np.concatenate([x, 60 + x], axis=0))
    c["clip"] = one("L", "Clip", "clip_param { min: -0.7 max: 1.2 }")
    c["elu"] = one("L", "ELU", "elu_param { alpha: 0.6 }")
    c["elu_default"] = one("L", "ELU")
    c["exp_e"] = one("L", "Exp")
    c["exp_base"] = one("L", "Exp", "exp_param { base: 2 scale: 0.7 shift: -0.4 }")
    c["log_e"] = one("L", "Log", xv=np.abs(x) + 0.3)
    c["log_base"] = one("L", "Log", "log_param { base: 10 scale: 1.5 shift: 0.2 }",
                        xv=np.abs(x) + 0.1)
    c["swish"] = one("L", "Swish", "swish_param { beta: 1.7 }")
    c["swish_default"] = one("L", "Swish")
    c["threshold"] = one("L", "Threshold", "threshold_param { threshold: 0.3 }", learn=False,
                         backward=False)
    c["prelu"] = one("L", "PReLU", 'prelu_param { filler { type: "gaussian" std: 0.5 } }')
    c["prelu_shared"] = one("L", "PReLU", 'prelu_param { channel_shared: true '
                                          'filler { type: "gaussian" std: 0.5 } }')
    c["prelu_2d"] = one("L", "PReLU", xv=data((4, 6)))
    c["mvn"] = one("L", "MVN", xv=data((2, 3, 4, 5), 2.0) + 1)
    c["mvn_across"] = one("L", "MVN", "mvn_param { across_channels: true eps: 0.001 }",
                          xv=data((2, 3, 4, 5), 2.0) + 1)
    c["mvn_mean_only"] = one("L", "MVN", "mvn_param { normalize_variance: false }")
    for op in ("SUM", "ASUM", "SUMSQ", "MEAN"):
        for axis in (0, 1, -1):
            c[f"reduction_{op.lower()}_{axis}".replace("-", "m")] = one(
                "L", "Reduction", f"reduction_param {{ operation: {op} axis: {axis} coeff: -1.3 }}")
    c["tile"] = one("L", "Tile", "tile_param { axis: 1 tiles: 3 }")
    c["tile_last"] = one("L", "Tile", "tile_param { axis: -1 tiles: 2 }")
    ties = np.round(data((2, 3, 2, 3)))
    c["argmax"] = one("L", "ArgMax", xv=ties, learn=False, backward=False)
    c["argmax_topk_val"] = one("L", "ArgMax", "argmax_param { top_k: 3 out_max_val: true }",
                               xv=ties, learn=False, backward=False)
    c["argmax_axis"] = one("L", "ArgMax", "argmax_param { axis: 1 top_k: 2 }", xv=ties,
                           learn=False, backward=False)
    c["argmax_axis_val"] = one("L", "ArgMax", "argmax_param { axis: -1 out_max_val: true }",
                               xv=ties, learn=False, backward=False)
    c["im2col"] = one("L", "Im2col", "convolution_param { kernel_size: 3 stride: 2 pad: 1 }")
    c["im2col_hw_dilated"] = one("L", "Im2col", "convolution_param { kernel_h: 2 kernel_w: 3 "
                                               "pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2 dilation: 2 }",
                                 xv=data((2, 2, 7, 8)))
    for pool in ("MAX", "AVE"):
        for height in (1, 3):
            c[f"spp_{pool.lower()}_{height}"] = one(
                "L", "SPP", f"spp_param {{ pyramid_height: {height} pool: {pool} }}",
                xv=data((2, 3, 9, 7)))
    c["embed"] = case([("i", ints((2, 3), 5), False)], layer(
        "L", "Embed", ["i"], ["y"], 'embed_param { num_output: 4 input_dim: 5 '
        'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }'))
    c["embed_nobias"] = case([("i", ints((6,), 5), False)], layer(
        "L", "Embed", ["i"], ["y"], 'embed_param { num_output: 3 input_dim: 5 bias_term: false '
        'weight_filler { type: "gaussian" std: 1 } }'))
    c["filter"] = case([("a", data((5, 3)), True), ("b", data((5, 2, 2)), True),
                        ("s", np.array([1, 0, 1, 1, 0], np.float32).reshape(5, 1), False)],
                       layer("L", "Filter", ["a", "b", "s"], ["fa", "fb"],
                             extra="loss_weight: 1.5 loss_weight: -0.5"))
    c["batch_reindex"] = case([("x", data((3, 2, 2)), True),
                               ("p", np.array([2, 0, 2, 1, 2], np.float32), False)],
                              layer("L", "BatchReindex", ["x", "p"], ["y"]))
    c["parameter"] = case([], layer("L", "Parameter", [], ["y"],
                          "parameter_param { shape { dim: 3 dim: 2 } }"))
    # losses
    s, lab = data((4, 5), 2.0), ints((4,), 5)
    c["euclidean"] = case([("a", data((4, 6)), True), ("b", data((4, 2, 3)), True)],
                          layer("L", "EuclideanLoss", ["a", "b"], ["loss"]))
    c["euclidean_weight"] = case([("a", data((4, 6)), True), ("b", data((4, 6)), True)],
                                 layer("L", "EuclideanLoss", ["a", "b"], ["loss"],
                                       extra="loss_weight: 2.5"))
    targets = (RNG.random((3, 2, 2, 2)) > 0.5).astype(np.float32)
    targets_ignore = targets.copy()
    targets_ignore[0, 0, 0, :] = -1
    scores = data((3, 2, 2, 2), 3.0)
    for name, lp in (("default", ""), ("valid", "loss_param { ignore_label: -1 normalization: VALID }"),
                     ("full", "loss_param { ignore_label: -1 normalization: FULL }"),
                     ("batch", "loss_param { ignore_label: -1 normalization: BATCH_SIZE }"),
                     ("none", "loss_param { ignore_label: -1 normalization: NONE }"),
                     ("normalize", "loss_param { normalize: true }")):
        c[f"sigmoid_ce_{name}"] = case(
            [("x", scores, True), ("t", targets_ignore if "ignore" in lp else targets, False)],
            layer("L", "SigmoidCrossEntropyLoss", ["x", "t"], ["loss"], lp,
                  "loss_weight: 1.5" if name == "valid" else ""))
    for norm in ("L1", "L2"):
        c[f"hinge_{norm.lower()}"] = case([("x", s, True), ("l", lab, False)],
                                          layer("L", "HingeLoss", ["x", "l"], ["loss"],
                                                f"hinge_loss_param {{ norm: {norm} }}"))
    prob = RNG.random((4, 5)).astype(np.float32)
    c["multinomial"] = case([("p", prob, True), ("l", lab.reshape(4, 1, 1, 1), False)],
                            layer("L", "MultinomialLogisticLoss", ["p", "l"], ["loss"]))
    fa, fb = data((6, 3, 1, 1)), data((6, 3, 1, 1))
    sim = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)
    for legacy in (False, True):
        c[f"contrastive{'_legacy' if legacy else ''}"] = case(
            [("a", fa, True), ("b", fb, True), ("y", sim, False)],
            layer("L", "ContrastiveLoss", ["a", "b", "y"], ["loss"],
                  f"contrastive_loss_param {{ margin: 2.5 legacy_version: {str(legacy).lower()} }}"))
    sc, H = data((2, 3, 2, 2), 2.0), RNG.random((3, 3)).astype(np.float32)
    labels = ints((2, 1, 2, 2), 3)
    labels_ignore = labels.copy()
    labels_ignore[0, 0, 0, 0] = 5
    c["infogain_bottom"] = case([("x", sc, True), ("l", labels_ignore, False), ("h", H, False)],
                                layer("L", "InfogainLoss", ["x", "l", "h"], ["loss"],
                                      "loss_param { ignore_label: 5 }"))
    c["infogain_source"] = case([("x", sc, True), ("l", labels, False)],
                                layer("L", "InfogainLoss", ["x", "l"], ["loss"],
                                      'infogain_loss_param { source: "@H@" } '
                                      'loss_param { normalization: BATCH_SIZE }'),
                                files={"H": H})
    c["infogain_axis_prob"] = case([("x", data((2, 4, 3), 2.0), True),
                                    ("l", ints((2, 4), 3), False), ("h", H, False)],
                                   layer("L", "InfogainLoss", ["x", "l", "h"], ["loss", "prob"],
                                         "infogain_loss_param { axis: 2 }",
                                         "loss_weight: 1 loss_weight: 0"))
    # recurrent
    T, N = 4, 2
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float32)
    xs, static = data((T, N, 3)), data((N, 2))
    rp = ('recurrent_param {{ num_output: 3 {h} weight_filler {{ type: "gaussian" std: 0.5 }} '
          'bias_filler {{ type: "gaussian" std: 0.5 }} }}')
    for kind in ("RNN", "LSTM"):
        k = kind.lower()
        c[k] = case([("x", xs, True), ("c", cont, False)],
                    layer("L", kind, ["x", "c"], ["y"], rp.format(h="")))
        c[f"{k}_static"] = case([("x", xs, True), ("c", cont, False), ("s", static, True)],
                                layer("L", kind, ["x", "c", "s"], ["y"], rp.format(h="")))
        states = [("h0", data((1, N, 3)), True)] + ([("c0", data((1, N, 3)), True)] if kind == "LSTM" else [])
        tops = ["y", "hT"] + (["cT"] if kind == "LSTM" else [])
        c[f"{k}_expose"] = case([("x", xs, True), ("c", cont, False)] + states,
                                layer("L", kind, ["x", "c"] + [n for n, _, _ in states], tops,
                                      rp.format(h="expose_hidden: true")))
    c["lstm_unit"] = case([("cp", data((1, 3, 2)), True), ("g", data((1, 3, 8)), True),
                           ("c", np.array([[1, 0, 1]], np.float32), False)],
                          layer("L", "LSTMUnit", ["cp", "g", "c"], ["ct", "ht"]))
    return c


def product_losses(net, spec):
    """For a non-loss case: per top ``y`` of the tested layer, a random ``g_y`` (Parameter,
    lr_mult 0) and ``Eltwise PROD(y, g_y)`` with ``loss_weight: 1`` — the loss ``Σ y·g_y`` makes
    Caffe backpropagate ``g_y`` into ``y`` exactly (Caffe backpropagates only from a loss)."""
    text = ""
    for top in re.findall(r'top: "(\w+)"', spec["layers"]):
        g = data(net.blobs[top].data.shape)
        spec["inputs"].append((f"g_{top}", g, False))
        text += layer(f"loss_{top}", "Eltwise", [top, f"g_{top}"], [f"gy_{top}"],
                      "eltwise_param { operation: PROD }", "loss_weight: 1")
    return text


def build(caffe, text, files, tmp, store):
    for key, value in files.items():
        path = os.path.join(tmp, key + ".binaryproto")
        blob = caffe.io.array_to_blobproto(value.reshape((1, 1) + value.shape))
        with open(path, "wb") as f:
            f.write(blob.SerializeToString())
        text = text.replace(f"@{key}@", path)
        store[f"file/{key}"] = value
    proto = os.path.join(tmp, "net.prototxt")
    with open(proto, "w") as f:
        f.write(text)
    return caffe.Net(proto, caffe.TRAIN)


def run_case(caffe, name, spec, out_dir):
    store = {}
    net_text = lambda: ('name: "%s"\n' % name  # noqa: E731
                        + "".join(param_layer(n, v, learn) for n, v, learn in spec["inputs"])
                        + spec["layers"])
    with tempfile.TemporaryDirectory() as tmp:
        if spec["backward"] and "Loss" not in spec["layers"] and "loss_weight" not in spec["layers"]:
            probe = build(caffe, net_text(), spec["files"], tmp, {})
            probe.forward()
            spec = dict(spec, inputs=list(spec["inputs"]))
            spec["layers"] += product_losses(probe, spec)
        text = net_text()
        net = build(caffe, text, spec["files"], tmp, store)
    values = {n: v for n, v, _ in spec["inputs"]}
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            if lname in values:
                blob.data[...] = values[lname]
            elif not spec.get("keep_params"):   # else the values the layer's own fillers gave
                blob.data[...] = data(blob.data.shape, 0.7)
            store[f"param/{lname}/{i}"] = blob.data.copy()
    for lname, blobs in net.params.items():   # the solver's ClearParamDiffs, before forward
        for blob in blobs:                      # (HingeLoss keeps forward scratch in a diff)
            blob.diff[...] = 0
    net.forward()
    for bname, blob in net.blobs.items():
        store[f"blob/{bname}"] = blob.data.copy()
    if spec["backward"]:
        net.backward()
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                store[f"diff/{lname}/{i}"] = blob.diff.copy()
    store["prototxt"] = np.array(text)
    store["has_backward"] = np.array(int(spec["backward"]))
    np.savez_compressed(os.path.join(out_dir, name + ".npz"), **store)


def open_caffe(argv, description, folder):
    """Parse ``--out`` (default ``tests/<folder>``), ``--caffe-python``, ``--only``; import pycaffe
    in CPU mode. Returns ``(caffe, args)`` with the output folder made."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                      folder))
    parser.add_argument("--caffe-python", help="directory holding pycaffe's caffe package")
    parser.add_argument("--only", nargs="*", help="case names to (re)write")
    args = parser.parse_args(argv)
    if args.caffe_python:
        sys.path.insert(0, args.caffe_python)
    import caffe
    caffe.set_mode_cpu()
    os.makedirs(args.out, exist_ok=True)
    return caffe, args


def write_cases(caffe, all_cases, args):
    for name, spec in all_cases.items():
        if args.only and name not in args.only:
            continue
        run_case(caffe, name, spec, args.out)
        print("wrote", name)


def main(argv=None):
    caffe, args = open_caffe(argv, __doc__.split("\n")[0], "golden_layers")
    with open(os.path.join(args.out, "caffe_layer_types.txt"), "w") as f:
        f.write("\n".join(sorted(caffe.layer_type_list())) + "\n")   # the build's registry
    write_cases(caffe, cases(), args)


if __name__ == "__main__":
    main()
