"""The whole flow in one call: θ̂ → H → spectrum → predicted path → refit → error."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ridgelens._auto import select_solver
from ridgelens._checkpoint import Checkpoint, digest
from ridgelens._distributed import check_shardable, shard_basis_option
from ridgelens._io import atomic_write_json
from ridgelens._progress import Progress, governs_stages
from ridgelens._validation import (
    check_flag,
    check_lambdas,
    check_objective,
    check_seed,
    check_tolerance,
    check_vector,
)
from ridgelens.errors import (
    ConvergenceWarning,
    DataError,
    DistributedError,
    GradientNotZeroWarning,
    ModelOutputError,
    NegativeCurvatureWarning,
    RidgelensError,
)
from ridgelens.operators import CURVATURES, DenseOperator, SchurComplementOperator
from ridgelens.operators import curvature as build_curvature
from ridgelens.pipeline import _display
from ridgelens.pipeline._bound import coordinate_rel_error, error_bounds
from ridgelens.pipeline._curvature import choose_curvature
from ridgelens.ridge import RidgePath, has_exact_path, ridge_path, shrinkage, wide_diagonal
from ridgelens.ridge._weighted import scale_problem, unscale_path, weighted_conventions
from ridgelens.spectra import SpectralDensity, Spectrum, eigen, spectral_density

CONVENTIONS = {
    "loss": "R(θ) is the MEAN loss over the n samples (least squares: (1/2n)‖Xw + b − y‖²; "
            "logistic: mean log-loss)",
    "penalty": "(λ/2)‖θ_p‖², θ_p = the penalized parameters (see 'penalized'); the intercept is "
               "free unless penalize_intercept was asked for",
    "prediction": "θ̃(λ) = (H + λP)⁻¹ H θ̂ (minus the first-order term g when gradient_used); "
                  "= Q diag(σ/(σ+λ)) Qᵀ θ̂ when every parameter is penalized; H is the curvature named in "
                  "'curvature_kind' (the Hessian, or the Gauss-Newton matrix JᵀH_out J)",
    "refit": "θ*(λ) = argmin R(θ) + (λ/2)‖θ_p‖², found by the objective's own solver",
    "rel_error": "‖θ̃(λ) − θ*(λ)‖ / ‖θ*(λ)‖",
    "rel_error_coord": "max_j |θ̃_j(λ) − θ*_j(λ)| / |θ*_j(λ)|, so a large intercept cannot hide a wrong slope",
    "error_bound": "an upper bound on ‖θ̃(λ) − θ*(λ)‖ from one gradient, by λ-strong convexity on the penalized "
                   "block (see error_bound_kind: a bound, a bound on the penalized block with an estimate for "
                   "the free parameters, or for non-convex models ‖∇F(θ̃)‖ as an indicator)",
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
        Whether θ̂ is a stationary point: for a θ̂ found or polished by ``objective.minimize``, its own
        convergence test; for a θ̂ taken as given (the model's weights, ``theta_hat=``),
        ‖∇R(θ̂)‖ ≤ ``grad_tol``.
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
        Products with the curvature operator H (or G) spent by the whole analysis: forming it
        densely, the spectrum, the density and the path (0 when it was in closed form).
    curvature_kind : str
        ``"hessian"`` or ``"ggn"`` (the Gauss–Newton matrix), the curvature the prediction uses.
    choices : dict
        What every ``"auto"`` resolved to, and why (``{decision: "name (reason)"}``).
    polish : dict or None
        When θ̂ was polished (minimized further from the weights given): how far it moved
        (``moved``, ``moved_relative``), the loss and gradient norm before and after, and
        whether the minimizer converged. None when θ̂ was taken as given or solved for from
        scratch (see ``choices["theta_hat"]``).
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
    curvature_kind: str = "hessian"
    choices: dict = field(default_factory=dict)
    conventions: dict = field(default_factory=lambda: dict(CONVENTIONS))
    #: The penalty matrix D of (λ/2)θᵀDθ and its source (``PenaltyMatrix.to_dict()``); None: D = diag(penalized).
    penalty: dict | None = None
    polish: dict | None = None
    #: Per λ, without a refit: see ridgelens.pipeline._bound (None when not computed).
    error_bound: np.ndarray | None = None
    error_bound_penalized: np.ndarray | None = None
    error_bound_kind: str | None = None
    #: max_j |θ̃_j − θ*_j| / |θ*_j| per λ (with refits).
    rel_error_coord: np.ndarray | None = None
    #: The true loss on the interactive page's plane (``ridgelens.report.loss_plane``; None: not computed).
    loss_plane: dict | None = None

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
            # what the path ran on: the Schur complement of the penalized block, or the whole curvature by its kind
            "curvature": "schur-complement" if self.path.curvature == "schur-complement" else self.curvature_kind,
            "curvature_kind": self.curvature_kind,
            "choices": self.choices,
            "path_converged": self.path.converged,
            "ritz_values": self.path.ritz_values,
            "penalized_rank_tol": self.path.rank_tol,
            "eigen_checks": self.spectrum.checks,
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
            "penalty": self.penalty,
            "polish": self.polish,
            "error_bound": self.error_bound,
            "error_bound_penalized": self.error_bound_penalized,
            "error_bound_kind": self.error_bound_kind,
            "rel_error_coord": self.rel_error_coord,
            "loss_plane": self.loss_plane,
        }

    def summary(self) -> str:
        """A readable text summary: the model, θ̂ and the premises, then one row per λ."""
        return _display.summary(self)

    def _repr_html_(self) -> str:
        return _display.to_html(self)

    def __repr__(self) -> str:
        return (f"<Analysis of {self.objective}: {self.n_params} parameters, {self.lambdas.size} λ, {self.method} "
                f"{self.curvature_kind}; .summary() for a table>")

    def to_pandas(self):
        """One row per λ: lambda, effective_df, rel_error, refit_converged, refit_gradient_norm, valid.

        Needs pandas (an optional dependency; a clear ModuleNotFoundError says so otherwise).
        """
        return _display.to_pandas(self)

    def to_json(self, path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (the conventions are inside the file)."""
        if Path(path).is_dir():
            raise RidgelensError(f"to_json needs a file path; {path} is a directory")
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> Analysis:
        """Rebuild an Analysis from :meth:`to_dict` (or a ``results.json`` read back).

        What ``to_dict`` does not write is absent: eigenvectors of large or matrix-free analyses
        (the spectrum then holds eigenvalues only) and the density's smoothed curve (rebuilt
        from its nodes and weights).
        """
        if not isinstance(d, dict):
            raise RidgelensError(f"an analysis must be a dict (from Analysis.to_dict), got {type(d).__name__}")
        if "analyses" in d and "penalized" not in d:
            raise RidgelensError("this is a language model's results.json (ridgelens analyze --model lm/hf:DIR, "
                                 "ridgelens demo --lm): it keeps no per-parameter vectors (θ̂, θ̃, θ*), so it cannot "
                                 "be rebuilt as an Analysis; read it as JSON (its 'analyses' hold each curvature's "
                                 "spectrum, path and errors)")
        try:
            return _from_dict(cls, d)
        except KeyError as exc:
            raise RidgelensError(f"the analysis dict misses the field {exc.args[0]!r} "
                                 "(is it a results.json written by `ridgelens analyze`?)") from None
        except (TypeError, ValueError) as exc:
            bad = next((k for k, v in d.items() if isinstance(v, list) and not _numbers(v)), None)
            named = f" {bad!r}" if bad is not None else ""
            raise RidgelensError(f"the analysis dict has a malformed field{named}: {exc}") from None


@shard_basis_option
@governs_stages
def analyze(objective, lambdas, *, theta_hat=None, refit: bool = True, grad_tol: float | None = None,
            tol: float | None = None, negative: str = "nan", refit_options: dict | None = None,
            method: str = "auto", k: int = 20, seed: int = 0, eig_tol: float = 1e-6, path_tol: float = 1e-8,
            n_probes: int = 8, slq_steps: int = 60, checkpoint=None, progress: bool | None = None,
            curvature: str = "hessian", curvature_options: dict | None = None,
            polish: bool | None = None) -> Analysis:
    """Predict what L2 regularization does to ``objective``'s minimizer and check it by refitting.

    Parameters
    ----------
    objective : Objective
        :class:`LeastSquares`, :class:`Logistic`, :class:`TorchObjective`, or your own.
    lambdas : array of shape (m,)
        Penalties λ ≥ 0 of ``(λ/2)‖θ_p‖²`` (mean-loss convention).
    theta_hat : array of shape (n,), optional
        The unregularized minimizer. Default: a model's own weights (a :class:`TorchObjective`'s
        ``theta0``, taken as given); an objective without weights of its own (least squares,
        logistic) is minimized to find it.
    refit : bool, default True
        Also find the true regularized minimizers θ*(λ) (warm-started at θ̃(λ)); with False,
        :func:`refit_at` adds them later at chosen λ only.
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
        Progress bars on stderr for every long stage (polishing θ̂, Lanczos, SLQ, the path, each
        refit); default: when stderr is a terminal (see :mod:`ridgelens._progress`).
    curvature : {"hessian", "ggn", "auto"}, default "hessian"
        The curvature of the quadratic model: the Hessian H, or the generalized Gauss–Newton
        matrix G = JᵀH_out J (positive semi-definite for losses convex in the outputs, so every
        λ has a prediction). Recorded in ``Analysis.curvature_kind``. For least squares and
        logistic regression G = H exactly: ``"ggn"`` runs with H, ``curvature_kind`` is
        ``"hessian"`` and ``choices["curvature"]`` says why. ``"auto"`` (the CLI's default for
        torch models, as :func:`ridgelens.predict` decides): H for a convex loss, else G where
        a 30-step Lanczos probe of H at θ̂ finds a negative Ritz value; ``choices["curvature"]``
        records the decision and the probe's products.
    curvature_options : dict, optional
        Options of the operator (torch Hessian: ``form=``, ``memory_budget=``; GGN: ``reuse=``,
        ``memory_budget=``); one the operator does not take is refused by name, so with
        ``curvature="auto"`` give only those both take (``memory_budget=``).
    polish : bool, optional
        Minimize further from θ̂ (the given ``theta_hat`` or the model's weights) before the
        analysis, to ‖∇R‖ ≤ min(``tol``, ``grad_tol``) with ``refit_options`` (so that the polished
        θ̂ is stationary by this analysis' own test); ``Analysis.polish`` then says how far θ̂
        moved and how the loss changed. Default: only when there is no θ̂ to start from.
    shard_basis : bool, default False
        Under a ``torch.distributed`` process group, store the Lanczos and Krylov bases sliced
        across the ranks (1/N of every basis vector per rank; inner products all-reduced).

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
    seed = check_seed(seed)
    check_objective(objective, "analyze()")
    check_shardable(objective)  # under a process group: a torch objective (sharded batches) only
    if curvature not in (*CURVATURES, "auto"):
        raise RidgelensError(f"curvature must be one of {(*CURVATURES, 'auto')}, got {curvature!r}")
    refit_options = dict(refit_options or {})
    ck = Path(checkpoint) if checkpoint is not None else None
    # A θ̂ polished or found here is minimized to the stationarity this analysis then asks of it (grad_tol),
    # not only to the refits' tol: else a polish that met its own tol would be called "not stationary".
    stationary = 100 * objective.default_tol if grad_tol is None else check_tolerance(grad_tol, "grad_tol")
    theta_tol = tol if tol is None else min(check_tolerance(tol, "tol"), stationary)
    theta_hat, converged, polished, how = _theta_hat(objective, theta_hat, polish, theta_tol, refit_options)
    gradient, gnorm, grad_tol = first_order_term(objective, theta_hat, grad_tol)
    if converged is None:  # θ̂ as given: it is a minimizer as far as its gradient says
        converged = bool(gnorm <= grad_tol)
    if curvature == "auto":  # the CLI's default for torch models: a short Lanczos probe of H at θ̂ decides
        asked = choose_curvature(objective, theta_hat, "auto", seed=seed)
    else:
        asked = select_solver("curvature", curvature, canonical_glm=bool(getattr(objective, "canonical_glm", False)))
    curvature = asked.name  # the GGN of least squares or logistic regression is its Hessian
    H = build_curvature(objective, theta_hat, curvature, **dict(curvature_options or {}))
    # A penalty matrix (λ/2)θᵀDθ: the whole analysis runs on D^{-1/2} H D^{-1/2} in φ = D^{1/2}θ
    # (ridge/_weighted.py); the path comes back in θ's coordinates before the refits.
    penalty = getattr(objective, "penalty", None)
    theta_in, g_in = theta_hat, gradient
    if penalty is not None:
        H, theta_in, g_in, _, scale = scale_problem(H, theta_hat, gradient, penalty)
    choice = select_solver("analysis", method, n=H.n, is_dense=H.is_dense)
    chosen = choice.name
    choices = {"theta_hat": how, "analysis": str(choice)}
    if asked.reason != "asked for":
        choices["curvature"] = str(asked)
    if getattr(H, "choice", None) is not None:
        choices["hvp_form"] = str(H.choice)
    mask = objective.penalized
    density = None
    if chosen == "dense":
        # Densify once; the spectrum and the Schur complement both use it. The n products that formed
        # a matrix-free H are reported on the spectrum and the path, as the dense work they fed.
        dense = H if H.is_dense else DenseOperator(H.to_dense())
        formed = H.n_matvecs
        spectrum = eigen(dense)
        spectrum = replace(spectrum, n_matvecs=spectrum.n_matvecs + formed)
        min_eig = spectrum.min_eigenvalue
        # Least squares gives its penalized block's eigenpairs from the SVD θ̂ was solved with
        # (no Gram matrix, full precision on ill-conditioned designs); its GGN is its Hessian.
        # H's diagonal spanning more than WIDE_DIAGONAL (columns in far units): the path from direct
        # solves on H itself (ridge/_solvers.py), at the price of a second eigh when every parameter is penalized.
        if has_exact_path(objective):
            source = objective
        elif mask.all() and not wide_diagonal(dense.to_dense().cpu().double().numpy()):
            source = spectrum
        else:
            source = dense
        path = ridge_path(source, theta_in, lam, penalized=mask, gradient=g_in, negative=negative)
        path = replace(path, n_matvecs=formed)
        n_matvecs = H.n_matvecs
    else:
        # With unpenalized parameters the penalized block sees S = H_pp − H_pu H_uu⁻¹ H_up, so the eigen
        # view, the density (df) and the path are all of S. Factoring H_uu (or every inner CG solve)
        # checks H_uu ≻ 0 (and raises otherwise); with it, H ⪰ 0 ⇔ S ⪰ 0.
        A = H if mask.all() else SchurComplementOperator(H, mask)
        if isinstance(A, SchurComplementOperator):
            choices["schur_inner"] = str(A.choice)
        before = H.n_matvecs
        spectrum = eigen(A, min(int(k), A.n), tol=eig_tol, seed=seed, method="lanczos",
                         checkpoint=ck, progress=progress)
        spectrum = replace(spectrum, n_matvecs=H.n_matvecs - before)  # products with H, whatever A is
        before = H.n_matvecs
        density = spectral_density(A, n_probes=n_probes, m=slq_steps, seed=seed, progress=progress)
        density = replace(density, n_matvecs=H.n_matvecs - before)
        choices["slq_reorth"] = density.reorth
        path = ridge_path(A, theta_in, lam, penalized=mask, gradient=g_in, negative=negative, method="krylov",
                          tol=path_tol, low_rank=spectrum, density=density, checkpoint=ck, progress=progress)
        min_eig = float(min(density.nodes.min(), spectrum.eigenvalues.min(), path.ritz_values.min()))
        of = "H" if A is H else ("the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up, so H is not positive "
                                 "semi-definite")
        if min_eig < -1e-8 * abs(float(spectrum.eigenvalues[0])):
            hint = "" if curvature == "ggn" else " Consider the Gauss-Newton curvature (curvature='ggn', CLI --curvature ggn)."
            warnings.warn(f"{of} has negative eigenvalues (smallest Ritz value ≈ {min_eig:.4g}): θ̂ is not a "
                          "minimum of the quadratic model; predictions for λ below that size are unreliable." + hint,
                          NegativeCurvatureWarning, stacklevel=2)
        n_matvecs = H.n_matvecs
    choices["path"] = str(path.choice) if path.choice is not None else path.method
    if penalty is not None:
        path = unscale_path(path, scale, penalty, theta_hat)

    refits = conv = gnorms = rel = rel_coord = None
    if refit:
        refits, conv, gnorms, rel, rel_coord = _refit_rows(objective, lam, range(lam.size), path, theta_hat, tol,
                                                           refit_options, ck, progress)
    bound, bound_p, bound_kind = error_bounds(objective, lam, path.thetas, path.valid)
    return Analysis(objective=type(objective).__name__, n_samples=objective.n_samples,
                    n_params=objective.n_params, param_names=list(objective.param_names),
                    lambdas=lam, theta_hat=theta_hat, gradient_norm=gnorm, grad_tol=grad_tol,
                    spectrum=spectrum, path=path, refit=refits, refit_converged=conv,
                    refit_gradient_norm=gnorms, rel_error=rel, theta_hat_converged=converged,
                    method=chosen, min_eigenvalue=min_eig, density=density, n_matvecs=n_matvecs,
                    curvature_kind=curvature, choices=choices,
                    conventions=dict(CONVENTIONS) if penalty is None else weighted_conventions(CONVENTIONS, penalty),
                    penalty=None if penalty is None else penalty.to_dict(), polish=polished,
                    error_bound=bound, error_bound_penalized=bound_p, error_bound_kind=bound_kind,
                    rel_error_coord=rel_coord)


def first_order_term(objective, theta_hat, grad_tol=None):
    """``(g or None, ‖g‖, grad_tol)``: g = ∇R(θ̂) is kept (with a warning) when ‖g‖ > grad_tol.

    ``grad_tol`` defaults to ``100 · objective.default_tol``.
    """
    g = objective.gradient(theta_hat)
    if not np.isfinite(g).all():
        raise ModelOutputError(
            f"the loss's gradient at θ̂ is not finite ({g[~np.isfinite(g)][0]} at entry "
            f"{int(np.argmin(np.isfinite(g)))}): the model's outputs or loss on the data are not finite (NaN or inf "
            "in the inputs, the weights or the forward)")
    gnorm = float(np.linalg.norm(g))
    grad_tol = 100 * objective.default_tol if grad_tol is None else check_tolerance(grad_tol, "grad_tol")
    if gnorm > grad_tol:
        warnings.warn(
            f"θ̂ is not a stationary point: ‖∇R(θ̂)‖ = {gnorm:.3g} > grad_tol = {grad_tol:.3g}; "
            "keeping the first-order term, θ̃ = (H + λP)⁻¹(Hθ̂ − g)",
            GradientNotZeroWarning, stacklevel=3,
        )
    return (g if gnorm > grad_tol else None), gnorm, grad_tol


def _theta_hat(objective, theta_hat, polish, tol, options):
    """θ̂ as given, as the model's own weights, or minimized; returns (θ̂, converged, polish record, how)."""
    polish = check_flag(polish, "polish", none=True)
    own = getattr(objective, "theta0", None)
    if theta_hat is not None:  # the caller's θ̂ must fit the objective (a clear error, not a matmul one)
        start, how = check_vector(theta_hat, objective.n_params, "theta_hat"), "given (theta_hat)"
    elif own is not None:
        start, how = np.asarray(own, dtype=np.float64), "the model's own weights"
    elif polish is False:
        raise RidgelensError(f"polish=False needs a θ̂: pass theta_hat= ({type(objective).__name__} has no "
                             "weights of its own)")
    else:
        start, how = None, "found by objective.minimize() (the objective has no weights of its own)"
    if start is not None and not polish:  # converged: not known until ‖∇R(θ̂)‖ is measured (see analyze)
        return np.asarray(start, dtype=np.float64), None, None, how
    hat = objective.minimize(x0=start, tol=tol, **options)
    if not hat.converged:
        warnings.warn(f"finding θ̂ stopped at ‖∇R‖ = {hat.gradient_norm:.3g} > tol = {hat.tol:.3g} "
                      f"({hat.message})", ConvergenceWarning, stacklevel=3)
    theta = np.asarray(hat.theta, dtype=np.float64)
    if start is None:
        return theta, bool(hat.converged), None, how
    return theta, bool(hat.converged), polish_record(objective, start, hat, how), f"polished from {how}"


def polish_record(objective, start, hat, how: str) -> dict:
    """How far polishing moved θ̂ from ``start`` to ``hat.theta`` (a MinimizeResult) and what it did to the loss."""
    theta = np.asarray(hat.theta, dtype=np.float64)
    moved = float(np.linalg.norm(theta - start))
    return {"from": how, "moved": moved, "moved_relative": moved / max(float(np.linalg.norm(start)), 1e-300),
            "loss_before": float(objective.value(start)), "loss_after": float(objective.value(theta)),
            "gradient_norm_before": float(np.linalg.norm(objective.gradient(start))),
            "gradient_norm_after": float(hat.gradient_norm), "converged": bool(hat.converged),
            "n_iter": int(hat.n_iter), "method": str(hat.method), "n_matvecs": int(hat.n_matvecs)}


def _objective_fingerprint(objective) -> str:
    fp = getattr(objective, "fingerprint", None)
    if callable(fp):
        return str(fp())
    data = [getattr(objective, a, None) for a in ("X", "y")]
    return digest(*[np.asarray(a) if a is not None else None for a in data], objective.penalized)


def _penalty_digest(objective) -> str:
    pm = getattr(objective, "penalty", None)
    return "" if pm is None else " penalty=" + digest(pm.factors)


def refit_at(objective, res: Analysis, indices, *, tol: float | None = None, refit_options: dict | None = None,
             checkpoint=None, progress: bool | None = None) -> Analysis:
    """``res`` with θ*(λ) refitted at the λ numbered ``indices`` only (warm-started at θ̃(λ), as ``analyze``).

    For an analysis made with ``refit=False`` on a long grid (a default grid of 100 λ, say), where
    one refit (at a chosen λ) is all that is needed. At the other λ the refit fields are NaN
    (``refit_converged`` False): :func:`refit_count` says how many λ were refitted.
    """
    refits, conv, gnorms, rel, rel_coord = _refit_rows(
        objective, res.lambdas, indices, res.path, res.theta_hat, tol, dict(refit_options or {}),
        Path(checkpoint) if checkpoint is not None else None, progress)
    return replace(res, refit=refits, refit_converged=conv, refit_gradient_norm=gnorms, rel_error=rel,
                   rel_error_coord=rel_coord)


def refit_count(res: Analysis) -> int:
    """How many λ of ``res`` have a refit (rows of ``res.refit`` that are not NaN)."""
    return 0 if res.refit is None else int(np.isfinite(res.refit).all(axis=1).sum())


def _refit_rows(objective, lam, indices, path, theta_hat, tol, refit_options, ck, progress):
    """Refits at the λ numbered ``indices``: ``(refits, converged, gradient norms, rel_error, rel_error_coord)``.

    Rows of λ not refitted are NaN (converged False).
    """
    rows = sorted({int(i) for i in indices})
    refits = np.full_like(path.thetas, np.nan)
    conv = np.zeros(lam.size, dtype=bool)
    gnorms = np.full(lam.size, np.nan)
    fp = _objective_fingerprint(objective)
    with Progress("refits θ*(λ)", len(rows), progress, unit="refits") as bar:
        for i in rows:
            bar.describe(f"refit θ*(λ = {lam[i]:g})")
            refits[i], conv[i], gnorms[i] = _refit_one(objective, float(lam[i]), i, path, theta_hat, tol,
                                                       refit_options, ck, fp)
            bar.advance()
    failed = [i for i in rows if not conv[i]]
    if failed:
        warnings.warn(f"the refit did not converge for λ = {', '.join(f'{lam[i]:g}' for i in failed)}",
                      ConvergenceWarning, stacklevel=3)
    denom = np.maximum(np.linalg.norm(refits, axis=1), np.finfo(float).tiny)
    rel = np.linalg.norm(path.thetas - refits, axis=1) / denom
    return refits, conv, gnorms, rel, coordinate_rel_error(path.thetas, refits)


def _refit_one(objective, lam: float, i: int, path, theta_hat, tol, options, ck, fingerprint):
    """One refit, warm-started at θ̃(λ); saved to and resumed from the checkpoint folder (one mechanism)."""
    # The data and model, θ̂ and how the refit is run (tolerance, method, iterations): another
    # setting is another run, and its checkpoint is refused.
    run_id = f"{fingerprint} {digest(theta_hat)} tol={tol!r} {sorted((k, repr(v)) for k, v in options.items())}"
    run_id += _penalty_digest(objective)
    cp = Checkpoint(ck, f"refit_{i}", {"lambda": lam, "n": int(theta_hat.size), "run": run_id})
    try:
        saved = cp.load()
    except (DataError, DistributedError):  # a corrupted file, another world size, a lost rank: their own messages
        raise
    except RidgelensError:
        raise RidgelensError(f"checkpoint {cp.path} holds a refit of another run (another λ, θ̂, data, model or "
                             "refit setting); use another --checkpoint folder or delete it") from None
    if saved is not None:
        return saved["theta"].numpy(), bool(saved["converged"]), float(saved["gradient_norm"])
    x0 = path.thetas[i] if path.valid[i] else theta_hat
    r = objective.minimize(l2=lam, x0=x0, tol=tol, **options)
    cp.save({"theta": torch.from_numpy(np.asarray(r.theta, dtype=np.float64)), "converged": bool(r.converged),
             "gradient_norm": float(r.gradient_norm)})
    return r.theta, r.converged, r.gradient_norm


def _numbers(v) -> bool:
    """Whether a list is one of numbers (or of lists of numbers; None is NaN), or holds no numbers at all (names)."""
    if all(isinstance(x, str) for x in v):
        return True
    try:
        _arr(v)
    except (TypeError, ValueError):
        return False
    return True


def _arr(v, dtype=np.float64):
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v.astype(dtype)
    return np.array([[np.nan if x is None else x for x in row] for row in v] if v and isinstance(v[0], list)
                    else [np.nan if x is None else x for x in v], dtype=dtype)


def _from_dict(cls, d: dict) -> Analysis:
    lam = _arr(d["lambdas"])
    pen = np.array([bool(x) for x in d["penalized"]])
    sigma = _arr(d["penalized_eigenvalues"])
    Q = _arr(d.get("penalized_eigenvectors"))
    coords = _arr(d["coords"])
    m, n = lam.size, len(d["param_names"])
    # Derived fields are recomputed from σ, λ and the coordinates (one formula, ridge.shrinkage), not trusted.
    gcoords = _arr(d.get("gradient_coords"))
    factors, ok = shrinkage(sigma, lam)
    num = sigma[None, :] * coords[None, :] - (0.0 if gcoords is None else gcoords[None, :])
    scaled, _ = shrinkage(sigma, lam, numerator=num)
    valid = ok.all(axis=1) if d.get("valid") is None else np.array([bool(x) for x in d["valid"]])
    factors[~valid], scaled[~valid] = np.nan, np.nan
    df = _arr(d["effective_df"]) if d.get("effective_df") is not None else factors.sum(axis=1)
    path = RidgePath(
        lambdas=lam, theta_hat=_arr(d["theta_hat"]), thetas=_arr(d["predicted"]).reshape(m, n),
        eigenvalues=sigma, eigenvectors=Q if Q is not None else np.zeros((int(pen.sum()), 0)), coords=coords,
        factors=factors, scaled=scaled, effective_df=df, penalized=pen, valid=valid,
        gradient_used=bool(d["gradient_used"]),
        curvature="schur-complement" if d["curvature"] == "schur-complement" else "hessian",
        rank_tol=float(d.get("penalized_rank_tol") or 0.0), method=str(d["path_method"]),
        residuals=_arr(d.get("path_residuals")),
        converged=None if d.get("path_converged") is None else np.array([bool(x) for x in d["path_converged"]]),
        outside_share=float(d["outside_share"]) if d.get("outside_share") is not None else float("nan"),
        ritz_values=_arr(d.get("ritz_values")), gradient_coords=gcoords,
        penalty_factors=_arr(d["penalty"]["factors"]) if d.get("penalty") else None)
    ev = _arr(d["eigenvalues"])
    spectrum = Spectrum(eigenvalues=ev, eigenvectors=torch.zeros(n, 0, dtype=torch.float64), n=n,
                        method=str(d["spectrum_method"]), n_matvecs=0, residuals=_arr(d.get("eigen_residuals")),
                        converged=None if d.get("eigen_converged") is None
                        else np.array([bool(x) for x in d["eigen_converged"]]), checks=d.get("eigen_checks"))
    density = None
    if d.get("density"):
        dd = d["density"]
        density = SpectralDensity.from_nodes(
            _arr(dd["nodes"]), _arr(dd["weights"]), bandwidth=float(dd["bandwidth"]),
            n=int(pen.sum()) if d["curvature"] == "schur-complement" else n, n_matvecs=int(dd.get("n_matvecs", 0)))

    def opt(key, kind=np.float64):
        v = d.get(key)
        if v is None:
            return None
        return np.array([bool(x) for x in v]) if kind is bool else _arr(v)

    refit = opt("refit")
    fields = {f.name for f in dataclasses.fields(cls)}
    kw = dict(objective=str(d["objective"]), n_samples=int(d["n_samples"]), n_params=int(d["n_params"]),
              param_names=list(d["param_names"]), lambdas=lam, theta_hat=_arr(d["theta_hat"]),
              gradient_norm=float("nan") if d.get("gradient_norm") is None else float(d["gradient_norm"]),
              grad_tol=float(d.get("grad_tol") or 0.0), spectrum=spectrum, path=path,
              refit=None if refit is None else refit.reshape(m, n), refit_converged=opt("refit_converged", bool),
              refit_gradient_norm=opt("refit_gradient_norm"), rel_error=opt("rel_error"),
              theta_hat_converged=bool(d.get("theta_hat_converged", True)), method=str(d.get("method", "dense")),
              min_eigenvalue=float("nan") if d.get("min_eigenvalue") is None else float(d["min_eigenvalue"]),
              density=density, n_matvecs=int(d.get("n_matvecs") or 0), curvature_kind=str(d.get("curvature_kind", "hessian")),
              choices=dict(d.get("choices") or {}), conventions=dict(d.get("conventions") or CONVENTIONS),
              penalty=d.get("penalty"), polish=d.get("polish"),
              error_bound=opt("error_bound"), error_bound_penalized=opt("error_bound_penalized"),
              error_bound_kind=d.get("error_bound_kind"), rel_error_coord=opt("rel_error_coord"),
              loss_plane=d.get("loss_plane"))

    return cls(**{k: v for k, v in kw.items() if k in fields})
