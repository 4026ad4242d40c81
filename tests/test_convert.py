"""λ conventions of scikit-learn, glmnet and MASS::lm.ridge, checked against each library's published
formula written out here (R is not needed), and coefficients back on the original scale."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from ridgelens.cli import main
from ridgelens.convert import (
    lambda_from_glmnet,
    lambda_from_lm_ridge,
    lambda_from_sklearn,
    lambda_to_glmnet,
    lambda_to_lm_ridge,
    lambda_to_sklearn,
    unstandardize,
)
from ridgelens.objectives import LeastSquares


def data():
    return load_diabetes(return_X_y=True)


def scaled(X):
    mean, sd = X.mean(axis=0), np.sqrt(((X - X.mean(axis=0)) ** 2).mean(axis=0))  # 1/n sd
    return (X - mean) / sd, mean, sd


def test_sklearn_alpha():
    X, y = data()
    alpha = 3.0
    ref = Ridge(alpha=alpha).fit(X, y)
    lam = lambda_from_sklearn(alpha, len(y))
    assert np.allclose(LeastSquares(X, y).minimize(l2=float(lam)).theta, np.r_[ref.coef_, ref.intercept_], rtol=1e-10)
    assert lambda_to_sklearn(lam, len(y)) == pytest.approx(alpha)


def test_lm_ridge_formula():
    """MASS::lm.ridge: Xs = (X − x̄)/√(Σ(x−x̄)²/n), coef = (XsᵀXs + λ_M I)⁻¹ Xsᵀ(y − ȳ); coef(fit) unscaled."""
    X, y = data()
    n, d = X.shape
    Xs, mean, s = scaled(X)
    lam_m = 25.0
    beta_m = np.linalg.solve(Xs.T @ Xs + lam_m * np.eye(d), Xs.T @ (y - y.mean()))
    theta = LeastSquares(Xs, y).minimize(l2=float(lambda_from_lm_ridge(lam_m, n))).theta
    assert np.allclose(theta[:d], beta_m, rtol=1e-10)
    coef_fit = np.r_[beta_m / s, y.mean() - mean @ (beta_m / s)]  # what coef(lm.ridge(...)) prints
    assert np.allclose(unstandardize(theta, mean, s), coef_fit, rtol=1e-10)
    assert lambda_to_lm_ridge(lambda_from_lm_ridge(lam_m, n), n) == pytest.approx(lam_m)


@pytest.mark.parametrize("standardize", [False, True])
def test_glmnet_objective_is_stationary_at_the_converted_lambda(standardize):
    """glmnet, gaussian, alpha=0: on ỹ = y/sd(y) it minimizes (1/2N)Σwᵢ(ỹᵢ − b0 − xᵢᵀb)² + (λ_g/sd(y))/2 ‖b‖²
    (its λ is on y's scale, as for the lasso), then returns sd(y)·b."""
    X, y = data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    w = w * len(y) / w.sum()  # glmnet rescales weights to sum to N
    Z = scaled(X)[0] if standardize else X
    lam_g = 0.7
    lam = float(lambda_from_glmnet(lam_g, y, w))
    theta = LeastSquares(Z, y, sample_weight=w).minimize(l2=lam).theta
    sd_y = np.sqrt(w @ (y - w @ y / w.sum()) ** 2 / w.sum())
    b, b0 = theta[:-1] / sd_y, theta[-1] / sd_y  # glmnet's fit on the standardized y
    r = y / sd_y - b0 - Z @ b
    grad_b = -(Z.T @ (w * r)) / len(y) + lam_g / sd_y * b
    grad_b0 = -(w @ r) / len(y)
    assert np.abs(grad_b).max() <= 1e-10 * np.abs(Z.T @ (w * y / sd_y)).max() / len(y)
    assert abs(grad_b0) <= 1e-10 * np.abs(y / sd_y).max()
    assert float(lambda_to_glmnet(lam, y, w)) == pytest.approx(lam_g)


def test_cli_standardize_reports_original_scale_coefficients(tmp_path):
    out = tmp_path / "o"
    assert main(["analyze", "--data", "diabetes", "--model", "linear", "--standardize", "--lambdas", "1e-3,0.1",
                 "--out", str(out)]) == 0
    d = json.loads((out / "results.json").read_text())
    o = d["original_scale"]
    X, y = data()
    ref = [Ridge(alpha=len(y) * lam).fit(scaled(X)[0], y) for lam in (1e-3, 0.1)]
    for i, r in enumerate(ref):
        coef = r.coef_ / scaled(X)[2]
        assert np.allclose(o["refit"][i], np.r_[coef, r.intercept_ - X.mean(axis=0) @ coef], rtol=1e-8)
    pred_std = np.array(d["refit"])[:, :-1] @ scaled(X)[0].T + np.array(d["refit"])[:, -1:]
    pred_raw = np.array(o["refit"])[:, :-1] @ X.T + np.array(o["refit"])[:, -1:]
    assert np.allclose(pred_std, pred_raw, rtol=1e-10)
    assert o["param_names"][:2] == ["age", "sex"]


@pytest.mark.parametrize("y,weights,msg", [
    ([1.0, np.nan, 3.0], None, r"y\[1\] = nan is not finite"),
    ([[1.0, 2.0]], None, "1-D array"),
    ([1.0, "2", 3.0], None, r"y\[1\]"),
    ([1.0, 2.0, 3.0], [1.0, -1.0, 1.0], "weights must be >= 0"),
    ([1.0, 2.0, 3.0], [1.0, 1.0], "one entry per y"),
    ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], "the sum of the weights"),
    ([2.0, 2.0, 2.0], None, "the standard deviation of y"),
])
def test_glmnet_conversion_refuses_unusable_y_and_weights_by_name(y, weights, msg):
    """y and the weights of the glmnet conversion are checked: each bad one is named (a negative weight once gave
    a standard deviation from a negative variance's square root, a wrong length a NumPy error)."""
    from ridgelens.errors import RidgelensError

    for fn in (lambda_from_glmnet, lambda_to_glmnet):
        with pytest.raises(RidgelensError, match=msg):
            fn(0.1, y, weights)
