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
