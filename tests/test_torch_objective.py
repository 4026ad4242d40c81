"""TorchObjective against full-batch autograd and a dense ``torch.func.hessian`` (float64)."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

import ridgelens as rl
from ridgelens import TorchObjective
from ridgelens.errors import PenaltyError

# torch.func's first use scripts its decompositions; torch itself warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

N = 53
SIZES = (16, 16, 16, 5)  # unequal batches, last one short


def make_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()


def make_data(seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, 4, generator=g, dtype=torch.float64)
    Y = torch.sin(X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3] + 0.1 * torch.randn(N, 1, generator=g,
                                                                              dtype=torch.float64)
    return X, Y


def split(X, Y, sizes=SIZES):
    return list(zip(torch.split(X, list(sizes)), torch.split(Y, list(sizes)), strict=True))


def flat_loss_fn(model, loss_fn, X, Y):
    """The full-data loss as a function of one flat parameter vector (independent of ridgelens)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def f(flat):
        params = {n: c.view(s) for n, c, s in zip(names, torch.split(flat, sizes), shapes, strict=True)}
        return loss_fn(functional_call(model, params, (X,)), Y)

    return f


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


@pytest.fixture
def setup():
    model = make_mlp()
    X, Y = make_data()
    obj = TorchObjective(model, nn.functional.mse_loss, split(X, Y))
    return model, X, Y, obj


def test_shapes_and_names(setup):
    model, _, _, obj = setup
    assert obj.n_params == 4 * 6 + 6 + 6 + 1 == sum(p.numel() for p in model.parameters())
    assert obj.n_samples == N
    assert obj.param_names[:2] == ["0.weight[0]", "0.weight[1]"]
    assert obj.param_names[-1] == "2.bias"  # a one-element parameter carries no index
    assert len(obj.param_names) == obj.n_params
    np.testing.assert_array_equal(obj.theta0, flat_params(model).numpy())
    assert obj.penalized.all()


def test_value_and_gradient_equal_full_batch(setup):
    model, X, Y, obj = setup
    rng = np.random.default_rng(0)
    theta = obj.theta0 + 0.1 * rng.normal(size=obj.n_params)
    f = flat_loss_fn(model, nn.functional.mse_loss, X, Y)
    t = torch.tensor(theta, requires_grad=True)
    loss = f(t)
    (g_ref,) = torch.autograd.grad(loss, t)
    assert obj.value(theta) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(obj.gradient(theta), g_ref.numpy(), rtol=0, atol=1e-13)
    # At the model's own parameters, against autograd through the model itself.
    model.zero_grad()
    nn.functional.mse_loss(model(X), Y).backward()
    g_model = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
    model.zero_grad()
    np.testing.assert_allclose(obj.gradient(obj.theta0), g_model, rtol=0, atol=1e-13)


def test_hvp_and_hessian_equal_dense_torch_func_hessian(setup):
    model, X, Y, obj = setup
    rng = np.random.default_rng(2)
    theta = obj.theta0 + 0.1 * rng.normal(size=obj.n_params)
    f = flat_loss_fn(model, nn.functional.mse_loss, X, Y)
    H_ref = torch.func.hessian(f)(torch.tensor(theta)).numpy()
    scale = np.abs(H_ref).max()
    for _ in range(3):
        v = rng.normal(size=obj.n_params)
        np.testing.assert_allclose(obj.hvp(theta, v), H_ref @ v, rtol=0,
                                   atol=1e-10 * scale * np.linalg.norm(v))
    op = rl.hessian(obj, theta)
    assert isinstance(op, rl.CurvatureOperator) and not op.is_dense
    H = op.to_dense()
    np.testing.assert_allclose(H, H_ref, rtol=0, atol=1e-10 * scale)
    assert op.n_matvecs == obj.n_params
    # Not at a minimizer of a non-convex net: H has negative eigenvalues, both agree on them.
    ev = np.linalg.eigvalsh(H)
    assert ev[0] < -0.1 * scale
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(H_ref), rtol=0, atol=1e-10 * scale)


def test_batch_split_does_not_matter():
    model = make_mlp()
    X, Y = make_data()
    rng = np.random.default_rng(3)
    v = rng.normal(size=37)
    objs = [TorchObjective(model, nn.functional.mse_loss, split(X, Y, s))
            for s in [(N,), (50, 3), (7, 20, 26)]]
    theta = objs[0].theta0 + 0.2 * rng.normal(size=37)
    vals = [o.value(theta) for o in objs]
    grads = [o.gradient(theta) for o in objs]
    hvps = [o.hvp(theta, v) for o in objs]
    for k in (1, 2):
        assert vals[k] == pytest.approx(vals[0], rel=1e-13)
        np.testing.assert_allclose(grads[k], grads[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(hvps[k], hvps[0], rtol=0, atol=1e-12)


def test_cross_entropy_with_integer_targets():
    torch.manual_seed(5)
    model = nn.Linear(4, 3).double()
    g = torch.Generator().manual_seed(6)
    X = torch.randn(29, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (29,), generator=g)
    obj = TorchObjective(model, nn.functional.cross_entropy, split(X, y, (10, 10, 9)))
    f = flat_loss_fn(model, nn.functional.cross_entropy, X, y)
    t = flat_params(model).clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(f(t), t)
    np.testing.assert_allclose(obj.gradient(obj.theta0), g_ref.numpy(), rtol=0, atol=1e-13)
    H_ref = torch.func.hessian(f)(flat_params(model)).numpy()
    np.testing.assert_allclose(rl.hessian(obj, obj.theta0).to_dense(), H_ref, rtol=0, atol=1e-12)


def test_callers_model_is_unchanged(setup):
    model, _, _, obj = setup
    before = snapshot(model)
    rng = np.random.default_rng(4)
    theta = obj.theta0 + rng.normal(size=obj.n_params)
    obj.value(theta)
    obj.gradient(theta)
    obj.hvp(theta, rng.normal(size=obj.n_params))
    rl.hessian(obj, theta).to_dense()
    obj.minimize(l2=0.1, max_iter=20)
    obj.state_dict(theta)
    assert_same_state(model, before)
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # the mode was not touched either


def test_state_dict_round_trip(setup):
    obj = setup[3]
    rng = np.random.default_rng(7)
    theta = obj.theta0 + rng.normal(size=obj.n_params)
    sd = obj.state_dict(theta)
    other = make_mlp(seed=99)
    other.load_state_dict(sd)
    np.testing.assert_array_equal(flat_params(other).numpy(), theta)


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1)).double()


def dropout_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 1)).double()


@pytest.mark.parametrize("factory", [bn_model, dropout_model], ids=["batchnorm", "dropout"])
def test_train_mode_with_random_layers(factory):
    X, Y = make_data()
    model = factory()
    if factory is bn_model:  # non-trivial running statistics
        with torch.no_grad():
            model(X)
    assert model.training
    with pytest.raises(rl.ModelModeError, match="train mode") as exc:
        TorchObjective(model, nn.functional.mse_loss, split(X, Y))
    assert "eval_mode=True" in str(exc.value)
    # which layer: its name in the model and its kind (and p for dropout), not only the bare name "2"
    which = {"bn_model": "1 (BatchNorm1d)", "dropout_model": "2 (Dropout, p=0.5)"}[factory.__name__]
    assert which in str(exc.value), str(exc.value)
    before = snapshot(model)
    obj = TorchObjective(model, nn.functional.mse_loss, split(X, Y), eval_mode=True)
    assert model.training and all(m.training for m in model.modules())
    # The value is the eval-mode loss, deterministic, and the caller's model (buffers too) is intact.
    ref_model = factory()
    ref_model.load_state_dict(before)
    ref_model.eval()
    with torch.no_grad():
        ref = float(nn.functional.mse_loss(ref_model(X), Y))
    assert obj.value(obj.theta0) == pytest.approx(ref, rel=1e-13)
    assert obj.value(obj.theta0) == obj.value(obj.theta0)
    f = flat_loss_fn(ref_model, nn.functional.mse_loss, X, Y)
    H_ref = torch.func.hessian(f)(flat_params(ref_model)).numpy()
    v = np.random.default_rng(8).normal(size=obj.n_params)
    np.testing.assert_allclose(obj.hvp(obj.theta0, v), H_ref @ v, rtol=0,
                               atol=1e-10 * np.abs(H_ref).max() * np.linalg.norm(v))
    assert_same_state(model, before)
    assert model.training
    # Once the caller puts the model in eval mode, no flag is needed.
    model.eval()
    obj2 = TorchObjective(model, nn.functional.mse_loss, split(X, Y))
    assert obj2.value(obj2.theta0) == pytest.approx(ref, rel=1e-13)


def test_one_shot_generator_is_refused():
    X, Y = make_data()
    batches = split(X, Y)
    with pytest.raises(rl.RidgelensError, match="re-iterable"):
        TorchObjective(make_mlp(), nn.functional.mse_loss, (b for b in batches))
    with pytest.raises(rl.RidgelensError, match="re-iterable"):
        TorchObjective(make_mlp(), nn.functional.mse_loss, iter(batches))


def test_data_loader_is_accepted():
    X, Y = make_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=16)
    obj = TorchObjective(make_mlp(), nn.functional.mse_loss, loader)
    ref = TorchObjective(make_mlp(), nn.functional.mse_loss, [(X, Y)])
    assert obj.n_samples == N
    np.testing.assert_allclose(obj.gradient(obj.theta0), ref.gradient(ref.theta0), rtol=0, atol=1e-13)


def test_unpenalized_bias_mask():
    model = make_mlp()
    X, Y = make_data()
    obj = TorchObjective(model, nn.functional.mse_loss, split(X, Y), unpenalized=("*.bias",))
    expected = np.concatenate([np.full(p.numel(), not name.endswith("bias"))
                               for name, p in model.named_parameters()])
    np.testing.assert_array_equal(obj.penalized, expected)
    assert obj.penalized.sum() == 24 + 6 and (~obj.penalized).sum() == 6 + 1
    names = np.array(obj.param_names)
    assert all(".bias" in s for s in names[~obj.penalized])
    assert all(".weight" in s for s in names[obj.penalized])
    # The mask enters the penalized gradient: ∇R + λ θ_p.
    theta = obj.theta0
    np.testing.assert_allclose(obj.penalized_gradient(theta, 0.5),
                               obj.gradient(theta) + 0.5 * np.where(expected, theta, 0.0))
    only_first = TorchObjective(model, nn.functional.mse_loss, split(X, Y), unpenalized=("0.*",))
    np.testing.assert_array_equal(only_first.penalized, np.r_[np.zeros(30, bool), np.ones(7, bool)])
    with pytest.raises(rl.RidgelensError, match="leaves no parameter penalized"):
        TorchObjective(model, nn.functional.mse_loss, split(X, Y), unpenalized=("*",))


# --- a small, well-determined network: θ̂ is a strict minimizer -------------------------

def teacher_problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 2, generator=g, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.5, -0.5], [0.3, 1.2]]))
        net[0].bias.copy_(torch.tensor([0.2, -0.3]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.5]]))
        net[2].bias.copy_(torch.tensor([0.5]))
        Y = net(X) + 0.1 * torch.randn(120, 1, generator=g, dtype=torch.float64)
    obj = TorchObjective(net, nn.functional.mse_loss, split(X, Y, (70, 50)))
    return net, obj


def test_gradient_descent_with_weight_decay_converges_to_refit():
    _, obj = teacher_problem()
    hat = obj.minimize()
    assert hat.converged
    lam = 0.1
    ref = obj.minimize(l2=lam, x0=hat.theta)
    assert ref.converged and ref.method == "trust-ncg"
    # Independent optimality check of the refit: the penalized Hessian there is positive definite.
    Hl = rl.hessian(obj, ref.theta).to_dense() + lam * np.eye(obj.n_params)
    ev = np.linalg.eigvalsh(Hl)
    assert ev[0] > 0.05
    gd = obj.minimize(l2=lam, method="gd", lr=1.0 / ev[-1], max_iter=3000, x0=hat.theta)
    assert gd.method == "gd" and gd.converged, gd.message
    assert gd.n_iter > 100  # it really iterated (measured: ~420 steps)
    assert np.linalg.norm(gd.theta - ref.theta) / np.linalg.norm(ref.theta) < 1e-6
    # θ ← θ − lr(λθ + ∇R(θ)) written out by hand for a few steps gives the same iterates.
    few = obj.minimize(l2=lam, method="gd", lr=0.05, max_iter=3, x0=hat.theta, tol=1e-300)
    theta = hat.theta.copy()
    for _ in range(3):
        theta = theta - 0.05 * (lam * theta + obj.gradient(theta))
    np.testing.assert_allclose(few.theta, theta, rtol=0, atol=1e-15)
    assert few.n_iter == 3 and not few.converged


def test_gd_needs_learning_rate():
    _, obj = teacher_problem()
    with pytest.raises(rl.RidgelensError, match="lr > 0"):
        obj.minimize(l2=0.1, method="gd")
    with pytest.raises(rl.RidgelensError, match="method must be one of"):
        obj.minimize(l2=0.1, method="sgd")


def test_analyze_small_torch_model():
    net, obj = teacher_problem()
    before = snapshot(net)
    theta_hat = obj.minimize().theta
    lambdas = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rl.analyze(obj, lambdas, theta_hat=theta_hat)
    assert res.objective == "TorchObjective" and res.n_params == 9
    assert res.min_eigenvalue > 0 and res.refit_converged.all()
    err = res.rel_error
    # Measured: 0.13, 0.029, 8.1e-4, 9.4e-6, 9.6e-8.
    assert err[0] > 1e-2  # a non-quadratic loss: the prediction is off at large λ
    assert np.all(np.diff(err) < 0), err
    assert err[2] < 5e-3 and err[-1] < 1e-6, err
    # The prediction is (H + λI)⁻¹ H θ̂ with the dense torch.func Hessian at θ̂.
    X = torch.cat([b[0] for b in obj.batches])
    Y = torch.cat([b[1] for b in obj.batches])
    H = torch.func.hessian(flat_loss_fn(net, nn.functional.mse_loss, X, Y))(
        torch.tensor(theta_hat)).numpy()
    for i, lam in enumerate(lambdas):
        direct = np.linalg.solve(H + lam * np.eye(9), H @ theta_hat)
        np.testing.assert_allclose(res.predicted[i], direct, rtol=0, atol=1e-9)
    assert_same_state(net, before)


def test_linear_torch_model_matches_least_squares():
    """nn.Linear + MSE/2 is least squares: the torch path equals the closed-form one."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64)
    Y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 1.0 + 0.3 * torch.randn(
        40, 1, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    lin = nn.Linear(3, 1).double()

    def half_mse(out, y):
        return 0.5 * nn.functional.mse_loss(out, y)

    obj = TorchObjective(lin, half_mse, split(X, Y, (15, 15, 10)), unpenalized=("bias",))
    lams = [1e-3, 1e-1, 1.0]
    res = rl.analyze(obj, lams, polish=True)  # a random nn.Linear: polish it to the minimizer
    ls = rl.analyze(rl.LeastSquares(X.numpy(), Y.numpy()[:, 0]), lams)
    np.testing.assert_allclose(res.predicted, ls.predicted, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.refit, ls.predicted, rtol=0, atol=1e-8)
    assert np.all(res.rel_error < 1e-8)


@pytest.mark.parametrize("loss_fn", [nn.MSELoss(), nn.functional.l1_loss, nn.HuberLoss()])
def test_targets_that_broadcast_against_the_outputs_are_refused(loss_fn):
    """(n,) targets against (n, 1) outputs: torch's elementwise losses broadcast to an (n, n) loss (and only warn)."""
    torch.manual_seed(0)
    X = torch.randn(20, 3, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    net = nn.Linear(3, 1).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before torch's warning reaches the caller
        with pytest.raises(rl.DataError, match=r"outputs of shape \(20, 1\) against targets of shape \(20,\)"):
            TorchObjective(net, loss_fn, [(X, y)])
        obj = TorchObjective(net, loss_fn, [(X, y[:, None])])  # the targets shaped as the outputs: accepted
    with torch.no_grad():
        r = (net(X) - y[:, None]).numpy()[:, 0]
    ref = {"MSELoss": np.mean(r**2), "l1_loss": np.mean(np.abs(r)),
           "HuberLoss": np.mean(np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5))}
    assert obj.value(obj.theta0) == pytest.approx(ref[getattr(loss_fn, "__name__", type(loss_fn).__name__)], rel=1e-12)


def test_another_warning_made_an_error_is_not_reported_as_broadcasting():
    """Under the caller's simplefilter("error"), a model's own UserWarning is that warning, not a shape complaint."""

    class Noisy(nn.Linear):
        def forward(self, x):
            if torch.is_grad_enabled():  # the probe's evaluation, with the gradient
                warnings.warn("this layer is deprecated", stacklevel=2)
            return super().forward(x)

    X = torch.randn(20, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match=r"^this layer is deprecated$"):
            TorchObjective(Noisy(3, 1).double(), nn.MSELoss(), [(X, X[:, :1])])


def test_minimize_counts_the_hessian_vector_products_it_spends():
    """n_matvecs means one thing everywhere: trust-ncg's products are counted (independently, by wrapping
    the objective's hvp), L-BFGS spends none, and a polished θ̂ records its count in Analysis.polish."""
    torch.manual_seed(0)
    X = torch.randn(40, 3, dtype=torch.float64)
    y = (X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).to(torch.float64)[:, None]
    net = nn.Linear(3, 1).double()
    obj = TorchObjective(net, nn.BCEWithLogitsLoss(), [(X, y)])
    calls = []
    inner = obj.hvp
    obj.hvp = lambda theta, v: calls.append(1) or inner(theta, v)
    r = obj.minimize(0.1, method="trust-ncg")
    assert r.converged and r.n_matvecs == len(calls) > 0
    assert obj.minimize(0.1, method="lbfgs").n_matvecs == 0
    calls.clear()
    res = rl.analyze(obj, [0.1], polish=True, refit=False)
    assert res.polish["n_matvecs"] >= 1 and res.polish["method"] == "trust-ncg"
    assert res.polish["n_matvecs"] <= len(calls)  # the polish's products, among every hvp the analysis made


def test_float32_model_with_floating_buffers_is_analysed_in_float64():
    """dtype=float64 on a float32 model whose forward reads float buffers (eval-mode batch norm) and frozen
    parameters.

    Both are used in float64 too (they raised "expected scalar type Double but found Float",
    reported as a data error), and the caller's model stays float32.
    """
    X, Y = make_data()
    model = bn_model().float()
    with torch.no_grad():
        model[1].running_mean.copy_(torch.linspace(-0.5, 0.5, 6))
        model[1].running_var.copy_(torch.linspace(0.5, 2.0, 6))
    model.eval()
    model[0].requires_grad_(False)  # a frozen layer: not in θ, but in the forward, in float64 too
    obj = TorchObjective(model, nn.functional.mse_loss, split(X, Y), dtype=torch.float64)
    ref_model = bn_model()
    ref_model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    ref_model.eval()
    ref_model[0].requires_grad_(False)
    with torch.no_grad():
        ref = float(nn.functional.mse_loss(ref_model(X), Y))
    assert obj.value(obj.theta0) == pytest.approx(ref, rel=1e-13)
    f = flat_loss_fn(ref_model, nn.functional.mse_loss, X, Y)  # every parameter, the frozen layer's first
    H_ref = torch.func.hessian(f)(flat_params(ref_model)).numpy()
    frozen = sum(p.numel() for p in ref_model[0].parameters())
    H_ref = H_ref[frozen:, frozen:]
    assert H_ref.shape == (obj.n_params, obj.n_params)
    v = np.random.default_rng(3).normal(size=obj.n_params)
    np.testing.assert_allclose(obj.hvp(obj.theta0, v), H_ref @ v, rtol=0,
                               atol=1e-10 * np.abs(H_ref).max() * np.linalg.norm(v))
    assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize("dtype", ["float64", np.float64, torch.int64, torch.complex128])
def test_dtype_that_is_not_a_real_floating_torch_dtype_is_refused_by_name(dtype):
    X, Y = make_data()
    with pytest.raises(rl.RidgelensError, match="dtype must be a real floating torch dtype"):
        TorchObjective(bn_model().eval(), nn.functional.mse_loss, split(X, Y), dtype=dtype)


def test_unpenalized_pattern_that_matches_nothing_is_refused():
    """unpenalized=("bias",) (for "*.bias") matched no name and left every bias penalized, silently."""
    X, Y = make_data()
    with pytest.raises(PenaltyError, match=r"'bias' match no parameter; the names are 0\.weight, 0\.bias"):
        TorchObjective(bn_model().eval(), nn.functional.mse_loss, split(X, Y), unpenalized=("bias",))
    obj = TorchObjective(bn_model().eval(), nn.functional.mse_loss, split(X, Y), unpenalized="*.bias")  # one glob
    assert obj.penalized.sum() == 4 * 6 + 6 + 6 * 1  # the three weights: Linear, BatchNorm, Linear


def test_default_dtype_leaves_buffers_and_frozen_parameters_their_own():
    """Without dtype=, a float64 buffer in a float32 model is not rounded to float32 (only an explicit dtype
    converts buffers and frozen parameters): the objective's value is the model's own forward's."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)
            self.register_buffer("scale", torch.tensor(1 + 1e-9, dtype=torch.float64))

        def forward(self, x):
            return (self.lin(x).double() * self.scale).float()

    X, Y = make_data()
    model = Scaled()
    obj = TorchObjective(model, nn.functional.mse_loss, split(X.float(), Y.float()))
    assert obj.dtype == torch.float32 and obj._buffers["scale"].dtype == torch.float64
    with torch.no_grad():
        ref = float(nn.functional.mse_loss(model(X.float()), Y.float()))
    assert obj.value(obj.theta0) == pytest.approx(ref, rel=1e-6)


def test_a_subclass_whose_batch_loss_uses_the_flat_theta_gets_flat_products():
    """Recomputed products differentiate per-parameter views only for ridgelens' own batch_loss: a subclass that
    adds a term in θ as one tensor (flat.square()) still gets the flat θ, and its products equal dense ones."""
    class WithTerm(TorchObjective):
        def batch_loss(self, flat, x, y):
            return super().batch_loss(flat, x, y) + 1e-3 * flat.square().sum()

    X, Y = make_data()
    obj = WithTerm(bn_model().eval(), nn.functional.mse_loss, split(X, Y))
    assert not obj.takes_parameter_views
    assert TorchObjective(bn_model().eval(), nn.functional.mse_loss, split(X, Y)).takes_parameter_views
    theta = torch.from_numpy(obj.theta0)
    H = torch.func.hessian(lambda t: sum(obj.batch_losses(t)))(theta)
    v = torch.randn(obj.n_params, dtype=torch.float64)
    torch.testing.assert_close(rl.hessian(obj, obj.theta0, form="double-backward").matvec(v), H @ v,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", ["reuse", "double-backward"])
def test_a_loss_linear_in_theta_has_a_zero_hessian_not_an_error(form):
    """A subclass whose loss is linear in the flat θ (its gradient does not depend on θ): H = 0. The flat
    products raised ("does not require gradients", or "not used in the graph") for one vector and for blocks."""
    class Linear(TorchObjective):
        def batch_loss(self, flat, x, y):
            return flat.sum() * x.mean()

    X, Y = make_data()
    obj = Linear(make_mlp(), nn.functional.mse_loss, split(X, Y))
    theta = torch.from_numpy(obj.theta0)
    H = torch.func.hessian(lambda t: sum(obj.batch_losses(t)))(theta)
    assert float(H.abs().max()) == 0.0  # the reference: zero, computed by torch.func
    op = rl.hessian(obj, obj.theta0, form=form)
    V = torch.randn(obj.n_params, 3, dtype=torch.float64)
    torch.testing.assert_close(op @ V, H @ V, rtol=0, atol=0)
    torch.testing.assert_close(op @ V[:, 0], H @ V[:, 0], rtol=0, atol=0)


def test_the_ggn_refuses_a_batch_loss_of_its_own_and_auto_takes_the_hessian():
    """G is built from loss_fn(outputs): a subclass whose batch_loss adds a term got the G of another loss,
    silently. Now refused, naming both values; one whose batch_loss is the same loss is accepted, and
    --curvature auto does not pick a G that cannot see the loss."""
    from ridgelens.pipeline._curvature import choose_curvature

    class WithTerm(TorchObjective):
        def batch_loss(self, flat, x, y):
            return super().batch_loss(flat, x, y) + 1e-3 * flat.square().sum()

    class Same(TorchObjective):
        def batch_loss(self, flat, x, y):
            return super().batch_loss(flat, x, y)

    X, Y = make_data()
    obj = WithTerm(make_mlp(), nn.functional.mse_loss, split(X, Y))
    with pytest.raises(rl.RidgelensError, match=r"WithTerm.s batch_loss gives .* where loss_fn\(outputs\) gives"):
        rl.ggn(obj, obj.theta0)
    assert choose_curvature(obj, obj.theta0).name == "hessian"
    same = Same(make_mlp(), nn.functional.mse_loss, split(X, Y))
    plain = TorchObjective(make_mlp(), nn.functional.mse_loss, split(X, Y))
    v = np.random.default_rng(0).normal(size=same.n_params)
    np.testing.assert_allclose(rl.ggn(same, same.theta0).matvec(v), rl.ggn(plain, plain.theta0).matvec(v),
                               rtol=1e-12, atol=1e-14)


def test_the_ggn_check_takes_every_objective_that_is_its_loss_and_refuses_an_outputs_of_its_own():
    """loss_not_from_outputs (a review's findings): an objective with the GGN's protocol and no batch_loss was
    refused with an AttributeError; one that overrides outputs only (a temperature) passed, with a G 9x off; a
    model with tuple outputs made curvature='auto' raise; a float32 cross-entropy near 0 written as
    logsumexp - logit was called another loss."""
    import copy

    from ridgelens.operators._ggn import loss_not_from_outputs
    from ridgelens.pipeline._curvature import choose_curvature

    X, Y = make_data()
    inner = TorchObjective(make_mlp(), nn.functional.mse_loss, split(X, Y))

    class Duck:  # the GGN's protocol, delegated; no batch_loss
        def __getattr__(self, k):
            if k == "batch_loss":
                raise AttributeError(k)
            return getattr(inner, k)

    v = np.random.default_rng(0).normal(size=inner.n_params)
    np.testing.assert_array_equal(rl.ggn(Duck(), inner.theta0).matvec(v), rl.ggn(inner, inner.theta0).matvec(v))

    class Temperature(TorchObjective):
        def outputs(self, flat, x):
            return 3 * super().outputs(flat, x)

    with pytest.raises(rl.RidgelensError, match="Temperature's batch_loss gives"):
        rl.ggn(Temperature(make_mlp(), nn.functional.mse_loss, split(X, Y)), inner.theta0)

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_mlp()

        def forward(self, x):
            return self.net(x), x

    class Own(TorchObjective):
        def batch_loss(self, flat, x, y):
            return super().batch_loss(flat, x, y)

    pair = Own(Pair(), lambda o, y: nn.functional.mse_loss(o[0], y), split(X, Y))
    assert choose_curvature(pair, pair.theta0).name == "hessian"

    class Written(TorchObjective):  # cross-entropy by hand, in float32
        def batch_loss(self, flat, x, y):
            o = self.outputs(flat, x)
            return (torch.logsumexp(o, 1) - o.gather(1, y[:, None])[:, 0]).mean()

    torch.manual_seed(0)
    Xc = torch.randn(200, 5)
    yc = (Xc[:, 0] > 0).long()
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), 5e-2)
    for _ in range(600):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xc), yc).backward()
        opt.step()
    with torch.no_grad():
        net[2].weight.mul_(2.5)
        net[2].bias.mul_(2.5)
    obj = Written(copy.deepcopy(net), nn.functional.cross_entropy, [(Xc[:100], yc[:100]), (Xc[100:], yc[100:])])
    x0, y0 = next(iter(obj.prepared_batches(0, 1)))
    assert float(nn.functional.cross_entropy(net(x0), y0)) < 1e-6  # near 0: where float32 cancels
    assert loss_not_from_outputs(obj, obj.flat_tensor(obj.theta0), x0, y0) is None


def test_a_loss_linear_through_the_outputs_and_a_term_of_its_own_in_every_form():
    """(o·y).mean() of a linear model: its gradient has a graph that never reaches θ, and the flat double-backward
    product raised 'not used in the graph'. A subclass's own term in θ: forward-over-reverse differentiated
    loss_fn(outputs) and left it out (off by 2e-3·v); it now takes batch_loss, as the other forms do."""
    X, Y = make_data()

    class Linear(TorchObjective):
        def batch_loss(self, flat, x, y):
            return (self.outputs(flat, x) * y).mean()

    obj = Linear(nn.Linear(4, 1).double(), lambda o, y: (o * y).mean(), split(X, Y))
    V = torch.randn(obj.n_params, 3, dtype=torch.float64)
    for form in ("reuse", "double-backward"):
        op = rl.hessian(obj, obj.theta0, form=form)
        assert float((op @ V).abs().max()) == 0.0 and float((op @ V[:, 0]).abs().max()) == 0.0

    class WithTerm(TorchObjective):
        def batch_loss(self, flat, x, y):
            return super().batch_loss(flat, x, y) + 1e-3 * flat.square().sum()

    torch.manual_seed(0)  # cross-entropy: torch.func's jvp of grad fails on mse_loss in torch 2.13 (ZeroTensor)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    labels = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    obj = WithTerm(net, nn.functional.cross_entropy, split(X, labels))
    theta = torch.from_numpy(obj.theta0)
    H = torch.func.hessian(lambda t: sum(obj.batch_losses(t)))(theta)
    v = torch.randn(obj.n_params, dtype=torch.float64)
    torch.testing.assert_close(rl.hessian(obj, obj.theta0, form="fwd-over-rev") @ v, H @ v, rtol=1e-10, atol=1e-12)


def test_a_forward_that_updates_a_buffer_leaves_the_callers_model_alone():
    """'The caller's model is never changed': a forward that counts its calls in a buffer counted them in the
    caller's model, whose buffers the objective passed to functional_call. It keeps copies now."""
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1).double()
            self.register_buffer("calls", torch.zeros((), dtype=torch.float64))

        def forward(self, x):
            self.calls += 1
            return self.lin(x)

    X, Y = make_data()
    model = Counter().eval()
    obj = TorchObjective(model, nn.functional.mse_loss, split(X, Y))
    obj.value(obj.theta0)
    rl.hessian(obj, obj.theta0).matvec(np.ones(obj.n_params))
    assert float(model.calls) == 0 and float(obj._buffers["calls"]) > 0
