"""The whole flow in one call: θ̂ → H → spectrum → predicted path → refit → error."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ridgelens._io import atomic_write_json
from ridgelens._validation import check_lambdas, check_vector
from ridgelens.errors import ConvergenceWarning, GradientNotZeroWarning
from ridgelens.operators import DenseOperator, hessian
from ridgelens.ridge._path import RidgePath, ridge_path
from ridgelens.spectra import Spectrum, eigen

CONVENTIONS = {
    "loss": "R(θ) is the MEAN loss over the n samples (least squares: (1/2n)‖Xw + b − y‖²; "
            "logistic: mean log-loss)",
    "penalty": "(λ/2)‖θ_p‖², θ_p = the penalized parameters (see 'penalized'); the intercept is "
               "free unless penalize_intercept was asked for",
    "prediction": "θ̃(λ) = (H + λP)⁻¹ H θ̂ (minus the first-order term g when gradient_used); "
                  "= Q diag(σ/(σ+λ)) Qᵀ θ̂ when every parameter is penalized",
    "refit": "θ*(λ) = argmin R(θ) + (λ/2)‖θ_p‖², found by the objective's own solver",
    "rel_error": "‖θ̃(λ) − θ*(λ)‖ / ‖θ*(λ)‖",
    "effective_df": "df(λ) = Σⱼ σⱼ/(σⱼ+λ) over the penalized block's curvature",
    "sklearn": "Ridge(alpha = n·λ); LogisticRegression(C = 1/(n·λ))",
}


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyze` found, with its diagnostics.

    Attributes
    ----------
    objective : str
        Class name of the objective.
    n_samples, n_params : int
    param_names : list of str
    lambdas : ndarray of shape (m,)
    theta_hat : ndarray of shape (n,)
    gradient_norm : float
        ‖∇R(θ̂)‖, the first premise.
    spectrum : Spectrum
        Eigenpairs of the full Hessian H at θ̂.
    path : RidgePath
        The prediction θ̃(λ) and its eigen view.
    refit : ndarray of shape (m, n) or None
        The true regularized minimizers θ*(λ).
    refit_converged : ndarray of bool, shape (m,) or None
    refit_gradient_norm : ndarray of shape (m,) or None
    rel_error : ndarray of shape (m,) or None
        ‖θ̃ − θ*‖ / ‖θ*‖ per λ.
    theta_hat_converged : bool
    """

    objective: str
    n_samples: int
    n_params: int
    param_names: list
    lambdas: np.ndarray
    theta_hat: np.ndarray
    gradient_norm: float
    grad_tol: float
    spectrum: Spectrum
    path: RidgePath
    refit: np.ndarray | None
    refit_converged: np.ndarray | None
    refit_gradient_norm: np.ndarray | None
    rel_error: np.ndarray | None
    theta_hat_converged: bool
    conventions: dict = field(default_factory=lambda: dict(CONVENTIONS))

    @property
    def predicted(self) -> np.ndarray:
        """θ̃(λ), shape (m, n)."""
        return self.path.thetas

    @property
    def effective_df(self) -> np.ndarray:
        """df(λ), shape (m,)."""
        return self.path.effective_df

    @property
    def min_eigenvalue(self) -> float:
        """Smallest eigenvalue of H at θ̂, the second premise (should be ≥ 0)."""
        return self.spectrum.min_eigenvalue

    def to_dict(self) -> dict:
        """A JSON-ready dict (eigenvectors left out: they are n×n)."""
        return {
            "objective": self.objective,
            "n_samples": self.n_samples,
            "n_params": self.n_params,
            "param_names": self.param_names,
            "penalized": self.path.penalized,
            "lambdas": self.lambdas,
            "theta_hat": self.theta_hat,
            "theta_hat_converged": self.theta_hat_converged,
            "gradient_norm": self.gradient_norm,
            "grad_tol": self.grad_tol,
            "gradient_used": self.path.gradient_used,
            "eigenvalues": self.spectrum.eigenvalues,
            "min_eigenvalue": self.min_eigenvalue,
            "spectrum_method": self.spectrum.method,
            "curvature": self.path.curvature,
            "penalized_eigenvalues": self.path.eigenvalues,
            "coords": self.path.coords,
            "factors": self.path.factors,
            "predicted": self.predicted,
            "valid": self.path.valid,
            "refit": self.refit,
            "refit_converged": self.refit_converged,
            "refit_gradient_norm": self.refit_gradient_norm,
            "rel_error": self.rel_error,
            "effective_df": self.effective_df,
            "conventions": self.conventions,
        }

    def to_json(self, path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (the conventions are inside the file)."""
        atomic_write_json(path, self.to_dict())


def analyze(objective, lambdas, *, theta_hat=None, refit: bool = True, grad_tol: float | None = None,
            tol: float | None = None, negative: str = "nan", refit_options: dict | None = None) -> Analysis:
    """Predict what L2 regularization does to ``objective``'s minimizer and check it by refitting.

    Parameters
    ----------
    objective : Objective
        :class:`LeastSquares`, :class:`Logistic`, :class:`TorchObjective`, or your own.
    lambdas : array of shape (m,)
        Penalties λ ≥ 0 of ``(λ/2)‖θ_p‖²`` (mean-loss convention).
    theta_hat : array of shape (n,), optional
        The unregularized minimizer; found with ``objective.minimize()`` if not given.
    refit : bool, default True
        Also find the true regularized minimizers θ*(λ) (warm-started at θ̃(λ)).
    grad_tol : float, optional
        ‖∇R(θ̂)‖ above this keeps the first-order term and warns
        (default ``100 · objective.default_tol``).
    tol : float, optional
        Gradient-norm tolerance of the solvers (default: the objective's).
    negative : {"nan", "clip", "raise"}
        Handling of negative eigenvalues, see :func:`ridge_path`.
    refit_options : dict, optional
        Extra options for ``objective.minimize`` (e.g. ``{"method": "lbfgs"}``).

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from ridgelens import LeastSquares
    >>> X, y = load_diabetes(return_X_y=True)
    >>> res = analyze(LeastSquares(X, y), [0.01, 0.1])
    >>> bool(res.rel_error.max() < 1e-10)
    True
    """
    lam = check_lambdas(lambdas)
    refit_options = dict(refit_options or {})
    converged = True
    if theta_hat is not None:  # the caller's θ̂ must fit the objective (a clear error, not a matmul one)
        theta_hat = check_vector(theta_hat, objective.n_params, "theta_hat")
    else:
        hat = objective.minimize(tol=tol, **refit_options)
        theta_hat, converged = hat.theta, hat.converged
        if not converged:
            warnings.warn(f"finding θ̂ stopped at ‖∇R‖ = {hat.gradient_norm:.3g} > tol = {hat.tol:.3g} "
                          f"({hat.message})", ConvergenceWarning, stacklevel=2)
    theta_hat = np.asarray(theta_hat, dtype=np.float64)
    g = objective.gradient(theta_hat)
    gnorm = float(np.linalg.norm(g))
    grad_tol = 100 * objective.default_tol if grad_tol is None else float(grad_tol)
    if gnorm > grad_tol:
        warnings.warn(
            f"θ̂ is not a stationary point: ‖∇R(θ̂)‖ = {gnorm:.3g} > grad_tol = {grad_tol:.3g}; "
            "keeping the first-order term, θ̃ = (H + λP)⁻¹(Hθ̂ − g)",
            GradientNotZeroWarning, stacklevel=2,
        )
    H = hessian(objective, theta_hat)
    if not H.is_dense:  # densify once; the spectrum and the Schur complement both use it
        H = DenseOperator(H.to_dense())
    spectrum = eigen(H)
    mask = objective.penalized
    source = spectrum if mask.all() else H
    path = ridge_path(source, theta_hat, lam, penalized=mask,
                      gradient=g if gnorm > grad_tol else None, negative=negative)

    refits = conv = gnorms = rel = None
    if refit:
        refits = np.empty_like(path.thetas)
        conv = np.zeros(lam.size, dtype=bool)
        gnorms = np.empty(lam.size)
        for i, lam_i in enumerate(lam):
            x0 = path.thetas[i] if path.valid[i] else theta_hat
            r = objective.minimize(l2=float(lam_i), x0=x0, tol=tol, **refit_options)
            refits[i], conv[i], gnorms[i] = r.theta, r.converged, r.gradient_norm
        if not conv.all():
            warnings.warn(f"the refit did not converge for λ = {', '.join(f'{v:g}' for v in lam[~conv])}",
                          ConvergenceWarning, stacklevel=2)
        denom = np.maximum(np.linalg.norm(refits, axis=1), np.finfo(float).tiny)
        rel = np.linalg.norm(path.thetas - refits, axis=1) / denom
    return Analysis(objective=type(objective).__name__, n_samples=objective.n_samples,
                    n_params=objective.n_params, param_names=list(objective.param_names),
                    lambdas=lam, theta_hat=theta_hat, gradient_norm=gnorm, grad_tol=grad_tol,
                    spectrum=spectrum, path=path, refit=refits, refit_converged=conv,
                    refit_gradient_norm=gnorms, rel_error=rel, theta_hat_converged=converged)
