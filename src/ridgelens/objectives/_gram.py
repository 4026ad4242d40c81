r"""A faster :class:`DesignSVD` for well-conditioned designs, from the centred Gram matrix.

GCV and leave-one-out need ``U`` (n × d) of the design's thin SVD, and LAPACK's ``gesdd``
of a tall n × d matrix costs several times ``n·d²``. When the design is well-conditioned,
the eigendecomposition of the small Gram matrix ``ZᵀZ = V diag(s²) Vᵀ`` (one ``syrk``, one
d × d ``eigh``) and ``U = Z V diag(1/s)`` (one ``gemm``, with ``s`` the norms of ``Z V``'s
columns) give the same factors for a fraction of the time. Their error grows as ``ε·cond²``
(the Gram matrix squares the condition number), so this route is taken only when
``cond(Z) ≤`` :data:`MAX_COND` (errors ≲ 2e-10 relative); every other design, a penalized
intercept, or an objective that already holds its SVD, gets ``None`` and the caller uses
:meth:`LeastSquares.design_svd` (the SVD, precise at any conditioning).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ridgelens.objectives.linear import _EPS, ILL_CONDITIONED, DesignSVD, LeastSquares

#: The Gram route is used only up to this condition number of the (centred, weighted) design.
MAX_COND = 1e3


def gram_svd(obj: LeastSquares) -> DesignSVD | None:
    """The design's thin SVD from its Gram matrix, or None where that would lose precision.

    Same conventions and fields as :meth:`LeastSquares.design_svd`; nothing is cached on ``obj``.
    """
    if obj._factors is not None or (obj.fit_intercept and obj.penalized[-1]):
        return None
    X, y, w, W = obj.X, obj.y, obj.sample_weight, obj.weight_sum
    n, d = X.shape
    if n <= d or d == 0:
        return None
    sw = np.ones(n) if w is None else np.sqrt(w)
    if obj.fit_intercept:
        x_mean = X.mean(axis=0) if w is None else (w @ X) / W
        y_mean = float(y.mean()) if w is None else float(w @ y) / W
        Z, t, free = X - x_mean, y - y_mean, sw / np.sqrt(W)
    else:
        x_mean, Z, t, free = None, X, y, None
    if w is not None:
        Z, t = sw[:, None] * Z, sw * t
    e, V = linalg.eigh(Z.T @ Z, driver="evd", check_finite=False)
    if not (e[0] > 0 and e[-1] <= MAX_COND ** 2 * e[0]):
        return None
    V = np.ascontiguousarray(V[:, ::-1])
    B = Z @ V
    s = np.sqrt(np.einsum("ij,ij->j", B, B))
    if not (s[-1] > 0 and s[0] <= MAX_COND * s[-1]):
        return None
    cond = _whole_condition(s, V.T, x_mean, W, n, d)
    if not cond <= ILL_CONDITIONED:  # the SVD route warns, with the condition number
        return None
    B /= s
    return DesignSVD(B, s, V.T, t, sw, W, free, d, cond)


def _whole_condition(s, Vt, x_mean, W, n, d) -> float:
    """``cond(W^{1/2}[X, 1])`` over its non-zero singular values, as :class:`DesignSVD` reports it.

    With a free intercept the whole design is ``[U, free] M``, ``M = [[diag(s) Vt, 0],
    [√Σw x̄ᵀ, √Σw]]`` (``[U, free]`` orthonormal), so its singular values are M's: from the
    eigenvalues of the arrowhead ``M Mᵀ`` when they span less than 1e8 (relative error
    ≲ 2e-8), else from M's SVD.
    """
    if x_mean is None:
        return float(s[0] / s[-1])
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
    ka = int(np.count_nonzero(g > g[0] * max(n, d + 1) * _EPS))
    return float(g[0] / g[ka - 1])
