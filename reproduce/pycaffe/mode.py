"""Caffe's global state as pycaffe sets it: mode, device, random seed (``caffe::Caffe``).

* ``set_mode_cpu()`` / ``set_mode_gpu()`` and ``set_device(i)``: the torch device nets and
  solvers built afterwards live on — ``cpu``, or ``cuda:i`` (``mps`` where CUDA is absent and
  Apple's backend is there). As in Caffe, a net keeps the device it was built with.
  ``set_mode_gpu`` on a machine without a GPU runs on the CPU, saying so once (a
  ``RuntimeWarning``): legacy scripts call it unconditionally (the release's ``solve.py``),
  and a CPU-only Caffe would stop there;
* ``set_random_seed(seed)``: Caffe reseeds its one generator, which fillers and dropout of
  every net built afterwards draw from in turn; here one ``torch.Generator`` is reseeded and
  handed to the nets built afterwards (on the CPU), and torch's own seeds are set too;
* logging: under ``import caffe`` (the shim) the solver's Caffe-style lines go to stderr, as
  glog writes them when pycaffe has not initialised it (``log_to_stderr``); importing
  ``reproduce.pycaffe`` itself leaves logging as the caller configured it.
"""
from __future__ import annotations

import logging
import sys

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
    if not _state.get("warned"):
        import warnings

        warnings.warn("caffe.set_mode_gpu(): this torch sees no GPU (torch.cuda.is_available() "
                      "is False); running on the CPU", RuntimeWarning, stacklevel=3)
        _state["warned"] = True
    return torch.device("cpu")


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is written."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _GlogFormatter(logging.Formatter):
    """glog's line prefix: severity letter, MMDD HH:MM:SS.micros."""

    def format(self, record: logging.LogRecord) -> str:
        import datetime

        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%m%d %H:%M:%S.%f")
        return f"{record.levelname[0]}{stamp} {record.getMessage()}"


def log_to_stderr() -> None:
    """What pycaffe's glog does before ``InitGoogleLogging``: every INFO line of the solver
    (``Iteration N, loss = …``, test outputs, snapshots) to stderr. Done when
    ``reproduce.pycaffe`` is imported, unless the ``reproduce.solver`` logger already has a
    handler (then the caller's logging configuration stands)."""
    logger = logging.getLogger("reproduce.solver")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_GlogFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def solver_count() -> int:
    return 1


def solver_rank() -> int:
    return 0
