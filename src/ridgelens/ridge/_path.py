"""The predicted ridge path θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g), decomposed once and swept as one broadcast."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from ridgelens._auto import resolve_method
from ridgelens._validation import check_lambdas, check_mask, check_vector
from ridgelens.errors import NegativeCurvatureWarning, RidgelensError, SingularBlockWarning
from ridgelens.operators import CurvatureOperator, DenseOperator, SchurComplementOperator
from ridgelens.ridge._krylov import krylov_path, krylov_schur_path
from ridgelens.ridge._multishift import multishift_cg_path
from ridgelens.spectra import Spectrum, eigen
from ridgelens.spectra._krylov_base import to_numpy

_NEGATIVE = ("nan", "clip", "raise")
_MULTISHIFT_NEEDS_ALL = (
    "method='multishift-cg' needs every parameter penalized (H + λI is a shifted H only then); with "
    "unpenalized parameters use method='krylov', which runs on the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up")


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
        Operator products spent by the path itself.
    residuals : ndarray of shape (m,) or None
        Krylov and multishift-cg: ‖b − (H + λI)θ̃‖/‖b‖ per λ (multishift-cg: from the recurrence).
    converged : ndarray of bool, shape (m,) or None
    outside_share : float
        ‖(I − QQᵀ)θ̂_p‖/‖θ̂_p‖: the part of θ̂ the eigenvectors held do not describe
        (0 for the dense path; for the Krylov path, Q are the low-rank top-k pairs).
    ritz_values : ndarray or None
        Krylov: the Ritz values of the path's own Krylov space (of H, or of S), which
        may show curvature the top-k spectrum and the density missed.
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

    def steps(self, i: int) -> dict:
        """The rotate → scale → rotate steps at ``lambdas[i]``, each as an array."""
        return {
            "lambda": float(self.lambdas[i]),
            "theta_hat_p": self.theta_hat[self.penalized],
            "rotated": self.coords,
            "factors": self.factors[i],
            "scaled": self.scaled[i],
            "rotated_back": self.thetas[i][self.penalized],
        }


def _as_operator(source) -> CurvatureOperator:
    if isinstance(source, CurvatureOperator):
        return source
    return DenseOperator(source)


def ridge_path(source, theta_hat, lambdas, *, penalized=None, gradient=None,
               negative: str = "nan", method: str = "auto", tol: float = 1e-8, low_rank=None,
               max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None) -> RidgePath:
    """Predict the L2-regularized minimizer θ̃(λ) for every λ from one decomposition.

    ``θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g)``; with ``g = 0`` and every parameter penalized this is
    ``Q diag(σⱼ/(σⱼ+λ)) Qᵀ θ̂``: rotate, shrink, rotate back.

    Parameters
    ----------
    source : Spectrum, CurvatureOperator or array of shape (n, n)
        The curvature H at θ̂. A :class:`Spectrum` must be complete and can only be
        used when every parameter is penalized. A
        :class:`~ridgelens.operators.SchurComplementOperator` stands for its H and
        penalty mask, and runs the matrix-free path on itself, reusing the free block
        it has already factored (no second #u HVPs).
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
        run on b = Hθ̂ − g serves every λ (memory O(m·n) for an m-step basis). With
        unpenalized parameters u, the one run is on the Schur complement S (a
        :class:`~ridgelens.operators.SchurComplementOperator`) from
        b = r_p − H_pu H_uu⁻¹ r_u, r = Hθ̂ − g; each product with S costs 1 + (inner CG
        iterations on H_uu) HVPs, ``n_matvecs`` counts them all, and memory is O(m·n)
        plus O(m·#u) for the free block's responses. H_uu must be positive definite
        (a clear error otherwise). "multishift-cg": matrix-free multi-shift conjugate
        gradients, one HVP per step shared by every λ and no basis: memory 2·#λ + 3
        vectors (x_λ and p_λ per λ, two Lanczos vectors and the product) against m + 1 for
        the Krylov basis. Pick it when the path needs many more steps than 2·#λ, e.g. few
        λ on a big ill-conditioned model; without reorthogonalization it may need more
        products than "krylov" in finite precision. Every parameter must be penalized
        (with unpenalized ones use "krylov", which runs on the Schur complement); λ with
        curvature ≤ −λ in the Krylov space get NaN rows as with "krylov". "auto": dense
        when H is in memory or n ≤ ``DENSE_MAX_PARAMS`` (never "multishift-cg").
    tol : float, default 1e-8
        Krylov and multishift-cg: stop when every λ has ‖b − (H + λI)θ̃‖ ≤ tol·‖b‖
        (with unpenalized parameters, the reduced system's ‖b − (S + λI)θ̃_p‖ ≤ tol·‖b‖).
    low_rank : Spectrum, optional
        Krylov and multishift-cg: top-k eigenpairs for the per-direction view (factors,
        coords, and the share of θ̂ outside their span). With unpenalized parameters, of S:
        ``eigen(SchurComplementOperator(op, penalized), k)``.
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
    if negative not in _NEGATIVE:
        raise RidgelensError(f"negative must be one of {_NEGATIVE}, got {negative!r}")
    if isinstance(source, SchurComplementOperator):
        if penalized is not None and not np.array_equal(check_mask(penalized, source.base_n), source.penalized):
            raise RidgelensError("penalized differs from the mask of the SchurComplementOperator passed as source")
        if method == "multishift-cg":
            raise RidgelensError(_MULTISHIFT_NEEDS_ALL)
        if method not in ("auto", "krylov"):
            raise RidgelensError(f"a SchurComplementOperator gives the matrix-free path; method={method!r} needs H")
        return _krylov_ridge_path(source.base, theta_hat, lam, penalized=source.penalized, gradient=gradient,
                                  negative=negative, tol=tol, low_rank=low_rank, max_matvecs=max_matvecs,
                                  checkpoint=checkpoint, progress=progress, schur_op=source)
    if not isinstance(source, Spectrum):
        op = _as_operator(source)
        if method == "multishift-cg" or resolve_method(method, op.n, op.is_dense,
                                                      allowed=("dense", "krylov")) == "krylov":
            return _krylov_ridge_path(op, theta_hat, lam, penalized=penalized, gradient=gradient,
                                      negative=negative, tol=tol, low_rank=low_rank,
                                      max_matvecs=max_matvecs, checkpoint=checkpoint, progress=progress,
                                      method="krylov" if method == "auto" else method)
    elif method not in ("auto", "dense"):
        raise RidgelensError(f"a Spectrum gives the dense path; method={method!r} needs the operator")
    if isinstance(source, Spectrum):
        n = source.n
        mask = check_mask(penalized, n)
        if not source.complete:
            raise RidgelensError(
                f"the spectrum holds {source.k} of {n} eigenpairs; the exact path needs all of them "
                "(pass the operator, or eigen(operator) with k=None)"
            )
        if not mask.all():
            raise RidgelensError("a penalty mask needs the operator, not only its spectrum: pass H")
        spec, H = source, None
    else:
        op = _as_operator(source)
        n = op.n
        mask = check_mask(penalized, n)
        if mask.all():
            spec, H = eigen(op), None
        else:
            H = op.to_dense()
    theta = check_vector(theta_hat, n, "theta_hat")
    g = None if gradient is None else check_vector(gradient, n, "gradient")

    p, u = np.flatnonzero(mask), np.flatnonzero(~mask)
    if H is not None:
        Hpp, Hpu, Huu = H[np.ix_(p, p)], H[np.ix_(p, u)], H[np.ix_(u, u)]
        Huu_inv = _inverse_psd(Huu)
        spec = eigen(Hpp - Hpu @ Huu_inv @ Hpu.T)
    sigma, Q = spec.eigenvalues.copy(), spec.eigenvectors
    rank_tol = max(sigma.size, 1) * np.finfo(np.float64).eps * max(float(np.abs(sigma).max(initial=0.0)), 1e-300)
    sigma[np.abs(sigma) <= rank_tol] = 0.0
    if negative == "raise" and sigma.min() < 0:
        raise RidgelensError(f"H has a negative eigenvalue {sigma.min():.4g}; the quadratic model is not convex")
    if negative == "clip":
        sigma = np.maximum(sigma, 0.0)

    z = Q.T @ theta[p]
    gc = None
    if g is not None:
        g_tilde = g[p] - (Hpu @ (Huu_inv @ g[u]) if H is not None else 0.0)
        gc = Q.T @ g_tilde

    denom = sigma[None, :] + lam[:, None]
    null = (sigma[None, :] == 0.0) & (lam[:, None] == 0.0)  # pseudo-inverse: 0/0 := 0
    ok = (denom > 0) | null
    valid = ok.all(axis=1)
    safe = np.where(ok & ~null, denom, 1.0)
    factors = np.where(null, 0.0, sigma[None, :] / safe)
    num = sigma[None, :] * z[None, :] - (0.0 if gc is None else gc[None, :])
    scaled = np.where(null, 0.0, num / safe)
    factors[~valid], scaled[~valid] = np.nan, np.nan

    thetas = np.empty((lam.size, n))
    thetas[:, p] = scaled @ Q.T
    if u.size:
        rhs = Hpu.T @ (theta[p][:, None] - thetas[:, p].T)  # (n_u, m)
        if g is not None:
            rhs -= g[u][:, None]
        thetas[:, u] = theta[u][None, :] + (Huu_inv @ rhs).T
    thetas[~valid] = np.nan

    if sigma.min() < 0:
        bad = lam[~valid]
        warnings.warn(
            f"the curvature has negative eigenvalues (most negative σ = {sigma.min():.4g}, "
            f"{int((sigma < 0).sum())} of {sigma.size}); θ̂ is not a minimizer of the quadratic model. "
            + (f"No minimizer exists for λ ≤ {-sigma.min():.4g}: {bad.size} λ marked invalid (NaN). "
               if bad.size else "")
            + "Consider the Gauss-Newton curvature, or negative='clip'.",
            NegativeCurvatureWarning, stacklevel=2,
        )
    df = factors.sum(axis=1)  # NaN exactly on the invalid rows
    return RidgePath(lambdas=lam, theta_hat=theta, thetas=thetas, eigenvalues=sigma, eigenvectors=Q,
                     coords=z, factors=factors, scaled=scaled, effective_df=df, penalized=mask,
                     valid=valid, gradient_used=g is not None,
                     curvature="hessian" if H is None else "schur-complement", rank_tol=rank_tol,
                     n_matvecs=spec.n_matvecs, gradient_coords=gc)


def _krylov_ridge_path(op, theta_hat, lam, *, penalized, gradient, negative, tol, low_rank,
                       max_matvecs, checkpoint, progress, schur_op=None, method="krylov") -> RidgePath:
    """The matrix-free path: "krylov" (one Lanczos run, on S with unpenalized parameters) or "multishift-cg"."""
    n = op.n
    mask = check_mask(penalized, n)
    if method == "multishift-cg" and not mask.all():
        raise RidgelensError(_MULTISHIFT_NEEDS_ALL)
    if negative != "nan":
        raise RidgelensError(f"negative={negative!r} needs the dense path (method='dense')")
    theta = check_vector(theta_hat, n, "theta_hat")
    g = None if gradient is None else check_vector(gradient, n, "gradient")
    schur = not mask.all()
    if schur:  # (H + λP) is not a shifted H, but (S + λI) is a shifted S: one Krylov run on S
        S = schur_op if schur_op is not None else SchurComplementOperator(op, mask)
        r = krylov_schur_path(S, theta, lam, gradient=g, tol=tol,
                              max_matvecs=max_matvecs, checkpoint=checkpoint, progress=progress)
    else:
        run = multishift_cg_path if method == "multishift-cg" else krylov_path
        r = run(op, theta, lam, gradient=g, tol=tol, max_matvecs=max_matvecs,
                checkpoint=checkpoint, progress=progress)
    n_p = int(mask.sum())
    if low_rank is not None:
        if not isinstance(low_rank, Spectrum) or low_rank.n != n_p:
            got = low_rank.n if isinstance(low_rank, Spectrum) else type(low_rank).__name__
            raise RidgelensError(
                f"low_rank must be a Spectrum of the curvature the penalized block sees (n = {n_p}), got n = {got}"
                + ("; with unpenalized parameters that is the Schur complement: "
                   "eigen(SchurComplementOperator(op, penalized), k)" if schur else ""))
        sigma = np.asarray(low_rank.eigenvalues, dtype=np.float64)
        Q = low_rank.eigenvectors
        Qn = to_numpy(Q)
        theta_p = theta[mask] if schur else theta
        z = Qn.T @ theta_p
        outside = float(np.linalg.norm(theta_p - Qn @ z) / max(np.linalg.norm(theta_p), 1e-300))
        denom = sigma[None, :] + lam[:, None]
        factors = np.where(denom > 0, sigma[None, :] / np.where(denom > 0, denom, 1.0), np.nan)
    else:
        sigma, Qn, z, outside = np.zeros(0), np.zeros((n_p, 0)), np.zeros(0), float("nan")
        factors = np.zeros((lam.size, 0))
    return RidgePath(lambdas=lam, theta_hat=theta, thetas=r["thetas"], eigenvalues=sigma, eigenvectors=Qn,
                     coords=z, factors=factors, scaled=factors * z[None, :],
                     effective_df=np.full(lam.size, np.nan), penalized=mask, valid=r["valid"],
                     gradient_used=g is not None, curvature="schur-complement" if schur else "hessian",
                     rank_tol=0.0, method=method, n_matvecs=r["n_matvecs"], residuals=r["residuals"],
                     converged=r["converged"], outside_share=outside,
                     ritz_values=np.asarray(r["ritz_values"], dtype=np.float64))


def _inverse_psd(A: np.ndarray) -> np.ndarray:
    """Inverse of the (small) unpenalized block; pseudo-inverse with a warning if singular."""
    if A.size == 0:
        return A
    try:
        c = linalg.cho_factor(A, check_finite=False)
        Ainv = linalg.cho_solve(c, np.eye(A.shape[0]), check_finite=False)
        if np.all(np.isfinite(Ainv)) and np.linalg.cond(A) < 1e12:
            return Ainv
    except linalg.LinAlgError:
        pass
    warnings.warn(
        "the unpenalized block H_uu is singular or ill-conditioned; using its pseudo-inverse "
        "(the free parameters are not determined by the data alone)",
        SingularBlockWarning, stacklevel=3,
    )
    return linalg.pinvh(A)
