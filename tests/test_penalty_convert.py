"""glmnet's penalty.factor and statsmodels' per-coefficient alpha against closed forms and statsmodels itself."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from statsmodels.regression.linear_model import OLS

import ridgelens as rl
from ridgelens.errors import PenaltyError
from ridgelens.penalty import (
    glmnet_to_ridgelens,
    ridgelens_to_glmnet,
    ridgelens_to_statsmodels,
    statsmodels_to_ridgelens,
)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y * 3.0 + 10.0  # sd(y) far from 1, so that the λ scale is tested


def glmnet_closed_form(X, y, lam_g, pf, standardize):
    """glmnet's documented ridge problem, solved on its own standardized scale (1/n sds).

    Standardize the columns (sⱼ) and the response (s_y), rescale pf to sum to p, minimize
    (1/2n)‖ỹ − X̃β̃‖² + (λ_g/s_y)/2 Σ pf*ⱼ β̃ⱼ² on centred data, then map back: β = s_y β̃ / s
    (the ỹ = y/s_y fit with λ/s_y is glmnet's rescaling of a gaussian λ), b = ȳ − x̄ᵀβ.
    """
    n, p = X.shape
    sx = X.std(0) if standardize else np.ones(p)
    sy = y.std()
    Xt = (X - X.mean(0)) / sx
    yt = (y - y.mean()) / sy
    pfs = pf * p / pf.sum()
    beta_t = np.linalg.solve(Xt.T @ Xt / n + (lam_g / sy) * np.diag(pfs), Xt.T @ yt / n)
    beta = sy * beta_t / sx
    return np.append(beta, y.mean() - X.mean(0) @ beta)


@pytest.mark.parametrize("standardize", [True, False])
def test_glmnet_conversion_matches_its_closed_form(diabetes, standardize):
    X, y = diabetes
    pf = np.linspace(0.2, 2.0, 10)
    pf[3] = 0.0
    lam_g = np.array([10.0, 1.0, 0.1])
    lam, d = glmnet_to_ridgelens(lam_g, pf, y=y, X=X, standardize=standardize)
    obj = rl.LeastSquares(X, y)
    obj.set_penalty(d)
    for lg, lr in zip(lam_g, lam, strict=True):
        ref = glmnet_closed_form(X, y, lg, pf, standardize)
        got = obj.minimize(lr).theta
        assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-10
    # and back: the same λ·d (glmnet's own normalization of pf)
    lam_back, pf_back = ridgelens_to_glmnet(lam, d, y=y, X=X, standardize=standardize)
    np.testing.assert_allclose(pf_back, pf * 10 / pf.sum(), rtol=1e-12)
    np.testing.assert_allclose(lam_back, lam_g, rtol=1e-12)


def test_glmnet_binomial_lambda_is_unscaled():
    X, _ = load_breast_cancer(return_X_y=True)
    lam, d = glmnet_to_ridgelens([0.1], [1.0, 1.0, 2.0], family="binomial", X=X[:, :3])
    np.testing.assert_allclose(lam, [0.1])
    np.testing.assert_allclose(d, np.array([0.75, 0.75, 1.5]) * X[:, :3].var(0))


def test_statsmodels_fit_regularized_matches(diabetes):
    X, y = diabetes
    alpha = np.linspace(0.0, 0.5, 10)
    ols = OLS(y, X)  # no constant: every coefficient carries its own alpha
    sm = ols.fit_regularized(alpha=alpha, L1_wt=0).params
    lam, d = statsmodels_to_ridgelens(alpha)
    obj = rl.LeastSquares(X, y, fit_intercept=False)
    obj.set_penalty(d)
    got = obj.minimize(lam).theta
    np.testing.assert_allclose(got, sm, rtol=1e-9, atol=1e-9 * np.abs(sm).max())
    np.testing.assert_allclose(ridgelens_to_statsmodels(lam, d), alpha, rtol=1e-15)
    # with a free constant column (alpha 0 there), as the intercept of LeastSquares
    Xc = np.column_stack([np.ones(len(y)), X])
    sm_c = OLS(y, Xc).fit_regularized(alpha=np.append(0.0, alpha), L1_wt=0).params
    obj_c = rl.LeastSquares(X, y)
    obj_c.set_penalty(d)
    got_c = obj_c.minimize(lam).theta
    np.testing.assert_allclose(np.append(got_c[-1], got_c[:-1]), sm_c, rtol=1e-8, atol=1e-8 * np.abs(sm_c).max())


def test_converter_bad_input():
    with pytest.raises(PenaltyError, match="needs y"):
        glmnet_to_ridgelens(1.0, [1.0, 1.0], standardize=False)
    with pytest.raises(PenaltyError, match="needs X"):
        glmnet_to_ridgelens(1.0, [1.0, 1.0], y=[0.0, 1.0])
    with pytest.raises(PenaltyError, match="column 1 of X is constant"):
        glmnet_to_ridgelens(1.0, [1.0, 1.0], y=[0.0, 1.0], X=[[0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(PenaltyError, match=r"alpha\[0\] = -1 is negative"):
        statsmodels_to_ridgelens([-1.0, 1.0])
