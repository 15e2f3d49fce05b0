"""Write the fork-layer golden fixtures (``tests/golden_fork_layers/*.npz``) from a second Caffe.

The oracle is PyPI's ``brocolli-caffe`` 9.0.2 (a CMake fork of Caffe whose SSD layers —
Normalize, Permute, PriorBox, DetectionOutput — are weiliu89/caffe's ``ssd`` branch's, see the
README's fork-layer section for the source check), built CPU-only with its own CMake, with
DeepLab v2's ``interp_layer.cpp``/``util/interp.cpp`` and ``InterpParameter`` added to its tree
(brocolli has no Interp). The build recipe is kept with that build, outside the project (no
script that builds fetched code is committed). Needs that pycaffe importable (``PYTHONPATH``
or ``--caffe-python DIR``) and the numpy it was built against; imports nothing of this project
but ``tools/make_layer_goldens.py``, whose nets and fixture format it uses (a ``Parameter``
layer per bottom, ``Eltwise PROD`` with random diffs behind each top, parameters random unless
a case keeps its fillers' values)::

    PYTHONPATH=<brocolli>/python python3 tools/make_fork_goldens.py [--out DIR] [--only NAME ...]

The cases cover every field of each fork layer that changes its result: Normalize
(``across_spatial``, ``channel_shared``, ``eps``, ``scale_filler``), Permute (orders, with axes
left out), Interp (``zoom_factor``, ``shrink_factor``, both, ``height``/``width`` up and down and
to one row, ``pad_beg``/``pad_end``, a second bottom), PriorBox (``min_size`` — fractional,
taken as an integer —, ``max_size``, ``aspect_ratio`` with duplicates, ``flip``, ``clip``,
``variance`` one/four/none, ``step``/``step_h``/``step_w``, ``offset``, ``img_size``/``img_h``/
``img_w``) and DetectionOutput (``code_type`` ×3, ``share_location``,
``variance_encoded_in_target``, ``background_label_id``, ``confidence_threshold``,
``nms_param`` ``nms_threshold``/``top_k``/``eta``, ``keep_top_k``, no detection). brocolli's
PriorBox defaults ``clip`` to true and its DetectionOutput skips NMS without ``nms_param`` (SSD:
``clip`` false, NMS at 0.3), so every case sets both explicitly. Normalize, Permute and Interp
have a backward in the forks (bottom and scale diffs are stored); PriorBox and DetectionOutput
have none (``has_backward`` 0).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_layer_goldens import case, layer, open_caffe, write_cases  # noqa: E402

RNG = np.random.default_rng(2026)


def data(shape, scale=1.0):
    return RNG.normal(0, scale, shape).astype(np.float32)


def one(type_, params, x, backward=True, keep_params=False):
    spec = case([("x", x, backward)], layer("L", type_, ["x"], ["y"], params), backward)
    return dict(spec, keep_params=keep_params)


def normalize_cases(c):
    x = data((2, 3, 4, 5), 1.5)
    for across in (True, False):
        for shared in (True, False):
            name = f"normalize_{'across' if across else 'spatial'}_{'shared' if shared else 'channel'}"
            c[name] = one("Normalize", f"norm_param {{ across_spatial: {str(across).lower()} "
                                       f"channel_shared: {str(shared).lower()} }}", x)
    zero = x.copy()
    zero[0, :, 0, 0] = 0.0   # an all-zero position, whose norm is sqrt(eps); with the default
    # eps its diff (g / 1e-5) would dwarf every other, so it comes with a large eps
    c["normalize_eps"] = one("Normalize", "norm_param { across_spatial: false eps: 0.5 "
                                          "channel_shared: false }", zero)
    c["normalize_eps_across"] = one("Normalize", "norm_param { eps: 20 channel_shared: false }", x)
    c["normalize_filler_default"] = one("Normalize", "", x, keep_params=True)
    c["normalize_filler_constant"] = one(
        "Normalize", 'norm_param { channel_shared: false scale_filler { type: "constant" '
                     'value: 20 } }', x, keep_params=True)


def permute_cases(c):
    x = data((2, 3, 4, 5))
    for order in ((0, 2, 3, 1), (0, 3, 1, 2), (1, 0, 2, 3), (3, 2, 1, 0), (0, 2), (2,)):
        name = "permute_" + "".join(map(str, order))
        c[name] = one("Permute", "permute_param { " + " ".join(f"order: {o}" for o in order)
                      + " }", x)
    # An order that leaves the axes in place makes the fork share the top's diff into the bottom
    # blob (ShareDiff) instead of copying it, which a Parameter layer's own blob never sees: an
    # identity Power layer in front takes that diff as any layer below would.
    for name, params in (("permute_0123", "permute_param { order: 0 order: 1 order: 2 order: 3 }"),
                         ("permute_none", "")):
        c[name] = case([("x0", x, True), ("g_y", data(x.shape), False)],
                       layer("P", "Power", ["x0"], ["x"]) + layer("L", "Permute", ["x"], ["y"], params)
                       + layer("loss_y", "Eltwise", ["y", "g_y"], ["gy_y"],
                               "eltwise_param { operation: PROD }", "loss_weight: 1"))


def interp_cases(c):
    x = data((2, 3, 5, 7))
    for name, params in (("zoom", "zoom_factor: 2"), ("zoom3", "zoom_factor: 3"),
                         ("shrink", "shrink_factor: 2"), ("shrink3", "shrink_factor: 3"),
                         ("shrink_zoom", "shrink_factor: 2 zoom_factor: 3"),
                         ("size_up", "height: 9 width: 16"), ("size_down", "height: 3 width: 4"),
                         ("size_row", "height: 1 width: 5"),
                         ("pad_zoom", "zoom_factor: 2 pad_beg: -1 pad_end: -1"),
                         ("pad_size", "height: 6 width: 8 pad_beg: -1 pad_end: 0"),
                         ("pad_shrink", "shrink_factor: 2 pad_beg: 0 pad_end: -2")):
        c[f"interp_{name}"] = one("Interp", f"interp_param {{ {params} }}", x)
    c["interp_reference"] = case([("x", x, True), ("r", data((2, 1, 8, 11)), False)],
                                 layer("L", "Interp", ["x", "r"], ["y"]))


def prior_box_cases(c):
    fmap, image = data((1, 2, 3, 4)), data((1, 1, 30, 40))   # only their sizes are read
    for name, params in (
            ("min", "min_size: 8 clip: false"),
            ("min_max_ratio", "min_size: 8 max_size: 16 aspect_ratio: 2 flip: true clip: false "
                              "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2"),
            ("multi_noflip_clip", "min_size: 6 min_size: 12 max_size: 10 max_size: 20 "
                                  "aspect_ratio: 2 aspect_ratio: 3 flip: false clip: true "
                                  "variance: 0.2"),
            ("ratio_duplicates", "min_size: 9 aspect_ratio: 1 aspect_ratio: 2 aspect_ratio: 0.5 "
                                 "aspect_ratio: 2 flip: true clip: false variance: 0.1"),
            ("step_offset", "min_size: 10 step: 8 offset: 0.3 aspect_ratio: 3 flip: true "
                            "clip: true variance: 0.1"),
            ("step_hw_fractional", "min_size: 7.6 max_size: 15.2 step_h: 7 step_w: 9 clip: false "
                                   "variance: 0.1"),
            ("img_size", "min_size: 12 img_size: 50 aspect_ratio: 2 flip: true clip: false "
                         "variance: 0.1"),
            ("img_hw", "min_size: 12 img_h: 25 img_w: 60 aspect_ratio: 0.5 clip: true "
                       "variance: 0.1"),
            ("no_variance", "min_size: 20 max_size: 30 clip: false")):
        c[f"prior_box_{name}"] = case(
            [("f", fmap, False), ("img", image, False)],
            layer("L", "PriorBox", ["f", "img"], ["y"], f"prior_box_param {{ {params} }}"),
            backward=False)


def detection_cases(c):
    n, priors_n, classes = 2, 16, 4
    centre = RNG.uniform(0.2, 0.8, (priors_n, 2))
    centre[8:] = centre[:8] + RNG.normal(0, 0.02, (8, 2))   # pairs of close priors: NMS matters
    size = RNG.uniform(0.1, 0.4, (priors_n, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1).astype(np.float32)
    variances = np.tile(np.float32([0.1, 0.1, 0.2, 0.2]), (priors_n, 1))
    priors = np.stack([boxes.reshape(-1), variances.reshape(-1)])[None]
    logits = data((n, priors_n, classes), 2.0)
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    conf = conf.reshape(n, -1)
    shared_loc = data((n, priors_n * 4), 0.5)
    class_loc = data((n, priors_n * classes * 4), 0.5)
    nms = "nms_param { nms_threshold: 0.45 top_k: 10 }"
    for name, params, shared in (
            ("center_size", f"code_type: CENTER_SIZE {nms} keep_top_k: 12 "
                            "confidence_threshold: 0.05", True),
            ("corner", f"code_type: CORNER {nms} keep_top_k: 12 confidence_threshold: 0.05", True),
            ("corner_size", f"code_type: CORNER_SIZE {nms} keep_top_k: 12 "
                            "confidence_threshold: 0.05", True),
            ("unshared", f"share_location: false code_type: CENTER_SIZE {nms} keep_top_k: 20 "
                         "confidence_threshold: 0.05", False),
            ("variance_in_target", f"code_type: CENTER_SIZE variance_encoded_in_target: true {nms} "
                                   "keep_top_k: 12 confidence_threshold: 0.05", True),
            ("eta", "code_type: CENTER_SIZE nms_param { nms_threshold: 0.7 eta: 0.8 } "
                    "keep_top_k: 30 confidence_threshold: 0.01", True),
            ("no_background", f"background_label_id: -1 share_location: false "
                              f"code_type: CENTER_SIZE {nms} confidence_threshold: 0.1", False),
            ("background_2", "background_label_id: 2 code_type: CENTER_SIZE nms_param { "
                             "nms_threshold: 0.3 } keep_top_k: 5 confidence_threshold: 0.1", True),
            ("no_threshold", "code_type: CENTER_SIZE nms_param { nms_threshold: 0.5 top_k: 4 }",
             True),
            ("none_kept", f"code_type: CENTER_SIZE {nms} confidence_threshold: 1", True)):
        loc = shared_loc if shared else class_loc
        c[f"detection_output_{name}"] = case(
            [("loc", loc, False), ("conf", conf, False), ("prior", priors, False)],
            layer("L", "DetectionOutput", ["loc", "conf", "prior"], ["y"],
                  f"detection_output_param {{ num_classes: {classes} {params} }}"),
            backward=False)


def cases():
    c = {}
    normalize_cases(c)
    permute_cases(c)
    interp_cases(c)
    prior_box_cases(c)
    detection_cases(c)
    return c


def main(argv=None):
    caffe, args = open_caffe(argv, __doc__.split("\n")[0], "golden_fork_layers")
    missing = {"Normalize", "Permute", "PriorBox", "DetectionOutput", "Interp"} - set(
        caffe.layer_type_list())
    if missing:
        sys.exit(f"this pycaffe lacks the fork layers {sorted(missing)}")
    write_cases(caffe, cases(), args)


if __name__ == "__main__":
    main()
