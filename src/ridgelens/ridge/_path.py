"""The predicted ridge path θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g), decomposed once and swept as one broadcast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ridgelens._validation import check_lambdas, check_tolerance

#: How figures name the eigen view of a path with a penalty matrix (:attr:`RidgePath.scaled_view`).
SCALED_VIEW = "eigen view of D^{-1/2}HD^{-1/2}, coordinates φ = D^{1/2}θ"


@dataclass(frozen=True)
class RidgePath:
    """θ̃(λ) for many λ, with the eigen view that explains it.

    With the penalty on the block ``p`` of θ (``penalized``) the eigen view is that of
    the curvature the penalized block sees: H itself when every parameter is
    penalized, else the Schur complement ``S = H_pp − H_pu H_uu⁻¹ H_up``.

    Attributes
    ----------
    lambdas : ndarray of shape (m,)
    theta_hat : ndarray of shape (n,)
        The unregularized minimizer θ̂ the path starts from.
    thetas : ndarray of shape (m, n)
        The predicted minimizers θ̃(λ); a row is NaN where ``valid`` is False.
    eigenvalues : ndarray of shape (r,)
        σⱼ of the penalized block's curvature, descending (r = number penalized).
    eigenvectors : ndarray of shape (r, r)
        Q, the eigen-axes in the penalized block's coordinates.
    coords : ndarray of shape (r,)
        Qᵀθ̂_p: θ̂ rotated into the eigenbasis.
    factors : ndarray of shape (m, r)
        Shrinkage factors σⱼ/(σⱼ+λ) (0 where σⱼ = λ = 0; NaN where σⱼ + λ ≤ 0).
    scaled : ndarray of shape (m, r)
        The rotated coordinates of θ̃_p (``factors * coords`` when no gradient term).
    effective_df : ndarray of shape (m,)
        df(λ) = Σⱼ σⱼ/(σⱼ+λ), the effective number of parameters.
    penalized : ndarray of bool, shape (n,)
    valid : ndarray of bool, shape (m,)
        False where some σⱼ + λ ≤ 0 (the quadratic model has no minimizer there).
    gradient_used : bool
        Whether the first-order term g = ∇R(θ̂) was kept.
    curvature : str
        ``"hessian"`` or ``"schur-complement"``.
    rank_tol : float
        Eigenvalues with |σ| ≤ rank_tol are treated as exactly 0.
    method : str
        ``"dense-eigh"`` (exact eigen form), ``"krylov"`` (one Lanczos run on Hθ̂ − g) or
        ``"multishift-cg"`` (multi-shift CG on Hθ̂ − g).
    n_matvecs : int
        Products with H spent by the path itself (HVPs; with unpenalized parameters, the HVPs
        of H that the products with S cost), the ones that formed a matrix-free H densely included.
    residuals : ndarray of shape (m,) or None
        Krylov and multishift-cg: ‖b − (H + λI)θ̃‖/‖b‖ per λ (multishift-cg: from the recurrence).
    converged : ndarray of bool, shape (m,) or None
    outside_share : float
        ‖(I − QQᵀ)θ̂_p‖/‖θ̂_p‖: the part of θ̂ the eigenvectors held do not describe
        (0 for the dense path; for the Krylov path, Q are the low-rank top-k pairs).
    ritz_values : ndarray or None
        Krylov: the Ritz values of the path's own Krylov space (of H, or of S), which
        may show curvature the top-k spectrum and the density missed.
    penalty_factors : ndarray of shape (n,) or None
        With a penalty matrix ``(λ/2)θᵀDθ`` (``ridge_path(..., penalty=)``): D's diagonal. Then
        the eigen view (eigenvalues, eigenvectors, coords, factors, scaled, df) is that of the
        scaled curvature ``D^{-1/2} H D^{-1/2}`` (its Schur complement when some factors are 0), in
        the coordinates φ = D^{1/2}θ; ``thetas`` and ``theta_hat`` are in θ's. None: D = diag(penalized).
    gradient_coords : ndarray of shape (r,) or None
        Dense path with a gradient term: Qᵀg̃, g̃ = g_p − H_pu H_uu⁻¹ g_u, so that
        ``scaled = (σ∘coords − gradient_coords)/(σ + λ)`` (0 where σ = λ = 0).
    """

    lambdas: np.ndarray
    theta_hat: np.ndarray
    thetas: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    coords: np.ndarray
    factors: np.ndarray
    scaled: np.ndarray
    effective_df: np.ndarray
    penalized: np.ndarray
    valid: np.ndarray
    gradient_used: bool
    curvature: str
    rank_tol: float
    method: str = "dense-eigh"
    n_matvecs: int = 0
    residuals: np.ndarray | None = None
    converged: np.ndarray | None = None
    outside_share: float = 0.0
    ritz_values: np.ndarray | None = None
    gradient_coords: np.ndarray | None = None
    choice: object = None
    penalty_factors: np.ndarray | None = None

    @property
    def scaled_view(self) -> bool:
        """Whether the eigen view is that of D^{-1/2} H D^{-1/2} in φ = D^{1/2}θ (factors other than 0 and 1).

        Figures and the interactive page then say so (:data:`SCALED_VIEW`): σⱼ, Q and the
        coordinates are not H's or θ's.
        """
        pf = self.penalty_factors
        return pf is not None and not bool(np.all((pf == 0) | (pf == 1)))

    def steps(self, i: int) -> dict:
        """The rotate → scale → rotate steps at ``lambdas[i]``, each as an array.

        With a penalty matrix, in the scaled coordinates φ_p = D_p^{1/2}θ_p the eigen view lives in.
        """
        w = 1.0 if self.penalty_factors is None else np.sqrt(self.penalty_factors[self.penalized])
        return {
            "lambda": float(self.lambdas[i]),
            "theta_hat_p": w * self.theta_hat[self.penalized],
            "rotated": self.coords,
            "factors": self.factors[i],
            "scaled": self.scaled[i],
            "rotated_back": w * self.thetas[i][self.penalized],
        }


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
    from ridgelens.ridge._solvers import check_same_device, make_solver

    lam = check_lambdas(lambdas)
    tol = check_tolerance(tol, "tol")
    check_same_device(source, theta_hat=theta_hat, gradient=gradient)
    if penalty is not None:
        from ridgelens.ridge._weighted import weighted_ridge_path

        return weighted_ridge_path(source, theta_hat, lam, penalty, penalized=penalized, gradient=gradient,
                                   negative=negative, method=method, tol=tol, low_rank=low_rank, density=density,
                                   max_matvecs=max_matvecs, checkpoint=checkpoint, progress=progress)
    solver = make_solver(source, method=method, penalized=penalized, negative=negative, tol=tol,
                         low_rank=low_rank, density=density, max_matvecs=max_matvecs, checkpoint=checkpoint,
                         progress=progress)
    return solver.init(source, theta_hat, gradient=gradient, lambdas=lam).compute(lam)
