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
    """``(choice, (s, Vt))`` from ZᵀZ when the Gram route is chosen, else ``(choice, None)``.

    ``s`` (descending, all positive) are the square roots of ZᵀZ's eigenvalues and ``Vt`` its
    eigenvectors as rows: Z's singular values and right singular vectors, up to ``ε·cond²``.
    """
    n, d = Z.shape
    norms = np.sqrt(np.einsum("ij,ij->j", Z, Z)) if Z.size else np.zeros(d)
    ratio = float(norms.max() / norms.min()) if d and norms.min() > 0 else np.inf
    eig = {}

    def gram_cond() -> float:
        e, V = linalg.eigh(Z.T @ Z, driver="evd", check_finite=False)
        eig["e"], eig["V"] = e, V
        return float(np.sqrt(e[-1] / e[0])) if e[0] > 0 else np.inf

    choice = select_solver("design", requested, n=n, d=d, penalized_intercept=penalized_intercept,
                           column_ratio=ratio, gram_cond=gram_cond)
    if choice.name != "gram":
        return choice, None
    s = np.sqrt(eig["e"][::-1])
    return choice, (s, np.ascontiguousarray(eig["V"][:, ::-1].T))


def whole_condition(s: np.ndarray, Vt: np.ndarray, x_mean: np.ndarray, W: float, n: int) -> float:
    """``cond(W^{1/2}[X, 1])`` over its non-zero singular values, as :class:`DesignSVD` reports it.

    The whole design is ``[U, free] M``, ``M = [[diag(s) Vt, 0], [√Σw x̄ᵀ, √Σw]]`` (``[U, free]``
    orthonormal), so its singular values are M's: from the eigenvalues of the arrowhead ``M Mᵀ``
    (half the cost of M's SVD) when they span less than 1e8 (relative error ≲ 2e-8), else from
    M's SVD.
    """
    d = s.size
    a = np.sqrt(W) * (Vt @ x_mean)
    MMt = np.zeros((d + 1, d + 1))
    MMt[np.arange(d), np.arange(d)] = s * s
    MMt[:d, d] = MMt[d, :d] = s * a
    MMt[d, d] = W * (float(x_mean @ x_mean) + 1.0)
    e = linalg.eigvalsh(MMt, check_finite=False)
    if e[0] > 1e-8 * e[-1]:
        return float(np.sqrt(e[-1] / e[0]))
    M = np.zeros((d + 1, d + 1))
    M[:d, :d] = s[:, None] * Vt
    M[d, :d] = np.sqrt(W) * x_mean
    M[d, d] = np.sqrt(W)
    g = linalg.svdvals(M, check_finite=False)
    ka = int(np.count_nonzero(g > g[0] * max(n, d + 1) * np.finfo(np.float64).eps))
    return float(g[0] / g[ka - 1])
