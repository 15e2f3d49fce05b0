"""Caffe's solvers for ``reproduce.net.Net``: the update rules, lr policies and snapshots.

``SGDSolver`` (solver.py) is pycaffe's ``caffe.SGDSolver``/``caffe.get_solver``: it reads a
solver prototxt, builds the train net, and steps, snapshots, restores and solves exactly as
Caffe's ``Solver``/``SGDSolver`` do. ``lr_policy`` holds ``GetLearningRate``, ``sgd`` and
``adaptive`` the update rules, ``snapshot`` the snapshot files, ``inputs`` what the net is
fed, ``cli`` the ``train`` command.
"""
from .errors import NonFiniteLossError, SolverConfigError
from .lr_policy import learning_rate
from .rules import UPDATE_RULES, make_update_rule
from .snapshot import SolverStateError, latest_snapshot
from .solver import SGDSolver, load_solver


def get_solver(solver_prototxt, weights=None, **kwargs) -> SGDSolver:
    """pycaffe's ``caffe.get_solver``: the solver the prototxt's ``type`` names."""
    return SGDSolver(solver_prototxt, weights, **kwargs)


__all__ = ["NonFiniteLossError", "SGDSolver", "SolverConfigError", "SolverStateError", "UPDATE_RULES",
           "get_solver", "latest_snapshot", "learning_rate", "load_solver", "make_update_rule"]
