"""Multi-process training as Caffe's multi-GPU training does it (``parallel.cpp``, ``solver.cpp``).

``torchrun --nproc_per_node=N -m reproduce stage …`` starts N processes; each builds the same
solver and net and runs the same iterations. What Caffe's ``NCCL`` solver callback does is
reproduced step by step:

* start: rank 0's parameters are broadcast to every rank (``NCCL::Broadcast``);
* every iteration, each rank computes its own forward/backward on its own sample
  (``iter_size`` passes accumulate as usual), then in ``on_gradients_ready`` — before
  ``ApplyUpdate`` — the diffs are all-reduced with a *sum* and scaled by
  ``1 / solver_count`` (``ncclAllReduce(…, ncclSum)`` then ``caffe_gpu_scal(1/N)``): every
  rank applies the identical update with the *averaged* gradient, in float32. The learning
  rate is not scaled; ``Normalize`` (``1/iter_size``), weight decay and momentum follow, so
  N ranks with ``iter_size: k`` take the step of one process averaging N·k gradients;
* random streams: Caffe seeds each rank with ``random_seed + solver_rank``; here the
  solver's generator (dropout) gets ``random_seed + rank`` and so does every training data
  layer (``seed + rank``: rank r draws the reference-ordered stream of seed 1337 + r, with
  replacement, independently of the other ranks). Caffe's own ``DataLayer`` instead shards
  one database stream (rank r keeps every N-th record); the reference's Python layers have
  no such logic — under Caffe every worker's layer would draw from the one global ``random``
  module, an order that depends on thread timing — so per-rank seeded streams are the
  reproducible reading of it. The validation images are not random; ``reproduce.evaluation.evaluate``
  shards them (rank r scores images r, r + N, …) and all-reduces the histograms;
* only rank 0 writes snapshots and logs (Caffe: ``Caffe::root_solver()``); a snapshot also
  holds every rank's data-sampler and generator state (gathered before rank 0 writes it), so
  a resumed run continues each rank's stream exactly.

Also: a non-finite loss on any rank stops every rank at the same iteration (Caffe would
train on; the single-process solver stops, and so must the others or they would wait
forever in the all-reduce).

Launch variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) are
torchrun's; the backend is ``nccl`` on CUDA and ``gloo`` on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from reproduce.solver import SGDSolver
from reproduce.solver.snapshot import read_solverstate, rng_states, set_rng_states

f32 = np.float32


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The process's place in a torchrun launch (rank 0 of 1 without one)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {err}") from None
    return World(rank, size, local_rank)


def init_process_group(world: World, device: torch.device) -> None:
    """Join the torchrun process group (once); nothing to do for a single process."""
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size)


def destroy_process_group(world: World) -> None:
    """Leave the process group once every rank is done with it (a no-op for one process).

    Without it, the group is torn down by the interpreter's exit, while the other rank may
    already have closed its end: gloo's worker then dies in ``std::terminate`` ("terminate
    called without an active exception", SIGABRT) and torchrun reports the run as failed.
    """
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_parameters(net, src: int = 0) -> None:
    """Caffe's ``NCCL::Broadcast``: every rank takes rank ``src``'s parameter values."""
    import torch.distributed as dist

    with torch.no_grad():
        for blobs in net.params.values():
            for blob in blobs:
                dist.broadcast(blob.data, src=src)


def average_gradients(params, world_size: int) -> None:
    """Sum every parameter's gradient over the ranks, then scale by ``1/world_size`` (float32).

    A parameter without a gradient (``lr_mult: 0``) contributes zeros, as its Caffe diff does.
    """
    import torch.distributed as dist

    scale = float(f32(1) / f32(world_size))
    for param in params:
        if param.grad is None:
            if not param.requires_grad:
                continue
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.mul_(scale)


class DistributedSGDSolver(SGDSolver):
    """``SGDSolver`` whose update uses the gradient averaged over the process group.

    Needs an initialized ``torch.distributed`` process group. Rank r's solver must have been
    given ``random_seed + r`` and its training data layers ``seed + r`` (``stages`` does).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import torch.distributed as dist

        self.world = World(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        self._rank_states: list | None = None

    def on_gradients_ready(self, loss):
        """Every rank stops if any diverged; otherwise the diffs become their mean over ranks."""
        import torch.distributed as dist

        flag = torch.tensor([0.0 if np.isfinite(loss) else 1.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            return loss if not np.isfinite(loss) else f32("nan")   # another rank diverged
        average_gradients(self.learnable_parameters, self.world.size)
        return loss

    # -- snapshots: every rank's streams -----------------------------------------------
    def gather_rank_states(self) -> None:
        """Collect every rank's data and generator states (a collective: all ranks call it)."""
        import torch.distributed as dist

        mine = {"data": self.feeder.state_dict(), "rng": rng_states({"net": self.generator})}
        gathered: list = [None] * self.world.size
        dist.all_gather_object(gathered, mine)
        self._rank_states = gathered

    def state_dict(self, learned_net=""):
        state = super().state_dict(learned_net)
        state["world_size"] = self.world.size
        if self._rank_states is not None:
            state["ranks"] = self._rank_states
        return state

    def restore(self, path, *, continue_loss_window: bool = True) -> None:
        super().restore(path, continue_loss_window=continue_loss_window)
        state = read_solverstate(path)
        ranks = state.get("ranks")
        if not ranks or len(ranks) != self.world.size:
            written = state.get("world_size", 1)
            raise RuntimeError(f"{path} was written by a run of {written} process(es); "
                               f"resume it with the same number ({self.world.size} now)")
        own = ranks[self.world.rank]
        self.feeder.load_state_dict(own["data"])
        set_rng_states(own["rng"], {"net": self.generator})
