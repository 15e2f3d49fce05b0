"""`python -m reproduce convert` and `inspect`: round trips, the reference transplant, bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.caffe import read_weights
from reproduce.cli import main
from reproduce.weights.convert import load_weights

PROJECT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reproduce", *map(str, args)], capture_output=True, text=True,
                          cwd=PROJECT, timeout=120)


def assert_same_weights(a, b):
    assert list(a) == list(b)
    for layer in a:
        assert len(a[layer]) == len(b[layer]), layer
        for x, y in zip(a[layer], b[layer]):
            assert x.shape == y.shape, layer
            assert np.array_equal(x, y), layer


@pytest.mark.parametrize("net", ["voc-fcn8s", "voc-fcn-alexnet"])
def test_caffemodel_pth_caffemodel_h5_round_trip(golden, tmp_path, net):
    src = golden / net / "weights.caffemodel"
    assert main(["convert", str(src), "-o", str(tmp_path / "w.pth"), "--quiet"]) == 0
    state = torch.load(tmp_path / "w.pth", weights_only=True)
    assert all(k.endswith((".weight", ".bias")) or ".blob" in k for k in state)
    assert main(["convert", str(tmp_path / "w.pth"), "-o", str(tmp_path / "w.caffemodel"),
                 "--prototxt", str(golden / net / "deploy.prototxt"), "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "w.caffemodel"), "-o", str(tmp_path / "w.caffemodel.h5"), "--quiet"]) == 0
    original = read_weights(src)
    assert_same_weights(original, read_weights(tmp_path / "w.caffemodel"))
    assert_same_weights(original, load_weights(tmp_path / "w.pth"))
    h5 = read_weights(tmp_path / "w.caffemodel.h5")  # HDF5 groups come back in name order, as in Caffe
    assert_same_weights({k: original[k] for k in sorted(original)}, {k: h5[k] for k in sorted(h5)})


def test_transplant_vgg16_v1_into_fcn32s_matches_caffe(golden, tmp_path):
    v1 = golden / "vgg16-v1"
    result = run_cli("convert", v1 / "weights.caffemodel", "-o", tmp_path / "fcn32s.caffemodel",
                     "--prototxt", golden / "voc-fcn32s" / "deploy.prototxt")
    assert result.returncode == 0, result.stderr
    decisions = [line for line in result.stdout.splitlines() if line.split()[0] in ("copying", "coercing", "dropping")]
    assert decisions == (v1 / "transplant_log.txt").read_text().splitlines()
    ours = read_weights(tmp_path / "fcn32s.caffemodel")
    theirs = read_weights(v1 / "fcn32s-transplanted.caffemodel")
    assert_same_weights(theirs, ours)
    params = np.load(v1 / "fcn32s-transplanted-params.npz")
    for key in params.files:
        _, layer, index = key.split("/")
        assert np.array_equal(ours[layer][int(index)], params[key]), key


def test_pth_to_caffemodel_needs_prototxt(golden, tmp_path):
    assert main(["convert", str(golden / "voc-fcn32s" / "weights.caffemodel"), "-o", str(tmp_path / "w.pth"), "--quiet"]) == 0
    result = run_cli("convert", tmp_path / "w.pth", "-o", tmp_path / "w.caffemodel")
    assert result.returncode == 2
    assert "--prototxt" in result.stderr and "Traceback" not in result.stderr


def test_inspect_reports_format_layers_and_count(golden):
    result = run_cli("inspect", golden / "vgg16-v1" / "weights.caffemodel")
    assert result.returncode == 0, result.stderr
    assert "V1" in result.stdout and "conv1_1" in result.stdout and "4×3×3×3" in result.stdout
    total = sum(b.size for blobs in read_weights(golden / "vgg16-v1" / "weights.caffemodel").values() for b in blobs)
    assert f"parameters: {total:,}" in result.stdout
    assert "HDF5" in run_cli("inspect", golden / "voc-fcn8s" / "weights.caffemodel.h5").stdout


def _bad_files(tmp_path: Path, golden: Path) -> dict[str, Path]:
    real = (golden / "voc-fcn32s" / "weights.caffemodel").read_bytes()
    files = {
        "empty": b"",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "text": b"name: 'not a binary model'\n",
        "truncated": real[: len(real) // 3],
        "flipped": real[:50] + bytes([real[50] ^ 0xFF]) + real[51:4000],
        "length-past-end": b"\xa2\x06\xff\xff\xff\x0f",
    }
    paths = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.caffemodel"
        path.write_bytes(data)
        paths[name] = path
    pth = tmp_path / "pickle.pth"
    pth.write_bytes(b"\x80\x04\x95not really a pickle")
    paths["pickle"] = pth
    return paths


@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_bad_input_is_one_clear_line(golden, tmp_path, command):
    for name, path in _bad_files(tmp_path, golden).items():
        args = [command, path] + (["-o", tmp_path / "out.pth"] if command == "convert" else [])
        result = run_cli(*args)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)
        assert path.name in lines[0], (name, lines[0])
        assert not (tmp_path / "out.pth").exists()


def test_forward_command_writes_requested_blobs(golden, tmp_path):
    fixture = np.load(golden / "voc-fcn8s" / "forward_64x80.npz")
    np.savez(tmp_path / "in.npz", data=fixture["blob/data"])
    result = run_cli("forward", "--prototxt", golden / "voc-fcn8s" / "deploy.prototxt",
                     "--weights", golden / "voc-fcn8s" / "weights.caffemodel",
                     "--input", tmp_path / "in.npz", "-o", tmp_path / "out.npz", "--blobs", "score,fc7")
    assert result.returncode == 0, result.stderr
    assert "score" in result.stdout and "1×21×64×80" in result.stdout
    out = np.load(tmp_path / "out.npz")
    assert sorted(out.files) == ["fc7", "score"]
    for name in out.files:
        ref = fixture[f"blob/{name}"]
        assert np.abs(out[name] - ref).max() <= 1e-5 * np.abs(ref).max()
    bad = run_cli("forward", "--prototxt", golden / "voc-fcn8s" / "deploy.prototxt",
                  "--input", tmp_path / "in.npz", "--blobs", "nope")
    assert bad.returncode == 2 and "no blob named nope" in bad.stderr


def test_fcn_module_loads_a_converted_pth(golden, tmp_path):
    from reproduce.models import FCN8s

    assert main(["convert", str(golden / "voc-fcn8s" / "weights.caffemodel"), "-o", str(tmp_path / "w.pth"),
                 "--quiet"]) == 0
    model = FCN8s(widths="tiny", weights=tmp_path / "w.pth")
    reference = np.load(golden / "voc-fcn8s" / "forward_64x80.npz")
    with torch.no_grad():
        score = model(torch.from_numpy(reference["blob/data"])).numpy()
    assert np.abs(score - reference["blob/score"]).max() <= 1e-5 * np.abs(reference["blob/score"]).max()


def write_one_conv_net(folder: Path) -> Path:
    """A prototxt: a 1×3×8×8 input and one 3×3 convolution ``conv`` to 2 channels."""
    path = folder / "net.prototxt"
    path.write_text('name: "n"\n'
                    'layer { name: "input" type: "Input" top: "data"\n'
                    '        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
                    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
                    '        convolution_param { num_output: 2 kernel_size: 3 } }\n')
    return path


def test_forward_command_refuses_an_input_with_other_channels_in_one_line(tmp_path, capsys):
    prototxt = write_one_conv_net(tmp_path)
    np.savez(tmp_path / "in.npz", data=np.zeros((1, 4, 8, 8), np.float32))
    assert main(["forward", "--prototxt", str(prototxt), "--input", str(tmp_path / "in.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in.npz: layer 'conv' (Convolution)" in err[0] and "(1, 4, 8, 8)" in err[0]


@pytest.mark.parametrize("state, message", [
    ({"conv.weight": torch.zeros(2, 3, 3, 3)},
     "w.pth: incompatible number of blobs for layer 'conv': the file has 1, the net 2"),
    ({"conv.weight": torch.zeros(2, 3, 5, 5), "conv.bias": torch.zeros(2)},
     "w.pth: cannot copy param 0 weights from layer 'conv'; shape mismatch"),
    ({"conv.weight": torch.zeros(2, 3, 3, 3, dtype=torch.complex64), "conv.bias": torch.zeros(2)},
     "w.pth: key 'conv.weight': a complex64 tensor; Caffe blobs hold real numbers"),
    ({"conv.weight": 3, "conv.bias": torch.zeros(2)},
     "w.pth: key 'conv.weight': holds a value of type int, not a tensor"),
], ids=["missing-bias", "other-shape", "complex", "not-a-tensor"])
def test_a_pth_that_does_not_fit_the_prototxt_writes_no_caffemodel(tmp_path, capsys, state, message):
    prototxt = write_one_conv_net(tmp_path)
    torch.save(state, tmp_path / "w.pth")
    out = tmp_path / "w.caffemodel"
    assert main(["convert", str(tmp_path / "w.pth"), "-o", str(out), "--prototxt", str(prototxt),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
    state = {"conv.weight": torch.ones(2, 3, 3, 3), "conv.bias": torch.arange(2.0)}
    torch.save(state, tmp_path / "w.pth")
    assert main(["convert", str(tmp_path / "w.pth"), "-o", str(out), "--prototxt", str(prototxt),
                 "--quiet"]) == 0
    assert read_weights(out)["conv"][1].tolist() == [0.0, 1.0]
