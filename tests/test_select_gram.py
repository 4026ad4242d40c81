"""The Gram-matrix route of select_lambda (well-conditioned designs) against the SVD route.

Reference: the same selection on the same objective after its thin SVD is computed
(``design_svd()`` caches it, and select_lambda then uses it): LAPACK's SVD, precise at any
conditioning. The Gram route must agree to rounding amplified by cond² (≤ 1e3² here).
"""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from ridgelens.objectives import LeastSquares
from ridgelens.objectives._gram import gram_svd
from ridgelens.select import select_lambda


def both(make, method):
    """(Gram route, SVD route) selections of fresh objectives on the same data."""
    fast = select_lambda(make(), method=method)
    obj = make()
    obj.design_svd()
    return fast, select_lambda(obj, method=method)


@pytest.mark.parametrize("weights", ["none", "positive", "with-zeros"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("method", ["loo", "gcv"])
def test_gram_route_equals_the_svd_route_on_diabetes(weights, fit_intercept, method):
    X, y = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(7)
    w = None if weights == "none" else rng.uniform(0.2, 3.0, size=len(y))
    if weights == "with-zeros":
        w[rng.random(len(y)) < 0.1] = 0.0
    fast, ref = both(lambda: LeastSquares(X, y, sample_weight=w, fit_intercept=fit_intercept), method)
    assert fast.diagnostics["decomposition"].startswith("eigendecomposition")
    assert ref.diagnostics["decomposition"].startswith("thin SVD")
    assert fast.diagnostics["index"] == ref.diagnostics["index"]  # the default grid comes from s
    assert fast.lambda_ == pytest.approx(ref.lambda_, rel=1e-10)
    assert np.allclose(fast.lambdas, ref.lambdas, rtol=1e-10, atol=0)
    assert np.allclose(fast.criterion, ref.criterion, rtol=1e-10, atol=0)
    assert fast.diagnostics["condition_number"] == pytest.approx(ref.diagnostics["condition_number"], rel=1e-8)
    if method == "loo":
        assert np.allclose(fast.loo_errors, ref.loo_errors, rtol=1e-9, atol=1e-10 * np.abs(ref.loo_errors).max())


def test_gram_route_factors_are_an_svd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30)) * np.geomspace(1.0, 0.01, 30) + 5.0  # cond ≈ 100 after centring
    y = rng.normal(size=400)
    svd = gram_svd(LeastSquares(X, y))
    Z = X - X.mean(axis=0)
    assert np.allclose(svd.U.T @ svd.U, np.eye(30), rtol=0, atol=1e-11)
    assert np.allclose((svd.U * svd.s) @ svd.Vt, Z, rtol=0, atol=1e-13 * svd.s[0])
    assert np.allclose(svd.s, np.linalg.svd(Z, compute_uv=False), rtol=1e-12, atol=0)


def test_ill_conditioned_or_penalized_intercept_designs_take_the_svd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * np.array([1.0, 1.0, 1.0, 1.0, 1e-4])  # cond ≈ 1e4 > 1e3
    y = rng.normal(size=200)
    assert gram_svd(LeastSquares(X, y)) is None
    assert gram_svd(LeastSquares(X[:, :4], y, penalize_intercept=True)) is None
    assert gram_svd(LeastSquares(X[:4], y[:4])) is None  # more columns than rows: no Gram shortcut
    sel = select_lambda(LeastSquares(X, y), np.geomspace(1e-4, 1.0, 5), method="loo")
    assert sel.diagnostics["decomposition"].startswith("thin SVD")
