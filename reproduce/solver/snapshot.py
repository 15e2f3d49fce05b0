"""Snapshot files: Caffe's ``<prefix>_iter_<N>.caffemodel`` plus a PyTorch solver state.

Caffe's ``Solver::Snapshot`` writes the weights (``<prefix>_iter_<N>.caffemodel``) and then
the solver state (``<prefix>_iter_<N>.solverstate``: iter, current_step, history and the
weights file's name). Here the weights file is the same binary caffemodel, and the state is
``<prefix>_iter_<N>.solverstate.pt``: a ``torch.save`` of plain dicts, lists, numbers,
strings and tensors — read back with ``torch.load(..., weights_only=True)``, so a state file
from elsewhere cannot run code — holding, beyond Caffe's fields, the smoothed-loss window,
the data samplers' states and the random generators' states, so that a restored run
continues the identical trajectory.

Both files are written atomically (temporary file, fsync, ``os.replace``), the weights
first: a crash at any point leaves every final name either absent or complete, and a state
file only ever refers to a complete weights file.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reproduce.caffe.files import atomic_output
from reproduce.weights.safe_load import TensorFileError, load_tensors

from .errors import SolverConfigError

STATE_FORMAT = "reproduce-solverstate"
STATE_VERSION = 1
STATE_SUFFIX = ".solverstate.pt"
WEIGHTS_SUFFIX = ".caffemodel"


class SolverStateError(SolverConfigError):
    """A solver state file that cannot be read or does not fit the solver restoring it."""


def snapshot_filename(prefix: str | os.PathLike, iteration: int, extension: str) -> Path:
    """Caffe's ``SnapshotFilename``: ``<prefix>_iter_<N><extension>``."""
    return Path(f"{os.fspath(prefix)}_iter_{int(iteration)}{extension}")


def write_solverstate(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` ``state`` to ``path`` atomically (never a partial file under ``path``)."""
    path = Path(path)
    state = dict(state, format=STATE_FORMAT, version=STATE_VERSION)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
    return path


def read_solverstate(path: str | os.PathLike) -> dict:
    """The dict ``write_solverstate`` wrote, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such solver state file")
    try:
        state = load_tensors(path)
    except TensorFileError as err:
        raise SolverStateError(f"{path}: not a solver state written by reproduce: {err}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise SolverStateError(f"{path}: not a solver state written by reproduce")
    if state.get("version") != STATE_VERSION:
        raise SolverStateError(f"{path}: solver state version {state.get('version')}, this "
                               f"reproduce reads version {STATE_VERSION}")
    return state


def learned_net_path(state_path: str | os.PathLike, state: dict) -> Path:
    """The weights file a state refers to: beside the state file, else the path as recorded."""
    recorded = Path(state["learned_net"])
    beside = Path(state_path).parent / recorded.name
    if beside.is_file():
        return beside
    if recorded.is_file():
        return recorded
    raise FileNotFoundError(f"{state_path}: its weights file {recorded.name} is neither beside "
                            f"it nor at {recorded}")


_ITER = re.compile(r"_iter_(\d+)" + re.escape(STATE_SUFFIX) + "$")


def latest_snapshot(prefix: str | os.PathLike) -> Path | None:
    """The ``<prefix>_iter_<N>.solverstate.pt`` with the largest N, or None if there is none."""
    prefix = Path(prefix)
    directory = prefix.parent if str(prefix.parent) else Path(".")
    if not directory.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for candidate in directory.glob(f"{prefix.name}_iter_*{STATE_SUFFIX}"):
        match = _ITER.search(candidate.name)
        if match and candidate.name == f"{prefix.name}_iter_{match.group(1)}{STATE_SUFFIX}":
            n = int(match.group(1))
            if best is None or n > best[0]:
                best = (n, candidate)
    return best[1] if best else None


# ------------------------------------------------------------------- random generators


def rng_states(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The states of torch's, Python's and numpy's global generators (and named ``generators``)."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(numpy_state["state"]["key"], dtype=np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    python = states["python"]
    random.setstate((int(python["version"]), tuple(int(v) for v in python["internal"]),
                     python["gauss_next"]))
    numpy_state = states["numpy"]
    np.random.set_state({"bit_generator": numpy_state["bit_generator"],
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32),
                                   "pos": int(numpy_state["pos"])},
                         "has_gauss": int(numpy_state["has_gauss"]),
                         "gauss": float(numpy_state["gauss"])})
    for name, generator in (generators or {}).items():
        if name in states.get("generators", {}):
            generator.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
