"""The whole flow in one call: θ̂ → H → spectrum → predicted path → refit → error."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ridgelens._auto import resolve_method
from ridgelens._checkpoint import digest
from ridgelens._io import atomic_write_bytes, atomic_write_json
from ridgelens._validation import check_lambdas, check_vector
from ridgelens.errors import (
    ConvergenceWarning,
    GradientNotZeroWarning,
    NegativeCurvatureWarning,
    RidgelensError,
)
from ridgelens.operators import DenseOperator, SchurComplementOperator, hessian
from ridgelens.ridge._path import RidgePath, ridge_path
from ridgelens.spectra import SpectralDensity, Spectrum, eigen, spectral_density

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
        Eigenpairs of the full Hessian H at θ̂. Matrix-free with unpenalized parameters:
        the top-k pairs of the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up (penalized
        coordinates; ``path.curvature == "schur-complement"``), and ``n_matvecs`` in HVPs of H.
    path : RidgePath
        The prediction θ̃(λ) and its eigen view.
    refit : ndarray of shape (m, n) or None
        The true regularized minimizers θ*(λ).
    refit_converged : ndarray of bool, shape (m,) or None
    refit_gradient_norm : ndarray of shape (m,) or None
    rel_error : ndarray of shape (m,) or None
        ‖θ̃ − θ*‖ / ‖θ*‖ per λ.
    theta_hat_converged : bool
    method : str
        ``"dense"`` or ``"matrix-free"``: what ``method="auto"`` resolved to.
    min_eigenvalue : float
        Smallest eigenvalue of H at θ̂, the second premise (should be ≥ 0); matrix-free:
        the smallest Ritz value seen (SLQ and Lanczos), an upper bound on it. Matrix-free with
        unpenalized parameters: the smallest Ritz value of S. Every inner solve with H_uu
        checks H_uu ≻ 0 (and raises otherwise), and given that, H ⪰ 0 exactly when S ⪰ 0.
    density : SpectralDensity or None
        Matrix-free: the SLQ density that gives df(λ) (of S with unpenalized parameters;
        ``n_matvecs`` in HVPs of H).
    n_matvecs : int
        Hessian-vector products spent on H (0 when H was in closed form).
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
    method: str = "dense"
    min_eigenvalue: float = float("nan")
    density: SpectralDensity | None = None
    n_matvecs: int = 0
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
    def gradient_coords(self) -> np.ndarray | None:
        """Qᵀg̃: the first-order term in the eigenbasis of the penalized block's curvature.

        g̃ is ∇R(θ̂) reduced to the penalized block (g_p − H_pu H_uu⁻¹ g_u), as the exact path
        computed it (its rotated coordinates are (σⱼ(Qᵀθ̂)ⱼ − (Qᵀg̃)ⱼ)/(σⱼ + λ)); None when no
        gradient term was kept, or for a matrix-free path (which holds only the top-k view).
        Not recovered from those coordinates: σⱼ(Qᵀθ̂)ⱼ − scaledⱼ(σⱼ + λ) cancels when g̃ is small
        beside σ∘Qᵀθ̂ (a nearly stationary θ̂), and is 0 where σⱼ = λ = 0 whatever (Qᵀg̃)ⱼ is.
        """
        path = self.path
        if not path.gradient_used or path.method != "dense-eigh" or path.gradient_coords is None:
            return None
        return np.asarray(path.gradient_coords, dtype=np.float64)

    def to_dict(self) -> dict:
        """A JSON-ready dict (eigenvectors only for dense analyses of at most 400 penalized parameters)."""
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
            "method": self.method,
            "n_matvecs": self.n_matvecs,
            "eigen_residuals": self.spectrum.residuals,
            "eigen_converged": self.spectrum.converged,
            "outside_share": self.path.outside_share,
            "path_method": self.path.method,
            "path_residuals": self.path.residuals,
            "density": None if self.density is None else {
                "nodes": self.density.nodes, "weights": self.density.weights,
                "bandwidth": self.density.bandwidth, "n_matvecs": self.density.n_matvecs},
            "curvature": self.path.curvature,
            "penalized_eigenvalues": self.path.eigenvalues,
            # Q of the penalized block, (r, r), when it is small enough to be worth writing.
            "penalized_eigenvectors": (self.path.eigenvectors
                                       if self.method == "dense" and self.path.eigenvalues.size <= 400 else None),
            "coords": self.path.coords,
            "gradient_coords": self.gradient_coords,
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
            tol: float | None = None, negative: str = "nan", refit_options: dict | None = None,
            method: str = "auto", k: int = 20, seed: int = 0, eig_tol: float = 1e-6, path_tol: float = 1e-8,
            n_probes: int = 8, slq_steps: int = 60, checkpoint=None, progress: bool | None = None) -> Analysis:
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
    method : {"auto", "dense", "matrix-free"}
        "dense": all eigenpairs and the exact eigen-form path (n HVPs for torch models).
        "matrix-free": top-k Lanczos pairs, an SLQ density (for df(λ) and the smallest
        eigenvalue) and the one-run Krylov path; with unpenalized parameters all three are of
        the Schur complement S (a :class:`SchurComplementOperator`: with ≤ 4096 unpenalized
        parameters H_uu is formed from #u HVPs and factored, then each product with S costs
        1 or 2 HVPs; above that, 1 + (inner CG iterations)), recorded as ``path.curvature``. "auto": dense when H
        is in memory or n ≤ ``DENSE_MAX_PARAMS``. The choice is recorded in ``Analysis.method``.
    k, seed, eig_tol, path_tol, n_probes, slq_steps
        Matrix-free settings: eigenpairs kept, random seed, Lanczos residual tolerance
        (relative to |σ_max|), Krylov path tolerance (relative residual), SLQ probes and steps.
    checkpoint : path, optional
        Folder for checkpoints of the long stages (Lanczos, Krylov path, each refit);
        a killed run started again with the same folder resumes and gives the same result.
    progress : bool, optional
        Progress lines for the matrix-free stages (default: when stderr is a terminal).

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
    ck = Path(checkpoint) if checkpoint is not None else None
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
    gradient = g if gnorm > grad_tol else None
    H = hessian(objective, theta_hat)
    chosen = resolve_method(method, H.n, H.is_dense, allowed=("dense", "matrix-free"))
    mask = objective.penalized
    density = None
    if chosen == "dense":
        if not H.is_dense:  # densify once; the spectrum and the Schur complement both use it
            H = DenseOperator(H.to_dense())
        spectrum = eigen(H)
        min_eig = spectrum.min_eigenvalue
        path = ridge_path(spectrum if mask.all() else H, theta_hat, lam, penalized=mask,
                          gradient=gradient, negative=negative)
    elif mask.all():
        spectrum = eigen(H, min(int(k), H.n), tol=eig_tol, seed=seed, method="lanczos",
                         checkpoint=ck, progress=progress)
        density = spectral_density(H, n_probes=n_probes, m=slq_steps, seed=seed)
        path = ridge_path(H, theta_hat, lam, penalized=mask, gradient=gradient, negative=negative,
                          method="krylov", tol=path_tol, low_rank=spectrum, checkpoint=ck, progress=progress)
        path = replace(path, effective_df=density.effective_df(lam))
        # Three Krylov spaces saw H: the top-k run, the SLQ probes and the path's own; take the lowest.
        min_eig = float(min(density.nodes.min(), spectrum.eigenvalues.min(), path.ritz_values.min()))
        if min_eig < -1e-8 * abs(float(spectrum.eigenvalues[0])):
            warnings.warn(f"H has negative eigenvalues (smallest Ritz value ≈ {min_eig:.4g}): θ̂ is not a "
                          "minimum of the quadratic model; predictions for λ below that size are unreliable",
                          NegativeCurvatureWarning, stacklevel=2)
    else:
        # Unpenalized parameters: the penalized block sees S = H_pp − H_pu H_uu⁻¹ H_up, so the eigen
        # view, the density (df) and the path are all of S. Factoring H_uu (or every inner CG solve)
        # checks H_uu ≻ 0 (and raises otherwise); with it, H ⪰ 0 ⇔ S ⪰ 0, so S's smallest Ritz value
        # is the premise.
        S = SchurComplementOperator(H, mask)
        before = S.n_matvecs
        spectrum = eigen(S, min(int(k), S.n), tol=eig_tol, seed=seed, method="lanczos",
                         checkpoint=ck, progress=progress)
        spectrum = replace(spectrum, n_matvecs=S.n_matvecs - before)  # HVPs of H, not products with S
        before = S.n_matvecs
        density = spectral_density(S, n_probes=n_probes, m=slq_steps, seed=seed)
        density = replace(density, n_matvecs=S.n_matvecs - before)
        path = ridge_path(S, theta_hat, lam, gradient=gradient, negative=negative, method="krylov",
                          tol=path_tol, low_rank=spectrum, checkpoint=ck, progress=progress)  # H_uu factored once
        path = replace(path, effective_df=density.effective_df(lam))
        min_eig = float(min(density.nodes.min(), spectrum.eigenvalues.min(), path.ritz_values.min()))
        if min_eig < -1e-8 * abs(float(spectrum.eigenvalues[0])):
            warnings.warn(f"the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up has negative eigenvalues (smallest "
                          f"Ritz value ≈ {min_eig:.4g}), so H is not positive semi-definite: θ̂ is not a minimum "
                          "of the quadratic model; predictions for λ below that size are unreliable",
                          NegativeCurvatureWarning, stacklevel=2)
    n_matvecs = H.n_matvecs

    refits = conv = gnorms = rel = None
    if refit:
        refits = np.empty_like(path.thetas)
        conv = np.zeros(lam.size, dtype=bool)
        gnorms = np.empty(lam.size)
        for i, lam_i in enumerate(lam):
            refits[i], conv[i], gnorms[i] = _refit_one(objective, float(lam_i), i, path, theta_hat, tol,
                                                       refit_options, ck)
        if not conv.all():
            warnings.warn(f"the refit did not converge for λ = {', '.join(f'{v:g}' for v in lam[~conv])}",
                          ConvergenceWarning, stacklevel=2)
        denom = np.maximum(np.linalg.norm(refits, axis=1), np.finfo(float).tiny)
        rel = np.linalg.norm(path.thetas - refits, axis=1) / denom
    return Analysis(objective=type(objective).__name__, n_samples=objective.n_samples,
                    n_params=objective.n_params, param_names=list(objective.param_names),
                    lambdas=lam, theta_hat=theta_hat, gradient_norm=gnorm, grad_tol=grad_tol,
                    spectrum=spectrum, path=path, refit=refits, refit_converged=conv,
                    refit_gradient_norm=gnorms, rel_error=rel, theta_hat_converged=converged,
                    method=chosen, min_eigenvalue=min_eig, density=density, n_matvecs=n_matvecs)


def _refit_one(objective, lam: float, i: int, path, theta_hat, tol, options, ck):
    """One refit, warm-started at θ̃(λ); saved to and resumed from ``ck/refit_i.npz``."""
    file = None if ck is None else ck / f"refit_{i}.npz"
    # θ̂ and how the refit is run (tolerance, method, iterations): another setting is another run.
    run_id = f"{digest(theta_hat)} tol={tol!r} {sorted((k, repr(v)) for k, v in options.items())}"
    if file is not None and file.exists():
        saved = np.load(file)
        if "run" not in saved:
            raise RidgelensError(f"checkpoint {file} has no run fingerprint (written by an older ridgelens); "
                                 "delete it or use another --checkpoint folder")
        if float(saved["lam"]) != lam or saved["theta"].shape != theta_hat.shape or str(saved["run"]) != run_id:
            raise RidgelensError(f"checkpoint {file} holds a refit of another run (another λ, θ̂ or refit "
                                 "setting); use another --checkpoint folder or delete it")
        return saved["theta"], bool(saved["converged"]), float(saved["gradient_norm"])
    x0 = path.thetas[i] if path.valid[i] else theta_hat
    r = objective.minimize(l2=lam, x0=x0, tol=tol, **options)
    if file is not None:
        buf = io.BytesIO()
        np.savez(buf, lam=lam, theta=r.theta, converged=r.converged, gradient_norm=r.gradient_norm,
                 run=run_id)
        atomic_write_bytes(file, buf.getvalue())
    return r.theta, r.converged, r.gradient_norm
