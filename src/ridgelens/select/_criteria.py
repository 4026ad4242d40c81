r"""GCV and exact leave-one-out for ridge least squares, from the design's thin SVD.

Notation (see :class:`~ridgelens.objectives.linear.DesignSVD`): ``Z = U diag(s) Vt`` the
√w-scaled (centred) design, ``t`` the √w-scaled (centred) target, ``Σw`` the weight sum,
``e = √w/√Σw`` the free intercept's direction (if any). At λ the ridge fit's hat matrix in
the scaled space is ``A(λ) = eeᵀ + U diag(f) Uᵀ`` with ``f = s²/(s² + λΣw)``, so with
``c = Uᵀt`` and ``g = 1 − f = λΣw/(s² + λΣw)`` (computed as such, without cancellation):

    residual   ρ(λ) = t⊥ + U (g ∘ c)          t⊥ = (I − eeᵀ − UUᵀ) t, the OLS residual
    leverage   1 − hᵢᵢ(λ) = ℓᵢ + Σⱼ Uᵢⱼ² gⱼ    ℓᵢ = 1 − eᵢ² − Σⱼ Uᵢⱼ², the OLS complement

Leave-one-out: the fit without sample i, at the same penalty ``α = λ·Σw`` on the sum of
squares (as scikit-learn's ``RidgeCV``), predicts yᵢ with error ``ρᵢ/(√wᵢ (1 − hᵢᵢ))``
(the intercept refitted too when it is free). GCV replaces every ``hᵢᵢ`` by their mean.
"""

from __future__ import annotations

import numpy as np

from ridgelens.objectives.linear import DesignSVD, LeastSquares


class Prepared:
    """The λ-independent pieces: computed once per selection, O(n·rank)."""

    def __init__(self, svd: DesignSVD):
        self.svd = svd
        self.positive = svd.sqrt_weights > 0
        self.n = int(np.count_nonzero(self.positive))
        self.n_free = 0 if svd.free is None else 1
        U = svd.U
        self.c = U.T @ svd.target
        interpolates = svd.rank + self.n_free >= self.n
        if interpolates:  # the OLS fit passes through every (positive-weight) sample
            self.t_perp = np.zeros_like(svd.target)
        else:
            r = svd.target - U @ self.c
            for _ in range(2):  # project out the fitted space, twice so it is gone to rounding
                if svd.free is not None:
                    r = r - svd.free * (svd.free @ r)
                r = r - U @ (U.T @ r)
            self.t_perp = r
        self.U2 = U * U
        lev = self.U2.sum(axis=1) + (0.0 if svd.free is None else svd.free ** 2)
        self.ell = np.clip(1.0 - lev, 0.0, 1.0)
        if interpolates:
            self.ell[self.positive] = 0.0

    def shrinkage(self, lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(f, g)`` of shape (rank, n_lambdas): kept and removed fractions, f + g = 1."""
        s2 = self.svd.s[:, None] ** 2
        lw = lambdas[None, :] * self.svd.weight_sum
        return s2 / (s2 + lw), lw / (s2 + lw)  # s > 0 (rank-truncated), so no 0/0


def gcv(prep: Prepared, lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCV(λ) = (Σwᵢρᵢ²/Σw) / (1 − tr A(λ)/n)², and the penalized block's df(λ) = Σf."""
    f, g = prep.shrinkage(lambdas)
    rss = float(prep.t_perp @ prep.t_perp) + ((g * prep.c[:, None]) ** 2).sum(axis=0)
    df = f.sum(axis=0)
    slack = 1.0 - (prep.n_free + df) / prep.n
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = np.where(slack > 0, rss / prep.svd.weight_sum / slack ** 2, np.inf)
    return crit, df


def loo(prep: Prepared, lambdas: np.ndarray, objective: LeastSquares):
    """Exact leave-one-out errors, shape (n_lambdas, n_samples), their weighted mean square, df(λ)."""
    svd = prep.svd
    f, g = prep.shrinkage(lambdas)
    rho = prep.t_perp[:, None] + svd.U @ (g * prep.c[:, None])
    slack = prep.ell[:, None] + prep.U2 @ g  # 1 − hᵢᵢ(λ)
    pos = prep.positive
    every = bool(pos.all())
    if not every:
        rho, slack = rho[pos], slack[pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.divide(rho, slack, out=np.full_like(rho, np.inf), where=slack > 0)  # √wᵢ × error
        if every:
            errors = scaled if objective.sample_weight is None else scaled / svd.sqrt_weights[:, None]
        else:
            errors = np.empty((pos.size, scaled.shape[1]))
            errors[pos] = scaled / svd.sqrt_weights[pos, None]
    if not every:  # weight 0: the fit never saw the sample; its error is the full fit's
        errors[~pos] = _zero_weight_errors(objective, prep, lambdas, ~pos)
    crit = (scaled ** 2).sum(axis=0) / svd.weight_sum
    return errors.T, crit, f.sum(axis=0)


def _zero_weight_errors(objective: LeastSquares, prep: Prepared, lambdas, rows) -> np.ndarray:
    """``yᵢ − ŷᵢ(λ)`` for the given rows, from the ridge coefficients at every λ."""
    svd = prep.svd
    s = svd.s[:, None]
    coef = svd.Vt.T @ (s / (s ** 2 + lambdas[None, :] * svd.weight_sum) * prep.c[:, None])
    X, y, w = objective.X, objective.y, objective.sample_weight
    if svd.free is not None:  # free intercept: b = ȳ − x̄ᵀcoef with the weighted means
        x_mean, y_mean = (w @ X) / svd.weight_sum, float(w @ y) / svd.weight_sum
        fitted = (X[rows] - x_mean) @ coef + y_mean
    elif objective.fit_intercept:  # penalized intercept: the last coefficient
        fitted = X[rows] @ coef[:-1] + coef[-1]
    else:
        fitted = X[rows] @ coef
    return y[rows, None] - fitted
