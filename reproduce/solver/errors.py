"""The solver's exceptions: a bad solver configuration, and a run that diverged.

Caffe aborts on a failed ``CHECK`` in its solver; here those become ``SolverConfigError``
with a message naming the offending setting. Caffe keeps training through a NaN or infinite
loss; here the run stops with ``NonFiniteLossError`` naming the iteration, before the
diverged update is applied or snapshotted.
"""
from __future__ import annotations


class SolverConfigError(ValueError):
    """A SolverParameter Caffe would refuse (unknown lr_policy or type, missing net, …)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``iteration`` is the iteration that produced it."""

    def __init__(self, iteration: int, loss: float, last_snapshot: str | None = None):
        self.iteration = int(iteration)
        self.loss = float(loss)
        self.last_snapshot = last_snapshot
        where = (f"; the last good snapshot is {last_snapshot}" if last_snapshot
                 else "; no snapshot was written before it")
        super().__init__(f"the training loss is {loss} at iteration {iteration}: the run diverged "
                         f"and was stopped before updating the weights{where}")

    def __reduce__(self):
        return (type(self), (self.iteration, self.loss, self.last_snapshot))
