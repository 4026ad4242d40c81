"""Objectives: model + data + loss, as a mean loss on a flat parameter vector."""

from ridgelens.objectives._base import MinimizeResult, Objective
from ridgelens.objectives.linear import LeastSquares, Logistic

__all__ = ["LMObjective", "LeastSquares", "Logistic", "MinimizeResult", "Objective", "TorchObjective"]


def __getattr__(name):
    # torch is imported only when a torch objective is asked for.
    if name == "TorchObjective":
        from ridgelens.objectives.torch import TorchObjective

        return TorchObjective
    if name == "LMObjective":
        from ridgelens.objectives.lm import LMObjective

        return LMObjective
    raise AttributeError(name)
