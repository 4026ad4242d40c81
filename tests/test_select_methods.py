"""select_lambda's other criteria: default grid, evidence, ALO, validation, and their bad input.

References, each independent of ridgelens' shortcuts: scikit-learn's ``BayesianRidge`` (zero
hyper-priors) and a dense Gaussian marginal likelihood maximized by scipy; exact leave-one-out
by refitting logistic regression n times; scikit-learn ``Ridge`` / ``LogisticRegression``
refits scored on held-out data.
"""

import numpy as np
import pytest
from scipy import linalg, optimize
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import BayesianRidge, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from ridgelens import analyze
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.select import default_grid, select_lambda
from ridgelens.select._alo import log_loss
from ridgelens.select._evidence import laplace_evidence


def cancer(n=None, d=10, seed=0):
    X, y = load_breast_cancer(return_X_y=True)
    X, y = StandardScaler().fit_transform(X)[:, :d], y.astype(np.float64)
    if n is not None:
        sub = np.random.default_rng(seed).choice(len(y), n, replace=False)
        X, y = X[sub], y[sub]
    return X, y


def test_default_grid_spans_the_spectrum():
    X, y = load_diabetes(return_X_y=True)
    Z = X - X.mean(axis=0)
    sigma = np.linalg.eigvalsh(Z.T @ Z / len(y))
    sel = select_lambda(LeastSquares(X, y), method="gcv")
    assert sel.lambdas.size == 100 and np.all(np.diff(sel.lambdas) < 0)
    assert sel.lambdas[0] == pytest.approx(100 * sigma.max(), rel=1e-10)
    assert sel.lambdas[-1] == pytest.approx(sigma.min() / 100, rel=1e-6)
    grid, _ = default_grid([3.0, 1e-20, 0.0])  # below the rank tolerance: not a direction
    assert grid[-1] == pytest.approx(0.03)


# --------------------------------------------------------------------- evidence
def test_evidence_matches_bayesian_ridge_without_intercept():
    X, y = load_diabetes(return_X_y=True)
    sel = select_lambda(LeastSquares(X, y, fit_intercept=False), method="evidence")
    br = BayesianRidge(fit_intercept=False, alpha_1=0.0, alpha_2=0.0, lambda_1=0.0, lambda_2=0.0,
                       tol=1e-14, max_iter=100_000).fit(X, y)
    # BayesianRidge: alpha_ = noise precision β, lambda_ = weight precision α; ours λ = α/(nβ).
    assert sel.lambda_ == pytest.approx(br.lambda_ / br.alpha_ / len(y), rel=1e-8)
    assert sel.diagnostics["noise_variance"] == pytest.approx(1.0 / br.alpha_, rel=1e-8)


def test_evidence_with_free_intercept_maximizes_the_dense_marginal_likelihood():
    X, y = load_diabetes(return_X_y=True)
    n = len(y)
    sel = select_lambda(LeastSquares(X, y), method="evidence")
    # Flat intercept integrated out: y projected on the n − 1 directions orthogonal to 1.
    Q = linalg.null_space(np.ones((1, n)))
    yq, K = Q.T @ y, Q.T @ X @ X.T @ Q
    e, V = np.linalg.eigh(K)  # of the dense (n−1)×(n−1) prior covariance, once
    u2 = (V.T @ yq) ** 2

    def neg_log_e(p):  # −log N(yq | 0, noise·I + prior·K), up to a constant
        noise, prior = np.exp(p)
        c = noise + prior * np.clip(e, 0.0, None)
        return 0.5 * (u2 / c).sum() + 0.5 * np.log(c).sum()

    best = optimize.minimize(neg_log_e, [np.log(3000.0), np.log(300.0)], method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    noise, prior = np.exp(best.x)
    assert sel.lambda_ == pytest.approx(noise / prior / n, rel=1e-4)
    assert sel.diagnostics["noise_variance"] == pytest.approx(noise, rel=1e-4)
    # The fixed point and the grid criterion agree: the grid's best is a neighbour.
    i = sel.diagnostics["index"]
    assert sel.lambdas[min(i + 1, 99)] <= sel.lambda_ <= sel.lambdas[max(i - 1, 0)]


def _profiled_dense(y, covariances):
    """−log N(y | 0, C/β)/n with β maximized: (n/2)log(yᵀC⁻¹y) + ½ log det C, up to a constant."""
    n = len(y)
    return np.array([(0.5 * n * np.log(y @ np.linalg.solve(c, y)) + 0.5 * np.linalg.slogdet(c)[1]) / n
                     for c in covariances])


def test_laplace_evidence_is_the_gaussian_evidence_for_least_squares():
    """For a quadratic loss the Laplace approximation is exact (noise precision profiled out)."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    n = len(y)
    obj = LeastSquares(X, y, fit_intercept=False)
    grid = np.geomspace(1e-3, 1.0, 5)
    res = analyze(obj, grid, refit=False)
    crit, treatment = laplace_evidence(obj, grid, res.path.thetas, res.path.valid, res)
    dense = _profiled_dense(y, [np.eye(n) + X @ X.T / (n * lam) for lam in grid])
    assert np.allclose(np.diff(crit), np.diff(dense), rtol=1e-9, atol=1e-12)
    assert "noise precision profiled out with n_eff = 442" in treatment


def test_laplace_evidence_under_a_penalty_matrix_is_the_gaussian_evidence():
    """Penalty (λ/2)θᵀDθ: the prior is N(0, (κD)⁻¹/β), κ = nλ, so y ~ N(0, (I + X D⁻¹ Xᵀ/(nλ))/β)."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    n = len(y)
    d = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 0.25, 1.0, 4.0, 1.0])
    obj = LeastSquares(X, y, fit_intercept=False)
    obj.set_penalty(d)
    grid = np.geomspace(1e-3, 1.0, 5)
    res = analyze(obj, grid, refit=False)
    crit, _ = laplace_evidence(obj, grid, res.path.thetas, res.path.valid, res)
    dense = _profiled_dense(y, [np.eye(n) + (X / d) @ X.T / (n * lam) for lam in grid])
    assert np.allclose(np.diff(crit), np.diff(dense), rtol=1e-9, atol=1e-12)


# -------------------------------------------------------------------------- ALO
def test_alo_against_exact_leave_one_out_refits():
    X, y = cancer(n=150)
    n = len(y)
    obj = Logistic(X, y)
    grid = np.geomspace(1e-3, 1.0, 4)
    sel = select_lambda(obj, grid, method="alo")
    exact = np.empty((grid.size, n))
    for j, lam in enumerate(grid):
        for i in range(n):
            keep = np.arange(n) != i  # the same penalty nλ on the sum of n − 1 losses
            theta = Logistic(X[keep], y[keep]).minimize(l2=lam * n / (n - 1), tol=1e-12).theta
            exact[j, i] = obj._A[i] @ theta
    crit = np.array([log_loss(y, z) for z in exact])
    # Measured: criterion gaps 1.7%, 0.2%, 0.02%, 3e-6 relative; margins 0.21, 0.024, 0.004, 2e-4.
    assert np.all(np.abs(sel.criterion - crit) <= np.array([0.03, 0.005, 5e-4, 1e-5]) * crit)
    gap = np.abs(sel.diagnostics["alo_margins"] - exact).max(axis=1)
    assert np.all(gap <= np.array([0.4, 0.05, 0.01, 1e-3]))
    assert sel.lambda_ == grid[int(np.argmin(crit))]


# ------------------------------------------------------------------- validation
def test_validation_least_squares_is_the_held_out_loss_of_refits():
    X, y = load_diabetes(return_X_y=True)
    tr, va = slice(0, 300), slice(300, None)
    n = 300
    grid = np.geomspace(1e-5, 1.0, 12)
    sel = select_lambda(LeastSquares(X[tr], y[tr]), grid, method="validation", validation=(X[va], y[va]))
    ref = [np.mean((Ridge(alpha=n * lam).fit(X[tr], y[tr]).predict(X[va]) - y[va]) ** 2) / 2 for lam in grid]
    assert np.allclose(sel.criterion, ref, rtol=1e-9)
    c = sel.diagnostics["confirm"]
    assert abs(c["loss_gap"]) <= 1e-9 * c["refit_loss"] and c["rel_error"] < 1e-9


def test_validation_logistic_confirms_with_one_refit():
    X, y = cancer()
    tr, va = slice(0, 400), slice(400, None)
    grid = np.geomspace(1e-4, 1.0, 10)
    sel = select_lambda(Logistic(X[tr], y[tr]), grid, method="validation", validation=(X[va], y[va]))
    c = sel.diagnostics["confirm"]
    lr = LogisticRegression(C=1 / (400 * sel.lambda_), tol=1e-12, max_iter=10_000).fit(X[tr], y[tr])
    z = X[va] @ lr.coef_[0] + lr.intercept_[0]
    assert c["refit_loss"] == pytest.approx(log_loss(y[va], z), rel=1e-6)
    assert c["predicted_loss"] == pytest.approx(sel.criterion[sel.diagnostics["index"]], rel=1e-12)


# -------------------------------------------------------------------- bad input
def test_bad_input_is_named():
    X, y = cancer()
    with pytest.raises(DataError, match="validation X has 9 columns but the training X has 10"):
        select_lambda(Logistic(X, y), [0.1, 1.0], method="validation", validation=(X[:, :9], y))
    with pytest.raises(DataError, match="needs held-out data"):
        select_lambda(Logistic(X, y), [0.1, 1.0], method="validation")
    with pytest.raises(RidgelensError, match="'alo' for Logistic"):
        select_lambda(Logistic(X, y), method="loo")
    with pytest.raises(RidgelensError, match="implemented for Logistic, not LeastSquares"):
        select_lambda(LeastSquares(X, y), method="alo")
    with pytest.raises(RidgelensError, match="at least 2"):
        select_lambda(Logistic(X, y), [0.1], method="alo")
