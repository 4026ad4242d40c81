"""Least squares: ridgelens' predicted ridge path against the closed form and scikit-learn.

For R(θ) = (1/2n)‖Aθ − y‖² the quadratic model is exact, so the prediction θ̃(λ), the
refit, the closed-form solve of (H + λP)θ = Aᵀy/n and scikit-learn's ``Ridge(alpha=n·λ)``
must all agree to rounding.
"""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

import ridgelens as rl

LAMBDAS = np.array([1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
RTOL = 1e-10


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


def diabetes():
    data = load_diabetes()
    return data.data, data.target, list(data.feature_names)


def random_problem(n=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)  # non-centered columns
    w = rng.normal(size=d)
    y = X @ w + 3.0 + 0.5 * rng.normal(size=n)
    return X, y


PROBLEMS = {"diabetes": diabetes()[:2], "random": random_problem()}


def closed_form(X, y, lam, *, fit_intercept=True, penalize_intercept=False):
    """Solve (H + λP)θ = Aᵀy/n directly, A = [X, 1]."""
    n = X.shape[0]
    A = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    P = np.ones(A.shape[1])
    if fit_intercept and not penalize_intercept:
        P[-1] = 0.0
    return np.linalg.solve(A.T @ A / n + lam * np.diag(P), A.T @ y / n)


def sklearn_ridge(X, y, lam, *, fit_intercept=True, solver="cholesky"):
    n = X.shape[0]
    m = Ridge(alpha=n * lam, fit_intercept=fit_intercept, solver=solver, tol=1e-14).fit(X, y)
    return np.r_[m.coef_, m.intercept_] if fit_intercept else m.coef_.copy()


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("solver", ["cholesky", "svd"])
def test_analyze_matches_closed_form_and_sklearn(name, solver):
    X, y = PROBLEMS[name]
    res = rl.analyze(rl.LeastSquares(X, y), LAMBDAS)
    assert res.predicted.shape == (LAMBDAS.size, X.shape[1] + 1)
    assert res.path.curvature == "schur-complement"  # the intercept is free
    for i, lam in enumerate(LAMBDAS):
        ref = closed_form(X, y, lam)
        sk = sklearn_ridge(X, y, lam, solver=solver)
        assert rel_err(ref, sk) < RTOL, (lam, rel_err(ref, sk))
        assert rel_err(res.predicted[i], ref) < RTOL, (lam, rel_err(res.predicted[i], ref))
        assert rel_err(res.refit[i], ref) < RTOL
    # The loss is quadratic: the prediction is the regularized minimizer.
    assert np.all(res.refit_converged)
    assert np.all(res.rel_error < RTOL), res.rel_error
    assert np.allclose(res.refit, res.predicted, rtol=0, atol=RTOL * np.abs(res.refit).max())


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_theta_hat_is_ols(name):
    X, y = PROBLEMS[name]
    obj = rl.LeastSquares(X, y)
    hat = obj.minimize()
    assert hat.converged and hat.method == "closed-form"
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    ols = np.linalg.lstsq(A, y, rcond=None)[0]
    assert rel_err(hat.theta, ols) < RTOL
    assert np.linalg.norm(obj.gradient(hat.theta)) < 1e-8 * np.abs(A.T @ y).max() / len(y)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_ridge_path_from_hessian_matches_closed_form(name):
    X, y = PROBLEMS[name]
    obj = rl.LeastSquares(X, y)
    theta_hat = obj.minimize().theta
    path = rl.ridge_path(rl.hessian(obj, theta_hat), theta_hat, LAMBDAS, penalized=obj.penalized)
    assert path.valid.all()
    for i, lam in enumerate(LAMBDAS):
        assert rel_err(path.thetas[i], closed_form(X, y, lam)) < RTOL
        assert rel_err(obj.minimize(l2=lam).theta, closed_form(X, y, lam)) < RTOL


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_no_intercept_matches_sklearn(name):
    X, y = PROBLEMS[name]
    obj = rl.LeastSquares(X, y, fit_intercept=False)
    assert obj.n_params == X.shape[1] and obj.penalized.all()
    res = rl.analyze(obj, LAMBDAS)
    assert res.path.curvature == "hessian"
    for i, lam in enumerate(LAMBDAS):
        ref = closed_form(X, y, lam, fit_intercept=False)
        assert rel_err(sklearn_ridge(X, y, lam, fit_intercept=False, solver="svd"), ref) < RTOL
        assert rel_err(res.predicted[i], ref) < RTOL
    assert np.all(res.rel_error < RTOL)
    # Through the spectrum (every parameter penalized): Q diag(σ/(σ+λ)) Qᵀ θ̂.
    spec = rl.eigen(rl.hessian(obj, res.theta_hat))
    path = rl.ridge_path(spec, res.theta_hat, LAMBDAS)
    assert np.allclose(path.thetas, res.predicted, rtol=0, atol=RTOL * np.abs(res.predicted).max())


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_penalized_intercept_matches_closed_form(name):
    X, y = PROBLEMS[name]
    obj = rl.LeastSquares(X, y, penalize_intercept=True)
    assert obj.penalized.all() and obj.param_names[-1] == "intercept"
    res = rl.analyze(obj, LAMBDAS)
    assert res.path.curvature == "hessian"
    for i, lam in enumerate(LAMBDAS):
        ref = closed_form(X, y, lam, penalize_intercept=True)
        assert rel_err(res.predicted[i], ref) < RTOL, (lam, rel_err(res.predicted[i], ref))
        # It really differs from the free-intercept solution (y has a large mean).
        if lam >= 1e-2:
            assert rel_err(closed_form(X, y, lam), ref) > 1e-3
    assert np.all(res.rel_error < RTOL)


def test_param_names():
    X, y, names = diabetes()
    assert rl.LeastSquares(X, y, feature_names=names).param_names == [*names, "intercept"]
    assert rl.LeastSquares(X, y).param_names == [f"w[{j}]" for j in range(10)] + ["intercept"]
    assert rl.LeastSquares(X, y, fit_intercept=False).param_names == [f"w[{j}]" for j in range(10)]
    res = rl.analyze(rl.LeastSquares(X, y, feature_names=names), [0.1])
    assert res.param_names == [*names, "intercept"]
    assert res.n_params == 11 and res.n_samples == 442
    assert list(res.path.penalized) == [True] * 10 + [False]
    with pytest.raises(rl.DataError, match="feature_names has 3 names but X has 10 columns"):
        rl.LeastSquares(X, y, feature_names=names[:3])


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_effective_df_is_trace_on_schur_complement(name):
    X, y = PROBLEMS[name]
    n, d = X.shape
    res = rl.analyze(rl.LeastSquares(X, y), LAMBDAS)
    # Independently: eliminating the free intercept centres the columns, S = XcᵀXc / n.
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    df = [np.trace(S @ np.linalg.inv(S + lam * np.eye(d))) for lam in LAMBDAS]
    assert np.allclose(res.effective_df, df, rtol=1e-10, atol=0)
    assert np.allclose(res.path.eigenvalues, np.sort(np.linalg.eigvalsh(S))[::-1], rtol=1e-10,
                       atol=1e-12 * np.linalg.eigvalsh(S).max())
    assert np.all(np.diff(res.effective_df) < 0) and np.all(res.effective_df < d)
    # Every parameter penalized: df = trace of H(H + λI)⁻¹ with H = AᵀA/n.
    res_all = rl.analyze(rl.LeastSquares(X, y, penalize_intercept=True), LAMBDAS)
    A = np.hstack([X, np.ones((n, 1))])
    H = A.T @ A / n
    df_all = [np.trace(H @ np.linalg.inv(H + lam * np.eye(d + 1))) for lam in LAMBDAS]
    assert np.allclose(res_all.effective_df, df_all, rtol=1e-10, atol=0)


def test_factors_and_coords_reconstruct_prediction():
    X, y = PROBLEMS["diabetes"]
    res = rl.analyze(rl.LeastSquares(X, y), LAMBDAS)
    path = res.path
    Q = path.eigenvectors
    assert np.allclose(Q.T @ Q, np.eye(Q.shape[0]), atol=1e-12)
    for i in range(LAMBDAS.size):
        st = path.steps(i)
        sigma = path.eigenvalues
        assert np.allclose(st["factors"], sigma / (sigma + LAMBDAS[i]), rtol=1e-12, atol=0)
        assert np.allclose(Q @ (st["factors"] * st["rotated"]), st["rotated_back"],
                           rtol=0, atol=1e-10 * np.abs(st["rotated_back"]).max())
