"""The FCN modules as a user constructs them: trainable as built, from a backbone or from
scratch, and the README's fine-tuning example runs as written and lowers the loss."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import reproduce
from nonzero import assert_varies, randomize

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- fine-tuning example:"


def readme_example() -> str:
    text = README.read_text()
    after = text[text.index(MARKER):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def tiny_classifier(seed: int = 1):
    """A tiny VGG16 ILSVRC-style classifier (fc6/fc7 InnerProduct, fc8) with random weights."""
    from reproduce.demo.classifier import vgg16_classifier
    from reproduce.net import Net

    return randomize(Net(vgg16_classifier(10, "tiny")), seed).weights_dict()


def tiny_data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, 40, 48, generator=generator) * 40
    labels = (images[:, 0] > 0).long() + 2 * (images[:, 1] > 30).long()
    labels[:, :3] = 255
    return [(images[i:i + 1], labels[i:i + 1]) for i in range(2)]


@pytest.mark.parametrize("cls", [reproduce.FCN32s, reproduce.FCN16s, reproduce.FCN8s])
def test_modules_are_built_as_solve_py_leaves_them(cls):
    from reproduce.weights.surgery import upsample_filt

    model = cls(num_classes=5, widths="tiny", generator=torch.Generator().manual_seed(0))
    state = model.state_dict()
    ups = [k for k in state if k.startswith("upscore")]
    assert ups, "an FCN has an up-sampling deconvolution"
    for key in ups:
        w = state[key].numpy()
        diagonal = w[range(5), range(5)]
        assert (diagonal == upsample_filt(w.shape[-1])).all(), key
        assert np.count_nonzero(w) == np.count_nonzero(diagonal), key
        assert not dict(model.named_parameters())[key].requires_grad, key
    for key in (k for k in state if k.startswith("score")):
        assert not state[key].any(), f"{key} starts at zero"
    assert state["conv1_1.weight"].std() > 0 and state["fc7.weight"].std() > 0
    x = torch.randn(1, 3, 36, 44) * 40
    with torch.no_grad():
        features = model(x)
    assert tuple(features.shape) == (1, 5, 36, 44) and not features.any()  # zero scores
    # one step on the score layers makes the output vary: the trunk is alive
    loss = torch.nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long())
    loss.backward()
    grad = model.params["score_fr"][0].grad
    assert grad is not None and grad.abs().sum() > 0


def test_backbone_transplants_the_ilsvrc_classifier_as_the_stage_does(tmp_path):
    from reproduce.weights.convert import save_weights

    classifier = tiny_classifier()
    save_weights(tmp_path / "classifier.pth", classifier)
    model = reproduce.FCN8s(num_classes=5, backbone=tmp_path / "classifier.pth")
    log = model.surgery_log
    assert "coercing fc6 0 (32, 784) -> (32, 16, 7, 7)" in log and "dropping fc8" in log
    assert "interp upscore8 (bilinear)" in log
    assert np.array_equal(model.params["conv3_2"][0].detach().numpy(), classifier["conv3_2"][0])
    assert np.array_equal(model.params["fc6"][0].detach().numpy().reshape(32, -1), classifier["fc6"][0])
    assert not model.params["score_fr"][0].detach().any()


def test_backbone_from_a_release_fcn_keeps_the_trunk_and_remakes_the_scores():
    trained = randomize(reproduce.FCN8s(num_classes=21, widths="tiny"), seed=3, keep_fixed=True)
    model = reproduce.FCN8s(num_classes=5, backbone=trained.weights_dict())
    for name in ("conv1_1", "conv5_3", "fc6", "fc7"):
        for mine, theirs in zip(model.params[name], trained.params[name]):
            assert torch.equal(mine, theirs), name
    assert tuple(model.params["score_fr"][0].shape) == (5, 32, 1, 1)
    assert not model.params["score_pool3"][0].detach().any()
    assert any(line == "re-making score_fr for 5 classes (the init has 21): zero scores"
               for line in model.surgery_log)
    same = reproduce.FCN8s(backbone=trained.weights_dict())  # class count read off the source
    assert same.num_classes == 21
    assert torch.equal(same.params["score_pool4"][0], trained.params["score_pool4"][0])
    with pytest.raises(ValueError, match="none of its layers"):
        reproduce.FCN8s(num_classes=5, widths="tiny", backbone={"conv1": [np.zeros((4, 3, 3, 3))]})
    with pytest.raises(ValueError, match="not both"):
        reproduce.FCN8s(weights=trained.weights_dict(), backbone=trained.weights_dict())


def test_weights_give_the_widths_and_classes(tmp_path):
    """A width-reduced ``.pth`` (the demo's) loads without naming its widths (issue 25)."""
    from reproduce.weights.convert import save_weights

    trained = randomize(reproduce.FCN8s(num_classes=7, widths="tiny"), seed=4)
    save_weights(tmp_path / "w.pth", trained.weights_dict())
    model = reproduce.FCN8s(weights=tmp_path / "w.pth")
    assert model.num_classes == 7
    x = torch.randn(1, 3, 30, 34) * 40
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, trained(x))
    assert_varies(out)


def test_the_readme_fine_tuning_example_lowers_the_loss():
    torch.manual_seed(0)
    model = reproduce.FCN8s(num_classes=5, backbone=tiny_classifier())
    loader = tiny_data()
    measure = torch.nn.CrossEntropyLoss(ignore_index=255)
    with torch.no_grad():
        before = sum(float(measure(model(x), y)) for x, y in loader)
    namespace = {"torch": torch, "reproduce": reproduce, "model": model, "loader": loader, "epochs": 3}
    exec(compile(readme_example(), "README.md fine-tuning example", "exec"), namespace)
    with torch.no_grad():
        after_scores = [model(x) for x, _ in loader]
        after = sum(float(measure(s, y)) for s, (_, y) in zip(after_scores, loader))
    assert after < 0.9 * before, (before, after)
    assert_varies(after_scores[0])
