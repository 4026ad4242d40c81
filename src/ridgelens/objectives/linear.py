"""Closed-form objectives for linear models: least squares and logistic regression.

Least squares is solved through an SVD of the (weighted, centred) design, never through
the normal equations: ``AᵀA`` squares the condition number (NIST's Longley data has
cond([X, 1]) ≈ 4.9e9, so ``AᵀA`` is numerically singular), while the SVD of the centred
design plus a step of iterative refinement with residuals summed in twice the working
precision recovers θ̂ to 13+ of NIST's certified digits (Longley, Wampler 1 to 5; of the
augmented system, Björck's, when the residuals are large, as Wampler 3 to 5's).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from scipy import linalg, optimize
from scipy.special import expit

from ridgelens._auto import check_option
from ridgelens._validation import (
    check_finite_matrix,
    check_finite_vector,
    check_nonnegative_entries,
    check_same_rows,
    check_scale,
)
from ridgelens.errors import DataError, IllConditionedWarning, RidgelensError
from ridgelens.objectives._accurate import accurate_residual, accurate_transpose, cascade, two_prod
from ridgelens.objectives._base import (
    GaussianLoss,
    MinimizeResult,
    Objective,
    with_intercept_factor,
)
from ridgelens.objectives._gram import decompose, whole_condition

#: :class:`LeastSquares` warns (:class:`~ridgelens.errors.IllConditionedWarning`) when the
#: condition number of its design ``W^{1/2}A`` exceeds this: the dense Hessian ``AᵀWA/Σw``
#: then has condition number above 1e16 ≈ 1/ε and loses every digit in its smallest directions.
ILL_CONDITIONED = 1e8

_EPS = np.finfo(np.float64).eps
#: The SVD of the design is used as it is when its singular values span less than 1/this
#: (then refinement converges fast); otherwise the rank and θ̂ come from the SVD of the
#: column-scaled design, so that the units of the features do not matter.
_DIRECT_SVD_RATIO = 1e-10
#: Refinement steps of θ̂ at most (one is enough on NIST's Longley and Wampler 1–5, two on
#: Wampler5 with the constant as a column of X).
_MAX_REFINE = 3
#: θ̂ is refined on the augmented system (Björck) once the error term ε·κ²·‖ρ‖/(‖A‖‖θ‖) that
#: refining θ alone leaves may exceed this many ε (about 2 of θ̂'s 16 digits); below, the second
#: sum in twice the precision (AᵀWρ, as costly as the residual) is not worth its time.
_AUGMENTED_FROM = 64.0
#: A scipy.sparse X is densified (8 bytes per entry) up to this many entries (2 GiB).
_MAX_DENSE_ENTRIES = 2**28


def _densified(X):
    """A scipy.sparse matrix as a dense array (the SVD and the Hessian need the dense design), else X."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        n, d = X.shape
        if n * d > _MAX_DENSE_ENTRIES:
            raise DataError(f"X is a sparse {n}×{d} matrix; the linear objectives densify it for the SVD, "
                            f"which would take {n * d * 8 / 2**30:.1f} GiB (limit {_MAX_DENSE_ENTRIES * 8 / 2**30:.0f} "
                            "GiB): reduce the columns, or use a torch model with the matrix-free path")
        return X.toarray()
    return X


def _no_options(options: dict) -> None:
    if options:
        raise RidgelensError(f"unknown minimize option(s) for a linear objective: {', '.join(options)}")


class _LinearObjective(Objective):
    """Shared plumbing: design matrix ``A = [X, 1]`` and θ = ``[w, b]``."""

    #: A GLM with its canonical link: the Gauss-Newton matrix equals the Hessian.
    canonical_glm = True
    #: The loss is convex in θ (ridgelens.pipeline bounds ‖θ̃ − θ*‖ by strong convexity).
    convex = True

    def __init__(self, X, y, *, fit_intercept: bool = True, penalize_intercept: bool = False,
                 feature_names=None):
        if feature_names is None and hasattr(X, "columns"):  # a pandas DataFrame: its column names
            feature_names = [str(c) for c in X.columns]
        X = check_finite_matrix(_densified(X), "X", feature_names)
        y = check_finite_vector(y, "y")
        check_same_rows(X, y)
        check_scale(X, "X", feature_names)
        check_scale(y, "y")
        self.X, self.y = X, y
        self.fit_intercept = bool(fit_intercept)
        d = X.shape[1]
        names = list(feature_names) if feature_names is not None else [f"w[{j}]" for j in range(d)]
        if len(names) != d:
            raise DataError(f"feature_names has {len(names)} names but X has {d} columns")
        self.param_names = [*names, "intercept"] if self.fit_intercept else names
        self.penalized = np.ones(self.n_params, dtype=bool)
        if self.fit_intercept and not penalize_intercept:
            self.penalized[-1] = False

    @property
    def n_params(self) -> int:
        return self.X.shape[1] + self.fit_intercept

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @cached_property
    def _A(self) -> np.ndarray:
        """The design ``[X, 1]`` (``X`` without intercept), a copy formed on first use only."""
        return np.hstack([self.X, np.ones((self.n_samples, 1))]) if self.fit_intercept else self.X

    def _design_product(self, theta) -> np.ndarray:
        """``Aθ`` without forming A."""
        theta = np.asarray(theta, dtype=np.float64)
        return self.X @ theta[:-1] + theta[-1] if self.fit_intercept else self.X @ theta

    def _design_transpose(self, v) -> np.ndarray:
        """``Aᵀv`` without forming A."""
        return np.r_[self.X.T @ v, np.sum(v)] if self.fit_intercept else self.X.T @ v

    def hessian_columns(self, cols, theta=None) -> np.ndarray:
        """Columns ``H[:, cols]`` of the Hessian at θ, shape (n_params, len(cols)), without forming H.

        ``O(n · n_params · len(cols))``: the coupling of a few unpenalized parameters (an
        intercept) to the rest, for the exact path from :meth:`penalized_spectrum`.
        """
        cols = np.asarray(cols, dtype=int)
        return self._weighted_design(theta).T @ self._A[:, cols] / self._hessian_scale()

    def _hessian_scale(self) -> float:
        return float(getattr(self, "weight_sum", self.n_samples))

    def hvp(self, theta, v):
        return self.hessian_dense(theta) @ np.asarray(v, dtype=np.float64)

    def set_penalty(self, penalty):
        """As :meth:`Objective.set_penalty`, and a vector of one factor per feature is accepted.

        That is glmnet's ``penalty.factor``; the intercept then keeps its own factor (0 unless penalized).
        """
        return super().set_penalty(with_intercept_factor(self, penalty))

    def _result(self, theta, l2, tol, n_iter, method, message=""):
        gnorm = float(np.linalg.norm(self.penalized_gradient(theta, l2)))
        return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol, gradient_norm=gnorm,
                              tol=tol, n_iter=n_iter, method=method, message=message)


def _check_weights(sample_weight, n: int) -> np.ndarray:
    """Return the weights as a float64 vector of length ``n``, finite, ≥ 0, with a positive sum."""
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"sample_weight must be numbers, got {type(sample_weight).__name__}") from None
    if w.shape != (n,):
        raise DataError(f"sample_weight must have shape ({n},), one weight per row of X; got shape {w.shape}")
    check_nonnegative_entries(w, "sample_weight", counted=" weight(s)", plural="weights",
                              zero="a weight of 0 leaves the sample out")
    if not w.sum() > 0:
        raise DataError("sample_weight sums to 0: at least one sample needs a positive weight")
    return w.copy()


def _thin_svd(M: np.ndarray):
    """Thin SVD by divide and conquer (gesdd), falling back to gesvd if it does not converge."""
    if M.size == 0:
        k = min(M.shape)
        return np.zeros((M.shape[0], k)), np.zeros(k), np.zeros((k, M.shape[1]))
    try:
        return linalg.svd(M, full_matrices=False, check_finite=False)
    except linalg.LinAlgError:
        return linalg.svd(M, full_matrices=False, check_finite=False, lapack_driver="gesvd")


@dataclass(frozen=True, eq=False)
class DesignSVD:
    r"""Thin SVD ``Z = U diag(s) Vt`` of the weighted design that the penalty sees.

    With weights ``w`` (all 1 by default) and ``Σw`` their sum:

    - free intercept (the default): ``Z = W^{1/2}(X − 1x̄ᵀ)`` with the weighted means
      ``x̄ = Σwᵢxᵢ/Σw``; the intercept spans the unit vector ``free = √w/√Σw``, orthogonal
      to every column of ``Z``;
    - penalized intercept: ``Z = W^{1/2}[X, 1]``; no intercept: ``Z = W^{1/2}X``
      (``free`` is None in both).

    Then the curvature of the penalized block (the Schur complement when the intercept
    is free) is ``ZᵀZ/Σw = Vtᵀ diag(s²/Σw) Vt``, the ridge coefficients at λ are
    ``Vtᵀ diag(s/(s² + λΣw)) Uᵀ target``, and the hat matrix of the ridge fit in the
    √w-scaled space is ``free freeᵀ + U diag(s²/(s² + λΣw)) Uᵀ``.

    Only the ``rank`` non-zero singular values are kept. When the singular values of ``Z``
    span more than 1e10, the rank is decided on the column-scaled design (each column of
    ``Z`` divided by its norm), so that the units of the features do not decide which
    directions count as zero.

    Attributes
    ----------
    U : ndarray of shape (n_samples, rank)
        Left singular vectors (orthonormal columns); formed on first use when the factors
        come from the Gram matrix (``ridgelens.objectives._gram``).
    s : ndarray of shape (rank,)
        Non-zero singular values, descending.
    Vt : ndarray of shape (rank, n_columns)
        Right singular vectors (orthonormal rows).
    target : ndarray of shape (n_samples,)
        ``√w ∘ (y − ȳ)`` with the weighted mean ȳ (free intercept), else ``√w ∘ y``.
    sqrt_weights : ndarray of shape (n_samples,)
        ``√w``.
    weight_sum : float
        ``Σw`` (``n_samples`` without weights): the mean loss divides by it.
    free : ndarray of shape (n_samples,) or None
        ``√w/√Σw`` when the intercept is free.
    n_columns : int
        Number of penalized parameters (columns of ``Z``).
    condition_number : float
        ``s_max/s_min`` of the whole weighted design ``W^{1/2}A`` (with its column of ones
        when there is an intercept), over its non-zero singular values.
    """

    s: np.ndarray
    Vt: np.ndarray
    target: np.ndarray
    sqrt_weights: np.ndarray
    weight_sum: float
    free: np.ndarray | None
    n_columns: int
    condition_number: float
    left: np.ndarray | None = None
    design: np.ndarray | None = None

    @property
    def rank(self) -> int:
        """Number of non-zero singular values kept."""
        return int(self.s.size)

    @cached_property
    def U(self) -> np.ndarray:
        """Left singular vectors: ``left`` (the SVD route), or ``Z Vtᵀ diag(1/s)`` formed on first use (Gram route)."""
        return self.left if self.left is not None else (self.design @ self.Vt.T) / self.s

    def project(self, r: np.ndarray) -> np.ndarray:
        """``Uᵀr``, without forming U when it is not there yet (``diag(1/s) Vt Zᵀr``; ``Zᵀ target`` is kept)."""
        if self.left is not None or "U" in self.__dict__:
            return self.U.T @ r
        Ztr = self.design_target if np.array_equal(r, self.target) else self.design.T @ r
        return (self.Vt @ Ztr) / self.s

    @cached_property
    def design_target(self) -> np.ndarray:
        """``Zᵀ target`` (Gram route), formed once: θ̂'s first solve and minimize's check both take it."""
        return self.design.T @ self.target


class _Factors:
    """What LeastSquares solves with, computed once: the design's SVD and the scaled pieces for θ̂."""

    def __init__(self, obj: LeastSquares):
        X, y, w = obj.X, obj.y, obj.sample_weight
        n, d = X.shape
        W = obj.weight_sum
        sw = np.ones(n) if w is None else np.sqrt(w)
        if obj.fit_intercept:
            self.x_mean = X.mean(axis=0) if w is None else (w @ X) / W
            self.y_mean = float(y.mean()) if w is None else float(w @ y) / W
            Z = X - self.x_mean
            t = y - self.y_mean
            free = sw / np.sqrt(W)
        else:
            self.x_mean, self.y_mean = np.zeros(d), 0.0
            Z, t, free = X, y, None
        if w is not None:
            Z, t = sw[:, None] * Z, sw * t
        self.choice, gram = decompose(Z, obj.decomposition, penalized_intercept=obj.fit_intercept and obj.penalized[-1])
        self.scaled = self.gram = None
        if gram is not None:  # well-conditioned: s and Vt from ZᵀZ, U only if asked for (DesignSVD.U)
            (s, Vt, self.gram), U = gram, None
        else:
            U, s, Vt = _thin_svd(Z)
        if gram is None and not (s.size == d and s[-1] > _DIRECT_SVD_RATIO * s[0]):
            # Nearly singular, or rank-deficient: decide the rank on the column-scaled design,
            # so that the features' units do not decide which directions count as zero, and
            # keep its SVD for θ̂. The unscaled SVD (what the penalty sees) then follows from
            # the small k × d factor diag(ss) Vst D of Z = (Us diag(ss) Vst) D.
            D = np.linalg.norm(Z, axis=0)
            D[D == 0] = 1.0
            Us, ss, Vst = _thin_svd(Z / D)
            k = int(np.count_nonzero(ss > ss[0] * max(n, d) * _EPS)) if ss.size and ss[0] > 0 else 0
            P, s, Vt = _thin_svd(ss[:k, None] * Vst[:k] * D)
            U = Us[:, :k] @ P
            if k == d:
                self.scaled = (P, ss[:k], Vst[:k], D)
        k = s.size
        self.sw, self.W = sw, W

        # The whole design W^{1/2}A = [U, free] M with M = [[diag(s) Vt, 0], [√Σw x̄ᵀ, √Σw]].
        if obj.fit_intercept and gram is not None:
            cond = whole_condition(s, Vt, self.x_mean, W, n)
        elif obj.fit_intercept:
            M = np.zeros((k + 1, d + 1))
            M[:k, :d] = s[:, None] * Vt
            M[k, :d] = np.sqrt(W) * self.x_mean
            M[k, d] = np.sqrt(W)
            if obj.penalized[-1]:
                Pa, g, Vta = _thin_svd(M)
            else:
                g = linalg.svdvals(M, check_finite=False)
            ka = int(np.count_nonzero(g > g[0] * max(n, d + 1) * _EPS))
            cond = float(g[0] / g[ka - 1])
        else:
            cond = float(s[0] / s[-1]) if k else np.inf
        self.zsvd = DesignSVD(s, Vt, t, sw, W, free, d, cond, left=U, design=None if U is not None else Z)
        if obj.fit_intercept and obj.penalized[-1]:
            Ua = np.hstack([U, free[:, None]]) @ Pa[:, :ka]
            self.svd = DesignSVD(g[:ka], Vta[:ka], sw * y, sw, W, None, d + 1, cond, left=Ua)
        else:
            self.svd = self.zsvd

    @cached_property
    def Ut_target(self) -> np.ndarray:
        """``Uᵀ target``, for the closed-form ridge solves (formed on first use: θ̂'s refinement projects its own)."""
        return self.svd.project(self.svd.target)

    def hessian(self, fit_intercept: bool, cols=slice(None)) -> np.ndarray:
        """Columns ``cols`` of ``AᵀWA/Σw`` from the Gram route's ``G = ZᵀZ``: ``[[G + Σw x̄x̄ᵀ, Σw x̄], [Σw x̄ᵀ, Σw]]/Σw``.

        (x̄ = 0 without intercept.) The added terms Σw·x̄ᵢx̄ⱼ are single products (Z = W^½(X − 1x̄ᵀ) ⟂ W^½1),
        so the entries keep the precision of a Gram matrix formed from the design directly. Only the
        columns asked for are formed (the path's coupling to a free intercept is one).
        """
        W, m = self.W, self.x_mean
        if not fit_intercept:
            return self.gram[:, cols] / W
        d, a = m.size, np.append(m, 1.0)  # AᵀWA = [[G, 0], [0, 0]] + Σw·a aᵀ with a = (x̄, 1)
        H = W * np.outer(a, a[cols])
        if isinstance(cols, slice):  # the whole H
            H[:d, :d] += self.gram
        else:
            inner = cols < d
            H[:d, inner] += self.gram[:, cols[inner]]
        return H / W

    def solve_centred(self, r: np.ndarray, h: np.ndarray | None = None) -> np.ndarray:
        """Least-squares solution of ``Z coef = r``, less ``(ZᵀZ)⁻¹h`` when ``h`` is given.

        Through the column-scaled SVD when there is one and Z has full column rank, else
        the minimum-norm solution (pseudo-inverse of the kept singular values). With ``h``,
        the correction of the augmented system ``[[I, Z], [Zᵀ, 0]]`` with right-hand side
        ``(r, h)`` (Björck's refinement of θ̂).
        """
        z = self.zsvd  # of Z (centred when there is an intercept)
        if self.scaled is not None:  # Z = Us diag(ss) Vst D and U = Us P, so Usᵀr = P Uᵀr
            P, ss, Vst, D = self.scaled
            u = P @ z.project(r)
            if h is not None:
                u = u - (Vst @ (h / D)) / ss
            return (Vst.T @ (u / ss)) / D
        u = z.project(r)
        if h is not None:
            u = u - (z.Vt @ h) / z.s
        return z.Vt.T @ (u / z.s)


class LeastSquares(_LinearObjective):
    r"""Least squares, ``R(θ) = Σᵢ wᵢ (xᵢᵀw + b − yᵢ)² / (2 Σᵢ wᵢ)`` with θ = (w, b).

    The weighted mean of half the squared residuals (all ``wᵢ = 1`` by default, giving
    ``(1/2n)‖Xw + b − y‖²``). The Hessian is ``H = AᵀWA / Σw`` with ``A = [X, 1]``
    (constant in θ), so the quadratic model is exact and the predicted ridge solution
    *is* the ridge solution. With the penalty ``(λ/2)‖w‖²`` the minimizer equals
    scikit-learn's ``Ridge(alpha=λ·Σw)`` fitted with the same ``sample_weight``
    (scikit-learn minimizes ``Σᵢ wᵢ rᵢ² + α‖w‖²``, i.e. ``2Σw`` times ours), which is
    ``Ridge(alpha=n·λ)`` without weights.

    θ̂ and the regularized minimizers come from one factorization of the centred design:
    its SVD, or, when it is tall and well-conditioned (cond ≤ 1e3), the eigendecomposition of
    its Gram matrix, whose factors are then within ε·cond² ≤ 2.2e-10 (``decomposition``;
    never the normal equations on an ill-conditioned design, which square its condition
    number). θ̂ is refined with accurate residuals on either route; :meth:`penalized_spectrum`
    gives the curvature's eigenpairs from the same factors. A design whose condition number
    exceeds ``ILL_CONDITIONED`` (1e8) raises an
    :class:`~ridgelens.errors.IllConditionedWarning` when it is first decomposed.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    y : array of shape (n_samples,)
    fit_intercept : bool, default True
        Append an intercept b as the last parameter.
    penalize_intercept : bool, default False
        Penalize b too (the seeds' formula, every parameter shrunk). By default b
        is free, as in scikit-learn.
    feature_names : list of str, optional
    sample_weight : array of shape (n_samples,), optional
        Finite weights ``wᵢ ≥ 0`` with a positive sum; the loss is their weighted mean,
        so scaling every weight by the same factor changes nothing. A weight of 0 leaves
        the sample out; an integer weight k counts the sample k times.
    decomposition : {"auto", "svd", "gram"}, default "auto"
        How the design is factored, decided once (:func:`ridgelens._auto.select_solver`,
        ``"design"``) and recorded in :attr:`decomposition_choice`, θ̂'s message, the path's
        ``choice`` and the selection's diagnostics. ``"auto"``: the Gram route when n > d, the
        intercept is free or absent and cond(Z) ≤ 1e3, else the SVD. ``"gram"`` refuses a design
        where the Gram route is impossible (wide, penalized intercept, singular ZᵀZ).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = np.array([1.0, 2.0, 3.0])
    >>> obj = LeastSquares(X, y, fit_intercept=False)
    >>> np.round(obj.minimize().theta, 6)
    array([1., 2.])
    >>> sigma, Q = obj.penalized_spectrum()   # eigenpairs of H = XᵀX/n, descending
    >>> np.round(sigma, 6)
    array([1.      , 0.333333])
    """

    #: The Hessian does not depend on θ (the error bound is then a bound for every parameter).
    constant_curvature = True

    def __init__(self, X, y, *, fit_intercept: bool = True, penalize_intercept: bool = False,
                 feature_names=None, sample_weight=None, decomposition: str = "auto"):
        super().__init__(X, y, fit_intercept=fit_intercept, penalize_intercept=penalize_intercept,
                         feature_names=feature_names)
        check_option("design", decomposition)
        #: ``"auto"``, ``"svd"`` or ``"gram"``: how the design is factored (see :attr:`decomposition_choice`).
        self.decomposition = decomposition
        #: The weights (a copy), or None.
        self.sample_weight = None if sample_weight is None else _check_weights(sample_weight, self.n_samples)
        #: Σw, what the mean loss divides by (``n_samples`` without weights).
        self.weight_sum = float(self.n_samples if self.sample_weight is None else self.sample_weight.sum())
        self._factors: _Factors | None = None

    @property
    def gaussian_loss(self) -> GaussianLoss:
        """``Σwᵢrᵢ²/(2Σw)`` over the samples of positive weight: Gaussian, noise variance 1/(βwᵢ)."""
        n_obs = self.n_samples if self.sample_weight is None else int(np.count_nonzero(self.sample_weight))
        return GaussianLoss(n_obs=n_obs, scale=0.5 / self.weight_sum)

    def value(self, theta):
        r = self._design_product(theta) - self.y
        if self.sample_weight is None:
            return float(r @ r) / (2 * self.n_samples)
        return float(self.sample_weight @ (r * r)) / (2 * self.weight_sum)

    def gradient(self, theta):
        r = self._design_product(theta) - self.y
        if self.sample_weight is not None:
            r = self.sample_weight * r
        return self._design_transpose(r) / self.weight_sum

    def hessian_columns(self, cols, theta=None) -> np.ndarray:
        """As :meth:`_LinearObjective.hessian_columns`; from the Gram route's ZᵀZ when the design was factored so."""
        if self._factors is not None and self._factors.gram is not None:
            return self._factors.hessian(self.fit_intercept, np.asarray(cols, dtype=int))
        return super().hessian_columns(cols, theta)

    def _weighted_design(self, theta=None) -> np.ndarray:
        return self._A if self.sample_weight is None else self._A * self.sample_weight[:, None]

    def hessian_dense(self, theta=None):
        if not hasattr(self, "_H"):
            f = self._factors
            if f is not None and f.gram is not None:  # the Gram route's ZᵀZ: AᵀWA is not formed again
                self._H = f.hessian(self.fit_intercept)
            else:
                self._H = self._weighted_design().T @ self._A / self.weight_sum
        return self._H

    # ------------------------------------------------------------ decomposition
    def _get_factors(self) -> _Factors:
        if self._factors is None:
            self._factors = _Factors(self)
            cond = self._factors.svd.condition_number
            if cond > ILL_CONDITIONED:
                design = ("[X, 1]" if self.fit_intercept else "X") + (" (weighted)" if self.sample_weight is not None else "")
                warnings.warn(
                    f"the design {design} is ill-conditioned: condition number {cond:.3g} > "
                    f"{ILL_CONDITIONED:.0e}, so the dense Hessian AᵀA/n (hessian_dense, and anything "
                    f"built from it) has condition number {cond ** 2:.3g} and loses up to "
                    f"{min(16.0, np.log10(cond ** 2)):.0f} of its ~16 digits in its smallest directions. "
                    "LeastSquares.minimize and penalized_spectrum work from an SVD of the centred "
                    "design and keep full precision; if the features' units are arbitrary, "
                    "standardizing them also makes the penalty treat them alike",
                    IllConditionedWarning, stacklevel=3,
                )
        return self._factors

    def with_target(self, y) -> LeastSquares:
        """The same design, weights and options with another target ``y``; the design's SVD is shared.

        For many targets on one design (multi-output y, one λ per target): the SVD is computed
        once, and each target costs ``O(n·rank)``.
        """
        other = copy.copy(self)
        other.y = check_finite_vector(y, "y")
        check_scale(other.y, "y")
        check_same_rows(self.X, other.y)
        f = copy.copy(self._get_factors())
        w = self.sample_weight
        if self.fit_intercept:
            f.y_mean = float(other.y.mean()) if w is None else float(w @ other.y) / f.W
        target = f.sw * (other.y - f.y_mean) if f.svd.free is not None else f.sw * other.y
        shared = f.svd is f.zsvd
        f.svd = replace(f.svd, target=target, left=f.svd.U)  # U formed once (Gram route) and shared
        f.zsvd = f.svd if shared else f.zsvd
        f.Ut_target = f.svd.project(target)
        other._factors = f
        return other

    @property
    def decomposition_choice(self):
        """How the design was factored, once, for θ̂, the path and the selection criteria.

        A :class:`ridgelens._auto.Choice` of the ``"design"`` decision: ``"gram"`` (eigendecomposition
        of ZᵀZ, taken by ``"auto"`` when cond(Z) ≤ 1e3; its reason states the error estimate
        ε·cond²) or ``"svd"``, with why. Factors the design if that has not happened yet.
        """
        return self._get_factors().choice

    def design_svd(self) -> DesignSVD:
        """The thin SVD of the weighted design the penalty sees (computed once, then cached).

        See :class:`DesignSVD`. GCV and leave-one-out (``ridgelens.select``) and the exact
        ridge path are built from it.
        """
        return self._get_factors().svd

    def penalized_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Eigenpairs of the curvature that the penalized block sees, from the design's SVD.

        Free intercept (the default): the Schur complement ``S = ZᵀZ/Σw`` with the
        (weighted) centred design ``Z``; penalized intercept or none: ``H = AᵀWA/Σw``.
        The eigenvalues are ``s²/Σw`` from the singular values ``s``, so a small eigenvalue
        keeps a relative accuracy of about ``ε·s_max/s`` instead of the ``ε·(s_max/s)²``
        of an eigendecomposition of the formed matrix. Then
        ``θ̃_p(λ) = Q diag(σ/(σ + λ)) Qᵀ θ̂_p`` is the exact ridge path of the penalized block
        (the free intercept follows as ``b = ȳ − x̄ᵀw``).

        Returns
        -------
        sigma : ndarray of shape (n_penalized,)
            Eigenvalues, descending; exact zeros beyond the design's rank.
        Q : ndarray of shape (n_penalized, n_penalized)
            Orthonormal eigenvectors in the columns, in the order of ``sigma`` (those of the
            zero eigenvalues complete the basis).
        """
        svd = self.design_svd()
        p, k = svd.n_columns, svd.rank
        sigma = np.zeros(p)
        sigma[:k] = svd.s ** 2 / svd.weight_sum
        Q = svd.Vt.T
        if k < p:
            complement = np.linalg.qr(Q, mode="complete")[0][:, k:] if k else np.eye(p)
            Q = np.hstack([Q, complement])
        return sigma, Q

    def penalized_coords(self, theta) -> np.ndarray:
        """``Qᵀθ_p`` in the basis of :meth:`penalized_spectrum`, read off the fitted values ``Zθ_p``.

        On the design's ``k`` directions ``Qᵀθ_p = Uᵀ(Zθ_p)/s``: a column on a scale far from
        the others' (1e-15 against 1) carries a coefficient as far the other way, and
        ``Vtθ_p`` then mixes it into every coordinate through Vt's rounding (an error of
        ε·|θ_j|, larger than the coordinates themselves), while ``Zθ_p`` holds the products
        ``z_j θ_j`` at their own size. Directions past the rank (σ = 0) are ``Qᵀθ_p`` as is.
        """
        theta = np.asarray(theta, dtype=np.float64)
        svd = self.design_svd()
        _, Q = self.penalized_spectrum()
        z = Q.T @ theta[:svd.n_columns]
        if svd.rank and self._get_factors().gram is None:  # the Gram route's cond(Z) ≤ 1e3: Qᵀθ_p is as good
            z[:svd.rank] = self._fitted_coords(theta) / svd.s
        return z

    def penalized_path(self, lambdas, theta, *, gradient: bool) -> np.ndarray:
        """θ̃_p(λ) of the exact path, one row per λ, as ridge fits (:meth:`_ridge_coefficients`).

        ``(S + λI)⁻¹Sθ_p`` is the ridge fit of the fitted values ``Zθ_p``; with the gradient term,
        ``(S + λI)⁻¹(Sθ_p − g̃)`` with g̃ this objective's (profile) gradient at θ is that of the
        target itself, whatever θ. Solved so, the path keeps the accuracy of the ridge solves
        where the eigenbasis of S does not have it (columns whose units differ by 1e10 and more:
        Q's small directions are then off by ε·1e10, and θ̃ with them).
        """
        f = self._get_factors()
        theta = np.asarray(theta, dtype=np.float64)
        if f.gram is not None and not gradient:  # cond(Z) ≤ 1e3: Q diag(σ/(σ+λ))Qᵀθ_p, a rounding shorter
            lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
            sigma = f.svd.s ** 2 / f.svd.weight_sum
            return (sigma / (sigma + lam[:, None]) * (f.svd.Vt @ theta[:f.svd.n_columns])) @ f.svd.Vt
        return self._ridge_coefficients(lambdas, f.Ut_target if gradient else self._fitted_coords(theta))

    def _fitted_coords(self, theta) -> np.ndarray:
        """``Uᵀ(Zθ_p)``: the fitted values of the penalized block in the design's left singular basis."""
        svd = self.design_svd()
        if self.fit_intercept and not self.penalized[-1]:  # Z = W^½(X − 1x̄ᵀ), θ_p = w
            w = theta[:-1]
            fitted = self.X @ w - self._get_factors().x_mean @ w
        else:  # Z = W^½A with θ_p = θ
            fitted = self._design_product(theta)
        return svd.project(svd.sqrt_weights * fitted)

    def _ridge_coefficients(self, lambdas, u) -> np.ndarray:
        r"""Rows ``argmin ‖Zc − r‖²/(2Σw) + (λ/2)‖c‖²`` per λ, for the target r with ``Uᵀr = u`` (shape (m, n_columns)).

        Through the design's SVD, ``Vtᵀ diag(s/(s² + λΣw)) u``. When the column-scaled SVD was
        kept (a nearly singular Z of full column rank, ``Z = Us diag(ss) Vst D``), as least squares
        on ``[diag(ss)Vst; √(λΣw) D⁻¹]φ = [Pu; 0]``, ``c = φ/D``, by QR with column pivoting: its
        accuracy does not depend on the columns' units, the SVD formula's does (ε times their
        spread: 2e-8 with one diabetes column in units 1e10, as scikit-learn's ``solver="svd"``;
        its Cholesky is exact there, and so is this).
        """
        f = self._get_factors()
        svd = f.svd
        lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
        if f.scaled is None or svd is not f.zsvd:
            return (svd.s / (svd.s ** 2 + lam[:, None] * svd.weight_sum) * u) @ svd.Vt
        P, ss, Vst, D = f.scaled
        top, rhs = ss[:, None] * Vst, np.r_[P @ u, np.zeros(D.size)]
        out = np.empty((lam.size, D.size))
        for i, lam_i in enumerate(lam):
            if lam_i == 0.0:
                out[i] = (Vst.T @ (rhs[:D.size] / ss)) / D
                continue
            M = np.vstack([top, np.diag(np.sqrt(lam_i * svd.weight_sum) / D)])
            # cond=tiny: a unit 1e20 apart makes R's diagonal span as much, and that is not a rank deficiency
            out[i] = linalg.lstsq(M, rhs, cond=np.finfo(float).tiny, lapack_driver="gelsy", check_finite=False)[0] / D
        return out

    # ------------------------------------------------------------------ solves
    def _theta(self, coef, intercept):
        return np.r_[coef, intercept] if self.fit_intercept else coef

    def _ols(self) -> tuple[np.ndarray, int, str]:
        """θ̂: SVD solve, then iterative refinement with accurate residuals.

        Refining θ alone (the residual ``y − Aθ`` summed in twice the working precision, then
        solved for) leaves an error ~ ε·κ²·‖ρ‖/(‖A‖‖θ‖): NIST's Wampler 4 and 5, whose residuals
        are large, would lose 2 and 4 of their certified digits. When that term may exceed
        ``_AUGMENTED_FROM``·ε, the refinement is Björck's, of the augmented system
        ``[[W⁻¹, A], [Aᵀ, 0]]·[Wρ; θ] = [y; 0]``: the residual ρ is carried with θ, both
        residuals ``y − ρ − Aθ`` and ``−AᵀWρ`` are summed in twice the working precision, and
        the correction is solved with the same factors.
        """
        f = self._get_factors()
        w = self.sample_weight
        pinv_all = self.fit_intercept and self.penalized[-1] and f.svd.rank < self.n_params

        def correction(r, g):  # min ‖W^½(r − A δθ)‖ with Aᵀ W δρ = g: δθ = A⁺r − (AᵀWA)⁻¹g
            if pinv_all:  # rank-deficient [X, 1] with its intercept penalized: min ‖θ‖ over (w, b)
                svd = f.svd
                d = svd.Vt.T @ ((svd.project(f.sw * r) - (svd.Vt @ g) / svd.s) / svd.s)
                return d[:-1], float(d[-1])
            if not self.fit_intercept:
                return f.solve_centred(f.sw * r, g), 0.0
            # [X, 1] = [Z, 1]·T with Z ⟂ W1: the blocks separate, (coef, b + x̄ᵀcoef)
            gb = float(g[-1])
            rbar = float(r.mean()) if w is None else float(w @ r) / f.W
            dcoef = f.solve_centred(f.sw * (r - rbar), g[:-1] - gb * f.x_mean)
            return dcoef, rbar - gb / f.W - float(f.x_mean @ dcoef)

        X, y = self.X, self.y
        coef, intercept = np.zeros(X.shape[1]), 0.0
        rho = None  # the residual, carried (with g = −AᵀWρ) once the refinement is Björck's
        g = np.zeros(self.n_params if pinv_all or self.fit_intercept else X.shape[1])
        r, last, solves = y, np.inf, 0
        for _ in range(1 + _MAX_REFINE):
            dc, db = correction(r, g)
            size = float(np.linalg.norm(np.r_[dc, db]))
            if not np.isfinite(size) or size > 0.5 * last:
                break  # the refinement stopped converging: keep the last iterate
            coef, intercept, solves = coef + dc, intercept + db, solves + 1
            if rho is not None:
                rho = rho + (r - X @ dc - db)
            # Linear convergence at the rate size/last: stop once the next step would be
            # below rounding, without spending another residual on it.
            rate = min(1.0, size / last) if solves > 1 else 1.0  # unknown after the first solve
            if size * rate <= 4 * _EPS * float(np.linalg.norm(np.r_[coef, intercept])):
                break
            last = size
            if rho is None:
                r = accurate_residual(X, y, coef, intercept)
                if self._large_residual(r, np.r_[coef, intercept]):
                    rho = r
            if rho is not None:
                r = accurate_residual(X, y, coef, intercept, rho)
                g = -self._accurate_gradient(rho)
        rank, p = f.svd.rank, f.svd.n_columns
        how = ("eigendecomposition of the Gram matrix of the " if f.choice.name == "gram" else "SVD of the ") + \
            ("centred design" if self.fit_intercept else "design") + \
            f" (condition number of the design {f.svd.condition_number:.2g})"
        if rank < p:
            how += (f"; rank {rank} < {p}: the minimum-norm solution, the λ → 0 limit of the "
                    "ridge path")
        return self._theta(coef, intercept), solves, how + f", {solves - 1} refinement step(s)"

    def _large_residual(self, rho: np.ndarray, theta: np.ndarray) -> bool:
        """Whether ε·κ²·‖W^½ρ‖/(‖A‖‖θ‖) may exceed ``_AUGMENTED_FROM``·ε (κ, ‖A‖ ≥ s_max: the whole design's)."""
        f = self._get_factors()
        size = f.svd.condition_number ** 2 * float(np.linalg.norm(f.sw * rho))
        return size > _AUGMENTED_FROM * float(f.svd.s[0] if f.svd.rank else 0.0) * float(np.linalg.norm(theta))

    def _accurate_gradient(self, rho: np.ndarray) -> np.ndarray:
        """``AᵀWρ`` in twice the working precision (``wᵢρᵢ`` split exactly into two doubles)."""
        if self.sample_weight is None:
            v, e = rho, None
        else:
            v, e = two_prod(self.sample_weight, rho)
        out = accurate_transpose(self.X, v)
        if e is not None:
            out = out + self.X.T @ e
        if not self.fit_intercept:
            return out
        total = cascade(v[:, None])
        return np.r_[out, total[0][0] + (total[1][0] + (0.0 if e is None else float(e.sum())))]

    def _ridge(self, l2: float) -> np.ndarray:
        f = self._get_factors()
        svd = f.svd
        c = self._ridge_coefficients([l2], f.Ut_target)[0]
        if svd.free is None:  # no intercept, or a penalized one (then c holds it)
            return c
        return self._theta(c, f.y_mean - float(f.x_mean @ c))

    def _check_terms(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(∇R(θ), AᵀWy/Σw)`` for :meth:`_minimize`'s convergence check.

        On the Gram route both come from ``G = ZᵀZ`` and one product ``Zᵀt`` instead of three passes
        over X (Aθ, Aᵀ(W(Aθ − y)), AᵀWy): with ``Z ⟂ W^½1`` and ``c = b + x̄ᵀw − ȳ``,
        ``∇R = [Gw − Zᵀt + Σw·c·x̄, Σw·c]/Σw`` and ``AᵀWy = [Zᵀt + Σw·ȳ·x̄, Σw·ȳ]`` (x̄ = ȳ = 0, c = 0
        without intercept). Its rounding is the normal equations' (as the Cholesky solve's check was
        before θ̂ was refined): where the columns have large means, 10–40× that of a pass over the
        residuals (column means 3 to 1e8, measured), and still far below the tolerance, which scales
        with AᵀWy as they do.
        """
        f = self._factors
        if f is None or f.gram is None:
            wy = self.y if self.sample_weight is None else self.sample_weight * self.y
            return self.gradient(theta), self._design_transpose(wy) / self.weight_sum
        W, m, ybar = f.W, f.x_mean, f.y_mean
        zt = f.zsvd.design_target
        if not self.fit_intercept:
            return (f.gram @ theta - zt) / W, zt / W
        w = theta[:-1]
        c = float(theta[-1] + m @ w) - ybar
        return np.r_[(f.gram @ w - zt) / W + c * m, c], np.r_[zt / W + ybar * m, ybar]

    def _weighted_ridge(self, l2: float) -> np.ndarray:
        """The minimizer of (1/2Σw)‖W^½(Aθ − y)‖² + (λ/2)θᵀDθ, as least squares on the stacked ``[W^½A/√Σw; √(λD)]``."""
        w = np.ones(self.n_samples) if self.sample_weight is None else self.sample_weight
        r = np.sqrt(w / self.weight_sum)
        M = np.vstack([self._A * r[:, None], np.diag(np.sqrt(l2 * self.penalty_factors))])
        rhs = np.concatenate([self.y * r, np.zeros(self.n_params)])
        return linalg.lstsq(M, rhs, check_finite=False)[0]

    def _minimize(self, l2, x0, tol, max_iter, **options):
        _no_options(options)
        if l2 == 0.0:
            theta, n_iter, message = self._ols()
        elif self.penalty is not None:
            theta, n_iter, message = self._weighted_ridge(l2), 1, "least squares on [W^½A; √λ D^½] (weighted penalty)"
        else:
            theta, n_iter = self._ridge(l2), 1
            message = ("closed form through the SVD of the " +
                       ("centred design" if self.fit_intercept else "design"))
        # The solve is exact up to rounding, so judge convergence relative to the data scale.
        grad, target_product = self._check_terms(theta)
        g = grad + l2 * self.penalty_factors * theta  # as penalized_gradient
        scale = max(1.0, float(np.abs(target_product).max()))
        gnorm = float(np.linalg.norm(g))
        return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol * scale, gradient_norm=gnorm,
                              tol=tol * scale, n_iter=n_iter, method="closed-form", message=message)


class Logistic(_LinearObjective):
    r"""Logistic regression, mean log-loss ``R(θ) = (1/n) Σ [log(1 + e^{zᵢ}) − yᵢ zᵢ]``, ``z = Xw + b``.

    ``y`` must be in {0, 1}. The Hessian is ``AᵀDA / n`` with ``D = diag(p(1−p))``.
    With the penalty ``(λ/2)‖w‖²`` the minimizer equals scikit-learn's
    ``LogisticRegression(C=1/(n·λ))``. The unregularized minimizer exists only if the
    classes are not linearly separable; :meth:`minimize` checks this.

    Parameters are as for :class:`LeastSquares`.
    """

    def __init__(self, X, y, **kwargs):
        super().__init__(X, y, **kwargs)
        bad = ~np.isin(self.y, (0.0, 1.0))
        if bad.any():
            i = int(np.argmax(bad))
            labels = np.unique(self.y)
            raise DataError(
                f"logistic regression needs y in {{0, 1}}; y[{i}] = {self.y[i]:g} "
                f"(y has {labels.size} distinct values: {', '.join(f'{v:g}' for v in labels[:10])}"
                f"{', ...' if labels.size > 10 else ''}); binarize it first (CLI: --positive-class)"
            )
        if np.unique(self.y).size < 2:
            raise DataError(f"logistic regression needs both classes in y; all {self.y.size} labels are {self.y[0]:g}")

    def value(self, theta):
        z = self._A @ theta
        return float(np.mean(np.logaddexp(0.0, z) - self.y * z))

    def gradient(self, theta):
        p = expit(self._A @ theta)
        return self._A.T @ (p - self.y) / self.n_samples

    def _weighted_design(self, theta=None) -> np.ndarray:
        p = expit(self._A @ np.asarray(theta, dtype=np.float64))
        return self._A * (p * (1.0 - p))[:, None]

    def hessian_dense(self, theta):
        p = expit(self._A @ np.asarray(theta, dtype=np.float64))
        w = p * (1.0 - p)
        return (self._A.T * w) @ self._A / self.n_samples

    def is_separable(self) -> bool:
        """Whether some θ separates the classes strictly (then θ̂ does not exist).

        Solves the feasibility LP ``sᵢ aᵢᵀθ ≥ 1`` with ``s = 2y − 1``.
        """
        s = 2.0 * self.y - 1.0
        res = optimize.linprog(np.zeros(self.n_params), A_ub=-(s[:, None] * self._A),
                               b_ub=-np.ones(self.n_samples), bounds=[(None, None)] * self.n_params,
                               method="highs")
        return res.status == 0

    def _minimize(self, l2, x0, tol, max_iter, **options):
        _no_options(options)
        if l2 == 0.0 and self.is_separable():
            raise DataError(
                "the classes are linearly separable, so the unregularized logistic loss has no "
                "minimizer (‖θ‖ → ∞ as R → 0); use fewer features, more data, or a penalty l2 > 0"
            )
        P = self.penalty_factors
        theta = np.zeros(self.n_params) if x0 is None else x0.copy()

        def f(t):
            return self.value(t) + 0.5 * l2 * float(P @ (t * t))

        fval = f(theta)
        message = f"reached max_iter={max_iter}"
        it = 0
        for it in range(1, max_iter + 1):
            g = self.penalized_gradient(theta, l2)
            if np.linalg.norm(g) <= tol:
                theta, polish = self._newton_polish(theta, g, l2)
                message = "gradient norm below tol" + (f", then {polish} full Newton step(s) to rounding" if polish else "")
                it += polish - 1
                break
            H = self.hessian_dense(theta) + l2 * np.diag(P)
            try:
                step = linalg.solve(H, g, assume_a="pos", check_finite=False)
            except linalg.LinAlgError:
                step = linalg.lstsq(H, g, check_finite=False)[0]
            # Backtracking (Armijo) line search on the penalized objective.
            t, slope = 1.0, float(g @ step)
            while t > 1e-12:
                cand = theta - t * step
                fc = f(cand)
                if fc <= fval - 1e-4 * t * slope or abs(fc - fval) <= 1e-15 * max(1.0, abs(fval)):
                    break
                t *= 0.5
            theta, fval = cand, fc
        return self._result(theta, l2, tol, it, "newton", message)

    def _newton_polish(self, theta, g, l2: float) -> tuple[np.ndarray, int]:
        """Full Newton steps from a θ that met tol, while each lowers ‖g‖: ``(θ, steps taken)``.

        Newton converges quadratically, so one or two steps take ‖g‖ ≤ tol down to rounding: the
        coefficients are then exact to rounding rather than to tol/σ_min (2e-7 on standardized
        breast cancer at tol 1e-8, which the predicted path then carried).
        """
        P, gn, steps = self.penalty_factors, float(np.linalg.norm(g)), 0
        for _ in range(3):
            try:
                step = linalg.solve(self.hessian_dense(theta) + l2 * np.diag(P), g, assume_a="pos", check_finite=False)
            except linalg.LinAlgError:
                break
            cand = theta - step
            gc = self.penalized_gradient(cand, l2)
            gcn = float(np.linalg.norm(gc))
            if not gcn < gn:
                break
            theta, g, gn, steps = cand, gc, gcn, steps + 1
            if np.linalg.norm(step) <= 4 * _EPS * np.linalg.norm(theta):
                break
        return theta, steps
