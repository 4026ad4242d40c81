"""What a scikit-learn, statsmodels or glmnet user expects of the linear models: several targets with
one λ each, scipy.sparse X, pandas column names. References: scikit-learn's RidgeCV and Ridge."""

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge, RidgeCV

from ridgelens import analyze
from ridgelens.errors import DataError
from ridgelens.objectives import LeastSquares
from ridgelens.select import select_lambda, select_lambda_per_target


def diabetes_targets():
    X, y = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(3)
    # Three targets with different noise levels, so their best λ differ.
    Y = np.column_stack([y, X @ rng.normal(size=10) * 50 + 200 * rng.normal(size=y.size), X[:, 2] * 100 + y / 10])
    return X, Y


@pytest.mark.parametrize("weighted", [False, True])
def test_one_lambda_per_target_matches_ridgecv(weighted):
    X, Y = diabetes_targets()
    n = len(X)
    w = np.random.default_rng(0).uniform(0.5, 2.0, n) if weighted else None
    sels = select_lambda_per_target(LeastSquares(X, Y[:, 0], sample_weight=w), Y, method="loo")
    W = n if w is None else w.sum()
    grid = sels[0].lambdas
    store = "store_cv_results" if "store_cv_results" in inspect.signature(RidgeCV).parameters else "store_cv_values"
    m = RidgeCV(alphas=grid * W, alpha_per_target=True, gcv_mode="svd", **{store: True}).fit(X, Y, sample_weight=w)
    assert np.array_equal([s.lambda_ * W for s in sels], m.alpha_)
    assert len({s.lambda_ for s in sels}) >= 2  # the targets really choose differently
    cv = getattr(m, "cv_results_", None) if store == "store_cv_results" else m.cv_values_  # (n, targets, alphas)
    for j, s in enumerate(sels):
        ours = (np.ones(n) if w is None else w)[:, None] * s.loo_errors.T ** 2
        assert np.allclose(ours, cv[:, j, :], rtol=1e-8, atol=1e-8 * np.abs(cv[:, j, :]).max())
    # Each equals the single-target selection computed from scratch.
    alone = select_lambda(LeastSquares(X, Y[:, 2], sample_weight=w), grid, method="loo")
    assert np.allclose(alone.criterion, sels[2].criterion, rtol=1e-12)


def test_per_target_bad_shape():
    X, Y = diabetes_targets()
    with pytest.raises(DataError, match=r"Y must have shape \(442, n_targets\)"):
        select_lambda_per_target(LeastSquares(X, Y[:, 0]), Y[:100])


def test_sparse_design_equals_dense_and_sklearn():
    X, y = load_diabetes(return_X_y=True)
    X = np.where(np.abs(X) < 0.02, 0.0, X)  # half the entries zero
    Xs = sp.csr_matrix(X)
    obj = LeastSquares(Xs, y)
    th = obj.minimize(l2=1e-3).theta
    ref = Ridge(alpha=len(y) * 1e-3, solver="sparse_cg", tol=1e-12).fit(Xs, y)
    assert np.allclose(th, np.r_[ref.coef_, ref.intercept_], rtol=1e-7)
    dense = select_lambda(LeastSquares(X, y), method="gcv")
    sparse = select_lambda(obj, method="gcv")  # its SVD is cached; the fresh dense one takes the Gram route
    assert sparse.diagnostics["index"] == dense.diagnostics["index"]  # the default grid comes from s
    assert sparse.lambda_ == pytest.approx(dense.lambda_, rel=1e-12)


def test_pandas_column_names_are_carried_into_results():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    res = analyze(LeastSquares(X, y), [1e-3, 1e-2])
    assert res.param_names == [*X.columns, "intercept"]
    assert res.to_dict()["param_names"][:3] == ["age", "sex", "bmi"]
    assert isinstance(X, pd.DataFrame)
