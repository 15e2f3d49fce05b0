"""Files loaded with torch.load never run code: a pickle that would is refused in one line."""
from __future__ import annotations

import pytest
import torch

from reproduce.caffe import CaffeFormatError
from reproduce.weights.convert import load_weights
from reproduce.weights.safe_load import TensorFileError, load_tensors
from reproduce.solver.snapshot import read_solverstate


class _WritesAFile:
    """Unpickling this calls ``open(marker, "w")``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def hostile(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "hostile.pth"
    torch.save({"conv.weight": torch.zeros(2), "payload": _WritesAFile(marker)}, path)
    return path, marker


def test_a_pickle_that_would_run_code_is_refused_without_running_it(hostile, tmp_path):
    path, marker = hostile
    with pytest.raises(TensorFileError, match=r"^it holds Python objects other than tensors and "
                                              r"plain containers \(Unsupported global: .*open"):
        load_tensors(path)
    with pytest.raises(CaffeFormatError, match=r"hostile.pth: not a plain PyTorch state_dict: "
                                               r"it holds Python objects"):
        load_weights(path)
    state_path = tmp_path / "hostile.solverstate.pt"
    state_path.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match=r"hostile.solverstate.pt: not a solver state written by "
                                         r"reproduce: it holds Python objects"):
        read_solverstate(state_path)
    assert not marker.exists()


@pytest.mark.parametrize("content, reason", [
    (b"\x80\x04\x95not really a pickle", r"it cannot be unpickled as tensors \(.+\)"),
    (b"PK\x03\x04" + b"0" * 100, r"RuntimeError: PytorchStreamReader failed reading zip archive"),
], ids=["bad-pickle", "bad-zip"])
def test_corrupt_files_give_one_line_without_torchs_advice(tmp_path, content, reason):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(TensorFileError, match=reason) as info:
        load_tensors(path)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "weights_only" not in message


def test_plain_tensors_and_containers_load(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"a.weight": torch.arange(3.0), "meta": {"iter": 4, "name": "x"}}, path)
    state = load_tensors(path)
    assert state["meta"] == {"iter": 4, "name": "x"} and state["a.weight"].tolist() == [0, 1, 2]
