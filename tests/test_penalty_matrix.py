"""The penalty matrix (λ/2)θᵀDθ against dense float64 closed forms: solve (H + λD)θ = Hθ̂ − g directly."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes

import ridgelens as rl
from ridgelens._penalty import PenaltyMatrix, from_group_lambdas, from_patterns
from ridgelens.errors import PenaltyError

LAM = np.array([1e-3, 1e-2, 1e-1, 1.0])


def direct(H, theta, lam, d, g=None):
    """θ̃(λ) = (H + λD)⁻¹(Hθ̂ − g), one dense float64 solve per λ."""
    b = H @ theta - (0.0 if g is None else g)
    return np.array([np.linalg.solve(H + lam_i * np.diag(d), b) for lam_i in lam])


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def spd():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 8))
    H = A.T @ A / 40 + np.diag(np.logspace(-3, 0, 8))
    return H, rng.normal(size=8), 1e-2 * rng.normal(size=8)


@pytest.mark.parametrize("method", ["dense", "krylov"])
@pytest.mark.parametrize("d", [[0.3, 1, 2, 5, 0.1, 1, 1, 4], [0, 1, 2, 0, 0.1, 1, 0, 4]], ids=["positive", "zeros"])
def test_weighted_path_matches_direct_solve(spd, method, d):
    H, theta, g = spd
    d = np.asarray(d, dtype=float)
    path = rl.ridge_path(H, theta, LAM, penalty=d, gradient=g, method=method, tol=1e-12)
    assert rel(path.thetas, direct(H, theta, LAM, d, g)) < 1e-9
    np.testing.assert_array_equal(path.penalty_factors, d)
    # the eigen view is that of D^{-1/2} H D^{-1/2} (its Schur complement on d > 0)
    if method == "dense":
        s = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 1.0)
        Hs = s[:, None] * H * s[None, :]
        p, u = d > 0, d == 0
        S = Hs[np.ix_(p, p)] - (Hs[np.ix_(p, u)] @ np.linalg.solve(Hs[np.ix_(u, u)], Hs[np.ix_(u, p)]) if u.any() else 0)
        np.testing.assert_allclose(path.eigenvalues, np.sort(np.linalg.eigvalsh(S))[::-1], rtol=1e-10, atol=1e-14)
        st = path.steps(1)  # rotate, scale, rotate back, in φ = D^{1/2}θ
        np.testing.assert_allclose(path.eigenvectors @ st["scaled"], st["rotated_back"], atol=1e-12)


def test_zero_one_factors_are_the_mask(spd):
    H, theta, _ = spd
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    a = rl.ridge_path(H, theta, LAM, penalized=mask)
    b = rl.ridge_path(H, theta, LAM, penalty=mask.astype(float))
    np.testing.assert_allclose(a.thetas, b.thetas, atol=1e-13)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, atol=1e-13)


def test_least_squares_dense_and_refit():
    X, y = load_diabetes(return_X_y=True)
    obj = rl.LeastSquares(X, y)
    pm = obj.set_penalty(np.linspace(0.0, 3.0, 10))  # one factor per feature; the intercept stays free
    assert pm.factors[-1] == 0 and pm.source == "vector"
    res = rl.analyze(obj, LAM)
    H = obj.hessian_dense(res.theta_hat)
    ref = direct(H, res.theta_hat, LAM, obj.penalty_factors)
    assert rel(res.predicted, ref) < 1e-9
    assert rel(res.refit, ref) < 1e-9  # the refit minimizes the same weighted penalty
    d = res.to_dict()
    assert d["penalty"]["source"] == "vector" and "D^{-1/2} H D^{-1/2}" in d["conventions"]["eigen_view"]
    back = rl.Analysis.from_dict(json.loads(json.dumps(d, default=lambda o: np.asarray(o).tolist())))
    np.testing.assert_allclose(back.path.penalty_factors, obj.penalty_factors)


def test_logistic_dense_and_refit():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X[:, :10] - X[:, :10].mean(0)) / X[:, :10].std(0)
    obj = rl.Logistic(X, y, feature_names=[f"f{j}" for j in range(10)])
    obj.set_penalty({"f0": 0.0, "f[1-4]": 0.2, "f*": 2.0})
    np.testing.assert_array_equal(obj.penalty_factors, [0, .2, .2, .2, .2, 2, 2, 2, 2, 2, 0])
    res = rl.analyze(obj, [1e-4, 1e-3])
    H = obj.hessian_dense(res.theta_hat)
    assert rel(res.predicted, direct(H, res.theta_hat, [1e-4, 1e-3], obj.penalty_factors)) < 1e-9
    # the refit is the weighted minimizer: ∇R + λDθ = 0
    for lam_i, t in zip([1e-4, 1e-3], res.refit, strict=True):
        assert np.linalg.norm(obj.gradient(t) + lam_i * obj.penalty_factors * t) < 1e-7


@pytest.fixture(scope="module")
def tiny_mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    X = torch.randn(80, 3, dtype=torch.float64)
    Y = torch.sin(X[:, :2] * 2)
    batches = [(X[i:i + 40], Y[i:i + 40]) for i in range(0, 80, 40)]
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, batches,
                            penalty={"*.bias": 0.0, "2.*": 0.1, "0.weight": 2.0})
    theta = obj.minimize(method="lbfgs", max_iter=300).theta
    flat = torch.tensor(theta)
    H = torch.func.hessian(lambda t: sum(obj.batch_losses(t)))(flat).numpy()
    return obj, theta, H


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_torch_mlp_against_dense_hessian(tiny_mlp, method):
    obj, theta, H = tiny_mlp
    d = obj.penalty_factors
    assert set(np.unique(d)) == {0.0, 0.1, 2.0} and obj.penalty.source == "patterns"
    lam = np.array([1e-2, 0.1, 1.0])
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rl.RidgelensWarning)
            res = rl.analyze(obj, lam, theta_hat=theta, method=method, refit=False, k=4, path_tol=1e-11)
    g = obj.gradient(theta) if res.path.gradient_used else None
    assert rel(res.predicted, direct(H, theta, lam, d, g)) < 1e-7
    assert res.penalty["detail"]["entries_set"] == {"*.bias": 6, "2.*": 8, "0.weight": 12}


def test_torch_linear_refit_equals_prediction():
    """A linear torch model with squared loss is quadratic: the weighted refit is the prediction."""
    torch.manual_seed(1)
    net = torch.nn.Linear(5, 1).double()
    X = torch.randn(50, 5, dtype=torch.float64)
    Y = X @ torch.randn(5, 1, dtype=torch.float64) + 0.1 * torch.randn(50, 1, dtype=torch.float64)
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)],
                            penalty=np.array([0.5, 1, 2, 3, 0.2, 0.0]))
    res = rl.analyze(obj, [0.01, 0.3])
    assert res.rel_error.max() < 1e-7
    # unpenalized globs stay factor 0 under a vector of factors too
    free = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)], unpenalized=("bias",),
                             penalty=np.full(6, 2.0))
    np.testing.assert_array_equal(free.penalty_factors, [2, 2, 2, 2, 2, 0])


def test_bad_factors_are_typed_errors():
    names, sizes = ["0.weight", "0.bias", "2.weight"], [4, 2, 3]
    with pytest.raises(PenaltyError, match=r"'\*norm\*', '\*embed\*' match no parameter"):
        from_patterns(names, sizes, {"*.bias": 0, "*norm*": 0, "*embed*": 0.1})
    with pytest.raises(PenaltyError, match=r"'\*.bias' is -1"):
        from_patterns(names, sizes, {"*.bias": -1})
    with pytest.raises(PenaltyError, match="finite"):
        from_patterns(names, sizes, {"*.bias": float("nan")})
    obj = rl.LeastSquares(np.random.default_rng(0).normal(size=(20, 3)), np.arange(20.0))
    with pytest.raises(PenaltyError, match=r"\[1\] = -1 is negative"):
        obj.set_penalty([1.0, -1.0, 1.0, 0.0])
    with pytest.raises(PenaltyError, match="one per parameter; got shape"):
        obj.set_penalty([1.0, 1.0])
    with pytest.raises(PenaltyError, match="is not finite"):
        obj.set_penalty([1.0, np.inf, 1.0])
    with pytest.raises(PenaltyError, match="act on nothing"):
        obj.set_penalty([0.0, 0.0, 0.0])


def test_group_lambdas_are_ratios():
    pm = from_group_lambdas(["0.weight", "0.bias"], [2, 1], {"*.weight": 0.1, "*.bias": 0.0})
    np.testing.assert_allclose(pm.factors, [1.0, 1.0, 0.0])
    assert pm.detail["reference_lambda"] == 0.1
    assert isinstance(pm, PenaltyMatrix)


def test_scaled_operator_fingerprint_tells_penalties_apart(tiny_mlp):
    """A checkpoint of the path under one D must not be resumed under another."""
    obj, theta, _ = tiny_mlp
    op = rl.hessian(obj, theta)
    a = op.sandwich(np.full(op.n, 1.0)).fingerprint()
    b = op.sandwich(np.full(op.n, 2.0)).fingerprint()
    assert a is not None and b is not None and a != b
    assert a == op.sandwich(np.full(op.n, 1.0)).fingerprint()


def test_group_shrinkage_and_optimizer_paths_figures():
    import matplotlib.pyplot as plt

    from ridgelens.plots import plot_group_shrinkage, plot_optimizer_paths

    X, y = load_diabetes(return_X_y=True)
    obj = rl.LeastSquares(X, y, feature_names=[f"f{j}" for j in range(10)])
    obj.set_penalty({"f[0-4]": 0.1, "f*": 3.0})
    res = rl.analyze(obj, LAM)
    fig, ax = plt.subplots()
    drawn = plot_group_shrinkage(res, {"light": "f[0-4]", "heavy": "f[5-9]"}, ax=ax)
    light = np.linalg.norm(res.predicted[:, :5], axis=1) / np.linalg.norm(res.theta_hat[:5])
    np.testing.assert_allclose(drawn["ratios"][:, 0], light)
    assert (drawn["ratios"][-1, 1] < drawn["ratios"][-1, 0])  # the heavier factor shrinks more
    fig2, ax2 = plt.subplots()
    out = plot_optimizer_paths({"adamw": {"lambdas": LAM, "theta_hat": res.theta_hat, "predicted": res.predicted,
                                          "retrained": res.refit}}, ax=ax2)
    np.testing.assert_allclose(out["lines"]["adamw"].get_ydata(), np.linalg.norm(res.predicted - res.theta_hat, axis=1))
    plt.close(fig)
    plt.close(fig2)
def test_factors_too_far_apart_are_refused_naming_the_entries():
    """A factor of 1e-15 beside 1s made the scaled curvature's rank cutoff drop the ordinary directions: the
    prediction of a linear model came out 0.81 off its exact refit, silently (a bad-input hunt). Refused beyond
    1e8; 0 still leaves a parameter out exactly, and a spread of 1e6 is taken."""
    from ridgelens.errors import PenaltyError
    from ridgelens.penalty import from_vector

    with pytest.raises(PenaltyError, match=r"entry 0 is 1e-15 and entry 1 1, 1e\+15 times as large.*Use 0"):
        from_vector([1e-15, 1, 1], 3)
    assert from_vector([0, 1e-6, 1], 3).factors.tolist() == [0, 1e-6, 1]
