"""The shrinkage factor σ/(σ+λ) and its 0/0 rule, written once.

At the bottom of the house (no ridgelens imports), so that every stage that needs it — the
SLQ density's df(λ), the path solvers, the df curve, the interactive page — uses this one.
"""

from __future__ import annotations

import numpy as np


def shrinkage(sigma, lam, numerator=None) -> tuple[np.ndarray, np.ndarray]:
    """``numerator/(σ + λ)`` for every λ (rows) and σ (columns), and where it is defined.

    ``numerator`` defaults to σ, giving the shrinkage factors σⱼ/(σⱼ+λ); it may be an array
    broadcastable to ``(len(lam), len(sigma))`` (e.g. σ∘Qᵀθ̂ − Qᵀg). The rules:

    - σ = λ = 0: the value is 0 (the pseudo-inverse: a direction with no curvature and no
      penalty does not move from 0), and it counts as defined;
    - σ + λ ≤ 0 otherwise: NaN, not defined (the quadratic model has no minimizer there);
    - else numerator/(σ + λ).

    Returns ``(values, ok)``, both of shape ``(len(lam), len(sigma))``.

    >>> v, ok = shrinkage(np.array([2.0, 0.0, -1.0]), np.array([0.0, 2.0]))
    >>> v
    array([[ 1. ,  0. ,  nan],
           [ 0.5,  0. , -1. ]])
    >>> ok.tolist()
    [[True, True, False], [True, True, True]]
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    denom = sigma[None, :] + lam[:, None]
    null = (sigma[None, :] == 0.0) & (lam[:, None] == 0.0)
    ok = (denom > 0) | null
    num = sigma[None, :] if numerator is None else np.broadcast_to(np.asarray(numerator, dtype=np.float64),
                                                                    denom.shape)
    safe = np.where(ok & ~null, denom, 1.0)
    out = np.where(null, 0.0, num / safe)
    return np.where(ok, out, np.nan), ok


#: Unit roundoff of the dtypes a curvature may be formed in (by name, so that NumPy and torch dtypes both work).
_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}


def rounding_tol(sigma, dtype="float64", n: int | None = None) -> float:
    """The size below which an eigenvalue is zero to rounding: ``n · ε(dtype) · max|σ|``.

    The eigenvalues of a symmetric matrix formed in ``dtype`` carry errors of about this size
    (the convention of ``numpy.linalg.matrix_rank`` and LAPACK), so |σ| ≤ tol is 0, not negative
    curvature and not a direction to shrink. ``dtype`` is the dtype the matrix was *formed* in
    (a float32 Hessian cast to float64 keeps float32's errors); ``n`` defaults to ``len(σ)``.

    >>> rounding_tol(np.array([2.0, -1e-14, 0.0]))  # 3 · 2⁻⁵² · 2
    1.3322676295501878e-15
    >>> rounding_tol([1.0], "torch.float32", n=100)
    1.1920928955078125e-05
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    name = str(dtype).rsplit(".", 1)[-1]
    eps = _EPS.get(name, _EPS["float64"])
    size = sigma.size if n is None else int(n)
    return max(size, 1) * eps * float(np.abs(sigma).max(initial=0.0))


def snap_rounding(sigma, dtype="float64", n: int | None = None) -> tuple[np.ndarray, float]:
    """σ with every |σⱼ| ≤ :func:`rounding_tol` set to exactly 0 (a copy), and that tolerance."""
    tol = rounding_tol(sigma, dtype, n)
    out = np.array(sigma, dtype=np.float64)
    out[np.abs(out) <= tol] = 0.0
    return out, tol
