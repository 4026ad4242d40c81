"""The public shrinkage factor: :func:`ridgelens._shrinkage.shrinkage` with its arguments checked.

The stages call the unchecked one with λ they have already checked; a user's call comes here.
"""

from __future__ import annotations

import numpy as np

from ridgelens._shrinkage import shrinkage as _shrinkage
from ridgelens._validation import check_eigenvalues, check_lambdas, check_reals
from ridgelens.errors import RidgelensError


def shrinkage(sigma, lam, numerator=None) -> tuple[np.ndarray, np.ndarray]:
    """``numerator/(σ + λ)`` for every λ (rows) and σ (columns), and where it is defined.

    ``numerator`` defaults to σ, giving the shrinkage factors σⱼ/(σⱼ+λ). The rules:
    σ = λ = 0 gives 0 (defined: the pseudo-inverse); σ + λ ≤ 0 otherwise gives NaN (not
    defined: the quadratic model has no minimizer there). ``lam`` is checked as every λ is
    (:func:`~ridgelens._validation.check_lambdas`: real numbers ≥ 0, not strings); ``sigma``
    must be finite real numbers, ``numerator`` too, broadcastable to ``(len(lam), len(sigma))``.

    Returns ``(values, ok)``, both of shape ``(len(lam), len(sigma))``.

    >>> v, ok = shrinkage([2.0, 0.0, -1.0], [0.0, 2.0])
    >>> v
    array([[ 1. ,  0. ,  nan],
           [ 0.5,  0. , -1. ]])
    """
    lam = check_lambdas(lam, "lam")
    s = check_eigenvalues(sigma, "sigma")
    if numerator is None:
        return _shrinkage(s, lam)
    num = check_reals(numerator, "numerator")
    shape = (lam.size, s.size)
    if not _broadcasts_to(num.shape, shape):
        raise RidgelensError(f"numerator must broadcast to (len(lam), len(sigma)) = {shape}, got shape {num.shape}")
    if not np.all(np.isfinite(num)):
        raise RidgelensError(f"numerator must be finite, got {num[~np.isfinite(num)][0]}")
    return _shrinkage(s, lam, num)


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` (NumPy's rules, the target's shape unchanged)."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False
