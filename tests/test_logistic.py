"""Logistic regression: refit against scikit-learn, derivatives against finite differences,
and the quadratic model's prediction error as λ → 0.

Breast-cancer data, standardized. All 30 columns separate the classes (θ̂ does not exist);
the first 10 do not.
"""

import warnings
from functools import cache

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.special import expit
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

import ridgelens as rl


@cache
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y.astype(np.float64)


def cancer10():
    X, y = cancer()
    return X[:, :10], y


def separating_margin(X, y):
    """max t s.t. sᵢ(xᵢᵀw + b) ≥ t, |w|, |b| ≤ 1, s = 2y − 1; > 0 iff strictly separable."""
    A = np.hstack([X, np.ones((len(y), 1))]) * (2 * y - 1)[:, None]
    d = A.shape[1]
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.hstack([-A, np.ones((len(y), 1))]),
                  b_ub=np.zeros(len(y)), bounds=[(-1, 1)] * d + [(None, 1)], method="highs")
    assert res.status == 0
    return -res.fun


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


def test_all_columns_are_separable_and_refused():
    X, y = cancer()
    obj = rl.Logistic(X, y)
    assert obj.is_separable()
    with pytest.raises(rl.DataError, match="separable"):
        obj.minimize()
    with pytest.raises(rl.DataError, match="separable"):
        rl.analyze(obj, [0.1])
    # Independent certificate: the max-margin LP over a box finds θ with every margin > 0.
    assert separating_margin(X, y) > 1e-3
    # With a penalty the minimizer exists and equals scikit-learn's.
    lam = 1e-2
    sk = LogisticRegression(C=1 / (len(y) * lam), tol=1e-12, max_iter=10000,
                            solver="newton-cholesky").fit(X, y)
    r = obj.minimize(l2=lam)
    assert r.converged
    assert rel_err(r.theta, np.r_[sk.coef_.ravel(), sk.intercept_]) < 1e-6


def test_first_ten_columns_not_separable():
    X, y = cancer10()
    assert separating_margin(X, y) < 1e-9
    obj = rl.Logistic(X, y)
    assert not obj.is_separable()
    hat = obj.minimize()
    assert hat.converged and hat.gradient_norm < 1e-8
    # A stationary point of a convex loss: the training predictions are not all correct.
    z = np.hstack([X, np.ones((len(y), 1))]) @ hat.theta
    assert ((z > 0) != (y == 1)).any()


@pytest.mark.parametrize("lam", [1e-1, 1e-2, 1e-3, 1e-4])
def test_refit_matches_sklearn(lam):
    X, y = cancer10()
    n = len(y)
    obj = rl.Logistic(X, y)
    r = obj.minimize(l2=lam)
    assert r.converged and r.l2 == lam and r.method == "newton"
    sk = LogisticRegression(C=1 / (n * lam), tol=1e-12, max_iter=10000,
                            solver="newton-cholesky").fit(X, y)
    ref = np.r_[sk.coef_.ravel(), sk.intercept_]
    assert rel_err(r.theta, ref) < 1e-6, rel_err(r.theta, ref)


def test_penalized_intercept_stationarity():
    X, y = cancer10()
    lam = 1e-2
    obj = rl.Logistic(X, y, penalize_intercept=True)
    r = obj.minimize(l2=lam)
    A = np.hstack([X, np.ones((len(y), 1))])
    # Independent stationarity check: Aᵀ(p − y)/n + λθ = 0.
    g = A.T @ (expit(A @ r.theta) - y) / len(y) + lam * r.theta
    assert np.linalg.norm(g) < 1e-8
    free = rl.Logistic(X, y).minimize(l2=lam).theta
    assert abs(free[-1] - r.theta[-1]) > 1e-3  # the intercept is really shrunk


def test_value_is_mean_log_loss():
    X, y = cancer10()
    obj = rl.Logistic(X, y)
    rng = np.random.default_rng(0)
    theta = 0.3 * rng.normal(size=obj.n_params)
    p = expit(X @ theta[:-1] + theta[-1])
    assert obj.value(theta) == pytest.approx(log_loss(y, p), rel=1e-12)


def test_gradient_and_hessian_vs_finite_differences():
    X, y = cancer10()
    obj = rl.Logistic(X, y)
    rng = np.random.default_rng(1)
    theta = 0.3 * rng.normal(size=obj.n_params)
    n_p = obj.n_params
    h = 1e-5
    E = np.eye(n_p)
    g_fd = np.array([(obj.value(theta + h * e) - obj.value(theta - h * e)) / (2 * h) for e in E])
    g = obj.gradient(theta)
    assert np.allclose(g, g_fd, rtol=0, atol=1e-8 * max(1.0, np.abs(g).max())), np.abs(g - g_fd).max()
    H_fd = np.column_stack([(obj.gradient(theta + h * e) - obj.gradient(theta - h * e)) / (2 * h)
                            for e in E])
    H = obj.hessian_dense(theta)
    assert np.allclose(H, H.T, rtol=0, atol=1e-14)
    assert np.allclose(H, H_fd, rtol=0, atol=1e-8 * np.abs(H).max()), np.abs(H - H_fd).max()
    v = rng.normal(size=n_p)
    assert np.allclose(obj.hvp(theta, v), H_fd @ v, rtol=0, atol=1e-8 * np.linalg.norm(v))
    op = rl.hessian(obj, theta)
    assert op.is_dense and np.allclose(op.to_dense(), H_fd, rtol=0, atol=1e-8 * np.abs(H).max())
    assert np.linalg.eigvalsh(H).min() > 0


LAMBDAS = np.logspace(-1, -7, 7)


@cache
def cancer_analysis():
    X, y = cancer10()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # θ̂ is a clean minimizer: nothing to warn about
        return rl.analyze(rl.Logistic(X, y), LAMBDAS)


def test_analyze_prediction_error_vanishes_as_lambda_to_zero():
    res = cancer_analysis()
    err = res.rel_error
    # Measured: 0.63, 0.27, 0.075, 0.033, 3.4e-3, 1.3e-4, 1.8e-6 for λ = 1e-1 … 1e-7.
    assert np.all(err > 0), err  # the loss is not quadratic: the prediction is not exact
    assert err[0] > 0.1  # at λ = 0.1 the quadratic model is far off
    assert np.all(np.diff(err) < 0), err  # strictly better as λ shrinks
    assert err[-1] < 1e-5 and err[-1] < 1e-4 * err[0], err
    assert res.refit_converged.all()
    assert res.theta_hat_converged and res.gradient_norm < 1e-8
    assert not res.path.gradient_used
    assert res.path.curvature == "schur-complement"
    assert res.min_eigenvalue > 0


def test_analyze_refit_matches_sklearn_and_prediction_is_first_order():
    X, y = cancer10()
    n = len(y)
    res = cancer_analysis()
    for i in (0, 2, 4):
        lam = LAMBDAS[i]
        sk = LogisticRegression(C=1 / (n * lam), tol=1e-12, max_iter=10000,
                                solver="newton-cholesky").fit(X, y)
        assert rel_err(res.refit[i], np.r_[sk.coef_.ravel(), sk.intercept_]) < 1e-6
    # The prediction at small λ is θ̂ − λ (H + λP)⁻¹ P θ̂, computed here directly.
    obj = rl.Logistic(X, y)
    H = obj.hessian_dense(res.theta_hat)
    P = np.diag(obj.penalized.astype(float))
    for i, lam in enumerate(LAMBDAS):
        direct = np.linalg.solve(H + lam * P, H @ res.theta_hat)
        assert rel_err(res.predicted[i], direct) < 1e-10


def _cancer5():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:, :5], y.astype(float)


def test_theta_hat_is_polished_to_rounding():
    """Newton stops at ‖g‖ ≤ tol, then full steps take g to rounding (it was ~1e-9: θ̂ off by 2e-7)."""
    X, y = _cancer5()
    obj = rl.Logistic(X, y)
    hat = obj.minimize()
    assert hat.converged and "full Newton step(s) to rounding" in hat.message
    A = np.c_[X, np.ones(len(y))]
    g = A.T @ (expit(A @ hat.theta) - y) / len(y)  # the gradient, recomputed here
    assert np.linalg.norm(g) < 1e-14


@pytest.mark.parametrize("power", [-16, -8, 8, 12])
def test_a_column_in_far_units_keeps_the_predicted_path_exact(power):
    """One standardized breast-cancer column in units 10^power: θ̃ = (H + λP)⁻¹Hθ̂ through H's
    eigenbasis was 1e-6 (1e-8), 3e-3 (1e-12), 1e2 (1e-16) and 100% (1e8) off, with no warning.
    Reference: the same θ̃ solved in the column's own units, D⁻¹(H_s + λD⁻¹PD⁻¹)⁻¹H_sφ̂ with H_s and
    φ̂ the Hessian and minimizer of the unscaled problem."""
    X, y = _cancer5()
    base = rl.Logistic(X, y)
    phi = base.minimize().theta
    Hs = base.hessian_dense(phi)
    D = np.ones(6)
    D[2] = 10.0 ** power
    pen = np.r_[np.ones(5), 0.0]  # the intercept is unpenalized
    lams = [1e-3, 1e-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rl.analyze(rl.Logistic(X * D[:5], y), lams)
    for k, lam in enumerate(lams):
        ref = np.linalg.solve(Hs + lam * np.diag(pen / D ** 2), Hs @ phi) / D
        assert np.linalg.norm(res.predicted[k] - ref) / np.linalg.norm(ref) < 1e-12, lam
