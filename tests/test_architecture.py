"""CVPR 2015 Table 1's architecture columns, computed from the net descriptions."""
from __future__ import annotations

import pytest

from reproduce.models.architecture import Geometry, learnable_parameters, receptive_field


@pytest.mark.parametrize("name, millions", [("fcn-alexnet", 57), ("fcn32s", 134)])
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
