"""Train from a solver.prototxt as ``caffe train`` does: ``train --solver S [--weights W] [--resume SNAPSHOT]``."""
from reproduce.solver.cli import add_arguments, run  # noqa: F401  (the command's two entry points)
