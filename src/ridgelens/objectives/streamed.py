r"""Least squares from streamed moments: θ̂, H and the exact ridge path without ever holding X.

For a design that does not fit in memory (``ridgelens.data.stream_least_squares`` reads a CSV
block by block), or when asked: the rows pass once, in blocks, and only the means and the
*centred* cross-products of the columns ``[X, y]`` are kept, (d + 1)² numbers.

**Accumulation.** Each block gets its own means and centred scatter matrix ``M_b = Z_bᵀZ_b``
(``Z_b``: the block minus its column means), merged into the running ones with the pairwise
update of Chan, Golub & LeVeque (1979): with ``δ = μ_b − μ`` and n, m rows,
``M ← M + M_b + (n·m/(n + m)) δδᵀ`` and ``μ ← μ + (m/(n + m)) δ``. No uncentred sum ``XᵀX`` is
formed, so a column with a large mean (1e6 ± 1) keeps its digits: the rounding of every entry is
relative to the centred spread, not to the mean.

**Precision.** The normal equations square the condition number: θ̂ and the path are accurate to
about ``ε·κ`` with ``κ = σ_max/σ_min`` of ``S = ZᵀZ/n`` (= cond(Z)²), against ``ε·cond(Z)`` for
:class:`~ridgelens.objectives.LeastSquares`' SVD. An :class:`~ridgelens.errors.IllConditionedWarning`
says so when ``κ > 1e8`` (fewer than ~8 digits left). Eigenvalues of S below ``max(n, d)·ε·σ_max``
(the accumulated rounding of n rows) are zero: θ̂ is then the minimum-norm solution.

**Not available** without X (each refuses with a message saying so): sample weights, the residuals,
leave-one-out and GCV (``select_lambda``: they need the design's SVD), ALO and a validation split
(the rows), multi-target refits (``with_target``). The default λ grid (from the spectrum) works, and
so does ``select_lambda(method="evidence")``: by the Laplace route, which for this Gaussian loss
(:attr:`gaussian_loss`) profiles the noise out and is the least-squares closed form on the grid.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from ridgelens.errors import IllConditionedWarning, RidgelensError
from ridgelens.objectives._base import (
    GaussianLoss,
    MinimizeResult,
    Objective,
    with_intercept_factor,
)

_EPS = np.finfo(np.float64).eps
#: The warning threshold on κ(S) = cond(Z)²: above it, fewer than about 8 digits are left.
ILL_CONDITIONED_GRAM = 1e8


class Moments:
    """Running column means and centred scatter matrix of a table, fed block by block.

    Attributes
    ----------
    n : int
        Rows seen.
    mean : ndarray of shape (p,)
    scatter : ndarray of shape (p, p)
        ``Σᵢ (rᵢ − mean)(rᵢ − mean)ᵀ`` over the rows rᵢ seen.
    """

    def __init__(self, p: int):
        self.n, self.mean, self.scatter = 0, np.zeros(p), np.zeros((p, p))

    def add(self, block: np.ndarray) -> None:
        """Merge a block of rows (shape (m, p)), by Chan, Golub & LeVeque's pairwise update."""
        m = block.shape[0]
        if m == 0:
            return
        mu = block.mean(axis=0)
        Z = block - mu
        total = self.n + m
        delta = mu - self.mean
        self.scatter += Z.T @ Z + (self.n * m / total) * np.outer(delta, delta)
        self.mean += (m / total) * delta
        self.n = total

    @classmethod
    def of(cls, table: np.ndarray, rows: int = 1 << 16) -> Moments:
        """The moments of an in-memory table, accumulated in blocks of ``rows``."""
        out = cls(table.shape[1])
        for i in range(0, table.shape[0], rows):
            out.add(table[i:i + rows])
        return out


def _unavailable(what: str) -> RidgelensError:
    return RidgelensError(f"{what} needs the rows of X, which streamed least squares (StreamedLeastSquares) does "
                          "not keep: it holds only the centred XᵀX, Xᵀy and yᵀy. Load the data into memory "
                          "(LeastSquares(X, y), or the CLI without --stream) for it")


class StreamedLeastSquares(Objective):
    r"""Least squares ``R(θ) = ‖Xw + b − y‖²/(2n)`` from the moments of ``[X, y]`` (see the module).

    With the centred ``C = ZᵀZ``, ``c = Zᵀ(y − ȳ)``, ``s = ‖y − ȳ‖²`` and ``e = ȳ − x̄ᵀw − b``:
    ``R = (s − 2wᵀc + wᵀCw)/(2n) + e²/2``, ``H = [[C/n + x̄x̄ᵀ, x̄], [x̄ᵀ, 1]]`` and, with a free
    intercept, the penalized block sees ``S = C/n`` (its eigenpairs give the exact path).
    Same parameters and conventions as :class:`~ridgelens.objectives.LeastSquares` (no sample weights).

    Parameters
    ----------
    moments : Moments
        Of the table whose column ``target`` is y and whose other columns are X, in order.
    target : int, default -1
    fit_intercept, penalize_intercept, feature_names : as for LeastSquares.
    target_name : str, default "y"
    """

    canonical_glm = True
    convex = True
    constant_curvature = True

    def __init__(self, moments: Moments, target: int = -1, *, fit_intercept: bool = True,
                 penalize_intercept: bool = False, feature_names=None, target_name: str = "y"):
        p = moments.mean.size
        self.target_name = str(target_name)
        t = range(p)[target]
        f = [k for k in range(p) if k != t]
        if moments.n < 2:
            raise RidgelensError(f"streamed least squares needs at least 2 rows, got {moments.n}")
        self.n = moments.n
        self.x_mean, self.y_mean = moments.mean[f].copy(), float(moments.mean[t])
        self.C = moments.scatter[np.ix_(f, f)].copy()
        self.c = moments.scatter[f, t].copy()
        self.s = float(moments.scatter[t, t])
        self.fit_intercept = bool(fit_intercept)
        names = list(feature_names) if feature_names is not None else [f"w[{j}]" for j in range(len(f))]
        if len(names) != len(f):
            raise RidgelensError(f"feature_names has {len(names)} names but X has {len(f)} columns")
        self.param_names = [*names, "intercept"] if self.fit_intercept else names
        self.penalized = np.ones(self.n_params, dtype=bool)
        if self.fit_intercept and not penalize_intercept:
            self.penalized[-1] = False
        self._spectrum = None

    @classmethod
    def from_arrays(cls, X, y, **options) -> StreamedLeastSquares:
        """From an in-memory X and y (accumulated in blocks, as a stream would be): for checks and comparisons."""
        return cls(Moments.of(np.column_stack([np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)])),
                   **options)

    @property
    def n_params(self) -> int:
        return self.c.size + self.fit_intercept

    @property
    def n_samples(self) -> int:
        return self.n

    def _split(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        w = theta[:self.c.size]
        b = float(theta[-1]) if self.fit_intercept else 0.0
        return w, self.y_mean - float(self.x_mean @ w) - b

    @property
    def gaussian_loss(self) -> GaussianLoss:
        """``‖r‖²/(2n)``: Gaussian (the evidence profiles its noise precision out)."""
        return GaussianLoss(n_obs=self.n, scale=0.5 / self.n)

    def value(self, theta) -> float:
        w, e = self._split(theta)
        return float(self.s - 2 * w @ self.c + w @ (self.C @ w)) / (2 * self.n) + 0.5 * e * e

    def gradient(self, theta) -> np.ndarray:
        w, e = self._split(theta)
        gw = (self.C @ w - self.c) / self.n - e * self.x_mean
        return np.append(gw, -e) if self.fit_intercept else gw

    def hessian_dense(self, theta=None) -> np.ndarray:
        d = self.c.size
        H = np.empty((self.n_params, self.n_params))
        H[:d, :d] = self.C / self.n + np.outer(self.x_mean, self.x_mean)
        if self.fit_intercept:
            H[:d, d] = H[d, :d] = self.x_mean
            H[d, d] = 1.0
        return H

    def hvp(self, theta, v) -> np.ndarray:
        return self.hessian_dense() @ np.asarray(v, dtype=np.float64)

    def hessian_columns(self, cols, theta=None) -> np.ndarray:
        return self.hessian_dense()[:, np.asarray(cols, dtype=int)]

    def _free_intercept(self) -> bool:
        return self.fit_intercept and self.penalty_factors[-1] == 0

    def penalized_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenpairs (descending) of S = C/n (free intercept) or H: what the penalized block sees.

        The rank is decided on the Jacobi-scaled matrix ``D⁻¹SD⁻¹`` (D² = diag S), as LeastSquares
        decides it on the column-scaled design, so that the features' units do not. Of full rank
        so: the eigenpairs of ``S = GᵀG``, ``G = Lᵀ D`` (L the scaled matrix's Cholesky factor), by
        LAPACK's preconditioned Jacobi SVD (``dgejsv``), which gives every eigenvalue to relative
        accuracy (a column in units 1e-8 has σ = 1e-16·σ_max, which ``eigh`` and the rounding
        rule set to 0: "rank 2 of 3" and θ̂'s coefficient dropped). Otherwise ``eigh``, and
        eigenvalues below ``max(n, d)·ε·σ_max`` are set to exactly 0 (see the module).
        """
        if self._spectrum is None:
            S = self._penalized_matrix()
            scaled = _scaled_pd(S, self.n)
            if scaled is not None:  # full rank once scaled: Jacobi SVD, every eigenvalue to relative accuracy
                sigma, Q = _jacobi_eigh(*scaled[:2])
            else:
                sigma, Q = np.linalg.eigh(S)
                sigma, Q = sigma[::-1].copy(), np.ascontiguousarray(Q[:, ::-1])
                tol = max(self.n, S.shape[0]) * _EPS * max(float(sigma[0]), 0.0)
                sigma[sigma <= tol] = 0.0
            kept = sigma[sigma > 0]
            kappa = float(kept[0] / kept[-1]) if kept.size else np.inf
            if scaled is not None:  # what the scaled solves lose: the scaled matrix's condition, not the units'
                kappa = scaled[2]
            if kappa > ILL_CONDITIONED_GRAM:
                warnings.warn(
                    f"streamed least squares works from the normal equations, and their matrix has condition "
                    f"number {kappa:.3g}{' (columns scaled to unit size)' if scaled is not None else ''} > "
                    f"{ILL_CONDITIONED_GRAM:.0e}: θ̂ and the path keep about "
                    f"{max(0.0, -np.log10(_EPS * kappa)):.0f} digits (ε·κ ≈ {_EPS * kappa:.1g}); LeastSquares on X "
                    "in memory keeps full precision by an SVD, and standardizing the features also helps",
                    IllConditionedWarning, stacklevel=2)
            self._spectrum = (sigma, Q)
        return self._spectrum

    def _penalized_matrix(self) -> np.ndarray:
        return self.C / self.n if self._free_intercept() else self.hessian_dense()

    def penalized_path(self, lambdas, theta, *, gradient: bool) -> np.ndarray:
        """θ̃_p(λ), one row per λ, by Jacobi-scaled solves of ``(S + λF)θ̃_p = Sθ_p − g̃`` (see LeastSquares').

        With the gradient term the right side is the moments' ``c/n`` (plus the intercept's part when
        it is penalized), whatever θ; without it ``Sθ_p``. Solved so, a column in far units keeps
        θ̃ exact where Q's rounding times its large coefficient would not.
        """
        lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
        S, F = self._penalized_matrix(), self.penalty_factors
        theta = np.asarray(theta, dtype=np.float64)
        if gradient:
            rhs = self._normal_rhs()
        else:
            rhs = S @ theta[:S.shape[0]]
        F = F[:S.shape[0]]
        return np.array([_psd_solve(S + lam_i * np.diag(F), rhs, self.n) for lam_i in lam])

    def _normal_rhs(self) -> np.ndarray:
        """The right side of the normal equations of the penalized block: ``c/n`` (free intercept), else ``AᵀY/n``."""
        if self._free_intercept():
            return self.c / self.n
        rhs = self.c / self.n + self.x_mean * self.y_mean
        return np.append(rhs, self.y_mean) if self.fit_intercept else rhs

    def set_penalty(self, penalty):
        """As :meth:`Objective.set_penalty`, and one factor per feature is accepted (as LeastSquares does)."""
        self._spectrum = None
        return super().set_penalty(with_intercept_factor(self, penalty))

    def _minimize(self, l2: float, x0, tol: float, max_iter: int, **options) -> MinimizeResult:
        if options:
            raise RidgelensError(f"unknown minimize option(s) for a linear objective: {', '.join(options)}")
        F = self.penalty_factors
        d = self.c.size
        if self._free_intercept():  # b = ȳ − x̄ᵀw eliminated: (C/n + λD) w = c/n, with no x̄x̄ᵀ to cancel
            w = _psd_solve(self.C / self.n + l2 * np.diag(F[:d]), self._normal_rhs(), self.n)
            theta = np.append(w, self.y_mean - float(self.x_mean @ w))
        else:
            theta = _psd_solve(self.hessian_dense() + l2 * np.diag(F), self._normal_rhs(), self.n)
        # The solve is exact up to rounding, so convergence is judged relative to the data's scale (as
        # LeastSquares does): the gradient's rounding grows with AᵀY/n (a column in units 1e8: 1.6e-8).
        gnorm = float(np.linalg.norm(self.penalized_gradient(theta, l2)))
        tol = tol * max(1.0, float(np.abs(self._normal_rhs()).max()))
        return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol, gradient_norm=gnorm, tol=tol,
                              n_iter=1, method="closed-form", message="normal equations of the streamed moments")

    def fingerprint(self) -> str:
        """A digest of the moments, the intercept setting and the mask: checkpoints know their data."""
        h = hashlib.sha256()
        for a in (self.C, self.c, self.x_mean, np.array([self.s, self.y_mean, self.n, self.fit_intercept]),
                  np.asarray(self.penalized, dtype=np.float64)):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()[:32]

    # What needs the rows of X: refused with the reason.
    @staticmethod
    def unavailable(what: str) -> RidgelensError:
        """The error for ``what``, which needs the rows of X (raised by the callers that need them)."""
        return _unavailable(what)

    def with_target(self, y):
        raise _unavailable("another target (with_target)")


def _scaled_pd(M: np.ndarray, n: int):
    """``(D, L, κ)`` with ``M = D⁻¹(LLᵀ)D⁻¹`` when the Jacobi-scaled matrix has full rank; else None.

    D = diag(M)^-½ in powers of two; κ is the scaled matrix's condition number. Full rank: its eigenvalues all above ``max(n, dim)·ε`` times the largest (the rank rule, on the
    scaled matrix).
    """
    d = np.diag(M)
    if not np.all(d > 0):
        return None
    D = np.exp2(-np.round(0.5 * np.log2(d)))  # exact: the scaled matrix carries M's own digits
    Ms = D[:, None] * M * D[None, :]
    e = np.linalg.eigvalsh(Ms)
    if not e[0] > max(n, M.shape[0]) * _EPS * e[-1]:
        return None
    return D, np.linalg.cholesky(Ms), float(e[-1] / e[0])


def _jacobi_eigh(D: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs (descending) of ``M = GᵀG``, ``G = LᵀD⁻¹``, from LAPACK's preconditioned Jacobi SVD of G."""
    from scipy.linalg import lapack

    sva, _, V, work, _, info = lapack.dgejsv(L.T / D[None, :], joba=0)
    if info != 0:
        raise RidgelensError(f"the Jacobi SVD of the streamed moments failed (LAPACK dgejsv info = {info})")
    s = sva * (work[0] / work[1])
    order = np.argsort(-s, kind="stable")
    return (s[order] ** 2), np.ascontiguousarray(V[:, order])


def _psd_solve(M: np.ndarray, r: np.ndarray, n: int) -> np.ndarray:
    """``M⁻¹r``, or the minimum-norm solution of ``Mx = r`` for a symmetric PSD M short of full rank.

    Full rank once Jacobi-scaled (:func:`_scaled_pd`): by the scaled Cholesky factor. Otherwise
    from ``eigh``, eigenvalues below max(n, dim)·ε·max counted as 0.
    """
    scaled = _scaled_pd(M, n)
    if scaled is not None:
        from scipy.linalg import cho_solve

        D, L, _ = scaled
        return D * cho_solve((L, True), D * r, check_finite=False)
    e, V = np.linalg.eigh(M)
    keep = e > max(n, M.shape[0]) * _EPS * max(float(e[-1]), 0.0)
    return V[:, keep] @ ((V[:, keep].T @ r) / e[keep])
