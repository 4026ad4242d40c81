"""``ridgelens.predict``: an optimizer's weight decay predicted, against closed forms; the curvature's auto choice."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from ridgelens.errors import OptimizerStateError
from ridgelens.penalty import WEIGHT_DECAY_TABLE
from ridgelens.pipeline import analyze_weight_decay, optimizer_refit


@pytest.fixture(scope="module")
def linear():
    """torch.nn.Linear on the diabetes data with the mean squared error: H = (2/n)AᵀA, g = (2/n)Aᵀ(Aθ − y)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    net = torch.nn.Linear(X.shape[1], 1).double()
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(torch.tensor(X), torch.tensor(y)[:, None])])
    state = optimizer_refit(obj, obj.minimize().theta, 0.0, "adamw", lr=1e-3, epochs=5, batch_size=32)["state"]
    return obj, np.hstack([X, np.ones((len(y), 1))]), y, state  # A: θ = (w, b), the Linear's order


def _adamw_factors(state):
    group = state["param_groups"][0]
    return np.concatenate([np.sqrt(state["state"][i]["exp_avg_sq"].reshape(-1).numpy()
                                   / (1 - group["betas"][1] ** float(state["state"][i]["step"]))) + group["eps"]
                           for i in group["params"]])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_predict_solves_the_fixed_point_of_each_optimizer(linear, optimizer):
    obj, A, y, state = linear
    n = len(y)
    theta = obj.minimize().theta + 0.05 * np.random.default_rng(1).standard_normal(obj.n_params)  # not stationary
    lam = np.array([0.01, 0.3, 3.0])
    with pytest.warns(rl.GradientNotZeroWarning):
        p = rl.predict(obj, lam, optimizer, optimizer_state=state if optimizer == "adamw" else None, theta_hat=theta)
    H = 2 / n * A.T @ A
    g = 2 / n * A.T @ (A @ theta - y)
    D = _adamw_factors(state) if optimizer == "adamw" else np.ones(obj.n_params)
    expect = np.array([np.linalg.solve(H + v * np.diag(D), H @ theta - g) for v in lam])
    np.testing.assert_allclose(p.thetas, expect, rtol=1e-9, atol=1e-12)
    assert p.gradient_used and p.valid.all() and p.optimizer == optimizer
    np.testing.assert_allclose(p.penalty["factors"], D, rtol=1e-12)
    assert p.penalty["source"] == ("optimizer-state" if optimizer == "adamw" else "optimizer")
    assert p.weight_decay["D"] == WEIGHT_DECAY_TABLE[optimizer]["D"]
    assert ("Xie & Li" in p.weight_decay["regime"]) == (optimizer == "adamw")
    # H ⪰ 0 here: the auto curvature probes it, finds no negative Ritz value and keeps the Hessian.
    assert p.curvature == "hessian" and "no negative Ritz value" in p.choices["curvature"]
    d = p.to_dict()
    assert d["optimizer"] == optimizer and d["curvature_kind"] == "hessian"


def test_analyze_weight_decay_predicts_what_predict_does(linear):
    obj, _, _, state = linear
    lam = [0.05, 0.5]
    with warnings.catch_warnings():  # the model's own weights (its initialization): the first-order term is kept
        warnings.simplefilter("ignore", rl.GradientNotZeroWarning)
        p = rl.predict(obj, lam, "adamw", optimizer_state=state)
        res = analyze_weight_decay(obj, lam, "adamw", optimizer_state=state, refit=False, method="dense")
    np.testing.assert_allclose(res.predicted, p.thetas, rtol=1e-10, atol=1e-13)
    assert res.choices["curvature"] == p.choices["curvature"]
    assert res.conventions["weight_decay"]["optimizer"] == "adamw" and res.penalty["source"] == "optimizer-state"


def test_predict_refuses_adamw_without_its_state(linear):
    with pytest.raises(OptimizerStateError, match="exp_avg_sq"):
        rl.predict(linear[0], [0.1], "adamw")


def _mlp(seed=0):
    """A tanh MLP at its random initialization (far from a minimum: H is indefinite) and mean squared error."""
    torch.manual_seed(seed)
    X = torch.randn(40, 3, dtype=torch.float64)
    Y = torch.sin(X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64))
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    return rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)]), X


def test_auto_curvature_is_the_gauss_newton_matrix_where_the_hessian_is_indefinite():
    obj, X = _mlp()
    theta = obj.theta0
    H = rl.hessian(obj, theta).to_dense().numpy()
    assert np.linalg.eigvalsh(H)[0] < 0  # the premise, checked densely
    lam = np.array([1e-3, 1e-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.GradientNotZeroWarning)
        p = rl.predict(obj, lam, "sgd")
    assert p.curvature == "ggn" and "indefinite" in p.choices["curvature"] and p.valid.all()
    # G = (2/N) JᵀJ for the mean squared error over N outputs, J the Jacobian of the outputs by autograd.
    flat = torch.as_tensor(theta)
    J = torch.autograd.functional.jacobian(lambda t: obj.outputs(t, X).reshape(-1), flat).numpy()
    G = 2 / J.shape[0] * J.T @ J
    g = obj.gradient(theta)
    expect = np.array([np.linalg.solve(G + v * np.eye(obj.n_params), G @ theta - g) for v in lam])
    np.testing.assert_allclose(p.thetas, expect, rtol=1e-8, atol=1e-11)


def test_auto_curvature_keeps_the_hessian_of_a_convex_loss_without_probing():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    obj = rl.LeastSquares(X, y)
    p = rl.predict(obj, [0.01, 0.1], "sgd")
    assert p.curvature == "hessian" and "convex" in p.choices["curvature"]
    theta = p.theta_hat
    A = np.hstack([X, np.ones((len(y), 1))])
    H = A.T @ A / len(y)
    P = np.diag([1.0] * X.shape[1] + [0.0])  # the intercept is free
    expect = [np.linalg.solve(H + v * P, H @ theta) for v in (0.01, 0.1)]
    np.testing.assert_allclose(p.thetas, expect, rtol=1e-8)


def _edited(state, edit):
    import copy

    state = copy.deepcopy(state)
    edit(state)
    return state


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s["state"][0]["exp_avg_sq"].view(-1).__setitem__(3, float("nan")),
     r"exp_avg_sq for weight has nan at flat index 3: second moments must be finite and >= 0"),
    (lambda s: s["state"][1]["exp_avg_sq"].view(-1).__setitem__(0, -1.0),
     r"exp_avg_sq for bias has -1.0 at flat index 0"),
    (lambda s: s["param_groups"][0].__setitem__("weight_decay", -0.1), r"weight_decay = -0.1: it must be a finite"),
    (lambda s: s["param_groups"][0].__setitem__("weight_decay", float("nan")), r"weight_decay = nan"),
    (lambda s: s["param_groups"][0].__setitem__("eps", "x"), r"eps = 'x'"),
    (lambda s: s["param_groups"][0].__setitem__("betas", (0.9, 1.0)), r"betas = \(0\.9, 1\.0\).*< 1"),
    (lambda s: s["state"][0].__setitem__("exp_avg_sq", [1.0] * 10), "exp_avg_sq for weight is a list, not a tensor"),
    (lambda s: s["state"][0].__setitem__("step", "x"), "step nan: nothing accumulated"),
    *[(edit, "not laid out as an optimizer's state_dict") for edit in (
        lambda s: s.__setitem__("param_groups", 5), lambda s: s.__setitem__("param_groups", []),
        lambda s: s.__setitem__("param_groups", ["x"]), lambda s: s["param_groups"][0].pop("params"),
        lambda s: s.__setitem__("state", [1]), lambda s: s["param_groups"][0].__setitem__("param_names", ["weight"]))],
])
def test_a_corrupted_adamw_state_is_named(linear, edit, message):
    """Before: NaN or negative second moments surfaced as 'adamw penalty factors[0] = nan', a negative or NaN
    weight decay was accepted silently, eps = 'x' raised a bare ValueError, a state not laid out as a state_dict
    a TypeError/KeyError/AttributeError/IndexError (the CLI: exit 1, 'internal error')."""
    obj, _, _, state = linear
    with pytest.raises(OptimizerStateError, match=message):
        rl.predict(obj, [0.1], "adamw", optimizer_state=_edited(state, edit), theta_hat=obj.theta0)


def test_predict_refuses_what_is_no_objective_and_bad_tolerances(linear):
    obj, A, y, state = linear
    for bad in (None, np.eye(3)):
        with pytest.raises(rl.RidgelensError, match=r"predict\(\) needs an objective"):
            rl.predict(bad, [0.1], "sgd")
    with pytest.raises(OptimizerStateError, match="LeastSquares has none"):
        rl.predict(rl.LeastSquares(A[:, :-1], y), [0.1], "adamw", optimizer_state=state)
    with pytest.raises(rl.RidgelensError, match="grad_tol must be a number >= 0, got nan"):
        rl.predict(obj, [0.1], "sgd", theta_hat=obj.theta0, grad_tol=float("nan"))
    with pytest.raises(rl.RidgelensError, match="tol must be a number >= 0, got -1"):
        rl.predict(obj, [0.1], "sgd", theta_hat=obj.theta0, tol=-1, method="krylov")
    with pytest.raises(rl.RidgelensError, match="theta_hat must be 11 numbers, got str"):
        rl.predict(obj, [0.1], "sgd", theta_hat="abc")
