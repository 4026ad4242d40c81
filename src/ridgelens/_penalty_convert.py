r"""Other tools' per-coefficient ridge penalties in ridgelens' convention, and back.

ridgelens: mean loss ``R(θ)`` (least squares ``(1/2n)‖Xw + b − y‖²``) plus ``(λ/2)θᵀDθ``.
Only the products ``λ·dⱼ`` matter, so each converter also says which (λ, d) pair it returns.

glmnet (``alpha = 0``, ridge), ``penalty.factor = pf`` of the p variables:

- glmnet rescales ``pf`` to sum to the number of variables: ``pf* = pf · p / Σpf``;
- with ``standardize = TRUE`` (its default) the penalty acts on the coefficients of the
  standardized columns, ``β̃ⱼ = sⱼβⱼ`` (``sⱼ`` the 1/n standard deviation), so in the
  original coefficients the factor is ``pf*ⱼ · sⱼ²``;
- for ``family = "gaussian"`` it fits the response divided by ``s_y`` (1/n standard deviation)
  with ``λ/s_y``, so its λ is on the scale of ``sd(y)``: ridgelens' λ is ``λ_glmnet / s_y``.
  For ``"binomial"`` (mean log-likelihood) the λ is the same.

So ``glmnet(x, y, alpha = 0, lambda = λ_g, penalty.factor = pf)`` minimizes
``(1/2n)‖y − b − Xβ‖² + (λ_g / s_y)/2 · Σⱼ pf*ⱼ sⱼ² βⱼ²``: ridgelens with ``λ = λ_g/s_y`` and
``dⱼ = pf*ⱼ sⱼ²`` (``sⱼ = 1`` without standardization), the intercept free.

statsmodels ``OLS(y, X).fit_regularized(alpha = a, L1_wt = 0)`` minimizes
``0.5·RSS/n + Σⱼ aⱼβⱼ²/2`` over all columns of X (a constant column is a coefficient like any
other; give it ``aⱼ = 0`` to leave it free): ridgelens with ``λ·dⱼ = aⱼ``.
"""

from __future__ import annotations

import numpy as np

from ridgelens._penalty import check_factors
from ridgelens.errors import PenaltyError

_FAMILIES = ("gaussian", "binomial")


def _sd(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.mean((a - a.mean(axis=0)) ** 2, axis=0))


def _column_variances(X, p: int, standardize: bool) -> np.ndarray:
    if not standardize:
        return np.ones(p)
    if X is None:
        raise PenaltyError("standardize=True needs X: glmnet's penalty then acts on the standardized columns")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != p:
        raise PenaltyError(f"X must have {p} columns, one per penalty factor; got shape {X.shape}")
    var = _sd(X) ** 2
    if not (var > 0).all():
        j = int(np.argmin(var > 0))
        raise PenaltyError(f"column {j} of X is constant: glmnet cannot standardize it (sd = 0)")
    return var


def _y_scale(y, family: str) -> float:
    if family not in _FAMILIES:
        raise PenaltyError(f"family must be one of {_FAMILIES}, got {family!r}")
    if family == "binomial":
        return 1.0
    if y is None:
        raise PenaltyError("family='gaussian' needs y: glmnet's λ is on the scale of sd(y)")
    s = float(_sd(np.asarray(y, dtype=np.float64).ravel()))
    if not s > 0:
        raise PenaltyError("y is constant (sd = 0): glmnet's gaussian λ is undefined")
    return s


def glmnet_to_ridgelens(lambda_glmnet, penalty_factor, *, y=None, X=None, standardize: bool = True,
                        family: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """Glmnet's ridge (``alpha = 0``) ``lambda`` and ``penalty.factor`` as ridgelens' (λ, feature factors d).

    Returns ``(lam, d)``: ``lam`` of the shape of ``lambda_glmnet`` (``λ_g / s_y``; unchanged for
    binomial) and ``d`` of shape (p,), the rescaled ``pf*ⱼ`` times ``sⱼ²`` when ``standardize``.
    Pass ``d`` to :meth:`LeastSquares.set_penalty` (the intercept stays free, as in glmnet).

    Examples
    --------
    >>> lam, d = glmnet_to_ridgelens(0.5, [1.0, 3.0], y=[0.0, 2.0], standardize=False)
    >>> float(lam), d.tolist()
    (0.5, [0.5, 1.5])
    """
    pf = check_factors(np.atleast_1d(penalty_factor), np.size(penalty_factor), "penalty_factor")
    pf_star = pf * pf.size / pf.sum()
    d = pf_star * _column_variances(X, pf.size, standardize)
    lam = np.asarray(lambda_glmnet, dtype=np.float64) / _y_scale(y, family)
    return lam, d


def ridgelens_to_glmnet(lam, factors, *, y=None, X=None, standardize: bool = True,
                        family: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """Ridgelens' (λ, feature factors d) as glmnet's ``lambda`` and ``penalty.factor``.

    The factors returned are already rescaled the way glmnet rescales them (they sum to p),
    so ``λ`` is the one glmnet will use. The inverse of :func:`glmnet_to_ridgelens`.
    """
    d = check_factors(np.atleast_1d(factors), np.size(factors), "factors")
    raw = d / _column_variances(X, d.size, standardize)
    pf = raw * raw.size / raw.sum()
    lam_g = np.asarray(lam, dtype=np.float64) * _y_scale(y, family) * raw.sum() / raw.size
    return lam_g, pf


def statsmodels_to_ridgelens(alpha, *, lam: float | None = None) -> tuple[float, np.ndarray]:
    """Statsmodels' ``fit_regularized(alpha=a, L1_wt=0)`` as ridgelens' (λ, d) with λ·d = a.

    ``lam`` defaults to ``max(a)`` (so the largest factor is 1). The order of ``d`` is statsmodels'
    column order: move the constant's entry to the end for a :class:`LeastSquares` with intercept.
    """
    a = check_factors(np.atleast_1d(alpha), np.size(alpha), "alpha")
    lam = float(a.max()) if lam is None else float(lam)
    if not (np.isfinite(lam) and lam > 0):
        raise PenaltyError(f"lam must be a positive number, got {lam}")
    return lam, a / lam


def ridgelens_to_statsmodels(lam, factors) -> np.ndarray:
    """Ridgelens' (λ, d) as statsmodels' per-coefficient ``alpha = λ·d`` (for ``L1_wt=0``)."""
    lam = float(lam)
    if not (np.isfinite(lam) and lam >= 0):
        raise PenaltyError(f"lam must be a number >= 0, got {lam}")
    return lam * check_factors(np.atleast_1d(factors), np.size(factors), "factors")
