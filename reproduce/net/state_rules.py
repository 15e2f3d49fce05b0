"""Which layers a net keeps for a given NetState — Caffe's ``Net::FilterNet`` and ``StateMeetsRule``.

A rule (``NetStateRule``) is met when every condition it sets holds: ``phase`` equal,
``level >= min_level``, ``level <= max_level``, *all* of its ``stage`` values among the state's
stages and *none* of its ``not_stage`` values among them. A layer with ``include`` rules is
kept when any of them is met; a layer with ``exclude`` rules is kept unless one is met; a
layer with neither is kept; a layer with both is an error, as in Caffe.
"""
from __future__ import annotations

from typing import Iterable

from reproduce.caffe.schema import Message

PHASES = ("TRAIN", "TEST")


class NetStateError(ValueError):
    """A phase name or layer rule Caffe would refuse."""


def canonical_phase(phase: str) -> str:
    """``"train"``/``"TRAIN"`` → ``"TRAIN"`` (and TEST likewise); anything else is an error."""
    name = str(phase).upper()
    if name not in PHASES:
        raise NetStateError(f"phase must be 'train' or 'test', got {phase!r}")
    return name


def net_state(net: Message, phase: str, level: int = 0, stages: Iterable[str] = ()) -> Message:
    """The NetState Caffe's ``Net(file, phase, level, stages)`` runs with.

    The net's own ``state`` is kept, its phase and level replaced, ``stages`` appended.
    """
    state = net.state.copy() if net.has("state") else Message("NetState")
    state.phase = canonical_phase(phase)
    state.level = int(level)
    state.stage = list(state.stage) + [str(s) for s in stages]
    return state


def state_meets_rule(state: Message, rule: Message) -> bool:
    """Caffe's ``StateMeetsRule`` (see the module docstring)."""
    if rule.has("phase") and rule.phase != state.phase:
        return False
    if rule.has("min_level") and state.level < rule.min_level:
        return False
    if rule.has("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(state: Message, layer: Message) -> bool:
    """Whether ``layer`` (a LayerParameter) is part of the net in ``state``."""
    if layer.include and layer.exclude:
        raise NetStateError(f"layer {layer.name!r}: specify either include rules or exclude "
                            f"rules; not both")
    if layer.include:
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def filter_layers(net: Message, state: Message) -> list[Message]:
    """The LayerParameters of ``net`` kept in ``state``, in order (Caffe's FilterNet)."""
    return [layer for layer in net.layer if layer_included(state, layer)]
