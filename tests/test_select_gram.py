"""The Gram-matrix route of LeastSquares (well-conditioned designs) against the SVD route.

Reference: the same data with ``decomposition="svd"``: LAPACK's SVD, precise at any
conditioning. The Gram route (``"auto"`` on these designs) must agree to rounding amplified
by cond² (ε·cond² ≤ 2.2e-10 for cond ≤ 1e3): the selection criteria, and θ̂ and the path,
which come from the same one decision.
"""

import contextlib

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from ridgelens import hessian, ridge_path
from ridgelens.errors import IllConditionedWarning, RidgelensError
from ridgelens.objectives import LeastSquares
from ridgelens.select import select_lambda

EPS = np.finfo(np.float64).eps


def both(make, method):
    """(Gram route, SVD route) selections of fresh objectives on the same data."""
    return select_lambda(make(), method=method), select_lambda(make(decomposition="svd"), method=method)


@pytest.mark.parametrize("weights", ["none", "positive", "with-zeros"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("method", ["loo", "gcv"])
def test_gram_route_equals_the_svd_route_on_diabetes(weights, fit_intercept, method):
    X, y = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(7)
    w = None if weights == "none" else rng.uniform(0.2, 3.0, size=len(y))
    if weights == "with-zeros":
        w[rng.random(len(y)) < 0.1] = 0.0
    fast, ref = both(lambda **kw: LeastSquares(X, y, sample_weight=w, fit_intercept=fit_intercept, **kw), method)
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
    obj = LeastSquares(X, y)
    svd = obj.design_svd()
    assert obj.decomposition_choice.name == "gram"
    Z = X - X.mean(axis=0)
    assert np.allclose(svd.U.T @ svd.U, np.eye(30), rtol=0, atol=1e-11)
    assert np.allclose((svd.U * svd.s) @ svd.Vt, Z, rtol=0, atol=1e-13 * svd.s[0])
    assert np.allclose(svd.s, np.linalg.svd(Z, compute_uv=False), rtol=1e-12, atol=0)


def test_ill_conditioned_or_penalized_intercept_designs_take_the_svd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * np.array([1.0, 1.0, 1.0, 1.0, 1e-4])  # cond ≈ 1e4 > 1e3
    y = rng.normal(size=200)
    assert LeastSquares(X, y).decomposition_choice.name == "svd"
    assert LeastSquares(X[:, :4], y, penalize_intercept=True).decomposition_choice.name == "svd"
    assert LeastSquares(X[:4], y[:4]).decomposition_choice.name == "svd"  # more columns than rows
    sel = select_lambda(LeastSquares(X, y), np.geomspace(1e-4, 1.0, 5), method="loo")
    assert sel.diagnostics["decomposition"].startswith("thin SVD")


def graded_design(n, d, cond, seed=0, offset=3.0):
    """A tall design X = Z + offset, Z with centred columns and condition number ``cond`` (geometric s)."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, d))
    Q, _ = np.linalg.qr(G - G.mean(axis=0))
    R, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = (Q * np.geomspace(1.0, 1.0 / cond, d)) @ R + offset
    return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("cond", [3.0, 1e2, 9e2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_theta_hat_and_path_through_the_gram_route_equal_the_svd_route(cond, fit_intercept):
    # The path is a smooth function of ZᵀZ: (ZᵀZ + λΣw)⁻¹ZᵀZ θ̂. Formed and decomposed in float64 it is
    # off by about ε·cond² (the Gram matrix's condition number) relative; θ̂ is refined with accurate
    # residuals on both routes, so it agrees to a few ε·cond (the SVD route's own forward error).
    X, y = graded_design(300, 12, cond, offset=3.0 if fit_intercept else 0.0)
    lambdas = np.geomspace(1e-6, 10.0, 9)
    fast = LeastSquares(X, y, fit_intercept=fit_intercept)
    ref = LeastSquares(X, y, fit_intercept=fit_intercept, decomposition="svd")
    assert fast.decomposition_choice.name == "gram" and ref.decomposition_choice.name == "svd"
    c = fast.decomposition_choice.facts["condition_number"]
    assert c == pytest.approx(cond, rel=1e-6)
    assert fast.decomposition_choice.facts["error_estimate"] == pytest.approx(EPS * c * c)
    th_fast, th_ref = fast.minimize().theta, ref.minimize().theta
    assert np.abs(th_fast - th_ref).max() <= 10 * EPS * c * np.abs(th_ref).max()
    p_fast, p_ref = ridge_path(fast, th_fast, lambdas), ridge_path(ref, th_ref, lambdas)
    assert np.abs(p_fast.thetas - p_ref.thetas).max() <= 10 * EPS * c * c * np.abs(p_ref.thetas).max()
    assert np.allclose(p_fast.eigenvalues, p_ref.eigenvalues, rtol=10 * EPS * c * c, atol=0)
    # The choice travels with the results: θ̂'s message, the path's choice, its error estimate.
    assert fast.minimize().message.startswith("eigendecomposition of the Gram matrix")
    assert ref.minimize().message.startswith("SVD of the")
    assert p_fast.choice.facts["decomposition"] is fast.decomposition_choice
    assert "ε·cond²" in str(p_fast.choice)
    # Independent reference: the ridge solution of the normal equations in extended steps (lstsq on
    # the stacked [A; √(λΣw) P]), the minimizer θ̃(λ) is for least squares.
    A = np.c_[X, np.ones(len(y))] if fit_intercept else X
    P = np.diag(fast.penalized.astype(float))
    for i in (0, 4, 8):
        lam = lambdas[i]
        M = np.vstack([A, np.sqrt(lam * len(y)) * P])
        direct = np.linalg.lstsq(M, np.r_[y, np.zeros(A.shape[1])], rcond=None)[0]
        assert np.abs(p_fast.thetas[i] - direct).max() <= 1e-9 * np.abs(direct).max()


def gram_problem(n, d, cond, weighted, fit_intercept, seed):
    """(y, w, A = [X, 1] or X, LeastSquares on the Gram route): a graded design, weights in [0.2, 3] or all 1."""
    X, y = graded_design(n, d, cond, offset=3.0 if fit_intercept else 0.0)
    w = np.random.default_rng(seed).uniform(0.2, 3.0, len(y)) if weighted else np.ones(len(y))
    obj = LeastSquares(X, y, fit_intercept=fit_intercept, sample_weight=w if weighted else None)
    assert obj.decomposition_choice.name == "gram"
    return y, w, (np.c_[X, np.ones(len(y))] if fit_intercept else X), obj


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_gram_matrix_is_formed_once_for_theta_hat_the_path_and_the_hessian(weighted, fit_intercept):
    # Issue 8 §5: ZᵀZ, formed for θ̂, also gives H = AᵀWA/Σw (no second product of the design with
    # itself, no copy [X, 1] of it), equal to the Hessian formed directly in float64.
    _, w, A, obj = gram_problem(300, 12, 1e2, weighted, fit_intercept, seed=1)
    theta = obj.minimize().theta
    lambdas = np.geomspace(1e-4, 1.0, 5)
    through_objective = ridge_path(obj, theta, lambdas)
    assert "_H" not in vars(obj)  # the path's coupling to the free intercept is one column, not a formed H
    H = hessian(obj, theta)
    through_operator = ridge_path(H, theta, lambdas, penalized=obj.penalized)
    assert "_A" not in vars(obj)  # the design was never copied into [X, 1]
    ref = (A.T * w) @ A / w.sum()
    assert np.abs(H.to_dense().numpy() - ref).max() <= 16 * EPS * np.abs(ref).max()
    cols = [A.shape[1] - 1, 0, 5]  # columns formed alone are H's own, bit for bit
    assert np.array_equal(obj.hessian_columns(cols), H.to_dense().numpy()[:, cols])
    # The operator's path decomposes the formed H (its Schur complement): rounding amplified by the
    # whole design's cond² (1.8e4² with the intercept's offset), against the design's factors.
    c = obj.design_svd().condition_number
    scale = np.abs(through_objective.thetas).max()
    assert np.abs(through_operator.thetas - through_objective.thetas).max() <= EPS * c * c * scale


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_convergence_check_from_the_gram_matrix_is_the_gradient(weighted, fit_intercept):
    # minimize's check takes ∇R and AᵀWy from ZᵀZ and one product Zᵀt on the Gram route (no pass over
    # X for Aθ, Aᵀr, AᵀWy): the same quantities as from the design, to the normal equations' rounding.
    y, w, A, obj = gram_problem(400, 9, 9e2, weighted, fit_intercept, seed=2)
    hat = obj.minimize()
    target_product = A.T @ (w * y) / w.sum()
    rng = np.random.default_rng(3)
    for theta in [hat.theta + rng.normal(size=hat.theta.size) for _ in range(3)]:
        direct = A.T @ (w * (A @ theta - y)) / w.sum()
        grad, tp = obj._check_terms(theta)
        assert np.abs(grad - direct).max() <= 1e-13 * np.abs(direct).max()
        assert np.abs(tp - target_product).max() <= 1e-14 * np.abs(target_product).max()
    # At θ̂ and at a ridge solution: rounding of the normal equations, far below the tolerance.
    scale = max(1.0, np.abs(target_product).max())
    for res in (hat, obj.minimize(l2=0.1)):
        assert res.converged and res.gradient_norm <= 1e-12 * scale


def test_the_gram_route_falls_back_to_the_svd_and_says_why():
    X, y = graded_design(300, 12, 5e3)  # cond(Z) = 5e3 > 1e3: ε·cond² = 5.6e-9 would be lost
    obj = LeastSquares(X, y)
    ch = obj.decomposition_choice
    assert ch.name == "svd" and "> 1000" in ch.reason
    assert obj.minimize().message.startswith("SVD of the centred design")
    assert ridge_path(obj, obj.minimize().theta, [0.1]).choice.facts["decomposition"].name == "svd"
    # Columns alone spanning > 1e3 decide it without forming ZᵀZ.
    Xs = graded_design(300, 12, 5.0, offset=0.0)[0] * np.r_[np.ones(11), 1e-4]
    ch = LeastSquares(Xs, y).decomposition_choice
    assert ch.name == "svd" and "column norms" in ch.reason and "condition_number" not in ch.facts
    # Asked for: taken where possible, refused by name where not.
    forced = LeastSquares(X, y, decomposition="gram")
    assert forced.decomposition_choice.name == "gram" and "asked for" in forced.decomposition_choice.reason
    with pytest.raises(RidgelensError, match=r"decomposition='gram'.*penalized intercept"):
        LeastSquares(X, y, penalize_intercept=True, decomposition="gram").minimize()
    with pytest.raises(RidgelensError, match="decomposition must be one of"):
        LeastSquares(X, y, decomposition="qr")


@pytest.mark.parametrize("offset", [0.0, 3.0, 1e3])
def test_gram_route_condition_number_of_the_whole_design(offset):
    # cond([X, 1]) from the two extreme roots of the arrowhead's secular equation, against the SVD of
    # [X, 1] itself (offset 0: centred columns, a diagonal arrowhead; 1e3: cond 1.2e9, past the roots'
    # accuracy, so M's SVD, and past 1e8, so the warning).
    X, y = graded_design(300, 12, 50.0, offset=offset)
    obj = LeastSquares(X, y)
    with pytest.warns(IllConditionedWarning) if offset > 100 else contextlib.nullcontext():
        assert obj.decomposition_choice.name == "gram"
    ref = np.linalg.cond(np.c_[X, np.ones(len(y))])
    assert obj.design_svd().condition_number == pytest.approx(ref, rel=1e-9)


def test_a_column_far_below_the_intercept_has_the_whole_designs_condition_number():
    # Found by the long CLI fuzz run: a centred column of 1e-68 next to the intercept (1e-40 here:
    # 1e-68 is now refused, check_scale) puts the
    # arrowhead's largest root within rounding of its upper bound (‖z‖ ≪ ε·α), where the bracket
    # for the root finder has no sign change; the bound is the root. The reference is the SVD route's
    # own factorization of [X, 1] (the column is below its rank tolerance there too).
    X, y = np.array([[0.0], [0.0], [9.944e-40]]), np.array([0.0, 1.0, 2.0])
    obj, ref = LeastSquares(X, y), LeastSquares(X, y, decomposition="svd")
    assert obj.decomposition_choice.name == "gram"
    assert obj.design_svd().condition_number == pytest.approx(ref.design_svd().condition_number, rel=1e-9)
    assert obj.design_svd().rank == ref.design_svd().rank
    np.testing.assert_allclose(obj.minimize().theta, ref.minimize().theta, rtol=1e-12)


def test_a_constant_column_takes_the_svd_which_decides_the_rank():
    X, y = graded_design(100, 4, 10.0)
    obj = LeastSquares(np.c_[X, np.full(len(y), 2.0)], y)  # zero after centring
    assert obj.decomposition_choice.name == "svd" and "zero" in obj.decomposition_choice.reason
    ref = np.linalg.lstsq(np.c_[X, np.ones(len(y))], y, rcond=None)[0]  # the minimum-norm θ̂ puts 0 on it
    np.testing.assert_allclose(obj.minimize().theta[[0, 1, 2, 3, 5]], ref, rtol=1e-10)
    assert obj.minimize().theta[4] == pytest.approx(0.0, abs=1e-12)


def test_a_forced_gram_route_warns_beyond_cond_1e3_and_is_refused_where_no_digit_survives():
    """Before: decomposition='gram' on cond(Z) = 5e3 or 1e9 ran silently (at 1e9, θ̂ off by a factor of 500)."""
    X, y = graded_design(300, 12, 5e3)
    with pytest.warns(IllConditionedWarning, match=r"decomposition='gram' on a design with cond\(Z\) = 5e\+03"):
        LeastSquares(X, y, decomposition="gram").decomposition_choice  # noqa: B018
    X, y = graded_design(300, 12, 1e9)
    with pytest.raises(RidgelensError, match=r"singular to working precision \(ε·cond² ≥ 1\)"):
        LeastSquares(X, y, decomposition="gram").minimize()
    with pytest.raises(RidgelensError, match=r"decomposition must be one of .*, got \['gram'\]"):
        LeastSquares(X, y, decomposition=["gram"])
