"""Multi-output y: one λ per target (scikit-learn's ``RidgeCV(alpha_per_target=True)``)."""

from __future__ import annotations

import numpy as np

from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives import LeastSquares
from ridgelens.select._select import select_lambda


def select_lambda_per_target(objective: LeastSquares, Y, lambdas=None, method: str = "loo") -> list:
    """One :func:`select_lambda` per column of ``Y``, sharing the design's SVD.

    Parameters
    ----------
    objective : LeastSquares
        The design (X, weights, intercept options); its own y is not used.
    Y : array of shape (n_samples, n_targets)
    lambdas : array, optional
        One grid for every target (default: from the design's spectrum, the same for all).
    method : {"gcv", "loo", "evidence"}

    Returns
    -------
    list of Selection
        One per target, in the order of Y's columns; ``[s.lambda_ for s in ...]`` times Σw is
        ``RidgeCV(alphas=λ·Σw, alpha_per_target=True).alpha_``.
    """
    if not isinstance(objective, LeastSquares):
        raise RidgelensError(f"one λ per target is for LeastSquares, not {type(objective).__name__}")
    if method not in ("gcv", "loo", "evidence"):
        raise RidgelensError(f"method must be 'gcv', 'loo' or 'evidence' for one λ per target, got {method!r}")
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != objective.n_samples:
        raise DataError(f"Y must have shape ({objective.n_samples}, n_targets), one row per row of X; got {Y.shape}")
    return [select_lambda(objective.with_target(Y[:, j]), lambdas, method=method) for j in range(Y.shape[1])]
