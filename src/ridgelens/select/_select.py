"""select_lambda: the boundary (validation, grid) around the criteria."""

from __future__ import annotations

import numpy as np

from ridgelens._validation import check_lambdas
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives import LeastSquares
from ridgelens.select import _criteria
from ridgelens.select._result import Selection

METHODS = ("gcv", "loo")
#: Size of the default grid, and how far it reaches beyond the spectrum (×100 each side).
DEFAULT_SIZE = 100
DEFAULT_REACH = 100.0


def select_lambda(objective, lambdas=None, method: str = "gcv") -> Selection:
    r"""Choose the ridge penalty λ by GCV or exact leave-one-out, without refitting.

    Both criteria come from the thin SVD of the (weighted, centred) design that
    ``objective`` computes once (:meth:`LeastSquares.design_svd`); each λ then costs
    O(rank) (``gcv``) or O(n·rank) (``loo``) work, with no refit.

    - ``"loo"``: the mean over samples (weighted by ``sample_weight``) of the squared
      leave-one-out error ``yᵢ − ŷ₍₋ᵢ₎(λ) = rᵢ(λ)/(1 − hᵢᵢ(λ))``, exact for least squares.
      Each left-out fit keeps the penalty ``α = λ·Σw`` on the sum of squares and refits a
      free intercept. This is what scikit-learn's ``RidgeCV`` (``cv=None``, whatever its
      ``gcv_mode``) computes: with ``alphas = λ·Σw`` (``n·λ`` without weights) it picks the
      same λ, and its ``cv_results_`` are ``wᵢ·loo_errors²``.
    - ``"gcv"``: generalized cross-validation (Golub, Heath & Wahba 1979),
      ``(Σwᵢrᵢ(λ)²/Σw) / (1 − tr A(λ)/n)²``, with ``A(λ)`` the hat matrix (the free intercept
      counts 1 in its trace) and ``n`` the number of samples with positive weight.

    Parameters
    ----------
    objective : LeastSquares
        The only quadratic objective: for other losses (``Logistic``, torch models) GCV and
        leave-one-out are not exact, and this raises.
    lambdas : array of shape (n_lambdas,), optional
        At least 2 penalties λ ≥ 0, in the objective's convention (penalty (λ/2)‖θ_p‖² on
        the mean loss). Default: 100 values log-spaced from ``100·σ_max`` down to
        ``σ_min/100``, with σ the non-zero eigenvalues of the penalized block's curvature
        (:meth:`LeastSquares.penalized_spectrum`), descending.
    method : {"gcv", "loo"}, default "gcv"

    Returns
    -------
    Selection
        ``lambda_`` minimizes ``criterion`` over ``lambdas`` (the first of ties, as
        ``RidgeCV``); ``loo_errors`` for ``"loo"``.

    Raises
    ------
    RidgelensError
        Unknown method, a non-quadratic objective, fewer than 2 λ, or a negative or
        non-finite λ.
    DataError
        The design has no variation left (every column constant), so there is nothing to
        shrink.
    """
    if method not in METHODS:
        raise RidgelensError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if not isinstance(objective, LeastSquares):
        raise RidgelensError(
            f"method={method!r} needs a quadratic loss, and {type(objective).__name__} is not: GCV "
            "and leave-one-out are exact only for least squares, whose fit is linear in y. "
            "Methods that apply: 'gcv' and 'loo' for LeastSquares; none yet for Logistic or "
            "torch models, whose λ needs refits on held-out data (for Logistic: scikit-learn's "
            "LogisticRegressionCV with Cs = 1/(n·λ))"
        )
    svd = objective.design_svd()
    if svd.rank == 0:
        raise DataError(
            "the design has no variation: every column of X is constant"
            + (" (after centring for the intercept)" if objective.fit_intercept else "")
            + ", so the penalty has nothing to shrink and every λ fits the same"
        )
    sigma = svd.s ** 2 / svd.weight_sum
    if lambdas is None:
        grid = np.geomspace(DEFAULT_REACH * sigma[0], sigma[-1] / DEFAULT_REACH, DEFAULT_SIZE)
        how = (f"default: {DEFAULT_SIZE} values log-spaced from {DEFAULT_REACH:g}·σ_max = "
               f"{grid[0]:.3g} down to σ_min/{DEFAULT_REACH:g} = {grid[-1]:.3g}")
    else:
        grid = check_lambdas(lambdas, "lambdas")
        if grid.size < 2:
            raise RidgelensError(
                f"select_lambda needs at least 2 λ to choose among, got {grid.size}; pass a "
                "longer grid, or lambdas=None for the default one (100 values from the spectrum)"
            )
        how = f"given: {grid.size} values"

    prep = _criteria.Prepared(svd)
    errors = None
    if method == "gcv":
        crit, df = _criteria.gcv(prep, grid)
    else:
        errors, crit, df = _criteria.loo(prep, grid, objective)
    i = int(np.argmin(crit))
    diagnostics = {
        "index": i,
        "at_grid_edge": i in (0, grid.size - 1),
        "effective_df": df,
        "sklearn_alpha": float(grid[i] * svd.weight_sum),
        "weight_sum": svd.weight_sum,
        "n_samples": prep.n,
        "rank": svd.rank,
        "condition_number": svd.condition_number,
        "grid": how,
        "decomposition": "thin SVD of the " + ("centred " if svd.free is not None else "")
                         + ("weighted " if objective.sample_weight is not None else "") + "design, once",
    }
    return Selection(method=method, lambda_=float(grid[i]), lambdas=grid, criterion=crit,
                     loo_errors=errors, diagnostics=diagnostics)
