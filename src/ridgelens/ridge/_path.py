"""The predicted ridge path θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g), decomposed once and swept as one broadcast."""

from __future__ import annotations

from ridgelens._validation import check_lambdas, check_tolerance
from ridgelens.ridge._result import SCALED_VIEW, RidgePath
from ridgelens.ridge._solvers import check_same_device, make_solver
from ridgelens.ridge._weighted import unscale_path, weighted_problem

__all__ = ["SCALED_VIEW", "RidgePath", "ridge_path"]


def ridge_path(source, theta_hat, lambdas, *, penalized=None, gradient=None,
               negative: str = "nan", method: str = "auto", tol: float = 1e-8, low_rank=None, density=None,
               max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None,
               penalty=None) -> RidgePath:
    """Predict the L2-regularized minimizer θ̃(λ) for every λ from one decomposition.

    ``θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g)``; with ``g = 0`` and every parameter penalized this is
    ``Q diag(σⱼ/(σⱼ+λ)) Qᵀ θ̂``: rotate, shrink, rotate back. A thin call of a path solver
    (:func:`~ridgelens.ridge.make_solver`): ``init`` decomposes once, ``compute`` answers the λ.

    Parameters
    ----------
    source : Spectrum, CurvatureOperator, array of shape (n, n), scipy LinearOperator, LeastSquares, …
        The curvature H at θ̂ (anything :func:`~ridgelens.operators.as_operator` accepts), or a
        least-squares objective, whose exact path comes from its design's SVD (the one θ̂ was
        solved with; no Gram matrix, full precision on ill-conditioned designs). A
        :class:`Spectrum` must be complete and can only be used when every parameter is
        penalized. A :class:`~ridgelens.operators.SchurComplementOperator` stands for its H and
        penalty mask, and runs the matrix-free path on itself, reusing the free block it has
        already factored (no second #u HVPs).
    theta_hat : array of shape (n,)
    lambdas : array of shape (m,)
        Penalties λ ≥ 0 of ``(λ/2)‖θ_p‖²``.
    penalized : bool array of shape (n,), optional
        Which parameters the penalty acts on (default: all). The others follow
        from stationarity through the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up
        (dense: formed exactly; "krylov": applied matrix-free, see ``method``).
    gradient : array of shape (n,), optional
        ∇R(θ̂), kept as the first-order term when θ̂ is not a stationary point.
    negative : {"nan", "clip", "raise"}, default "nan"
        What to do with σⱼ < 0: ``"nan"`` marks every λ with σⱼ + λ ≤ 0 invalid
        (NaN row, warning); ``"clip"`` uses max(σⱼ, 0); ``"raise"`` raises.
    method : {"auto", "dense", "krylov", "multishift-cg"}, default "auto"
        "dense": decompose H (or S) once, exact. "krylov": matrix-free, one Lanczos
        run on b = Hθ̂ − g serves every λ (memory O(m·n) for an m-step basis); with
        unpenalized parameters the one run is on the Schur complement S. "multishift-cg":
        matrix-free multi-shift CG, one product per step shared by every λ and no basis
        (2·#λ + 3 vectors); every parameter must be penalized. "auto": resolved by
        :func:`ridgelens._auto.select_solver` (dense when H is in memory or n ≤
        ``DENSE_MAX_PARAMS``, else krylov) and recorded in ``RidgePath.choice``.
    tol : float, default 1e-8
        Krylov and multishift-cg: stop when every λ has ‖b − (H + λI)θ̃‖ ≤ tol·‖b‖
        (with unpenalized parameters, the reduced system's ‖b − (S + λI)θ̃_p‖ ≤ tol·‖b‖).
    low_rank : Spectrum, optional
        Krylov and multishift-cg: top-k eigenpairs (of H, or of S) for the per-direction view
        (factors, coords, and the share of θ̂ outside their span).
    density : SpectralDensity, optional
        Krylov and multishift-cg: the SLQ density of the same curvature, from which df(λ) is
        computed (NaN without it: the path alone does not know the whole spectrum).
    penalty : PenaltyMatrix or array of shape (n,), optional
        D's diagonal (factors ≥ 0) for the penalty ``(λ/2)θᵀDθ``: θ̃(λ) = (H + λD)⁻¹(Hθ̂ − g). Zero
        factors go through the Schur complement, positive ones through ``D^{-1/2} H D^{-1/2}``
        (:mod:`ridgelens.ridge._weighted`); the eigen view is that scaled operator's and
        ``penalty_factors`` records D. ``penalized`` is then ``factors > 0``.
    max_matvecs, checkpoint, progress
        Krylov and multishift-cg: product budget (default min(n + 1, 500), the start
        product Hθ̂ counted; with unpenalized parameters, products with S, default
        min(#penalized, 500)), a folder to checkpoint into and resume from, a progress line.

    Examples
    --------
    >>> import numpy as np
    >>> path = ridge_path(np.diag([3.0, 1.0]), np.array([1.0, 1.0]), [0.0, 1.0])
    >>> path.thetas
    array([[1.  , 1.  ],
           [0.75, 0.5 ]])
    >>> path.effective_df
    array([2.  , 1.25])
    """
    lam = check_lambdas(lambdas)
    tol = check_tolerance(tol, "tol")
    check_same_device(source, theta_hat=theta_hat, gradient=gradient)
    start = theta_hat
    if penalty is not None:  # (λ/2)θᵀDθ: the 0/1 problem in φ = D^{1/2}θ, its path mapped back to θ below
        source, start, gradient, penalized, scale, penalty = weighted_problem(source, theta_hat, gradient, penalty,
                                                                              penalized)
    solver = make_solver(source, method=method, penalized=penalized, negative=negative, tol=tol,
                         low_rank=low_rank, density=density, max_matvecs=max_matvecs, checkpoint=checkpoint,
                         progress=progress)
    path = solver.init(source, start, gradient=gradient, lambdas=lam).compute(lam)
    return path if penalty is None else unscale_path(path, scale, penalty, theta_hat)
