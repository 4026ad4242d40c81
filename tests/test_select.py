"""select_lambda: GCV and exact leave-one-out from one SVD.

References, each independent of the SVD shortcut or of ridgelens:
- scikit-learn's ``RidgeCV(alphas=λ·Σw, store_cv_results=True)`` (same λ, same squared
  leave-one-out errors);
- brute force: n refits, each without one sample (scikit-learn ``Ridge``, or 50-digit
  mpmath solves on raw Longley);
- GCV from the hat matrix formed explicitly.
"""

import dataclasses
import inspect
import warnings

import mpmath as mp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge, RidgeCV

import ridgelens as rl
from ridgelens.errors import IllConditionedWarning
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.select import Selection, select_lambda

OPTIONS = {"free": {}, "penalized": {"penalize_intercept": True}, "none": {"fit_intercept": False}}


def diabetes():
    return load_diabetes(return_X_y=True)


def random_problem(n=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    return X, X @ rng.normal(size=d) + 1.0 + rng.normal(size=n)


def ridge_cv(X, y, alphas, *, fit_intercept=True, sample_weight=None):
    """scikit-learn's efficient leave-one-out, storing each sample's squared error."""
    store = "store_cv_results" if "store_cv_results" in inspect.signature(RidgeCV).parameters else "store_cv_values"
    m = RidgeCV(alphas=alphas, fit_intercept=fit_intercept, gcv_mode="svd", **{store: True})
    m.fit(X, y, sample_weight=sample_weight)
    return m.alpha_, getattr(m, "cv_results_", None) if store == "store_cv_results" else m.cv_values_


def weights_for(kind, n):
    rng = np.random.default_rng(7)
    if kind == "none":
        return None
    w = rng.uniform(0.2, 3.0, size=n)
    if kind == "with-zeros":
        w[rng.random(n) < 0.1] = 0.0
    return w


# ------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("weights", ["none", "positive", "with-zeros"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loo_matches_ridgecv(weights, fit_intercept):
    X, y = diabetes()
    n = len(y)
    w = weights_for(weights, n)
    obj = LeastSquares(X, y, sample_weight=w, fit_intercept=fit_intercept)
    sel = select_lambda(obj, method="loo")  # the default grid, from the spectrum
    W = n if w is None else w.sum()
    alpha, cv = ridge_cv(X, y, sel.lambdas * W, fit_intercept=fit_intercept, sample_weight=w)
    assert sel.lambda_ * W == alpha
    assert sel.diagnostics["sklearn_alpha"] == pytest.approx(alpha, rel=1e-15)
    assert not sel.diagnostics["at_grid_edge"]
    ours = (np.ones(n) if w is None else w)[:, None] * sel.loo_errors.T ** 2
    assert np.allclose(ours, cv, rtol=1e-8, atol=1e-8 * np.abs(cv).max())
    # The criterion is the weighted mean of the squared errors.
    assert np.allclose(sel.criterion, cv.sum(axis=0) / W, rtol=1e-10, atol=0)


def test_loo_matches_ridgecv_on_a_given_grid_with_ties_broken_alike():
    X, y = random_problem(n=50, d=6)
    lambdas = np.r_[np.geomspace(1e-4, 10.0, 30), 3e-2, 3e-2]  # unsorted, with a repeat
    sel = select_lambda(LeastSquares(X, y), lambdas, method="loo")
    alpha, cv = ridge_cv(X, y, 50 * lambdas)
    assert sel.lambda_ * 50 == alpha and np.array_equal(sel.lambdas, lambdas)
    assert np.allclose(sel.loo_errors.T ** 2, cv, rtol=1e-8, atol=0)


# ------------------------------------------------------------------- brute force
@pytest.mark.parametrize("mode", sorted(OPTIONS))
@pytest.mark.parametrize("weighted", [False, True])
def test_loo_errors_equal_refits_without_each_sample(mode, weighted):
    X, y = random_problem()
    n = len(y)
    w = np.random.default_rng(1).uniform(0.5, 2.0, n) if weighted else np.ones(n)
    lambdas = np.array([1e-3, 0.1, 3.0])
    sel = select_lambda(LeastSquares(X, y, sample_weight=w if weighted else None, **OPTIONS[mode]),
                        lambdas, method="loo")
    A = np.hstack([X, np.ones((n, 1))]) if mode != "none" else X
    P = np.eye(A.shape[1])
    if mode == "free":
        P[-1, -1] = 0.0
    for k, lam in enumerate(lambdas):
        for i in range(n):
            keep = np.arange(n) != i
            Ak, wk = A[keep], w[keep]
            # The left-out fit keeps α = λ·Σw of the full data (RidgeCV's convention).
            theta = np.linalg.solve((Ak * wk[:, None]).T @ Ak + lam * w.sum() * P, (Ak * wk[:, None]).T @ y[keep])
            assert sel.loo_errors[k, i] == pytest.approx(y[i] - A[i] @ theta, rel=1e-9, abs=1e-12)
    if mode == "free" and not weighted:  # and scikit-learn's plain Ridge, refitted n times
        for i in range(n):
            keep = np.arange(n) != i
            m = Ridge(alpha=n * lambdas[1], solver="svd").fit(X[keep], y[keep])
            assert sel.loo_errors[1, i] == pytest.approx(y[i] - m.predict(X[i:i + 1])[0], rel=1e-9)


def test_loo_on_raw_longley_matches_mpmath_refits():
    pytest.importorskip("statsmodels")
    from statsmodels.datasets import longley

    ds = longley.load()
    X, y = np.asarray(ds.exog, dtype=np.float64), np.asarray(ds.endog, dtype=np.float64)
    n, d = X.shape
    lam = 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        sel = select_lambda(LeastSquares(X, y), [lam, 1.0], method="loo")
    mp.mp.dps = 50
    A = mp.matrix([[mp.mpf(float(v)) for v in row] + [1] for row in X])
    yy = [mp.mpf(float(v)) for v in y]
    P = mp.eye(d + 1)
    P[d, d] = 0
    ref = []
    for i in range(n):
        rows = [j for j in range(n) if j != i]
        Ak = mp.matrix([[A[j, c] for c in range(d + 1)] for j in rows])
        yk = mp.matrix([yy[j] for j in rows])
        theta = mp.lu_solve(Ak.T * Ak + n * mp.mpf(lam) * P, Ak.T * yk)
        ref.append(float(yy[i] - mp.fsum(A[i, c] * theta[c] for c in range(d + 1))))
    ref = np.array(ref)
    assert np.abs(sel.loo_errors[0] - ref).max() < 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_gcv_equals_the_formula_with_an_explicit_hat_matrix(mode):
    X, y = random_problem(n=40, d=5, seed=2)
    n = len(y)
    w = np.random.default_rng(3).uniform(0.5, 2.0, n)
    lambdas = np.geomspace(1e-4, 1e2, 25)
    for weights in (None, w):
        sel = select_lambda(LeastSquares(X, y, sample_weight=weights, **OPTIONS[mode]), lambdas)
        assert sel.method == "gcv" and sel.loo_errors is None
        ww = np.ones(n) if weights is None else weights
        A = np.hstack([X, np.ones((n, 1))]) if mode != "none" else X
        P = np.eye(A.shape[1])
        if mode == "free":
            P[-1, -1] = 0.0
        ref = []
        for lam in lambdas:
            Hat = A @ np.linalg.solve((A * ww[:, None]).T @ A + lam * ww.sum() * P, (A * ww[:, None]).T)
            r = y - Hat @ y
            ref.append((ww @ r ** 2 / ww.sum()) / (1 - np.trace(Hat) / n) ** 2)
        assert np.allclose(sel.criterion, ref, rtol=1e-10, atol=0)
        assert sel.lambda_ == lambdas[int(np.argmin(ref))]


# ------------------------------------------------------------------- grid, result, edges
def test_default_grid_spans_the_spectrum():
    X, y = diabetes()
    obj = LeastSquares(X, y)
    sigma, _ = obj.penalized_spectrum()
    for method in ("gcv", "loo"):
        sel = select_lambda(obj, method=method)
        g = sel.lambdas
        assert g.size == 100 and np.all(np.diff(g) < 0)
        assert g[0] == pytest.approx(100 * sigma[0], rel=1e-12)
        assert g[-1] == pytest.approx(sigma[sigma > 0][-1] / 100, rel=1e-12)
        assert sel.lambda_ == g[sel.diagnostics["index"]] == g[np.argmin(sel.criterion)]
        assert sel.criterion.shape == (100,) and np.all(np.isfinite(sel.criterion))
        df = sel.diagnostics["effective_df"]
        assert np.all(np.diff(df) > 0) and 0 < df[0] < df[-1] < 10
    assert isinstance(sel, Selection)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sel.lambda_ = 1.0


def test_lambda_zero_on_an_interpolating_design_is_infinite_not_a_warning():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(6, 10)), rng.normal(size=6)  # rank 5 after centring: an exact fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("gcv", "loo"):
            sel = select_lambda(LeastSquares(X, y), [0.0, 0.1, 1.0], method=method)
            assert np.isinf(sel.criterion[0]) and np.all(np.isfinite(sel.criterion[1:]))
            assert sel.lambda_ > 0


@pytest.mark.parametrize(("lambdas", "method", "message"), [
    ([0.1], "gcv", r"at least 2 λ to choose among, got 1"),
    ([0.1, 0.1, 0.1], "gcv", r"at least 2 λ to choose among, got 1 distinct of 3"),
    ([0.1, -1.0], "loo", r"lambdas must be >= 0 .* got -1"),
    ([0.1, np.nan], "gcv", r"lambdas must be finite"),
    ([0.1, 1.0], "aic", r"method must be one of 'gcv', 'loo', 'alo', 'evidence', 'validation', got 'aic'"),
])
def test_bad_requests_are_named(lambdas, method, message):
    X, y = random_problem()
    with pytest.raises(rl.RidgelensError, match=message):
        select_lambda(LeastSquares(X, y), lambdas, method=method)


@pytest.mark.parametrize("method", ["gcv", "loo"])
def test_non_quadratic_objective_is_refused_with_the_methods_that_apply(method):
    X, y = random_problem()
    obj = Logistic(X, (y > np.median(y)).astype(float))
    with pytest.raises(rl.RidgelensError, match=rf"method='{method}' needs a quadratic loss, and Logistic is not.*"
                       r"'gcv' for LeastSquares; 'loo' for LeastSquares; 'alo' for Logistic"):
        select_lambda(obj, [0.1, 1.0], method=method)


def test_constant_design_has_nothing_to_select():
    with pytest.raises(rl.DataError, match="every column of X is constant"):
        select_lambda(LeastSquares(np.ones((5, 2)), np.arange(5.0)))
