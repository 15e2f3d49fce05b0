"""CVPR 2015 Table 1's architecture columns, computed from the net descriptions."""
from __future__ import annotations

import pytest

from reproduce.models.architecture import Geometry, learnable_parameters, receptive_field, receptive_field_of


@pytest.mark.parametrize("name, millions", [("fcn-alexnet", 57), ("fcn32s", 134), ("fcn-googlenet", 6)])
def test_learnable_parameters_match_table_1(name, millions):
    # Table 1 prints "# param" rounded to millions; the fixed bilinear upsampling is not learned
    assert round(learnable_parameters(name) / 1e6) == millions


def test_the_fixed_upsampling_is_not_counted_but_learned_skips_are():
    from reproduce.net import Net
    from reproduce.models import net_param

    counts = {n: learnable_parameters(n, widths="tiny") for n in ("fcn32s", "fcn16s")}
    net = Net(net_param("fcn32s", "deploy", widths="tiny"))
    every_blob = sum(b.data.numel() for blobs in net.params.values() for b in blobs)
    upscore = net.params["upscore"][0].data.numel()
    assert counts["fcn32s"] == every_blob - upscore
    # fcn16s adds score_pool4 (learned) and upscore2 (fixed): only score_pool4 counts
    net16 = Net(net_param("fcn16s", "deploy", widths="tiny"))
    score_pool4 = sum(b.data.numel() for b in net16.params["score_pool4"])
    assert counts["fcn16s"] == counts["fcn32s"] + score_pool4


@pytest.mark.parametrize("name, field", [("fcn-alexnet", 355), ("fcn32s", 404), ("fcn8s", 404)])
def test_receptive_field_and_stride_of_the_coarse_scores_match_table_1(name, field):
    assert receptive_field(name, "score_fr") == Geometry(field, 32)


def test_receptive_field_of_intermediate_blobs_and_errors():
    assert receptive_field("fcn32s", "pool4") == Geometry(100, 16)
    assert receptive_field("fcn32s", "conv1_1") == Geometry(3, 1)
    with pytest.raises(ValueError, match="no blob 'nope'"):
        receptive_field("fcn32s", "nope")
    with pytest.raises(ValueError, match="coarse"):
        receptive_field("fcn32s", "score")


def test_fcn_googlenet_columns_of_table_1_and_which_layer_the_907_counts():
    from reproduce.models import net_param
    from reproduce.models.ilsvrc import googlenet_classifier_net

    # the FCN's coarse scores: stride 32, but without the discarded 7×7 average pooling
    assert receptive_field("fcn-googlenet", "score_fr") == Geometry(715, 32)
    assert receptive_field("fcn-googlenet", "inception_5b/output") == Geometry(715, 32)
    # Table 1's 907 is the classifier's pool5/7x7_s1: 715 + (7 - 1)·32
    classifier = googlenet_classifier_net()
    assert receptive_field_of(classifier, "pool5/7x7_s1") == Geometry(907, 32)
    assert receptive_field_of(classifier, "inception_5b/output") == Geometry(715, 32)
    # the widest branch sets the field: a 5×5 branch, not the 1×1 the first bottom is
    assert receptive_field("fcn-googlenet", "inception_3a/5x5") == receptive_field(
        "fcn-googlenet", "inception_3a/output") == Geometry(59, 8)
    assert receptive_field("fcn-googlenet", "inception_3a/1x1") == Geometry(27, 8)
    # the count: every learned blob of the trunk and score_fr, not the fixed upscore
    total = learnable_parameters("fcn-googlenet")
    assert 5.5e6 < total < 6.5e6
    score_fr = 1024 * 21 + 21
    without_scores = total - score_fr
    definition = net_param("fcn-googlenet", "deploy")
    assert not any(layer.name.startswith(("loss1/", "loss2/", "loss3/", "pool5/7x7"))
                   for layer in definition.layer)
    assert without_scores == _trunk_parameters()


def _trunk_parameters() -> int:
    """GoogLeNet's convolutions up to inception_5b counted from the module table (weights + biases)."""
    from reproduce.models.backbones import GOOGLENET_INCEPTION

    def conv(c_in, c_out, k):
        return c_out * c_in * k * k + c_out

    total = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    channels = 192
    for _, one, r3, three, r5, five, proj in GOOGLENET_INCEPTION:
        total += (conv(channels, one, 1) + conv(channels, r3, 1) + conv(r3, three, 3)
                  + conv(channels, r5, 1) + conv(r5, five, 5) + conv(channels, proj, 1))
        channels = one + three + five + proj
    assert channels == 1024
    return total


def test_receptive_field_refuses_branches_of_different_strides():
    from reproduce.net.spec import NetSpec, layers as L

    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    n.a = L.Convolution(n.data, num_output=1, kernel_size=3, stride=2)
    n.b = L.Convolution(n.data, num_output=1, kernel_size=3)
    n.joined = L.Concat(n.a, n.b)
    with pytest.raises(ValueError, match="different strides"):
        receptive_field_of(n.to_proto(), "joined")
