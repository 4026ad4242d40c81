"""θ̃(λ) over a grid for any objective, through the pipeline (no refit), and the grid itself."""

from __future__ import annotations

import warnings

import numpy as np

from ridgelens._validation import check_lambdas
from ridgelens.pipeline import analyze
from ridgelens.select._grid import default_grid, given_grid


def curvature_eigenvalues(res) -> np.ndarray:
    """The penalized block's curvature eigenvalues an analysis saw (top-k and SLQ nodes when matrix-free)."""
    sigma = np.asarray(res.path.eigenvalues, dtype=np.float64)
    if res.density is not None:
        sigma = np.r_[sigma, res.density.nodes]
    return sigma


def predict(objective, lambdas, *, theta_hat=None, **options):
    """``(grid, how, analysis)``: the grid (default from the spectrum) and θ̃(λ) on it, with no refit.

    With ``lambdas=None`` the spectrum is computed first (one analysis at a single λ) and the
    default grid built from it; the path is then evaluated on that grid.
    """
    if lambdas is None:
        grid, how, theta_hat = spectrum_grid(objective, theta_hat=theta_hat, **options)
    else:
        grid, how = given_grid(lambdas, check_lambdas)
    res = analyze(objective, grid, theta_hat=theta_hat, refit=False, **options)
    return grid, how, res


def spectrum_grid(objective, *, theta_hat=None, **options):
    """``(grid, how, θ̂)``: the default grid from the objective's curvature spectrum at θ̂ (no refit)."""
    if hasattr(objective, "design_svd"):  # least squares: its design's SVD, no Hessian
        svd = objective.design_svd()
        if svd.rank:
            grid, how = default_grid(svd.s ** 2 / svd.weight_sum, rank_tol=0.0)
            return grid, how, theta_hat
    with warnings.catch_warnings():  # the analysis that follows warns about its premises itself
        warnings.simplefilter("ignore")
        first = analyze(objective, [1.0], theta_hat=theta_hat, refit=False, **options)
    grid, how = default_grid(curvature_eigenvalues(first), rank_tol=first.path.rank_tol or None)
    return grid, how, first.theta_hat
