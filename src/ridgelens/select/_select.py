"""select_lambda: the boundary (validation, grid) around the criteria."""

from __future__ import annotations

import numpy as np

from ridgelens._validation import check_lambdas
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.select import _alo, _criteria
from ridgelens.select._evidence import laplace_diagnostics, laplace_evidence, least_squares_evidence
from ridgelens.select._grid import default_grid, given_grid
from ridgelens.select._heldout import confirm, heldout_losses, validation_objective
from ridgelens.select._predict import predict
from ridgelens.select._result import Selection

METHODS = ("gcv", "loo", "alo", "evidence", "validation")
#: Which objectives each method applies to (said in the error when another is asked).
APPLIES = {"gcv": "LeastSquares", "loo": "LeastSquares", "alo": "Logistic",
           "evidence": "LeastSquares (closed form), Logistic, torch models and StreamedLeastSquares (Laplace)",
           "validation": "every objective"}


def select_lambda(objective, lambdas=None, method: str = "gcv", *, validation=None, theta_hat=None,
                  options: dict | None = None) -> Selection:
    r"""Choose the ridge penalty λ on a grid without refitting.

    - ``"loo"``: the mean over samples (weighted by ``sample_weight``) of the squared
      leave-one-out error ``yᵢ − ŷ₍₋ᵢ₎(λ) = rᵢ(λ)/(1 − hᵢᵢ(λ))``, exact for least squares.
      Each left-out fit keeps the penalty ``α = λ·Σw`` on the sum of squares and refits a
      free intercept. This is what scikit-learn's ``RidgeCV`` (``cv=None``, whatever its
      ``gcv_mode``) computes: with ``alphas = λ·Σw`` (``n·λ`` without weights) it picks the
      same λ, and its ``cv_results_`` are ``wᵢ·loo_errors²``.
    - ``"gcv"``: generalized cross-validation (Golub, Heath & Wahba 1979),
      ``(Σwᵢrᵢ(λ)²/Σw) / (1 − tr A(λ)/n)²``, with ``A(λ)`` the hat matrix (the free intercept
      counts 1 in its trace) and ``n`` the number of samples with positive weight.
    - ``"alo"`` (:class:`Logistic`): approximate leave-one-out (Rad & Maleki 2020) from the
      Hessian at θ*(λ), found by Newton steps warm-started at θ̃(λ) (ALO at θ̃ itself is too
      far off: see ``ridgelens.select._alo``); the criterion is the mean left-out log-loss,
      ``diagnostics["alo_margins"]`` the left-out margins, ``["polish_iterations"]`` the
      Newton steps per λ.
    - ``"evidence"``: MacKay's evidence, −log E/n per λ. Least squares: closed form with the
      noise precision profiled out, and ``lambda_`` MacKay's fixed point (continuous, not
      restricted to the grid; the grid's best is ``diagnostics["grid_lambda"]``). Other
      objectives: the Laplace approximation at θ̃(λ), ``lambda_`` the grid's best, the noise
      precision profiled out when the objective declares a Gaussian loss
      (:attr:`~ridgelens.objectives.Objective.gaussian_loss`; ``diagnostics["noise_variance"]``),
      the loss taken as the per-sample negative log-likelihood otherwise. See
      ``ridgelens.select._evidence`` for the formulas and conventions.
    - ``"validation"``: the held-out mean loss of θ̃(λ) (``validation``), then one refit at
      the chosen λ; ``diagnostics["confirm"]`` holds the refit's held-out loss and the gap.

    ``gcv`` and ``loo`` come from the factors of the (weighted, centred) design that
    ``objective`` computes once for θ̂ and the path too (:meth:`LeastSquares.design_svd`): its
    thin SVD, or, when that design has more rows than columns and condition number ≤ 1e3,
    the eigendecomposition of its Gram matrix (several times faster, errors ≲ 2e-10
    relative: ``ridgelens.objectives._gram``; ``diagnostics["decomposition_choice"]`` says
    which and why); each λ then costs
    O(rank) (``gcv``) or O(n·rank) (``loo``) work. The others evaluate θ̃(λ) through
    :func:`ridgelens.analyze` (``refit=False``; ``options`` are passed to it).

    Parameters
    ----------
    objective : Objective
        ``gcv``, ``loo``: :class:`LeastSquares` (exact only for a loss quadratic in the fit);
        ``alo``: :class:`Logistic`; ``evidence``, ``validation``: any.
    lambdas : array of shape (n_lambdas,), optional
        At least 2 penalties λ ≥ 0, in the objective's convention (penalty (λ/2)‖θ_p‖² on
        the mean loss). Default: 100 values log-spaced from ``100·σ_max`` down to
        ``σ_min/100``, with σ the non-zero eigenvalues of the penalized block's curvature,
        descending (:func:`ridgelens.select.default_grid`).
    method : {"gcv", "loo", "alo", "evidence", "validation"}, default "gcv"
    validation : (X_val, y_val) or Objective, optional
        ``"validation"``'s held-out data: a pair for a linear objective (same columns as X),
        or an objective of the same model on held-out data.
    theta_hat : array, optional
        The unregularized minimizer, for the methods that go through :func:`analyze`.

    Returns
    -------
    Selection
        ``lambda_`` minimizes ``criterion`` over ``lambdas`` (the first of ties, as
        ``RidgeCV``), except for least-squares ``evidence`` (the fixed point).

    Raises
    ------
    RidgelensError
        Unknown method, a method that does not apply to the objective (the message says
        which do), fewer than 2 λ, or a negative or non-finite λ.
    DataError
        The design has no variation left (every column constant), or validation data of
        another width.
    """
    if method not in METHODS:
        raise RidgelensError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if hasattr(objective, "unavailable") and method in ("gcv", "loo"):  # streamed least squares (evidence: Laplace)
        raise objective.unavailable(f"select_lambda(method={method!r})")
    if method in ("validation", "alo") or (method == "evidence" and not isinstance(objective, LeastSquares)):
        return _through_path(objective, lambdas, method, validation, theta_hat, options or {})
    if not isinstance(objective, LeastSquares):
        raise RidgelensError(
            f"method={method!r} needs a quadratic loss, and {type(objective).__name__} is not: GCV "
            "and leave-one-out are exact only for least squares, whose fit is linear in y. Methods "
            "that apply: " + "; ".join(f"{m!r} for {w}" for m, w in APPLIES.items()))
    svd = objective.design_svd()
    via_gram = objective.decomposition_choice.name == "gram"
    if svd.rank == 0:
        raise DataError(
            "the design has no variation: every column of X is constant"
            + (" (after centring for the intercept)" if objective.fit_intercept else "")
            + ", so the penalty has nothing to shrink and every λ fits the same"
        )
    sigma = svd.s ** 2 / svd.weight_sum
    grid, how = default_grid(sigma, rank_tol=0.0) if lambdas is None else given_grid(lambdas, check_lambdas)

    prep = _criteria.Prepared(svd)
    errors, extra = None, {}
    if method == "gcv":
        crit, df = _criteria.gcv(prep, grid)
    elif method == "loo":
        errors, crit, df = _criteria.loo(prep, grid, objective)
    else:
        crit, fixed, n_iter, gamma, noise = least_squares_evidence(prep, grid)
        df = _criteria.gcv(prep, grid)[1]
        extra = {"grid_lambda": float(grid[int(np.argmin(crit))]), "fixed_point_iterations": n_iter,
                 "gamma": gamma, "noise_variance": noise}
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
        "decomposition": ("eigendecomposition of the Gram matrix of the " if via_gram else "thin SVD of the ")
                         + ("centred " if svd.free is not None else "")
                         + ("weighted " if objective.sample_weight is not None else "") + "design, once",
        "decomposition_choice": str(objective.decomposition_choice),
    }
    diagnostics.update(extra)
    chosen = float(grid[i]) if method != "evidence" else fixed
    return Selection(method=method, lambda_=chosen, lambdas=grid, criterion=crit,
                     loo_errors=errors, diagnostics=diagnostics)


def _through_path(objective, lambdas, method, validation, theta_hat, options) -> Selection:
    """``alo``, ``validation`` and Laplace ``evidence``: θ̃(λ) from :func:`analyze`, then the criterion."""
    _check_path_method(objective, method)
    val = validation_objective(objective, validation) if method == "validation" else None
    _, how, res = predict(objective, lambdas, theta_hat=theta_hat, **options)
    return select_on_analysis(objective, res, method, validation=val, grid_how=how, tol=options.get("tol"))


def _check_path_method(objective, method) -> None:
    if method == "alo" and not isinstance(objective, Logistic):
        raise RidgelensError(
            f"method='alo' is implemented for Logistic, not {type(objective).__name__}. Methods that apply: "
            + "; ".join(f"{m!r} for {w}" for m, w in APPLIES.items()))
    if method not in ("alo", "evidence", "validation"):
        raise RidgelensError(f"method={method!r} does not work from an analysis' path; from one: 'alo' "
                             "(Logistic), 'evidence', 'validation'")


def select_on_analysis(objective, res, method: str, *, validation=None, grid_how: str = "given",
                       tol=None, refit=None) -> Selection:
    """Choose λ on the grid of an analysis already made (``res = analyze(objective, grid, ...)``).

    For ``"alo"``, ``"evidence"`` (Laplace) and ``"validation"``: the criterion at every
    θ̃(λ) of ``res.path``, with no new analysis (dense or matrix-free, as ``res`` was made).
    ``validation`` as in :func:`select_lambda`; ``tol`` is the confirming refit's tolerance.
    ``validation``'s confirmation uses ``res``' refit at the chosen λ when it has one.
    ``refit``: a callable ``(res, index) -> res`` adding the refit at the chosen λ (e.g. with
    :func:`ridgelens.pipeline.refit_at`), called once the choice is made and before the
    confirmation (which then refits nothing more).
    """
    _check_path_method(objective, method)
    val = validation_objective(objective, validation) if method == "validation" else None
    grid, thetas, valid = res.lambdas, res.path.thetas, res.path.valid
    diagnostics = {"grid": grid_how, "effective_df": res.effective_df, "n_samples": objective.n_samples,
                   "analysis_method": res.method, "decomposition": f"{res.method} path of θ̃(λ), no refit"}
    if method == "alo":
        crit, margins, steps = _alo.alo(objective, grid, thetas, valid, tol=tol)
        diagnostics.update(alo_margins=margins, polish_iterations=steps)
    elif method == "evidence":
        crit, treatment = laplace_evidence(objective, grid, thetas, valid, res)
        diagnostics["treatment"] = treatment
    else:
        crit = heldout_losses(val, thetas, valid)
    if not np.isfinite(crit).any():
        raise RidgelensError(f"the {method} criterion is undefined at every λ of the grid (no valid prediction)")
    i = int(np.argmin(crit))
    lam = float(grid[i])
    diagnostics.update(index=i, at_grid_edge=i in (0, grid.size - 1))
    if method == "evidence":
        diagnostics.update(laplace_diagnostics(objective, lam, thetas[i], res.effective_df[i], res.path.penalized))
    if refit is not None:
        res = refit(res, i)
    if method == "validation":
        diagnostics["confirm"] = confirm(objective, val, lam, thetas[i], tol=tol, res=res, index=i)
    return Selection(method=method, lambda_=lam, lambdas=grid, criterion=crit, diagnostics=diagnostics)
