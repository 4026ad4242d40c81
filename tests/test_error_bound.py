"""The per-λ error bound from strong convexity: never below the true error, and tight enough to use.

The true minimizer θ*(λ) is an independent reference: least squares in closed form through
scikit-learn's ``Ridge``; logistic regression by Newton to a gradient of 1e-13, whose own
distance to the exact minimizer is at most ‖∇F(θ*)‖/λ and is added as slack.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from ridgelens import analyze
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.pipeline._bound import BOUND, INDICATOR, PENALIZED_BOUND, error_bound


def cancer(d=6, n=200):
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:n, :d], y[:n].astype(np.float64)


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, (y - y.mean()) / y.std()


@settings(max_examples=40, deadline=None)
@given(lam=st.floats(1e-4, 10.0), scale=st.floats(1e-6, 1.0), seed=st.integers(0, 2**31 - 1),
       intercept=st.sampled_from(["free", "penalized", "none"]))
def test_least_squares_bound_is_never_below_the_true_error(lam, scale, seed, intercept):
    X, y = diabetes()
    kw = {"free": {}, "penalized": {"penalize_intercept": True}, "none": {"fit_intercept": False}}[intercept]
    obj = LeastSquares(X, y, **kw)
    n = len(y)
    if intercept == "penalized":  # Ridge with an intercept column and no free intercept
        A = np.hstack([X, np.ones((n, 1))])
        star = Ridge(alpha=n * lam, fit_intercept=False, solver="svd").fit(A, y).coef_
    else:
        r = Ridge(alpha=n * lam, fit_intercept=intercept == "free", solver="svd").fit(X, y)
        star = np.r_[r.coef_, r.intercept_] if intercept == "free" else r.coef_
    theta = star + scale * np.random.default_rng(seed).normal(size=star.size)  # any point, not only θ̃
    whole, pen, kind = error_bound(obj, theta, lam)
    assert kind == BOUND
    err = np.linalg.norm(theta - star)
    assert whole >= err * (1 - 1e-9) - 1e-12
    assert pen >= np.linalg.norm((theta - star)[obj.penalized]) * (1 - 1e-9) - 1e-12


@settings(max_examples=25, deadline=None)
@given(lam=st.floats(1e-3, 1.0), scale=st.floats(1e-4, 0.5), seed=st.integers(0, 2**31 - 1),
       free=st.booleans())
def test_logistic_bound_is_never_below_the_true_error(lam, scale, seed, free):
    X, y = cancer()
    obj = Logistic(X, y, penalize_intercept=not free)
    res = obj.minimize(l2=lam, tol=1e-13)
    star, slack = res.theta, res.gradient_norm / lam  # its own distance to the exact minimizer
    theta = star + scale * np.random.default_rng(seed).normal(size=star.size)
    whole, pen, kind = error_bound(obj, theta, lam)
    assert kind == (PENALIZED_BOUND if free else BOUND)
    assert pen + slack >= np.linalg.norm((theta - star)[obj.penalized])
    if not free:
        assert whole + slack >= np.linalg.norm(theta - star)


def test_analyze_reports_the_bound_and_how_tight_it_is():
    X, y = cancer(d=10, n=569)
    lam = np.geomspace(1e-3, 1.0, 5)
    res = analyze(Logistic(X, y), lam)
    err = np.linalg.norm(res.predicted - res.refit, axis=1)
    assert res.error_bound_kind == PENALIZED_BOUND
    pen = res.path.penalized
    assert np.all(res.error_bound_penalized >= np.linalg.norm((res.predicted - res.refit)[:, pen], axis=1))
    # Tightness, measured: the whole-vector figure is within a factor 30 of the true error here.
    assert np.all(res.error_bound <= 30 * err) and np.all(res.error_bound >= err)
    # Per coefficient: at least the vector's relative error on every coordinate's own scale.
    assert np.all(res.rel_error_coord >= np.abs(res.predicted - res.refit).max(axis=1) / np.abs(res.refit).max(axis=1))
    d = res.to_dict()
    assert d["error_bound_kind"] == PENALIZED_BOUND and len(d["error_bound"]) == lam.size


def test_non_convex_model_gets_an_indicator(small_mlp):
    obj = small_mlp[3]
    whole, _, kind = error_bound(obj, obj.theta0, 0.1)
    g = np.linalg.norm(obj.penalized_gradient(obj.theta0, 0.1))
    assert kind == INDICATOR and whole == pytest.approx(g)
