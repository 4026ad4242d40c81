"""Path solvers: factor once (``init``), answer any λ list cheaply (``compute``).

=========================  ==================================================  ===============================
solver                     ``init``                                            ``compute(lambdas)``
=========================  ==================================================  ===============================
:class:`DenseEigenSolver`  eigendecomposition of H (or of the Schur            a broadcast over σ/(σ+λ)
                           complement S), n products for a matrix-free H
:class:`KrylovSolver`      one Lanczos run on b = Hθ̂ − g (on S with            one small eigendecomposition of
                           unpenalized parameters), until every λ of the       T and a combination of the
                           init list converges                                 basis; any λ, residuals honest
:class:`MultishiftCGSolver`  multi-shift CG for the init λ list                the λ of the init list
=========================  ==================================================  ===============================

:func:`make_solver` resolves ``method="auto"`` through :func:`ridgelens._auto.select_solver`
and records the choice in the result.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ridgelens._auto import Choice, select_solver
from ridgelens._shrinkage import shrinkage, snap_rounding
from ridgelens._validation import check_lambdas, check_mask, check_vector
from ridgelens.errors import NegativeCurvatureWarning, RidgelensError, SingularBlockWarning
from ridgelens.operators import SchurComplementOperator, as_operator
from ridgelens.ridge._krylov import krylov_path, krylov_schur_path
from ridgelens.ridge._multishift import multishift_cg_path
from ridgelens.ridge._result import RidgePath
from ridgelens.spectra import Spectrum, eigen

_NEGATIVE = ("nan", "clip", "raise")
_MULTISHIFT_NEEDS_ALL = (
    "method='multishift-cg' needs every parameter penalized (H + λI is a shifted H only then); with "
    "unpenalized parameters use method='krylov', which runs on the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up")


def check_same_device(source, **vectors) -> None:
    """Refuse a θ̂ (or gradient) tensor on another device than the operator, naming both."""
    import torch

    device = getattr(source, "device", None)
    if device is None:
        return
    for name, v in vectors.items():
        if isinstance(v, torch.Tensor) and v.device != torch.device(device):
            raise RidgelensError(f"{name} is a tensor on {v.device} but the curvature operator runs on {device}; "
                                 f"move it there first ({name}.to({str(device)!r})), or pass it as a NumPy array")


def make_solver(source, *, method: str = "auto", penalized=None, negative: str = "nan", tol: float = 1e-8,
                low_rank=None, density=None, max_matvecs=None, checkpoint=None, progress=None):
    """The path solver for ``source`` (a Spectrum, an operator, a Schur complement, a matrix, …)."""
    if negative not in _NEGATIVE:
        raise RidgelensError(f"negative must be one of {_NEGATIVE}, got {negative!r}")
    krylov_opts = {"tol": tol, "low_rank": low_rank, "density": density, "max_matvecs": max_matvecs,
                   "checkpoint": checkpoint, "progress": progress}
    if isinstance(source, SchurComplementOperator):
        if penalized is not None and not np.array_equal(check_mask(penalized, source.base_n), source.penalized):
            raise RidgelensError("penalized differs from the mask of the SchurComplementOperator passed as source")
        if method == "multishift-cg":
            raise RidgelensError(_MULTISHIFT_NEEDS_ALL)
        if method not in ("auto", "krylov"):
            raise RidgelensError(f"a SchurComplementOperator gives the matrix-free path; method={method!r} needs H")
        choice = select_solver("path", "krylov", n=source.base_n)
        return KrylovSolver(choice=choice, penalized=source.penalized, negative=negative, **krylov_opts)
    if has_exact_path(source):
        if method not in ("auto", "dense"):
            raise RidgelensError(f"{type(source).__name__} gives its exact path from its own decomposition; "
                                 f"method={method!r} needs an operator (ridgelens.hessian(objective, θ̂))")
        if penalized is not None and not np.array_equal(check_mask(penalized, source.n_params), source.penalized):
            raise RidgelensError("penalized differs from the objective's own penalty mask")
        design = getattr(source, "decomposition_choice", None)  # the factors θ̂ was solved with, and why
        choice = Choice("path", "dense", f"the exact path from the design's factors: {design}",
                        {"n": source.n_params, "decomposition": design})
        return DenseEigenSolver(choice=choice, penalized=source.penalized, negative=negative)
    if isinstance(source, Spectrum):
        if method not in ("auto", "dense"):
            raise RidgelensError(f"a Spectrum gives the dense path; method={method!r} needs the operator")
        choice = select_solver("path", "dense", n=source.n, is_dense=True)
        return DenseEigenSolver(choice=choice, penalized=penalized, negative=negative)
    op = as_operator(source)
    choice = select_solver("path", method, n=op.n, is_dense=op.is_dense)
    if choice.name == "dense":
        return DenseEigenSolver(choice=choice, penalized=penalized, negative=negative)
    cls = KrylovSolver if choice.name == "krylov" else MultishiftCGSolver
    return cls(choice=choice, penalized=penalized, negative=negative, **krylov_opts)


def wide_diagonal(H) -> bool:
    """Whether H's positive diagonal spans more than :data:`WIDE_DIAGONAL` (the path then takes direct solves)."""
    d = np.diag(np.asarray(H))
    d = d[d > 0]
    return bool(d.size > 1 and d.max() > WIDE_DIAGONAL * d.min())


def has_exact_path(source) -> bool:
    """An objective that gives the penalized block's eigenpairs itself (least squares, from its design's SVD).

    Not with a penalty matrix set (``set_penalty``): the SVD knows only the 0/1 intercept mask.
    """
    return getattr(source, "penalty", None) is None and callable(getattr(source, "penalized_spectrum", None)) and callable(getattr(source, "hessian_columns", None))


#: The spread of H's positive diagonal above which DenseEigenSolver answers each λ by a direct solve
#: (when H, or S, is positive definite).
#: Q's rounding (ε in absolute terms) times a coefficient as large as a column is small, or the small
#: directions' error ε·spread, put θ̃ off by 1e-6 (logistic, one column in units 1e-8, spread 1e16)
#: to 100 % (units 1e8); Jacobi-scaled solves of (H + λP)θ̃ = Hθ̂ − g do not depend on the units.
WIDE_DIAGONAL = 1e8


class DenseEigenSolver:
    """The exact eigen form: decompose H (or S) once, then θ̃(λ) for any λ as one broadcast.

    The source may also be an objective that gives its penalized block's eigenpairs itself
    (:meth:`LeastSquares.penalized_spectrum`, from the factors θ̂ was solved with: the design's SVD,
    where small eigenvalues keep their relative accuracy, or on a well-conditioned design the
    Gram route, within ε·cond² ≤ 2.2e-10; ``choice`` records which); the free block's coupling then
    comes from a few Hessian columns (``hessian_columns``).
    """

    def __init__(self, *, choice=None, penalized=None, negative: str = "nan"):
        self.choice, self.penalized, self.negative = choice, penalized, negative

    def init(self, source, theta_hat, *, gradient=None, lambdas=None) -> DenseEigenSolver:
        if has_exact_path(source):
            return self._init_exact(source, theta_hat, gradient)
        if isinstance(source, Spectrum):
            n = source.n
            mask = check_mask(self.penalized, n)
            if not source.complete:
                raise RidgelensError(
                    f"the spectrum holds {source.k} of {n} eigenpairs; the exact path needs all of them "
                    "(pass the operator, or eigen(operator) with k=None)")
            if not mask.all():
                raise RidgelensError("a penalty mask needs the operator, not only its spectrum: pass H")
            spec, H, spent, formed_in = source, None, source.n_matvecs, "float64"
            whole = None
        else:
            op = as_operator(source)
            n, formed_in = op.n, op.dtype
            mask = check_mask(self.penalized, n)
            before = op.n_matvecs
            if mask.all():
                spec, H = eigen(op, method="dense"), None
                spent = spec.n_matvecs
            else:
                H = op.to_dense().to(device="cpu").double().numpy()
                spent = 0 if op.is_dense else op.n_matvecs - before
            whole = H if H is not None else (op.to_dense().to(device="cpu").double().numpy() if op.is_dense else None)
        theta = check_vector(theta_hat, n, "theta_hat")
        g = None if gradient is None else check_vector(gradient, n, "gradient")
        p, u = np.flatnonzero(mask), np.flatnonzero(~mask)
        self.Hpu = self.Huu_inv = None
        if H is not None:
            Hpp, Hpu, Huu = H[np.ix_(p, p)], H[np.ix_(p, u)], H[np.ix_(u, u)]
            Huu_inv = _inverse_psd(Huu)
            spec = eigen(Hpp - Hpu @ Huu_inv @ Hpu.T)
            self.Hpu, self.Huu_inv = Hpu, Huu_inv
        sigma, Q = spec.eigenvalues.copy(), spec.Q
        sigma, rank_tol = snap_rounding(sigma, formed_in)  # the one rounding rule (ridgelens._shrinkage)
        rank_tol = max(rank_tol, getattr(spec, "zero_tol", 0.0))  # a float32 H's spectrum says so itself
        if self.negative == "raise" and sigma.min() < 0:
            raise RidgelensError(f"H has a negative eigenvalue {sigma.min():.4g}; the quadratic model is not convex")
        if self.negative == "clip":
            sigma = np.maximum(sigma, 0.0)
        self.n, self.mask, self.p, self.u, self.theta, self.g = n, mask, p, u, theta, g
        self.sigma, self.Q, self.rank_tol, self.spent = sigma, Q, rank_tol, spent
        self.z = Q.T @ theta[p]
        self.gc = None
        if g is not None:
            g_tilde = g[p] - (self.Hpu @ (self.Huu_inv @ g[u]) if H is not None else 0.0)
            self.gc = Q.T @ g_tilde
        self.curvature = "hessian" if H is None else "schur-complement"
        wide = not isinstance(source, Spectrum) and whole is not None and self.negative != "clip" \
            and wide_diagonal(whole)
        self.path_of = self._direct_path(whole) if wide else None
        return self

    def _direct_path(self, H: np.ndarray):
        """``path_of(lam, θ, gradient=)``: θ̃_p from ``(DHD + λDPD)y = D(Hθ − g)``, ``θ̃ = Dy``, D = diag(H)^-½ (powers of 2).

        For H whose diagonal spans more than :data:`WIDE_DIAGONAL` (columns in far units): the
        Jacobi-scaled system's accuracy does not depend on the units, the eigen form's does.
        None (the eigen form answers) unless the scaled H is positive definite: a singular or
        indefinite H keeps the eigen form's 0 for σ = λ = 0 and NaN for σ + λ ≤ 0.
        """
        d = np.abs(np.diag(H))
        D = np.where(d > 0, np.exp2(-np.round(0.5 * np.log2(np.where(d > 0, d, 1.0)))), 1.0)  # exact scaling
        Hs, Ps = D[:, None] * H * D[None, :], D * D * self.mask
        w = linalg.eigvalsh(Hs, check_finite=False)
        if not w[0] > H.shape[0] * np.finfo(np.float64).eps * w[-1]:
            return None  # singular or indefinite once scaled: the eigen form's 0 for σ = λ = 0 and NaN for σ + λ ≤ 0

        def path_of(lam, theta, *, gradient):
            rhs = D * (H @ theta - (self.g if gradient else 0.0))
            rows = np.full((lam.size, self.p.size), np.nan)
            ok = shrinkage(self.sigma, lam)[1].all(axis=1)
            for i in np.flatnonzero(ok):
                M = Hs + lam[i] * np.diag(Ps)
                rows[i] = (D * linalg.solve(M, rhs, assume_a="sym", check_finite=False))[self.p]
            return rows

        return path_of

    def _init_exact(self, obj, theta_hat, gradient) -> DenseEigenSolver:
        n, mask = obj.n_params, np.asarray(obj.penalized, dtype=bool)
        theta = check_vector(theta_hat, n, "theta_hat")
        g = None if gradient is None else check_vector(gradient, n, "gradient")
        p, u = np.flatnonzero(mask), np.flatnonzero(~mask)
        sigma, Q = obj.penalized_spectrum()
        sigma = np.asarray(sigma, dtype=np.float64).copy()
        self.Hpu = self.Huu_inv = None
        if u.size:
            cols = obj.hessian_columns(u, theta)
            self.Hpu, self.Huu_inv = cols[p], _inverse_psd(cols[u])
        # No n·ε·σ_max threshold here: that is the accuracy of eigh on a formed matrix, but these
        # eigenvalues come from singular values (relative accuracy ε·s_max/s), and the SVD already
        # decided the rank (exact zeros beyond it). On raw Longley the smallest, 7.3e-9 against a
        # largest of 1.7e11, is accurate, and it carries the intercept. The Gram route (cond ≤ 1e3) has
        # σ_min ≥ 1e-6·σ_max, far above any n·ε·σ_max, so it has no rounding-level eigenvalue to zero.
        rank_tol = 0.0
        self.n, self.mask, self.p, self.u, self.theta, self.g = n, mask, p, u, theta, g
        self.sigma, self.Q, self.rank_tol, self.spent = sigma, Q, rank_tol, 0
        coords = getattr(obj, "penalized_coords", None)  # LeastSquares: through the fitted values (accurate
        self.z = coords(theta) if callable(coords) else Q.T @ theta[p]  # when the columns' scales differ widely)
        self.path_of = getattr(obj, "penalized_path", None)  # LeastSquares: θ̃_p as ridge fits (ditto)
        self.gc = None
        if g is not None:
            g_tilde = g[p] - (self.Hpu @ (self.Huu_inv @ g[u]) if u.size else 0.0)
            self.gc = Q.T @ g_tilde
        self.curvature = "hessian" if not u.size else "schur-complement"
        return self

    def compute(self, lambdas) -> RidgePath:
        lam = check_lambdas(lambdas)
        sigma, z, gc, p, u, theta = self.sigma, self.z, self.gc, self.p, self.u, self.theta
        factors, ok = shrinkage(sigma, lam)
        valid = ok.all(axis=1)
        num = sigma[None, :] * z[None, :] - (0.0 if gc is None else gc[None, :])
        scaled, _ = shrinkage(sigma, lam, numerator=num)
        factors[~valid], scaled[~valid] = np.nan, np.nan
        thetas = np.empty((lam.size, self.n))
        thetas[:, p] = scaled @ self.Q.T if self.path_of is None else self.path_of(lam, theta, gradient=gc is not None)
        if u.size:
            rhs = self.Hpu.T @ (theta[p][:, None] - thetas[:, p].T)  # (n_u, m)
            if self.g is not None:
                rhs -= self.g[u][:, None]
            thetas[:, u] = theta[u][None, :] + (self.Huu_inv @ rhs).T
        thetas[~valid] = np.nan
        if sigma.min() < 0:
            bad = lam[~valid]
            warnings.warn(
                f"the curvature has negative eigenvalues (most negative σ = {sigma.min():.4g}, "
                f"{int((sigma < 0).sum())} of {sigma.size}); θ̂ is not a minimizer of the quadratic model. "
                + (f"No minimizer exists for λ ≤ {-sigma.min():.4g}: {bad.size} λ marked invalid (NaN). "
                   if bad.size else "")
                + "Consider the Gauss-Newton curvature (curvature='ggn', CLI --curvature ggn), or negative='clip'.",
                NegativeCurvatureWarning, stacklevel=4,
            )
        df = factors.sum(axis=1)  # NaN exactly on the invalid rows
        return RidgePath(lambdas=lam, theta_hat=theta, thetas=thetas, eigenvalues=sigma, eigenvectors=self.Q,
                         coords=z, factors=factors, scaled=scaled, effective_df=df, penalized=self.mask,
                         valid=valid, gradient_used=self.g is not None, curvature=self.curvature,
                         rank_tol=self.rank_tol, n_matvecs=self.spent, gradient_coords=gc, choice=self.choice)


class KrylovSolver:
    """One Lanczos run on b = Hθ̂ − g (on the Schur complement S with unpenalized parameters).

    ``init`` runs until every λ of its list has converged (or the budget ends); ``compute``
    answers any λ list from the same Krylov space (residuals and flags per λ, honestly: a λ
    below the init list may not have converged).
    """

    name = "krylov"

    def __init__(self, *, choice=None, penalized=None, negative="nan", tol=1e-8, low_rank=None, density=None,
                 max_matvecs=None, checkpoint=None, progress=None):
        if negative != "nan":
            raise RidgelensError(f"negative={negative!r} needs the dense path (method='dense')")
        self.choice, self.penalized, self.tol, self.low_rank = choice, penalized, tol, low_rank
        self.density = density
        self.max_matvecs, self.checkpoint, self.progress = max_matvecs, checkpoint, progress

    def _run(self, op, theta, lam, g, mask):
        return krylov_path(op, theta, lam, gradient=g, tol=self.tol, max_matvecs=self.max_matvecs,
                           checkpoint=self.checkpoint, progress=self.progress)

    def init(self, source, theta_hat, *, gradient=None, lambdas=None) -> KrylovSolver:
        if lambdas is None:
            raise RidgelensError("a Krylov path solver needs the λ list it must converge for at init (lambdas=)")
        lam = check_lambdas(lambdas)
        schur_op = source if isinstance(source, SchurComplementOperator) else None
        op = schur_op.base if schur_op is not None else as_operator(source)
        n = op.n
        mask = check_mask(self.penalized, n)
        theta = check_vector(theta_hat, n, "theta_hat")
        g = None if gradient is None else check_vector(gradient, n, "gradient")
        if not mask.all():  # (H + λP) is not a shifted H, but (S + λI) is a shifted S: one Krylov run on S
            S = schur_op if schur_op is not None else SchurComplementOperator(op, mask)
            self.run = krylov_schur_path(S, theta, lam, gradient=g, tol=self.tol, max_matvecs=self.max_matvecs,
                                         checkpoint=self.checkpoint, progress=self.progress)
        else:
            self.run = self._run(op, theta, lam, g, mask)
        self.lam0, self.theta, self.g, self.mask = lam, theta, g, mask
        return self

    def _answer(self, lam):
        if np.array_equal(lam, self.lam0):
            return self.run
        if "at" not in self.run:
            raise RidgelensError(f"the {self.name} solver answers only the λ it was initialized with; "
                                 f"got {lam.tolist()} (init: {self.lam0.tolist()}); use method='krylov' for any λ")
        return self.run["at"](lam)

    def compute(self, lambdas) -> RidgePath:
        lam = check_lambdas(lambdas)
        r = self._answer(lam)
        mask, theta = self.mask, self.theta
        schur = not mask.all()
        n_p = int(mask.sum())
        low_rank = self.low_rank
        if low_rank is not None:
            if not isinstance(low_rank, Spectrum) or low_rank.n != n_p:
                got = low_rank.n if isinstance(low_rank, Spectrum) else type(low_rank).__name__
                raise RidgelensError(
                    f"low_rank must be a Spectrum of the curvature the penalized block sees (n = {n_p}), got n = {got}"
                    + ("; with unpenalized parameters that is the Schur complement: "
                       "eigen(SchurComplementOperator(op, penalized), k)" if schur else ""))
            sigma = np.asarray(low_rank.eigenvalues, dtype=np.float64)
            Qn = low_rank.Q
            theta_p = theta[mask] if schur else theta
            z = Qn.T @ theta_p
            outside = float(np.linalg.norm(theta_p - Qn @ z) / max(np.linalg.norm(theta_p), 1e-300))
            factors, _ = shrinkage(sigma, lam)
        else:
            sigma, Qn, z, outside = np.zeros(0), np.zeros((n_p, 0)), np.zeros(0), float("nan")
            factors = np.zeros((lam.size, 0))
        # df(λ) needs the whole spectrum: from the SLQ density when one is given, else unknown (NaN).
        if self.density is not None:
            if self.density.n != n_p:
                raise RidgelensError(f"density must be of the curvature the penalized block sees (n = {n_p}), "
                                     f"got n = {self.density.n}")
            rank_tol = 0.0 if low_rank is None else \
                low_rank.n * np.finfo(np.float64).eps * float(np.abs(low_rank.eigenvalues).max(initial=0.0))
            # (defined for every λ: negative nodes count as 0, as they always have)
            df = self.density.effective_df(lam, rank_tol=rank_tol)
        else:
            df = np.full(lam.size, np.nan)
        return RidgePath(lambdas=lam, theta_hat=theta, thetas=r["thetas"], eigenvalues=sigma, eigenvectors=Qn,
                         coords=z, factors=factors, scaled=factors * z[None, :],
                         effective_df=df, penalized=mask, valid=r["valid"],
                         gradient_used=self.g is not None, curvature="schur-complement" if schur else "hessian",
                         rank_tol=0.0, method=self.name, n_matvecs=r["n_matvecs"], residuals=r["residuals"],
                         converged=r["converged"], outside_share=outside,
                         ritz_values=np.asarray(r["ritz_values"], dtype=np.float64), choice=self.choice)


class MultishiftCGSolver(KrylovSolver):
    """Multi-shift CG: one product per step for every λ of the init list, no basis (2·#λ + 3 vectors)."""

    name = "multishift-cg"

    def init(self, source, theta_hat, *, gradient=None, lambdas=None) -> MultishiftCGSolver:
        mask = check_mask(self.penalized, as_operator(source).n if not isinstance(source, Spectrum) else source.n)
        if not mask.all():
            raise RidgelensError(_MULTISHIFT_NEEDS_ALL)
        return super().init(source, theta_hat, gradient=gradient, lambdas=lambdas)

    def _run(self, op, theta, lam, g, mask):
        return multishift_cg_path(op, theta, lam, gradient=g, tol=self.tol, max_matvecs=self.max_matvecs,
                                  checkpoint=self.checkpoint, progress=self.progress)


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
        SingularBlockWarning, stacklevel=5,
    )
    return linalg.pinvh(A)
