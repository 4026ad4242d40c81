"""The result of a ridge path, :class:`RidgePath`, below every path solver that builds one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        ``"hessian"`` (the whole curvature given: H, or G for a Gauss–Newton analysis) or
        ``"schur-complement"`` (of the penalized block).
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
