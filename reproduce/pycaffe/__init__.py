"""pycaffe on PyTorch: ``import reproduce.pycaffe as caffe`` (or, with the folder
``python -m reproduce pycaffe --path`` prints on ``PYTHONPATH``, a plain ``import caffe``).

The API legacy Caffe scripts use, with Caffe's behaviour, over this project's Caffe-exact
``Net`` and solvers: ``Net``, ``SGDSolver`` and the other solvers, ``get_solver``, ``Layer``
(Python layers, run from their numpy code), ``TRAIN``/``TEST``, ``set_mode_cpu``/
``set_mode_gpu``/``set_device``, ``set_random_seed``, ``layer_type_list``, ``io``,
``proto.caffe_pb2``, ``NetSpec``/``layers``/``params``/``to_proto``, ``coord_map``,
``Classifier``, ``Detector`` (and ``caffe.draw``, imported by name as in pycaffe). Each module
says which pycaffe or Caffe behaviour it mirrors: ``blob``, ``net``, ``layer``, ``solver``,
``io``, ``proto``, ``net_spec``, ``coord_map``, ``mode``.

Only this API imports the modules Python layers name (``python_param.module`` on
``sys.path``), because its caller asks for Caffe's behaviour; the project's own ``Net`` and
commands keep refusing to run code named in a net.
"""
from __future__ import annotations

from . import io, proto
from .proto import caffe_pb2, text_format
from .blob import Blob
from .classifier import Classifier
from .detector import Detector
from .coord_map import crop
from .layer import TEST, TRAIN, Layer
from .mode import (set_device, set_mode_cpu, set_mode_gpu, set_random_seed, solver_count,
                   solver_rank)
from .net import Net
from .net_spec import NetSpec, layers, params, to_proto
from .solver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                     RMSPropSolver, SGDSolver, get_solver)

__version__ = "1.0.0"


def layer_type_list() -> list[str]:
    """Caffe's ``LayerRegistry::LayerTypeList``: the layer types this port runs (sorted)."""
    from reproduce.net.layers import registered_types

    return registered_types()


def init_log(*_args) -> None:
    """Caffe's glog set-up; logging here goes through Python's ``logging``."""


def log(message: str) -> None:
    """Caffe's ``LOG(INFO)`` of a message: the ``reproduce.solver`` logger, where the solver's
    lines go (to stderr under ``import caffe``, see ``mode.log_to_stderr``)."""
    import logging

    logging.getLogger("reproduce.solver").info(message)


def has_nccl() -> bool:
    return False


__all__ = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Blob", "Classifier", "Detector",
           "Layer", "Net", "NesterovSolver",
           "NetSpec", "RMSPropSolver", "SGDSolver", "TEST", "TRAIN", "caffe_pb2", "crop",
           "get_solver", "has_nccl", "init_log", "io", "layer_type_list", "layers", "log",
           "params", "proto", "set_device", "set_mode_cpu", "set_mode_gpu", "set_random_seed",
           "solver_count", "solver_rank", "text_format", "to_proto"]
