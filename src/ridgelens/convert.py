r"""λ in other libraries' conventions, and coefficients back on the original scale of the features.

ridgelens' convention: the mean loss plus ``(λ/2)‖θ_p‖²``, i.e. for least squares
``(1/2Σw) Σ wᵢ rᵢ² + (λ/2)‖β‖²`` with a free intercept.

- **scikit-learn** ``Ridge(alpha)`` minimizes ``Σ wᵢ rᵢ² + alpha‖β‖²``: ``λ = alpha/Σw``.
- **glmnet** (Friedman, Hastie & Tibshirani 2010, J. Stat. Softw. 33(1), eq. (1) with
  ``alpha = 0``, ``family = "gaussian"``; weights rescaled to sum to N) standardizes y to unit
  variance (the 1/N standard deviation, weighted) before fitting and unstandardizes the
  coefficients after, while its λ sequence stays on the scale of y (as the lasso needs):
  on ``ỹ = y/sd(y)`` it minimizes ``(1/2N) Σ wᵢ (ỹᵢ − b₀ − xᵢᵀb)² + (λ_g/sd(y))·½‖b‖²`` and
  returns ``sd(y)·b``. Ridge is linear in y, so glmnet's coefficients at ``λ_g`` are
  ridgelens' at ``λ = λ_g / sd(y)`` (scikit-learn ``alpha = N·λ_g/sd(y)``). This follows
  glmnet's documentation; it was not run against R here. glmnet's default
  ``standardize = TRUE`` also scales each column of x by its 1/N standard deviation and
  penalizes the coefficients of the scaled x: run ridgelens on the standardized design
  (CLI ``--standardize``, the same 1/n standard deviation) and read the original-scale
  coefficients (:func:`unstandardize`).
- **MASS::lm.ridge** (Venables & Ripley) centres y, scales each column of the centred X by
  ``s = √(Σ(x − x̄)²/n)`` and returns ``(XsᵀXs + λ_M I)⁻¹ Xsᵀ y``, the minimizer of
  ``‖y − Xsβ‖² + λ_M‖β‖²``: ridgelens on the standardized design at ``λ = λ_M/n``
  (``coef(fit)`` is then :func:`unstandardize` of it).

Penalty factors / per-coefficient penalties are not converted here (plain λ only).
"""

from __future__ import annotations

import numpy as np

from ridgelens._validation import check_nonnegative, check_reals
from ridgelens.errors import RidgelensError

# Every converter takes a number or an array of them (its shape is kept): each entry must be a
# finite real number >= 0 (a string such as "0.1" is refused, naming the argument and entry).


def _positive(value, name: str) -> float:
    """A scale (Σw, n) as a float > 0, named when it is not."""
    a = check_reals(value, name)
    if a.ndim != 0 or not np.isfinite(a) or a <= 0:
        raise RidgelensError(f"{name} must be one finite number > 0, got {value!r}")
    return float(a)


def lambda_from_sklearn(alpha, weight_sum):
    """scikit-learn ``Ridge(alpha)`` → ridgelens λ = alpha/Σw (Σw = n without weights)."""
    return check_nonnegative(alpha, "alpha") / _positive(weight_sum, "weight_sum")


def lambda_to_sklearn(lam, weight_sum):
    """Ridgelens λ → scikit-learn alpha = λ·Σw."""
    return check_nonnegative(lam, "lam") * _positive(weight_sum, "weight_sum")


def _sd(y, weights=None) -> float:
    """The (weighted) 1/N standard deviation of y; y and the weights each named when they are not usable."""
    y = check_reals(y, "y")
    if y.ndim != 1 or y.size < 1:
        raise RidgelensError(f"y must be a 1-D array of numbers, got shape {y.shape}")
    if not np.isfinite(y).all():
        i = int(np.argmax(~np.isfinite(y)))
        raise RidgelensError(f"y[{i}] = {y[i]} is not finite")
    if weights is None:
        w = np.ones_like(y)
    else:
        w = check_nonnegative(weights, "weights")
        if w.shape != y.shape:
            raise RidgelensError(f"weights must have one entry per y ({y.size}), got shape {w.shape}")
        _positive(w.sum(), "the sum of the weights")
    mean = float(w @ y) / w.sum()
    return _positive(np.sqrt(w @ (y - mean) ** 2 / w.sum()), "the standard deviation of y")


def lambda_from_glmnet(lambda_glmnet, y, weights=None):
    """Glmnet's λ (``family="gaussian"``, ``alpha=0``) → ridgelens λ = λ_g / sd(y) (1/N, weighted)."""
    return check_nonnegative(lambda_glmnet, "lambda_glmnet") / _sd(y, weights)


def lambda_to_glmnet(lam, y, weights=None):
    """Ridgelens λ → glmnet's λ = λ·sd(y)."""
    return check_nonnegative(lam, "lam") * _sd(y, weights)


def lambda_from_lm_ridge(lambda_mass, n_samples):
    """MASS::lm.ridge's λ → ridgelens λ = λ_M/n (on the design lm.ridge scales: 1/n standard deviations)."""
    return check_nonnegative(lambda_mass, "lambda_mass") / _positive(n_samples, "n_samples")


def lambda_to_lm_ridge(lam, n_samples):
    """Ridgelens λ → MASS::lm.ridge's λ = n·λ."""
    return check_nonnegative(lam, "lam") * _positive(n_samples, "n_samples")


def unstandardize(thetas, mean, scale, *, fit_intercept: bool = True) -> np.ndarray:
    """Coefficients of ``(X − mean)/scale`` as coefficients of X: ``w/scale``, ``b − Σ mean·w/scale``.

    ``thetas`` has shape (..., d [+ 1]) with the intercept last when ``fit_intercept``; a
    scale of 0 (a constant column, only centred) counts as 1. Without an intercept the
    original-scale model needs one, ``−Σ mean·w/scale``, which is appended. Returns shape
    (..., d + 1).
    """
    t = np.asarray(thetas, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    scale = np.where(np.asarray(scale, dtype=np.float64) > 0, scale, 1.0)
    d = mean.size
    w = t[..., :d] / scale
    b = t[..., d] if fit_intercept else np.zeros(t.shape[:-1])
    return np.concatenate([w, (b - w @ mean)[..., None]], axis=-1)
