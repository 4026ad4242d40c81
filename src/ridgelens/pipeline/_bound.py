r"""How far θ̃(λ) is from the true regularized minimizer θ*(λ), from one gradient, without a refit.

Let F(θ) = R(θ) + (λ/2)‖θ_p‖² with R convex (least squares, logistic regression). F is
λ-strongly convex in the penalized block (λ·min D_pp with a penalty matrix (λ/2)θᵀDθ: read λ as
that below), so:

- **every parameter penalized**: F is λ-strongly convex, and for any θ,
  ‖θ − θ*‖ ≤ ‖∇F(θ)‖/λ (a bound).
- **some parameters free** (an intercept): φ(θ_p) = min_u F(θ_p, u) is λ-strongly convex
  (partial minimization keeps convexity; the penalty adds λ), and ∇φ(θ_p) = ∇_pF(θ_p, u*(θ_p)).
  The free block is minimized with θ̃_p held (Newton on the few free parameters), then
  ‖θ̃_p − θ*_p‖ ≤ ‖∇_pF(θ̃_p, u*(θ̃_p))‖/λ is a bound on the penalized block. The free block
  follows through u*(·), whose Lipschitz constant is ‖H_uu⁻¹H_up‖: for least squares H is
  constant and the whole-vector figure is a bound; for logistic regression H is taken at θ̃,
  so the whole-vector figure is an *estimate* (the penalized block's stays a bound).

For a non-convex model (a torch network) no such bound exists: ‖∇F(θ̃(λ))‖ is reported as an
*indicator* (0 at a stationary point of the regularized loss), labelled as such.
"""

from __future__ import annotations

import numpy as np

BOUND = "bound"
PENALIZED_BOUND = "bound on the penalized block, estimate for the free parameters"
INDICATOR = "indicator: ‖∇F(θ̃)‖, not a distance (non-convex objective)"
_INNER_STEPS = 50


def _minimize_free(objective, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """θ with its free block replaced by argmin_u R(θ_p, u) (Newton with backtracking), θ_p held."""
    idx = np.flatnonzero(free)
    t = theta.copy()
    f = objective.value(t)
    for _ in range(_INNER_STEPS):
        g = objective.gradient(t)[idx]
        Huu = objective.hessian_columns(idx, t)[idx]
        step = np.linalg.lstsq(Huu, g, rcond=None)[0]
        if not np.all(np.isfinite(step)) or np.linalg.norm(step) <= 1e-15 * max(1.0, np.linalg.norm(t[idx])):
            break
        s = 1.0
        while s > 1e-10:
            cand = t.copy()
            cand[idx] -= s * step
            fc = objective.value(cand)
            if fc <= f:
                break
            s *= 0.5
        else:
            break
        t, f = cand, fc
    return t


def error_bound(objective, theta: np.ndarray, lam: float) -> tuple[float, float, str]:
    """``(whole-vector figure, penalized-block figure, kind)`` for one θ and λ (see the module)."""
    theta = np.asarray(theta, dtype=np.float64)
    mask = np.asarray(objective.penalized, dtype=bool)
    if not getattr(objective, "convex", False):
        g = float(np.linalg.norm(objective.penalized_gradient(theta, lam)))
        return g, g, INDICATOR
    if lam <= 0 or not mask.any():
        return np.inf, np.inf, BOUND
    # With a penalty matrix (λ/2)θᵀDθ, F is λ·min(D_pp)-strongly convex on the penalized block.
    mu = lam * float(np.asarray(getattr(objective, "penalty_factors", mask), dtype=np.float64)[mask].min())
    if mask.all():
        b = float(np.linalg.norm(objective.penalized_gradient(theta, lam))) / mu
        return b, b, BOUND
    free = ~mask
    t = _minimize_free(objective, theta, free)
    bp = float(np.linalg.norm(objective.penalized_gradient(t, lam)[mask])) / mu
    idx_u, idx_p = np.flatnonzero(free), np.flatnonzero(mask)
    cols = objective.hessian_columns(idx_u, t)
    lip = float(np.linalg.norm(np.linalg.lstsq(cols[idx_u], cols[idx_p].T, rcond=None)[0], 2))
    bu = float(np.linalg.norm(theta[free] - t[free])) + lip * bp
    kind = BOUND if getattr(objective, "constant_curvature", False) else PENALIZED_BOUND
    return float(np.hypot(bp, bu)), bp, kind


def error_bounds(objective, lambdas, thetas, valid) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`error_bound` at every λ of a path (NaN where the prediction is invalid)."""
    whole, pen = np.full(len(lambdas), np.nan), np.full(len(lambdas), np.nan)
    kind = BOUND
    for i, lam in enumerate(lambdas):
        if valid[i]:
            whole[i], pen[i], kind = error_bound(objective, thetas[i], float(lam))
    return whole, pen, kind


def coordinate_rel_error(predicted: np.ndarray, refit: np.ndarray) -> np.ndarray:
    """max_j |θ̃_j − θ*_j| / |θ*_j| per λ (denominators floored at ε·max_j |θ*_j|), shape (m,)."""
    floor = np.finfo(np.float64).eps * np.abs(refit).max(axis=1, keepdims=True)
    denom = np.maximum(np.abs(refit), np.maximum(floor, np.finfo(np.float64).tiny))
    return (np.abs(predicted - refit) / denom).max(axis=1)
