"""Closed-form objectives for linear models: least squares and logistic regression."""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize
from scipy.special import expit

from ridgelens._validation import check_finite_matrix, check_finite_vector, check_same_rows
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives._base import MinimizeResult, Objective


def _no_options(options: dict) -> None:
    if options:
        raise RidgelensError(f"unknown minimize option(s) for a linear objective: {', '.join(options)}")


class _LinearObjective(Objective):
    """Shared plumbing: design matrix ``A = [X, 1]`` and θ = ``[w, b]``."""

    #: A GLM with its canonical link: the Gauss-Newton matrix equals the Hessian.
    canonical_glm = True

    def __init__(self, X, y, *, fit_intercept: bool = True, penalize_intercept: bool = False,
                 feature_names=None):
        X = check_finite_matrix(X, "X", feature_names)
        y = check_finite_vector(y, "y")
        check_same_rows(X, y)
        self.X, self.y = X, y
        self.fit_intercept = bool(fit_intercept)
        n, d = X.shape
        self._A = np.hstack([X, np.ones((n, 1))]) if self.fit_intercept else X
        names = list(feature_names) if feature_names is not None else [f"w[{j}]" for j in range(d)]
        if len(names) != d:
            raise DataError(f"feature_names has {len(names)} names but X has {d} columns")
        self.param_names = [*names, "intercept"] if self.fit_intercept else names
        self.penalized = np.ones(self._A.shape[1], dtype=bool)
        if self.fit_intercept and not penalize_intercept:
            self.penalized[-1] = False

    @property
    def n_params(self) -> int:
        return self._A.shape[1]

    @property
    def n_samples(self) -> int:
        return self._A.shape[0]

    def hvp(self, theta, v):
        return self.hessian_dense(theta) @ np.asarray(v, dtype=np.float64)

    def _result(self, theta, l2, tol, n_iter, method, message=""):
        gnorm = float(np.linalg.norm(self.penalized_gradient(theta, l2)))
        return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol, gradient_norm=gnorm,
                              tol=tol, n_iter=n_iter, method=method, message=message)


class LeastSquares(_LinearObjective):
    r"""Least squares, ``R(θ) = (1/2n) ‖X w + b − y‖²`` with θ = (w, b).

    The Hessian is ``H = AᵀA / n`` with ``A = [X, 1]`` (constant in θ), so the
    quadratic model is exact and the predicted ridge solution *is* the ridge solution.
    With the penalty ``(λ/2)‖w‖²`` the minimizer equals scikit-learn's
    ``Ridge(alpha=n·λ)``.

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

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = np.array([1.0, 2.0, 3.0])
    >>> obj = LeastSquares(X, y, fit_intercept=False)
    >>> np.round(obj.minimize().theta, 6)
    array([1., 2.])
    """

    def value(self, theta):
        r = self._A @ theta - self.y
        return float(r @ r) / (2 * self.n_samples)

    def gradient(self, theta):
        return self._A.T @ (self._A @ theta - self.y) / self.n_samples

    def hessian_dense(self, theta=None):
        if not hasattr(self, "_H"):
            self._H = self._A.T @ self._A / self.n_samples
        return self._H

    def _minimize(self, l2, x0, tol, max_iter, **options):
        _no_options(options)
        H = self.hessian_dense() + l2 * np.diag(self.penalized.astype(float))
        rhs = self._A.T @ self.y / self.n_samples
        try:
            c, low = linalg.cho_factor(H, check_finite=False)
            theta = linalg.cho_solve((c, low), rhs, check_finite=False)
            message = "Cholesky solve of (H + λP)θ = Aᵀy/n"
        except linalg.LinAlgError:
            theta = linalg.lstsq(H, rhs, check_finite=False)[0]
            message = "H + λP is singular: minimum-norm least-squares solution"
        # The solve is exact up to rounding, so judge convergence relative to the data scale.
        # The gradient from the Gram matrix costs d² instead of another pass over the n rows.
        scale = max(1.0, float(np.abs(rhs).max()))
        gnorm = float(np.linalg.norm(H @ theta - rhs))
        return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol * scale, gradient_norm=gnorm,
                              tol=tol * scale, n_iter=1, method="closed-form", message=message)


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
        P = self.penalized.astype(float)
        theta = np.zeros(self.n_params) if x0 is None else x0.copy()

        def f(t):
            return self.value(t) + 0.5 * l2 * float(P @ (t * t))

        fval = f(theta)
        message = f"reached max_iter={max_iter}"
        it = 0
        for it in range(1, max_iter + 1):
            g = self.penalized_gradient(theta, l2)
            if np.linalg.norm(g) <= tol:
                message = "gradient norm below tol"
                it -= 1
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
