r"""The Gram route of :class:`~ridgelens.objectives.LeastSquares`: the design's factors from ZᵀZ.

θ̂, the exact path and the GCV/leave-one-out criteria all start from a factorization
``Z = U diag(s) Vt`` of the (centred, weighted) design. LAPACK's ``gesdd`` of a tall
n × d matrix costs several times ``n·d²``. When the design is well-conditioned, the
eigendecomposition of the small Gram matrix ``ZᵀZ = V diag(s²) Vᵀ`` (one ``syrk``, one
d × d ``eigh``) gives ``s`` and ``Vt`` for a fraction of the time, and ``U = Z V diag(1/s)``
(one ``gemm``) is formed only when something needs it (the selection criteria; θ̂ and the
path never do). The Gram matrix squares the condition number, so these factors carry
relative errors up to about ``ε·cond²``: the route is taken only when
``cond(Z) ≤`` :data:`~ridgelens._auto.GRAM_MAX_COND` (errors ≲ 2.2e-10), a decision
:func:`ridgelens._auto.select_solver` makes once per design (``"design"``) and every result
records. θ̂ does not inherit that error: it is refined with residuals summed in twice the
working precision, which converges from any start with error below 1/2 (ε·cond² ≤ 2.2e-10).
Every other design (ill-conditioned, wide, or with a penalized intercept) keeps the SVD,
precise at any conditioning.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ridgelens._auto import Choice, select_solver


def decompose(Z: np.ndarray, requested: str, *, penalized_intercept: bool) -> tuple[Choice, tuple | None]:
    """``(choice, (s, Vt, G))`` from ``G = ZᵀZ`` when the Gram route is chosen, else ``(choice, None)``.

    ``s`` (descending, all positive) are the square roots of ZᵀZ's eigenvalues and ``Vt`` its
    eigenvectors as rows: Z's singular values and right singular vectors, up to ``ε·cond²``.
    ``G`` is kept, so that the Hessian is not formed from the design a second time.
    """
    n, d = Z.shape
    norms = np.sqrt(np.einsum("ij,ij->j", Z, Z)) if Z.size else np.zeros(d)
    ratio = float(norms.max() / norms.min()) if d and norms.min() > 0 else np.inf
    eig = {}

    def gram_cond() -> float:
        eig["G"] = Z.T @ Z
        e, V = linalg.eigh(eig["G"], driver="evd", check_finite=False)
        eig["e"], eig["V"] = e, V
        return float(np.sqrt(e[-1] / e[0])) if e[0] > 0 else np.inf

    choice = select_solver("design", requested, n=n, d=d, penalized_intercept=penalized_intercept,
                           column_ratio=ratio, gram_cond=gram_cond)
    if choice.name != "gram":
        return choice, None
    s = np.sqrt(eig["e"][::-1])
    return choice, (s, np.ascontiguousarray(eig["V"][:, ::-1].T), eig["G"])


def whole_condition(s: np.ndarray, Vt: np.ndarray, x_mean: np.ndarray, W: float, n: int) -> float:
    """``cond(W^{1/2}[X, 1])`` over its non-zero singular values, as :class:`DesignSVD` reports it.

    The whole design is ``[U, free] M``, ``M = [[diag(s) Vt, 0], [√Σw x̄ᵀ, √Σw]]`` (``[U, free]``
    orthonormal), so its singular values are M's, and their squares the eigenvalues of the
    arrowhead ``M Mᵀ = [[diag(s²), z], [zᵀ, α]]``. Only the two extreme ones are needed: each is
    the one root of the secular equation ``α − λ − Σ zᵢ²/(sᵢ² − λ) = 0`` below min s² or above
    max s², found by bisection-safe root finding in O(d) per step (no d × d decomposition). When
    they span 1e8 or more (where their absolute accuracy, ε·max s², is no longer enough), M's SVD.
    """
    d = s.size
    s2 = s * s
    z = s * (np.sqrt(W) * (Vt @ x_mean))
    alpha = W * (float(x_mean @ x_mean) + 1.0)
    lo, hi = _arrowhead_extremes(s2, z, alpha)
    if lo > 1e-8 * hi:
        return float(np.sqrt(hi / lo))
    M = np.zeros((d + 1, d + 1))
    M[:d, :d] = s[:, None] * Vt
    M[d, :d] = np.sqrt(W) * x_mean
    M[d, d] = np.sqrt(W)
    g = linalg.svdvals(M, check_finite=False)
    ka = int(np.count_nonzero(g > g[0] * max(n, d + 1) * np.finfo(np.float64).eps))
    return float(g[0] / g[ka - 1])


def _arrowhead_extremes(dg: np.ndarray, z: np.ndarray, alpha: float) -> tuple[float, float]:
    """Smallest and largest eigenvalue of the PSD arrowhead ``[[diag(dg), z], [zᵀ, alpha]]``, ``dg > 0``.

    ``f(λ) = α − λ − Σ zᵢ²/(dgᵢ − λ)`` decreases on (−∞, min dg) and on (max dg, ∞); its root
    there, if any, is the smallest (largest) eigenvalue, else min dg (max dg) is (Cauchy
    interlacing: every other eigenvalue lies in [min dg, max dg]).
    """
    from scipy.optimize import brentq

    def f(lam):
        return alpha - lam - float(np.sum(z * z / (dg - lam)))

    rtol = 4 * np.finfo(np.float64).eps
    d_lo, d_hi = float(dg.min()), float(dg.max())
    below = d_lo * (1 - 1e-13)
    if f(0.0) <= 0:  # singular (to rounding): no root above 0
        lo = 0.0
    elif f(below) >= 0:
        lo = d_lo
    else:
        lo = brentq(f, 0.0, below, xtol=1e-300, rtol=rtol)
    above = d_hi * (1 + 1e-13)
    top = max(d_hi, alpha) + float(np.linalg.norm(z)) + above  # ‖A‖ ≤ max(dg, α) + ‖z‖
    if f(above) <= 0:
        hi = d_hi
    elif f(top) >= 0:  # only by rounding (‖z‖ below ε·α, say): the root is the bound itself, to rounding
        hi = top
    else:
        hi = brentq(f, above, top, xtol=1e-300, rtol=rtol)
    return lo, hi
