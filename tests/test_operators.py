"""The operator contract: products, composition, adapters, the Gauss-Newton curvature, bad input.

Every operator is checked against a dense float64 reference (torch.func.hessian; for the GGN the
Jacobian and the output Hessian formed densely), plus the properties of the contract.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import ridgelens as rl
from helpers import lbfgs_fit, psd
from ridgelens.objectives.torch import TorchObjective
from ridgelens.operators import FunctionOperator


def _half_squared(o, t):
    return 0.5 * ((o - t) ** 2).sum(dim=-1).mean()


def _net_objective(loss="mse", seed=0, n=40, d=4, hidden=5, out=3):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, out)).double()
    X = torch.randn(n, d, dtype=torch.float64)
    if loss in ("mse", "half"):
        Y = torch.randn(n, out, dtype=torch.float64)
        fn = torch.nn.functional.mse_loss if loss == "mse" else _half_squared
    elif loss == "ce":
        Y = torch.randint(0, out, (n,))
        fn = torch.nn.functional.cross_entropy
    else:
        raise ValueError(loss)
    batches = [(X[i:i + 16], Y[i:i + 16]) for i in range(0, n, 16)]  # a short last batch
    return TorchObjective(net, fn, batches), net, X, Y, fn


def _dense_hessian(obj):
    theta = torch.from_numpy(obj.theta0)

    def R(t):
        return sum(obj.batch_losses(t))

    return torch.func.hessian(R)(theta)


def _dense_ggn(obj):
    """Σ_b w_b J_bᵀ H_out,b J_b with J_b and H_out,b formed densely."""
    theta = torch.from_numpy(obj.theta0)
    G = torch.zeros(obj.n_params, obj.n_params, dtype=torch.float64)
    for x, y in obj.prepared_batches():
        J = torch.func.jacrev(lambda t, x=x: obj.outputs(t, x))(theta).reshape(-1, obj.n_params)
        o = obj.outputs(theta, x).detach()
        Hout = torch.func.hessian(lambda z, y=y: obj.loss_fn(z, y))(o).reshape(o.numel(), o.numel())
        G += obj.batch_weight(y) * J.T @ Hout @ J
    return G


@pytest.mark.parametrize("form", ["reuse", "double-backward", "fwd-over-rev", "partial-reuse"])
def test_torch_hessian_matches_dense_and_matmat_is_batched(form):
    # (torch.func cannot run forward-over-reverse through F.mse_loss: a loss written out instead)
    obj, *_ = _net_objective("half")
    H = _dense_hessian(obj)
    budget = {"memory_budget": rl.hessian(obj, obj.theta0).batch_graph_bytes} if form == "partial-reuse" else {}
    op = rl.hessian(obj, obj.theta0, form=form, **budget)
    assert op.form == form and op.dtype == torch.float64
    V = torch.randn(obj.n_params, 5, dtype=torch.float64)
    torch.testing.assert_close(op.matmat(V), H @ V, rtol=1e-10, atol=1e-12)
    # matmat = stacked matvec, and each vector counts once
    stacked = torch.stack([op.matvec(V[:, j]) for j in range(5)], dim=1)
    torch.testing.assert_close(op.matmat(V), stacked, rtol=1e-12, atol=1e-13)
    assert op.n_matvecs == 15
    torch.testing.assert_close(op.to_dense(), 0.5 * (H + H.T), rtol=1e-10, atol=1e-12)


def test_fwd_over_rev_failure_is_named_and_auto_avoids_it():
    obj, *_ = _net_objective("mse")  # torch.func cannot take jvp(grad) through F.mse_loss
    with pytest.raises(rl.RidgelensError, match=r"fwd-over-rev.*double-backward"):
        rl.hessian(obj, obj.theta0, form="fwd-over-rev").matvec(np.ones(obj.n_params))
    op = rl.hessian(obj, obj.theta0, memory_budget=0)  # nothing reused: auto times the recompute forms
    assert op.form == "double-backward" and "fwd-over-rev" in op.form_errors
    torch.testing.assert_close(op.to_dense(), _dense_hessian(obj), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_ggn_matches_dense_jacobian_form_and_is_psd(loss):
    obj, *_ = _net_objective(loss)
    G = _dense_ggn(obj)
    for reuse in (True, False):
        op = rl.ggn(obj, obj.theta0, reuse=reuse)
        assert op.form == ("reuse" if reuse else "recompute")
        torch.testing.assert_close(op.to_dense(), 0.5 * (G + G.T), rtol=1e-9, atol=1e-11)
    assert torch.linalg.eigvalsh(op.to_dense()).min() >= -1e-12 * torch.linalg.eigvalsh(G).max()
    # and it is not the Hessian of this non-linear model
    assert (op.to_dense() - _dense_hessian(obj)).abs().max() > 1e-6


def test_ggn_equals_hessian_for_a_glm_with_canonical_link():
    torch.manual_seed(3)
    X = torch.randn(60, 4, dtype=torch.float64)
    y = (torch.rand(60) < 0.5).to(torch.float64)[:, None]
    net = torch.nn.Linear(4, 1).double()
    obj = TorchObjective(net, torch.nn.functional.binary_cross_entropy_with_logits, [(X[:32], y[:32]), (X[32:], y[32:])])
    torch.testing.assert_close(rl.ggn(obj, obj.theta0).to_dense(), rl.hessian(obj, obj.theta0).to_dense(),
                               rtol=1e-10, atol=1e-12)
    # the closed-form GLMs: their GGN is their exact Hessian
    Xn, yn = X.numpy(), y[:, 0].numpy()
    lg = rl.Logistic(Xn, yn)
    th = np.full(5, 0.1)
    np.testing.assert_allclose(rl.ggn(lg, th).to_dense().numpy(), lg.hessian_dense(th), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
def test_analyze_ggn_of_a_canonical_glm_records_the_hessian_it_used(cls):
    """analyze and predict keep curvature="ggn" for a GLM with its canonical link, run H (G = H) and say so."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([1.0, -0.5, 0.2]) + rng.normal(size=80)
    obj = cls(X, (y > 0).astype(float) if cls is rl.Logistic else y)
    ggn, hes = (rl.analyze(obj, [0.01, 0.1], curvature=c, refit=False) for c in ("ggn", "hessian"))
    assert ggn.curvature_kind == "hessian" and "canonical link" in ggn.choices["curvature"]
    assert "curvature" not in hes.choices  # nothing to say when H was asked for
    theta = hes.theta_hat
    H = obj.hessian_dense(theta)
    ref = np.linalg.solve(H + 0.1 * np.diag(obj.penalized.astype(float)), H @ theta)  # dense float64 θ̃(0.1)
    np.testing.assert_allclose(ggn.predicted[1], ref, rtol=1e-8, atol=1e-12)
    p = rl.predict(obj, [0.1], "sgd", theta_hat=theta, curvature="ggn")
    assert p.curvature == "hessian" and "canonical link" in p.choices["curvature"]
    np.testing.assert_allclose(p.thetas[0], ref, rtol=1e-8, atol=1e-12)


def test_ggn_refuses_a_loss_not_convex_in_the_outputs():
    _obj, net, X, Y, _ = _net_objective()

    def concave(o, t):
        return -((o - t) ** 2).mean()

    bad = TorchObjective(net, concave, [(X, Y)])
    with pytest.raises(rl.RidgelensError, match=r"not positive semi-definite|convex in the model.s outputs"):
        rl.ggn(bad, bad.theta0)


@pytest.mark.parametrize("returns", ["dict", "tuple"])
def test_ggn_of_a_model_returning_a_dict_or_tuple_is_refused_by_name(returns):
    """The Hessian takes any output its loss takes; the GGN needs one tensor of outputs. A dict or a tuple raised a
    raw AttributeError ('dict' has no attribute 'ndim') before the GGN's own check could speak."""
    _obj, net, X, Y, _ = _net_objective()

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return {"out": self.net(x)} if returns == "dict" else (self.net(x), x.sum())

    def loss(o, t):
        return torch.nn.functional.mse_loss(o["out"] if returns == "dict" else o[0], t)

    obj = TorchObjective(Wrapped(), loss, [(X, Y)])
    rl.hessian(obj, obj.theta0)
    with pytest.raises(rl.RidgelensError, match=rf"needs the model to return one floating tensor .* got {returns}"):
        rl.ggn(obj, obj.theta0)


def test_ggn_products_refuse_a_loss_not_convex_in_the_outputs_where_no_dense_check_ran(monkeypatch):
    """Outputs too large for the dense check at construction: the products themselves refuse ⟨Jv, H_out Jv⟩ < 0
    (read once per product, over every batch), naming the loss; a convex loss goes through."""
    import ridgelens.operators._ggn as ggn_module

    _obj, net, X, Y, _ = _net_objective()
    monkeypatch.setattr(ggn_module, "DENSE_OUTPUT_CHECK", 0)

    def concave(o, t):
        return -((o - t) ** 2).mean()

    bad = TorchObjective(net, concave, [(X[:20], Y[:20]), (X[20:], Y[20:])])
    G = rl.ggn(bad, bad.theta0)
    assert G.output_min_eigenvalue is None  # no dense check ran
    v = torch.randn(G.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(rl.RidgelensError, match=r"⟨Jv, H_out Jv⟩ = -.* < 0 for concave"):
        G.matvec(v)
    good = TorchObjective(net, lambda o, t: ((o - t) ** 2).mean(), [(X[:20], Y[:20]), (X[20:], Y[20:])])
    assert float(v @ rl.ggn(good, good.theta0).matvec(v)) > 0


def test_analyze_with_ggn_curvature_records_it_and_has_every_lambda():
    obj, *_ = _net_objective("mse", n=48)
    theta = obj.minimize(method="lbfgs", max_iter=500).theta  # a minimum or near one: the path keeps ∇R if not
    res = rl.analyze(obj, [1e-4, 1e-2], theta_hat=theta, curvature="ggn", refit=False)
    assert res.curvature_kind == "ggn" and res.path.valid.all() and res.min_eigenvalue >= -1e-10
    G = rl.ggn(obj, theta).to_dense().numpy()
    lam = 1e-2
    ref = np.linalg.solve(G + lam * np.eye(G.shape[0]), G @ theta - (obj.gradient(theta) if res.path.gradient_used else 0))
    np.testing.assert_allclose(res.predicted[1], ref, rtol=1e-6, atol=1e-8)  # eigen form vs a solve, cond(G + λI) ~ 1e4
    assert res.n_matvecs == obj.n_params  # formed densely: one product per parameter, counted
    d = res.to_dict()
    assert d["curvature_kind"] == "ggn" and d["curvature"] == "ggn"  # what the path ran on (it read "hessian")
    back = rl.Analysis.from_dict(d)
    np.testing.assert_array_equal(back.predicted, res.predicted)
    assert back.curvature_kind == "ggn" and back.n_matvecs == res.n_matvecs
    assert back.path.curvature == res.path.curvature == "hessian" and back.to_dict()["curvature"] == "ggn"


def test_composition_against_dense():
    A = psd(7, np.linspace(0.5, 3, 7), seed=1)
    B = psd(7, np.linspace(1, 2, 7), seed=2)
    a, b = rl.DenseOperator(A), rl.DenseOperator(B)
    s = np.linspace(0.5, 2.0, 7)
    cases = {
        "A + B": (a + b, A + B), "A - B": (a - b, A - B), "2.5 A": (2.5 * a, 2.5 * A), "-A": (-a, -A),
        "A + 0.3 I": (a.shift(0.3), A + 0.3 * np.eye(7)), "A @ B": (a @ b, A @ B),
        "D^-1/2 A D^-1/2": (a.sandwich(s ** -0.5), np.diag(s ** -0.5) @ A @ np.diag(s ** -0.5)),
    }
    for name, (op, ref) in cases.items():
        np.testing.assert_allclose(op.to_dense().numpy(), ref if not op.symmetric else 0.5 * (ref + ref.T),
                                   rtol=1e-13, atol=1e-13, err_msg=name)
        assert op.symmetric == (name != "A @ B")
    v = np.arange(7.0)
    np.testing.assert_allclose(a.shift(1.0) @ v, A @ v + v, rtol=1e-14)
    lin = (a + b).to_scipy()
    np.testing.assert_allclose(lin @ v, (A + B) @ v, rtol=1e-13)


def test_schur_complement_of_a_composed_operator():
    A = psd(9, np.linspace(1, 4, 9), seed=3)
    mask = np.array([True] * 6 + [False] * 3)
    op = rl.DenseOperator(A).shift(0.5)
    S = rl.SchurComplementOperator(op, mask)
    M = A + 0.5 * np.eye(9)
    p, u = mask, ~mask
    ref = M[np.ix_(p, p)] - M[np.ix_(p, u)] @ np.linalg.solve(M[np.ix_(u, u)], M[np.ix_(u, p)])
    np.testing.assert_allclose(S.to_dense().numpy(), ref, rtol=1e-12, atol=1e-12)


def test_outside_operators_are_accepted_as_they_are():
    H = psd(30, np.geomspace(10, 0.1, 30), seed=4)
    theta = np.linspace(-1, 1, 30)
    lam = [0.01, 0.5]
    ref = rl.ridge_path(H, theta, lam, method="dense")
    lin = aslinearoperator(H)  # what curvlinops' .to_scipy() hands over
    for source in (lin, torch.from_numpy(H)):
        spec = rl.eigen(source, 3, method="lanczos", tol=1e-10)
        np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(H)[::-1][:3], rtol=1e-9)
        path = rl.ridge_path(source, theta, lam, method="krylov", tol=1e-11)
        np.testing.assert_allclose(path.thetas, ref.thetas, rtol=1e-8, atol=1e-10)
    Ht = torch.from_numpy(H)
    op = rl.as_operator(lambda V: Ht @ V, shape=(30, 30))
    np.testing.assert_allclose(rl.ridge_path(op, theta, lam, method="dense").thetas, ref.thetas, rtol=1e-12)


def test_bad_curvature_inputs_are_named():
    with pytest.raises(rl.RidgelensError, match="symmetric"):
        rl.eigen(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(rl.RidgelensError, match="not symmetric"):
        rl.ridge_path(aslinearoperator(np.array([[1.0, 2.0], [0.0, 1.0]])), np.ones(2), [1.0])
    with pytest.raises(rl.RidgelensError, match="returned shape"):
        rl.eigen(rl.as_operator(lambda V: V[:1], shape=(4, 4), check_symmetric=False), 1, method="lanczos")
    with pytest.raises(rl.RidgelensError, match="dtype"):
        rl.eigen(rl.as_operator(lambda V: V.float(), shape=(4, 4), check_symmetric=False), 1, method="lanczos")
    with pytest.raises(rl.RidgelensError, match="shape="):
        rl.as_operator(lambda V: V)
    # a scipy LinearOperator whose matvec returns n - 1 numbers (scipy's own reshape fails): named, typed
    short = LinearOperator((4, 4), matvec=lambda v: v[:-1], dtype=np.float64)
    with pytest.raises(rl.RidgelensError, match=r"scipy LinearOperator failed .*must map n = 4 numbers"):
        rl.ridge_path(short, np.ones(4), [1.0])
    with pytest.raises(rl.RidgelensError, match="0×0"):
        rl.eigen(np.zeros((0, 0)))


def test_values_on_the_meta_device_are_refused_by_name():
    """'meta' holds shapes without values: an operator, a matrix or a θ̂ there is a typed error, not torch's."""
    with pytest.raises(rl.RidgelensError, match="the matrix H on the 'meta' device"):
        rl.ridge_path(torch.empty(3, 3, device="meta"), np.ones(3), [1.0])
    with pytest.raises(rl.RidgelensError, match="a curvature operator on the 'meta' device"):
        rl.as_operator(lambda V: V, shape=(3, 3), device="meta")
    with pytest.raises(rl.RidgelensError, match="theta_hat is a tensor on meta"):  # a device mismatch: named
        rl.ridge_path(rl.DenseOperator(np.eye(3)), torch.empty(3, device="meta"), [1.0])
    net = torch.nn.Linear(2, 1).double()
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss,
                            [(torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64))])
    for build in (rl.hessian, rl.ggn):
        with pytest.raises(rl.RidgelensError, match="theta is on the 'meta' device"):
            build(obj, torch.empty(obj.n_params, device="meta", dtype=torch.float64))


#: Not symmetric: a user's own operator with it says symmetric (the default) all the same.
M_ASYM = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 2.0]])


class Mine(rl.CurvatureOperator):
    """A user's own operator: a matrix, whatever its symmetry."""

    def __init__(self, A):
        super().__init__(3)
        self.A = torch.from_numpy(A)

    def _matmat(self, V):
        return self.A @ V


def test_a_users_own_operator_subclass_is_probed_once_for_symmetry():
    """A CurvatureOperator subclass written by a user says symmetric (the default) whatever its _matmat does:
    as_operator probes it once per instance (2 products, counted) and refuses it, named, when it is not."""
    with pytest.raises(rl.RidgelensError, match="not symmetric"):
        rl.eigen(Mine(M_ASYM), 1, method="lanczos")
    with pytest.raises(rl.RidgelensError, match="not symmetric"):
        rl.ridge_path(Mine(M_ASYM), np.ones(3), [1.0])
    ok = Mine(M_ASYM + M_ASYM.T)
    spec = rl.eigen(ok, 3)  # probed here (2 products), then made dense (3)
    assert ok.n_matvecs == 5 and spec.eigenvalues[0] == pytest.approx(np.linalg.eigvalsh(M_ASYM + M_ASYM.T)[-1])
    rl.eigen(ok, 3)  # not probed again
    assert ok.n_matvecs == 8
    assert rl.as_operator(Mine(M_ASYM), check_symmetric=False).n_matvecs == 0  # the probe is skipped on request
    vouched = rl.as_operator(Mine(M_ASYM), check_symmetric=False)
    rl.eigen(vouched, 3)  # and not made later by the stage the operator is passed to (it is returned as it is)
    assert vouched.n_matvecs == 3


def test_a_non_symmetric_operator_inside_a_sum_shift_or_sandwich_is_probed():
    """A user's own subclass, or a FunctionOperator built by hand, is probed also when it first arrives inside
    ridgelens' own sums, shifts, multiples and sandwiches (these were taken as symmetric on its word); each operator
    once, and a callable wrapped by as_operator (probed there) is not probed again."""
    for make in (lambda A: Mine(A).shift(0.5), lambda A: 2.0 * Mine(A), lambda A: Mine(A) + Mine(A),
                 lambda A: Mine(A).sandwich(np.ones(3)), lambda A: FunctionOperator(lambda V: torch.from_numpy(A) @ V, 3),
                 lambda A: FunctionOperator(lambda V: torch.from_numpy(A) @ V, 3).shift(1.0)):
        with pytest.raises(rl.RidgelensError, match="not symmetric"):
            rl.eigen(make(M_ASYM), 1, method="lanczos")
    ok = Mine(M_ASYM + M_ASYM.T)
    both = ok + ok.shift(1.0)
    assert rl.as_operator(both) is both and ok.n_matvecs == 2  # the one user operator, probed once
    rl.as_operator(both)
    assert ok.n_matvecs == 2
    wrapped = rl.as_operator(lambda V: torch.from_numpy(M_ASYM + M_ASYM.T) @ V, shape=(3, 3))
    assert wrapped.n_matvecs == 2
    rl.as_operator(wrapped.shift(1.0))
    assert wrapped.n_matvecs == 2

def test_an_operator_declared_not_symmetric_is_refused_as_curvature():
    """A @ B of two symmetric operators that do not commute is not symmetric (it says so): no consumer takes it."""
    A = psd(5, np.linspace(1, 3, 5), seed=1)
    B = np.diag(np.arange(1.0, 6.0))
    assert not np.allclose(A @ B, (A @ B).T)  # the premise: they do not commute
    prod = rl.DenseOperator(A) @ rl.DenseOperator(B)
    for use in (lambda: rl.eigen(prod, 2), lambda: rl.ridge_path(prod, np.ones(5), [1.0]),
                lambda: rl.spectral_density(prod), lambda: rl.ridge_path(prod + rl.DenseOperator(A), np.ones(5), [1.0])):
        with pytest.raises(rl.RidgelensError, match=r"\(ProductOperator\) is not symmetric|\(SumOperator\) is not sym"):
            use()
    spec = rl.eigen(rl.DenseOperator(A) + rl.DenseOperator(B), 2)  # a symmetric combination still goes through
    np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(A + B)[::-1][:2], rtol=1e-12)
    with pytest.raises(rl.RidgelensError, match="None"):
        rl.hessian(None, np.zeros(2))
    with pytest.raises(rl.RidgelensError, match="None"):
        rl.analyze(None, [0.1])  # was AttributeError: 'NoneType' object has no attribute 'minimize'
    logistic = rl.Logistic(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.5]]), np.array([0, 1, 1, 0]))
    for theta in (np.zeros(2), np.zeros((3, 1)), "x"):  # a closed-form Hessian at a θ of the wrong shape
        with pytest.raises(rl.RidgelensError, match=r"theta must (have shape \(3,\)|be 3 numbers)"):
            rl.hessian(logistic, theta)  # was NumPy's ValueError (matmul, broadcast, float)
    with pytest.raises(rl.RidgelensError, match="sizes 3 and 4"):
        rl.DenseOperator(np.eye(3)) + rl.DenseOperator(np.eye(4))
    with pytest.raises(rl.RidgelensError, match="one device and dtype"):
        rl.DenseOperator(np.eye(3)) + rl.DenseOperator(torch.eye(3, dtype=torch.float32))
    with pytest.raises(rl.RidgelensError, match=r"theta_hat is a tensor on meta .* runs on cpu"):
        rl.ridge_path(np.eye(3), torch.ones(3, device="meta"), [1.0])
    with pytest.raises(rl.RidgelensError, match="n_probes must be a positive integer"):
        rl.spectral_density(np.eye(3), n_probes=2.5)
    with pytest.raises(rl.RidgelensError, match="bandwidth must be a positive"):
        rl.spectral_density(np.eye(3), bandwidth=-1.0)
    for bad in (0.0, -1.0, float("nan"), "x"):  # the density built from nodes (and from a results file) too
        with pytest.raises(rl.RidgelensError, match="bandwidth must be a positive"):
            rl.SpectralDensity.from_nodes([1.0, 2.0], [0.5, 0.5], n=2, bandwidth=bad)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10**6), st.floats(0.0, 5.0))
def test_symmetry_and_stacking_properties(n, seed, shift):
    A = psd(n, np.random.default_rng(seed).uniform(0, 3, n), seed=seed)
    op = rl.DenseOperator(A).shift(shift).sandwich(np.linspace(0.5, 1.5, n))
    rng = np.random.default_rng(seed + 1)
    u, v = rng.normal(size=n), rng.normal(size=n)
    assert abs(u @ op.matvec(v) - op.matvec(u) @ v) <= 1e-12 * (1 + np.abs(A).max() + shift) * n
    V = rng.normal(size=(n, 3))
    np.testing.assert_allclose(op.matmat(V), np.column_stack([op.matvec(V[:, j]) for j in range(3)]), rtol=1e-13,
                               atol=1e-13)


def test_ggn_of_a_float32_cross_entropy_model_is_accepted():
    # float32 rounding makes a cross-entropy's output Hessian show eigenvalues near −1e-7·largest:
    # that is not a loss that is not convex (it was refused, found by bench_hvp)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Tanh(), torch.nn.Linear(30, 10))
    X, y = torch.randn(256, 20), torch.randint(0, 10, (256,))
    obj = TorchObjective(net, torch.nn.functional.cross_entropy, [(X[:128], y[:128]), (X[128:], y[128:])])
    op = rl.ggn(obj, obj.theta0)
    v = torch.randn(obj.n_params)
    assert float(v @ op.matvec(v)) >= 0 and op.dtype == torch.float32
    ref = rl.ggn(TorchObjective(net.double(), torch.nn.functional.cross_entropy,
                                [(X[:128].double(), y[:128]), (X[128:].double(), y[128:])]), obj.theta0)
    torch.testing.assert_close(op.matvec(v).double(), ref.matvec(v.double()), rtol=1e-4, atol=1e-6)


def test_partial_reuse_with_no_batch_fitting_recomputes_everything(small_mlp):
    _net, _X, _y, obj, H = small_mlp
    op = rl.hessian(obj, obj.theta0, form="partial-reuse", memory_budget=0)  # was: a TypeError at the product
    assert op.reused_batches == 0 and op.form in ("double-backward", "fwd-over-rev")
    np.testing.assert_allclose(op.to_dense(), H, atol=1e-12)


def test_partial_reuse_refuses_a_shuffling_loader(small_mlp):
    net, X, y, obj, H = small_mlp
    torch.manual_seed(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=20, shuffle=True)
    shuffled = rl.TorchObjective(net, torch.nn.functional.cross_entropy, loader)
    budget = rl.hessian(obj, obj.theta0).batch_graph_bytes  # one of three batches fits
    # auto: the reused first-pass batches would overlap the reshuffled recomputed ones (H off by ~40 %)
    op = rl.hessian(shuffled, shuffled.theta0, memory_budget=budget)
    assert op.form in ("double-backward", "fwd-over-rev") and op.reused_batches == 0
    np.testing.assert_allclose(op.to_dense(), H, atol=1e-12)
    with pytest.raises(rl.RidgelensError, match="same order on every pass"):
        rl.hessian(shuffled, shuffled.theta0, form="partial-reuse", memory_budget=budget)
    ordered = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=20)
    op = rl.hessian(rl.TorchObjective(net, torch.nn.functional.cross_entropy, ordered), obj.theta0,
                    memory_budget=budget)
    assert op.form == "partial-reuse" and op.reused_batches == 1
    np.testing.assert_allclose(op.to_dense(), H, atol=1e-12)


def test_partial_reuse_leaves_the_callers_vector_alone(small_mlp):
    # autograd hands back grad_outputs itself when the graph only passes it through (an addition);
    # the partial sum must not be accumulated into it, since v is e.g. a row of the Lanczos basis.
    flat = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, dtype=torch.float64)
    (hv,) = torch.autograd.grad(flat + 0.0, flat, grad_outputs=v)
    assert hv.data_ptr() == v.data_ptr()  # the premise
    _net, _X, _y, obj, H = small_mlp
    op = rl.hessian(obj, obj.theta0, form="partial-reuse", memory_budget=rl.hessian(obj, obj.theta0).batch_graph_bytes)
    assert op.form == "partial-reuse"
    v = torch.randn(obj.n_params, dtype=torch.float64)
    keep = v.clone()
    hv_reused = op._hvp_reuse(v[None])[0].clone()
    op._hvp_reuse = lambda U: U  # a pass-through graph, as autograd may give
    out = op.matvec_tensor(v)
    assert torch.equal(v, keep)
    rest = out - v  # the recomputed batches
    np.testing.assert_allclose((rest + hv_reused).numpy(), H @ keep.numpy(), atol=1e-12)


def test_recomputed_sum_over_batches_leaves_the_callers_vector_alone(small_mlp, monkeypatch):
    # the double-backward form adds the batches' products into the first one, which autograd may
    # hand back as grad_outputs itself (see above): it must be copied, not added into
    from ridgelens.operators import _torch

    obj = small_mlp[3]
    op = rl.hessian(obj, obj.theta0, form="double-backward")
    assert obj.n_batches > 1
    torch.testing.assert_close(op.matvec_tensor(torch.ones(obj.n_params, dtype=torch.float64)),
                               _dense_hessian(obj).sum(1), rtol=1e-10, atol=1e-12)  # torch.func
    # one vector goes through per-parameter leaves (summed into views of its own output: V is only read);
    # a block of vectors through the flat θ and autograd's batched backward, where the sum starts from its output
    v = torch.randn(obj.n_params, dtype=torch.float64)
    keep = v.clone()
    op.matvec_tensor(v)
    assert torch.equal(v, keep)
    monkeypatch.setattr(_torch, "_grad_batched", lambda out, inp, V, retain_graph: V)  # a pass-through graph
    V = torch.randn(2, obj.n_params, dtype=torch.float64)
    keep = V.clone()
    out = op._rows(V)
    assert torch.equal(V, keep)
    torch.testing.assert_close(out, obj.n_batches * keep)


def test_recomputed_product_through_parameter_leaves_equals_the_flat_one():
    """A recomputed product of one vector differentiates per-parameter leaves, not the flat θ: over several
    batches it equals torch.func's dense Hessian, with a parameter the forward never uses (zero rows and
    columns) and one frozen out of the model's parameters; a block of vectors (the flat path) agrees."""
    torch.manual_seed(3)

    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(3, 5), nn.Linear(5, 2), nn.Linear(4, 4)
            self.frozen = nn.Linear(2, 2).requires_grad_(False)

        def forward(self, x):
            return self.frozen(self.b(torch.tanh(self.a(x))))

    net = Net().double()
    X, Y = torch.randn(24, 3, dtype=torch.float64), torch.randn(24, 2, dtype=torch.float64)
    obj = TorchObjective(net, nn.functional.mse_loss, [(X[i:i + 8], Y[i:i + 8]) for i in range(0, 24, 8)])
    op = rl.hessian(obj, obj.theta0, form="double-backward")
    H = _dense_hessian(obj)
    V = torch.randn(2, obj.n_params, dtype=torch.float64)
    for v in V:
        torch.testing.assert_close(op.matvec_tensor(v), H @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op._rows(V), V @ H.T, rtol=1e-10, atol=1e-12)
    unused = slice(5 * 3 + 5 + 2 * 5 + 2, obj.n_params)
    assert obj.n_params == 3 * 5 + 5 + 5 * 2 + 2 + 16 + 4
    assert not H[unused].any() and not H[:, unused].any()
    assert not op.matvec_tensor(V[0])[unused].any()

@pytest.mark.parametrize("reuse", [True, False])
def test_ggn_sum_over_batches_leaves_the_callers_vector_alone(small_mlp, monkeypatch, reuse):
    # the GGN sums the batches' products into the first one, which autograd may hand back as the
    # caller's vector itself (pass-through graphs, as above): it must be copied, not added into
    from ridgelens.operators import _ggn

    obj = small_mlp[3]
    op = rl.ggn(obj, obj.theta0, reuse=reuse)
    assert obj.n_batches > 1
    monkeypatch.setattr(_ggn, "_grad_batched", lambda out, inp, V, retain_graph: V)  # J, H_out, Jᵀ pass through
    v = torch.randn(obj.n_params, dtype=torch.float64)
    keep = v.clone()
    out = op.matvec(v)
    assert torch.equal(v, keep)
    torch.testing.assert_close(out, obj.n_batches * keep)


def test_reuse_starts_from_the_measured_batch_graph_and_stays_right_with_a_shuffling_loader(small_mlp):
    net, X, y, obj, H = small_mlp
    ordered = rl.TorchObjective(net, torch.nn.functional.cross_entropy,
                                torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=20))
    forwards = []
    original = type(ordered).batch_losses

    def counted(self, flat, start=0, stop=None):
        for loss in original(self, flat, start, stop):
            forwards.append(1)
            yield loss

    ordered.batch_losses = counted.__get__(ordered)
    op = rl.hessian(ordered, obj.theta0, form="reuse")
    # the graph measured on batch 0 is the reused graph's first batch: one forward per batch, not one more
    assert ordered.n_batches == 3 and len(forwards) == 3
    np.testing.assert_allclose(op.to_dense(), H, atol=1e-12)
    # a shuffling loader deals other batches on the next pass: the reused graph is built in one pass
    torch.manual_seed(2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=20, shuffle=True)
    op = rl.hessian(rl.TorchObjective(net, torch.nn.functional.cross_entropy, loader), obj.theta0, form="reuse")
    assert op.form == "reuse" and op.reused_batches == 3
    np.testing.assert_allclose(op.to_dense(), H, atol=1e-12)


def test_analyze_auto_curvature_is_the_cli_s_decision_at_theta_hat():
    """curvature="auto" in Python: G where H is indefinite at θ̂ (checked against torch.func.hessian's eigenvalues),
    H for a convex objective (no probe); the decision is recorded in choices."""
    obj, *_ = _net_objective("mse", n=48)
    theta = obj.theta0  # a random net: not a minimum
    H = _dense_hessian(obj).numpy()  # torch.func.hessian of the whole loss at theta0
    indefinite = np.linalg.eigvalsh(0.5 * (H + H.T))[0] < -1e-8 * np.abs(H).max()
    res = rl.analyze(obj, [1e-2], theta_hat=theta, curvature="auto", refit=False)
    assert res.curvature_kind == ("ggn" if indefinite else "hessian") and indefinite
    assert "Ritz value" in res.choices["curvature"]
    X, y = np.random.default_rng(0).normal(size=(30, 3)), np.arange(30.0)
    ls = rl.analyze(rl.LeastSquares(X, y), [0.1], curvature="auto")
    assert ls.curvature_kind == "hessian" and "convex" in ls.choices["curvature"]
    with pytest.raises(rl.RidgelensError, match="curvature must be one of"):
        rl.analyze(obj, [0.1], curvature="gn")


def test_curvature_options_an_operator_does_not_take_are_named():
    """curvature="auto" may pick either operator: a Hessian option (form=) reaching the Gauss-Newton operator
    raised Python's TypeError ('unexpected keyword argument'); now a RidgelensError naming it and what the
    operator takes. An option both take passes, and the result equals the one built with it directly."""
    obj, *_ = _net_objective("mse", n=48)
    with pytest.raises(rl.RidgelensError, match=r"^options \['form'\] do not apply to the Gauss-Newton curvature, "
                                                r"which takes reuse=, memory_budget=, hand_written=$"):
        rl.analyze(obj, [1e-2], theta_hat=obj.theta0, curvature="auto", refit=False,
                   curvature_options={"form": "reverse"})
    with pytest.raises(rl.RidgelensError, match=r"^options \['reuse'\] do not apply to the torch Hessian"):
        rl.hessian(obj, obj.theta0, reuse=True)
    res = rl.analyze(obj, [1e-2], theta_hat=obj.theta0, curvature="auto", refit=False,
                     curvature_options={"memory_budget": 10**9})
    G = rl.ggn(obj, obj.theta0).to_dense()  # the curvature auto chose, formed directly
    g = obj.gradient(obj.theta0) if res.path.gradient_used else 0.0
    assert res.curvature_kind == "ggn" and res.path.gradient_used
    np.testing.assert_allclose(res.path.thetas[0], np.linalg.solve(G + 1e-2 * np.eye(obj.n_params),
                                                                   G @ obj.theta0 - g), rtol=1e-6, atol=1e-9)


def test_a_plain_cuda_device_means_the_current_gpu(monkeypatch):
    """An operator declared on 'cuda' is on 'cuda:N' (the current GPU), as every tensor there is.

    torch.device('cuda') != torch.device('cuda:0'): without the index an operator would refuse its
    own products' device and its partners'. No GPU is needed: only the device is resolved.
    """
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    op = FunctionOperator(lambda v: v, 3, device="cuda")
    assert op.device == torch.device("cuda", 1)
    assert FunctionOperator(lambda v: v, 3, device="cuda:0").device == torch.device("cuda", 0)
    assert FunctionOperator(lambda v: v, 3, device="cpu").device == torch.device("cpu")


class _LinearAndConv1D(torch.nn.Module):
    """Two nn.Linear and a Conv1D-style ``torch.addmm(b, x, W)`` (W stored in × out, as Hugging Face's GPT-2).

    The first layer's input is the data: its gradient graph has no input part, so no early weight piece.
    """

    def __init__(self):
        super().__init__()
        self.first, self.lin = torch.nn.Linear(4, 4), torch.nn.Linear(4, 6)
        self.w = torch.nn.Parameter(0.3 * torch.randn(6, 3))
        self.b = torch.nn.Parameter(0.1 * torch.randn(3))

    def forward(self, x):
        return torch.addmm(self.b, torch.tanh(self.lin(torch.tanh(self.first(x)))), self.w)


@pytest.mark.parametrize("form", ["double-backward", "reuse"])
def test_products_add_weight_pieces_straight_into_the_output(monkeypatch, form):
    """A product's linear-weight pieces go into the output directly (recomputed, or through a held graph): exact.

    Both layouts: F.linear's (out × in) and addmm's transposed one (Hugging Face's Conv1D). Checked
    against the dense Hessian; the registry of direct weights is counted while in use and empty after.
    """
    import ridgelens._autodiff as ad

    torch.manual_seed(0)
    net = _LinearAndConv1D().double()
    X, Y = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 3, (30,))
    obj = TorchObjective(net, torch.nn.functional.cross_entropy, [(X[:16], Y[:16]), (X[16:], Y[16:])])
    H = _dense_hessian(obj)
    hits = []

    class Counting(dict):
        def get(self, key, default=None):
            found = super().get(key, default)
            hits.append(found is not None)
            return found

    monkeypatch.setattr(ad, "_DIRECT_WEIGHT_GRADIENTS", Counting())
    op = rl.hessian(obj, obj.theta0, form=form)
    assert op.form == form
    for _ in range(3):
        v = torch.randn(obj.n_params, dtype=torch.float64)
        torch.testing.assert_close(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)
    # two weights past the first layer (F.linear's, addmm's), two batches, three products: each went direct
    assert hits == [True] * (2 * 2 * 3)
    assert len(ad._DIRECT_WEIGHT_GRADIENTS) == 0


class _EmptyBranch(torch.nn.Module):
    """A model with a zero-width linear layer (an empty weight) beside two ordinary ones."""

    def __init__(self):
        super().__init__()
        self.a, self.z, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 0), torch.nn.Linear(4, 1)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        return self.b(h) + self.z(h).sum(-1, keepdim=True)


@pytest.mark.parametrize("form", ["auto", "reuse", "double-backward"])
def test_an_empty_linear_layer_is_pytorchs_own_and_the_hessian_is_exact(form):
    torch.manual_seed(0)
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    obj = TorchObjective(_EmptyBranch().double(), torch.nn.functional.mse_loss, [(X[:4], Y[:4]), (X[4:], Y[4:])])
    op = rl.hessian(obj, obj.theta0, form=form)
    H = _dense_hessian(obj)
    v = torch.randn(obj.n_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", ["reuse", "double-backward"])
def test_products_from_several_threads_are_each_right(form):
    """Threads sharing one operator get their own products (a reused graph's leaves hold one product's output)."""
    import threading

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 1)).double()
    X, Y = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    obj = TorchObjective(net, torch.nn.functional.mse_loss, [(X[i:i + 8], Y[i:i + 8]) for i in range(0, 32, 8)])
    op = rl.hessian(obj, obj.theta0, form=form)
    V = torch.randn(4, obj.n_params, dtype=torch.float64)
    ref = _dense_hessian(obj) @ V.T
    wrong = []

    def work(k):
        for _ in range(8):
            if not torch.allclose(op.matvec(V[k]), ref[:, k], rtol=1e-9, atol=1e-12):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_ggn_of_a_classifier_that_separates_its_data_is_accepted():
    """An MLP trained to separate iris (loss ~6e-15): its cross-entropy's output Hessian has a largest eigenvalue
    of ~5e-15 and rounding-level negatives (−3.4e-19) from p − p² at p ≈ 1. Those were judged against the largest
    eigenvalue and the loss refused as not convex; they are judged against one output's share of the mean loss."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0))
    y = torch.tensor(y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    lbfgs_fit(net, torch.nn.functional.cross_entropy, X, y, max_iter=200, tolerance_grad=1e-14, tolerance_change=0)
    obj = TorchObjective(net, torch.nn.functional.cross_entropy, [(X, y)])
    assert obj.value(obj.theta0) < 1e-10  # separated: every probability of the true class within 1e-10 of 1
    G = rl.ggn(obj, obj.theta0)
    assert G.output_min_eigenvalue is not None and abs(G.output_min_eigenvalue) < 1e-16  # rounding, not curvature
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert float(v @ G.matvec(v)) >= 0


@pytest.mark.parametrize("kw, name", [({"memory_budget": "abc"}, "memory_budget"), ({"memory_budget": -5}, "memory_budget"),
                                      ({"memory_budget": float("nan")}, "memory_budget"),
                                      ({"memory_budget": True}, "memory_budget"), ({"hand_written": "no"}, "hand_written"),
                                      ({"hand_written": None}, "hand_written"), ({"reuse": "no"}, "reuse")])
def test_operator_options_of_the_wrong_kind_are_refused_by_name(kw, name):
    """memory_budget="abc" raised int()'s ValueError; the GGN took a negative budget, and either operator took
    hand_written="no" (or the GGN reuse="no") as True: a string is truthy."""
    obj, *_ = _net_objective("mse", n=16)
    makers = [rl.ggn] if "reuse" in kw else [rl.ggn, rl.hessian]
    for make in makers:
        with pytest.raises(rl.RidgelensError, match=rf"^{name} must be "):
            make(obj, obj.theta0, **kw)
    assert rl.ggn(obj, obj.theta0, memory_budget=2e9, reuse=None).form in ("reuse", "recompute")  # 2e9 bytes is a number
