"""Caffe's global state as pycaffe sets it: mode, device, random seed (``caffe::Caffe``).

* ``set_mode_cpu()`` / ``set_mode_gpu()`` and ``set_device(i)``: the torch device nets and
  solvers built afterwards live on — ``cpu``, or ``cuda:i`` (``mps`` where CUDA is absent and
  Apple's backend is there). As in Caffe, a net keeps the device it was built with;
  ``set_mode_gpu`` without a GPU is refused when a net is built, with one clear error;
* ``set_random_seed(seed)``: Caffe reseeds its one generator, which fillers and dropout of
  every net built afterwards draw from in turn; here one ``torch.Generator`` is reseeded and
  handed to the nets built afterwards (on the CPU), and torch's own seeds are set too.
"""
from __future__ import annotations

import torch

_state = {"mode": "cpu", "device": 0, "generator": None}


def set_mode_cpu() -> None:
    _state["mode"] = "cpu"


def set_mode_gpu() -> None:
    _state["mode"] = "gpu"


def set_device(device_id: int) -> None:
    _state["device"] = int(device_id)


def set_random_seed(seed: int) -> None:
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    _state["generator"] = generator
    torch.manual_seed(int(seed))


def generator() -> torch.Generator | None:
    """The generator ``set_random_seed`` made, for nets built on the CPU (else None)."""
    return _state["generator"] if device().type == "cpu" else None


def device() -> torch.device:
    """The torch device of the current mode."""
    if _state["mode"] == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", _state["device"])
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    raise RuntimeError("caffe.set_mode_gpu(): this torch has no GPU (torch.cuda.is_available() "
                       "is False); call caffe.set_mode_cpu() or install a CUDA build of torch")


def solver_count() -> int:
    return 1


def solver_rank() -> int:
    return 0
