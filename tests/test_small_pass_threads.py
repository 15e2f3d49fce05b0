"""A small inference pass runs on one thread (``reproduce.net.threads``); nothing else does."""
from __future__ import annotations

import torch

from reproduce.models import net_param
from reproduce.net import Net
from reproduce.net import threads


def _spy(net: Net, layer: str) -> list[int]:
    seen: list[int] = []
    net.layer(layer).register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


def test_small_passes_run_on_one_thread_and_restore_the_count(monkeypatch):
    net = Net(net_param("fcn8s", "deploy", num_classes=21, widths="tiny"), phase="test")
    seen = _spy(net, "score_fr")  # a plain layer: called through nn.Module in every route
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            first = net.forward(data=torch.ones(1, 3, 64, 80))["score"]
            second = net.forward(data=torch.ones(1, 3, 64, 80))["score"]
        assert seen == [2, 1]  # the first pass at a shape counts its work, the next uses it
        assert torch.get_num_threads() == 2
        assert torch.allclose(first, second, rtol=1e-5, atol=1e-5 * float(first.abs().max()))
        # the count: Caffe's multiply-adds of every convolution and deconvolution
        (macs,) = net._pass_macs.values()
        conv1_1 = 262 * 278 * 4 * 3 * 9  # pad 100: 262×278 outputs, 3→4 channels, 3×3
        assert conv1_1 < macs < threads.SMALL_PASS_MACS
        with torch.enable_grad():  # recorded for autograd: left as it is
            net.forward(data=torch.ones(1, 3, 64, 80))
        monkeypatch.setattr(threads, "SMALL_PASS_MACS", macs)  # no longer small
        with torch.no_grad():
            net.forward(data=torch.ones(1, 3, 64, 80))
        assert seen[2:] == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_the_count_is_restored_when_a_layer_fails(monkeypatch):
    import pytest

    from reproduce.net.net import NetError

    net = Net(net_param("fcn8s", "deploy", num_classes=21, widths="tiny"), phase="test")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            net.forward(data=torch.ones(1, 3, 64, 80))  # counted: the next pass is small

            def refuse(*args):
                assert torch.get_num_threads() == 1
                raise RuntimeError("refused")
            monkeypatch.setattr(net.layer("score_fr"), "forward", refuse)
            with pytest.raises(NetError, match="score_fr"):
                net.forward(data=torch.ones(1, 3, 64, 80))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
