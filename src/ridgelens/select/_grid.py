"""The default λ grid, from the spectrum of the penalized block's curvature."""

from __future__ import annotations

import numpy as np

from ridgelens._validation import distinct
from ridgelens.errors import RidgelensError

#: Size of the default grid, and how far it reaches beyond the spectrum (×100 each side).
DEFAULT_SIZE = 100
DEFAULT_REACH = 100.0


def default_grid(eigenvalues, *, size: int = DEFAULT_SIZE, reach: float = DEFAULT_REACH,
                 rank_tol: float | None = None) -> tuple[np.ndarray, str]:
    r"""``size`` penalties log-spaced from ``reach·σ_max`` down to ``σ_min/reach``, descending.

    ``σ`` are the eigenvalues of the curvature the penalty acts on (the Schur complement
    when some parameters are unpenalized); ``σ_min`` is the smallest one above
    ``rank_tol`` (default ``σ_max·len(σ)·ε``), so directions the data leave flat do not
    drag the grid to 0. The grid then spans every shrinkage ``σ/(σ+λ)`` from under 1%
    to over 99%, and paths and criteria drawn on it are smooth curves.

    Returns
    -------
    grid : ndarray of shape (size,)
    how : str
        A sentence saying how it was made (for diagnostics and results.json).

    >>> grid, how = default_grid([4.0, 1.0, 0.0])
    >>> float(grid[0]), float(grid[-1]), grid.size
    (400.0, 0.01, 100)
    """
    sigma = np.asarray(eigenvalues, dtype=np.float64).ravel()
    sigma = sigma[np.isfinite(sigma)]
    if sigma.size == 0 or not sigma.max() > 0:
        raise RidgelensError("no positive curvature eigenvalue to build a λ grid from; pass lambdas explicitly")
    top = float(sigma.max())
    tol = top * sigma.size * np.finfo(np.float64).eps if rank_tol is None else float(rank_tol)
    low = float(sigma[sigma > tol].min())
    grid = np.geomspace(reach * top, low / reach, int(size))
    how = (f"default: {int(size)} values log-spaced from {reach:g}·σ_max = {grid[0]:.3g} down to "
           f"σ_min/{reach:g} = {grid[-1]:.3g} (σ: the penalized block's curvature eigenvalues)")
    return grid, how


def given_grid(lambdas, check) -> tuple[np.ndarray, str]:
    """A user's grid, checked (finite, ≥ 0) and at least 2 long."""
    grid = check(lambdas, "lambdas")
    if np.unique(grid).size < 2:
        raise RidgelensError(
            f"choosing λ needs at least 2 λ to choose among, got {distinct(grid)}; pass a longer grid, "
            "or lambdas=None for the default one (100 values from the spectrum)")
    return grid, f"given: {grid.size} values"
