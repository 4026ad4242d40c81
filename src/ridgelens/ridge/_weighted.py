"""The weighted penalty ``(λ/2)θᵀDθ`` (D diagonal ≥ 0) reduced to the all-or-nothing one.

With ``s = D^{-1/2}`` on the positive factors and 1 on the zero ones, θ = diag(s)φ turns

    (H + λD)θ = Hθ̂ − g        into        (H_s + λP)φ = H_s φ̂ − g_s,

with ``H_s = diag(s) H diag(s)`` (``CurvatureOperator.sandwich``), ``φ̂ = θ̂/s``, ``g_s = s∘g``
and ``P`` the 0/1 mask of positive factors. That is the path ridgelens already solves: the zero
factors go through the Schur complement of ``H_s`` and the positive ones see a shifted
(scaled) operator, so one Krylov run still serves every λ, matrix-free, and the dense eigen
form is exact. The eigen view (σⱼ, Q, shrinkage factors, df) is that of ``D^{-1/2} H D^{-1/2}``
on the penalized block (its Schur complement when some factors are 0); θ̃ = s∘φ̃.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ridgelens._penalty import PenaltyMatrix, from_vector
from ridgelens.errors import RidgelensError
from ridgelens.operators import DenseOperator, SchurComplementOperator, as_operator
from ridgelens.ridge._result import RidgePath
from ridgelens.spectra import Spectrum


def as_penalty(penalty, n: int) -> PenaltyMatrix:
    """A :class:`PenaltyMatrix` of ``n`` parameters from one, or from a vector of factors."""
    if isinstance(penalty, PenaltyMatrix):
        if penalty.n != n:
            raise RidgelensError(f"the penalty matrix has {penalty.n} factors but θ̂ has {n} parameters")
        return penalty
    return from_vector(penalty, n)


def scale_problem(H, theta_hat, gradient, penalty: PenaltyMatrix):
    """``(H_s, φ̂, g_s, mask, s)``: the unweighted problem whose path, times ``s``, is the weighted one."""
    s = penalty.scaling()
    op = as_operator(H)
    st = torch.as_tensor(s, dtype=torch.float64)
    if op.is_dense:  # a closed-form H stays a matrix (no n products to form it again)
        M = op.to_dense().to(device="cpu", dtype=torch.float64)
        Hs = DenseOperator(st[:, None] * M * st[None, :])
    else:
        Hs = op.sandwich(st)
    theta = np.asarray(theta_hat, dtype=np.float64) / s
    g = None if gradient is None else np.asarray(gradient, dtype=np.float64) * s
    return Hs, theta, g, penalty.penalized, s


def unscale_path(path: RidgePath, s: np.ndarray, penalty: PenaltyMatrix, theta_hat) -> RidgePath:
    """The scaled problem's path back in θ's coordinates (θ̃ = s∘φ̃); the eigen view stays the scaled one."""
    return replace(path, theta_hat=np.asarray(theta_hat, dtype=np.float64), thetas=path.thetas * s[None, :],
                   penalty_factors=penalty.factors)


def weighted_problem(source, theta_hat, gradient, penalty, penalized=None):
    """``(H_s, φ̂, g_s, mask, s, D)``: the 0/1 problem whose path, times ``s``, is that of ``(λ/2)θᵀDθ``.

    :func:`~ridgelens.ridge.ridge_path` with ``penalty=`` solves it and maps the path back with
    :func:`unscale_path`. ``source`` must give H (an operator, a matrix, an objective with
    ``hessian_dense``/``hvp``); a Spectrum or a Schur complement stand for another problem.
    ``low_rank`` and ``density`` options of that path, when given, must be of
    ``D^{-1/2} H D^{-1/2}`` (its Schur complement on the positive factors when some are 0).
    """
    if isinstance(source, (Spectrum, SchurComplementOperator)):
        raise RidgelensError(f"a penalty matrix needs the curvature H itself, not a {type(source).__name__} "
                             "(which already fixes the penalty to the 0/1 case)")
    if hasattr(source, "n_params") and hasattr(source, "hvp"):  # an objective: its Hessian at θ̂
        from ridgelens.operators import hessian

        source = hessian(source, np.asarray(theta_hat, dtype=np.float64))
    op = as_operator(source)
    pm = as_penalty(penalty, op.n)
    if penalized is not None and not np.array_equal(np.asarray(penalized, dtype=bool), pm.penalized):
        raise RidgelensError("penalized differs from the positive factors of the penalty matrix; pass one of them")
    return (*scale_problem(op, theta_hat, gradient, pm), pm)


def weighted_conventions(conventions: dict, penalty: PenaltyMatrix) -> dict:
    """The conventions of an analysis under ``(λ/2)θᵀDθ``, saying whose eigen view it reports."""
    c = dict(conventions)
    c["penalty"] = (f"(λ/2)θᵀDθ, D = diag(d) with d ≥ 0 per parameter (source: {penalty.source}; "
                    "'penalty' holds d); d = 0 leaves a parameter free")
    c["prediction"] = ("θ̃(λ) = (H + λD)⁻¹(Hθ̂ − g) (g only when gradient_used), computed as θ̃ = D^{-1/2}φ̃ "
                       "with φ̃ the path of the scaled curvature D^{-1/2} H D^{-1/2} (zero factors through "
                       "its Schur complement)")
    c["refit"] = "θ*(λ) = argmin R(θ) + (λ/2)θᵀDθ, found by the objective's own solver"
    c["eigen_view"] = ("eigenvalues, eigenvectors, coords, factors and effective_df are those of the scaled "
                       "curvature D^{-1/2} H D^{-1/2} on the positive factors (its Schur complement when some "
                       "are 0), in the coordinates φ = D^{1/2}θ")
    c["effective_df"] = "df(λ) = Σⱼ σⱼ/(σⱼ+λ) over the eigenvalues of the scaled curvature"
    return c
