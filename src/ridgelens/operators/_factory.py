"""``hessian(objective, θ)`` and ``ggn(objective, θ)``: the curvature of an objective as an operator.

Dispatch is on what the objective offers through its public protocol: a closed form
(``hessian_dense``), the torch protocol (``flat_tensor``, ``prepared_batches``, …), or only
``hvp``. Nothing here reaches into an objective's private attributes.
"""

from __future__ import annotations

import inspect

import numpy as np

from ridgelens._validation import check_objective
from ridgelens.errors import RidgelensError
from ridgelens.operators._base import CurvatureOperator, DenseOperator, HessianOperator

CURVATURES = ("hessian", "ggn")


def _is_torch_objective(objective) -> bool:
    return all(hasattr(objective, a) for a in ("flat_tensor", "prepared_batches", "batch_weight", "outputs"))


def _theta_vector(objective, theta) -> np.ndarray:
    """θ for a closed-form Hessian: float64 of shape (n_params,) (a wrong one raised NumPy's ValueError)."""
    try:
        th = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError):
        raise RidgelensError(f"theta must be {objective.n_params} numbers, got {type(theta).__name__}") from None
    if th.shape != (objective.n_params,):
        raise RidgelensError(f"theta must have shape ({objective.n_params},), got {th.shape}")
    return th


def hessian(objective, theta, **options) -> CurvatureOperator:
    """The Hessian of ``objective``'s mean loss at ``theta`` as a :class:`CurvatureOperator`.

    Closed-form objectives (least squares, logistic) give a :class:`DenseOperator` (exact,
    float64); torch objectives a matrix-free :class:`TorchHessianOperator` (``options``:
    ``form=``, ``memory_budget=``); any other objective a :class:`HessianOperator` over its ``hvp``.
    """
    check_objective(objective, "hessian()")
    closed = getattr(objective, "hessian_dense", None)
    if closed is not None and not _is_torch_objective(objective):
        H = closed(_theta_vector(objective, theta))
        if H is not None:
            if options:
                raise RidgelensError(f"options {sorted(options)} are for matrix-free torch Hessians; "
                                     "this objective's Hessian is in closed form")
            return DenseOperator(H)
    if _is_torch_objective(objective):
        from ridgelens.operators._torch import TorchHessianOperator

        return _with_options(TorchHessianOperator, objective, theta, options, "the torch Hessian")
    return _with_options(HessianOperator, objective, theta, options, "the Hessian of an objective's hvp")


def ggn(objective, theta, **options) -> CurvatureOperator:
    """The generalized Gauss–Newton curvature ``JᵀH_out J`` of ``objective`` at ``theta``.

    Torch objectives: a matrix-free :class:`GGNOperator` (``options``: ``reuse=``,
    ``memory_budget=``, ``hand_written=``), positive semi-definite whenever the loss is convex in the outputs
    (checked; an indefinite output Hessian raises). Least squares and logistic regression are
    GLMs with their canonical links, whose Gauss–Newton matrix *is* the Hessian: their exact
    dense H is returned.
    """
    if objective is None:
        raise RidgelensError("ggn() needs an objective, got None")
    if _is_torch_objective(objective):
        from ridgelens.operators._ggn import GGNOperator

        return _with_options(GGNOperator, objective, theta, options, "the Gauss-Newton curvature")
    if getattr(objective, "canonical_glm", False):
        return hessian(objective, theta)
    raise RidgelensError(f"the Gauss-Newton curvature needs a torch objective (model outputs and a loss), or a "
                         f"GLM with its canonical link; {type(objective).__name__} is neither")


def _with_options(cls, objective, theta, options: dict, what: str) -> CurvatureOperator:
    """``cls(objective, theta, **options)``; an option ``cls`` does not take is named (was Python's TypeError)."""
    takes = [p for p in inspect.signature(cls).parameters if p not in ("objective", "theta")]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise RidgelensError(f"options {unknown} do not apply to {what}, which takes "
                             + (", ".join(f"{p}=" for p in takes) or "none"))
    return cls(objective, theta, **options)


def curvature(objective, theta, kind: str = "hessian", **options) -> CurvatureOperator:
    """``hessian`` or ``ggn`` by name (``kind`` is recorded in analyses as ``curvature``)."""
    if kind not in CURVATURES:
        raise RidgelensError(f"curvature must be one of {CURVATURES}, got {kind!r}")
    return (hessian if kind == "hessian" else ggn)(objective, theta, **options)
