"""``python -m reproduce export``: the formats by suffix, train nets as their deploy graph,
one-line errors, and the package without the optional ONNX packages."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import PROJECT_ROOT
from golden_compare import relative_error
from reproduce.cli import main

TINY_NET = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } shape { dim: 1 dim: 1 dim: 12 dim: 12 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool" top: "up"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 bias_term: false weight_filler { type: "gaussian" } } }
layer { name: "score" type: "Crop" bottom: "up" bottom: "data" top: "score" crop_param { axis: 2 offset: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
"""


def run_module(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300)


def test_pt2_of_a_train_net_is_its_deploy_graph(tmp_path, capsys):
    prototxt = tmp_path / "train.prototxt"
    prototxt.write_text(TINY_NET)
    from reproduce.net import Net
    from reproduce.weights.convert import save_weights

    net = Net(prototxt)
    save_weights(tmp_path / "w.pth", net.weights_dict())
    out = tmp_path / "net.pt2"
    assert main(["export", "--prototxt", str(prototxt), "--weights", str(tmp_path / "w.pth"),
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "input  data: batch≥1×3×height≥" in printed and "output score" in printed
    assert "label" not in printed  # only the loss read it
    module = torch.export.load(out).module()
    x = torch.randn(2, 3, 17, 9)
    with torch.no_grad():
        net.forward(data=x, label=torch.zeros(2, 1, 17, 9))
        expected = net.blobs["score"]
        got = module(data=x)
    assert list(got) == ["score"] and got["score"].shape == (2, 4, 17, 9)
    assert relative_error(got["score"].numpy(), expected.numpy()) <= 1e-5


def test_onnx_with_weights_and_static_shape(tmp_path, capsys, golden):
    ort = pytest.importorskip("onnxruntime")
    folder = golden / "voc-fcn32s"
    out = tmp_path / "net.onnx"
    assert main(["export", "--prototxt", str(folder / "deploy.prototxt"), "--weights",
                 str(folder / "weights.caffemodel"), "-o", str(out), "--static",
                 "--input", "data=1,3,64,80", "--opset", "17"]) == 0
    assert "input  data: 1×3×64×80" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [d for d in session.get_inputs()[0].shape] == [1, 3, 64, 80]
    reference = np.load(folder / "forward_64x80.npz")
    (got,) = session.run(None, {"data": reference["blob/data"]})
    assert relative_error(got, reference["blob/score"]) <= 1e-5


@pytest.mark.parametrize("args,message", [
    (["--net", "fcn8s", "-o", "{tmp}/x.onnnx"], "the format follows the suffix"),
    (["--net", "fcn9s", "-o", "{tmp}/x.pt2"], "unknown --net 'fcn9s'"),
    (["--net", "fcn8s", "--weights", "{tmp}/none.pth", "-o", "{tmp}/x.pt2"], "no such weights file"),
    (["--prototxt", "{tmp}/bad.prototxt", "-o", "{tmp}/x.pt2"], "bad.prototxt:2:1: expected a quoted string"),
    (["--prototxt", "{tmp}/train.prototxt", "-o", "{tmp}/x.pt2", "--input", "data=1,3"],
     "0 spatial axes are not supported"),
    (["--prototxt", "{tmp}/train.prototxt", "-o", "{tmp}/x.pt2", "--input", "score=1,3,4,4"],
     "not net inputs"),
    (["--prototxt", "{tmp}/train.prototxt", "-o", "{tmp}/x.pt2", "--input", "data=1,x"],
     "expected NAME=N,C,H,W"),
    (["--prototxt", "{tmp}/train.prototxt", "-o", "{tmp}/x.onnx", "--opset", "13"],
     "opset 13 is below 17"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    (tmp_path / "train.prototxt").write_text(TINY_NET)
    (tmp_path / "bad.prototxt").write_text("layer { name: \n")
    argv = ["export", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("x.*"))


def test_the_package_imports_without_onnx_and_the_command_says_what_to_install(tmp_path):
    (tmp_path / "train.prototxt").write_text(TINY_NET)
    code = ("import sys\n"
            "sys.modules['onnx'] = sys.modules['onnxscript'] = sys.modules['onnxruntime'] = None\n"
            "import reproduce.export, reproduce.commands.export\n"
            "from reproduce.cli import main\n"
            f"sys.exit(main(['export', '--prototxt', {str(tmp_path / 'train.prototxt')!r}, "
            f"'-o', {str(tmp_path / 'x.onnx')!r}]))\n")
    result = run_module(code)
    assert result.returncode == 2, result.stderr
    assert "ONNX export needs onnx, onnxscript: pip install -e '.[export]'" in result.stderr
    assert "Traceback" not in result.stderr
