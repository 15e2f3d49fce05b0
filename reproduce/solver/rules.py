"""The update rule a SolverParameter names, as Caffe's solver registry picks the solver class.

``type`` (``"SGD"``, ``"Nesterov"``, ``"AdaGrad"``, ``"RMSProp"``, ``"AdaDelta"``, ``"Adam"``)
selects the rule; the legacy ``solver_type`` enum is turned into ``type`` by
``reproduce.caffe.upgrade_solver`` before this is reached (Caffe's ``UpgradeSolverType``).
"""
from __future__ import annotations

from typing import Sequence

from reproduce.caffe.schema import Message

from .adaptive import AdaDeltaRule, AdaGradRule, AdamRule, RMSPropRule
from .errors import SolverConfigError
from .sgd import NesterovRule, SGDRule

UPDATE_RULES: dict[str, type[SGDRule]] = {
    rule.type_name: rule
    for rule in (SGDRule, NesterovRule, AdaGradRule, RMSPropRule, AdaDeltaRule, AdamRule)
}


def make_update_rule(param: Message, shapes: Sequence[Sequence[int]], device="cpu") -> SGDRule:
    """The rule for ``param.type`` over parameters of ``shapes``, with zeroed history."""
    try:
        rule = UPDATE_RULES[param.type]
    except KeyError:
        raise SolverConfigError(f"unknown solver type {param.type!r} "
                                f"(Caffe knows {', '.join(UPDATE_RULES)})") from None
    return rule(param, shapes, device=device)
