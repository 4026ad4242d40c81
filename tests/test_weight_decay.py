"""Optimizers' weight decay: D from a saved torch.optim state, the bad states, and a run of the real optimizer."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from ridgelens.errors import OptimizerStateError
from ridgelens.penalty import WEIGHT_DECAY_TABLE, load_optimizer_state, optimizer_penalty
from ridgelens.pipeline import analyze_weight_decay, optimizer_refit


@pytest.fixture(scope="module")
def linear():
    """A linear model with the squared loss (quadratic R), θ̂, and an AdamW state warmed at θ̂."""
    torch.manual_seed(0)
    n, p = 256, 6
    X = torch.randn(n, p, dtype=torch.float64) * torch.linspace(0.3, 3, p, dtype=torch.float64)
    Y = X @ torch.randn(p, 1, dtype=torch.float64) + 0.5 * torch.randn(n, 1, dtype=torch.float64)
    net = torch.nn.Linear(p, 1).double()
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)])
    theta = obj.minimize().theta
    warm = optimizer_refit(obj, theta, 0.0, "adamw", lr=1e-3, epochs=10, batch_size=32, seed=1)
    return obj, theta, warm["state"]


def test_adamw_factors_follow_torch_update_rule(linear):
    obj, _, state = linear
    pm = optimizer_penalty(obj, "adamw", state)
    group = state["param_groups"][0]
    beta2, eps = group["betas"][1], group["eps"]
    expect = []
    for pid in group["params"]:  # √(v / (1 − β₂^step)) + ε, in the model's order
        st = state["state"][pid]
        v = st["exp_avg_sq"].double().reshape(-1).numpy()
        expect.append(np.sqrt(v / (1 - beta2 ** float(st["step"]))) + eps)
    np.testing.assert_allclose(pm.factors, np.concatenate(expect), rtol=1e-14)
    assert pm.source == "optimizer-state" and "Xie & Li" in pm.detail["regime"]
    # The fixed point of torch's AdamW step with v̂ frozen: θ = (1 − lrλ)θ − lr·∇R/(√v̂+ε) ⇔ ∇R + λDθ = 0.
    lam, lr = 0.5, 1e-3
    obj.set_penalty(pm)
    try:
        t = obj.minimize(lam).theta
    finally:
        obj.set_penalty(None)
    step = (1 - lr * lam) * t - lr * obj.gradient(t) / pm.factors
    np.testing.assert_allclose(step, t, atol=1e-12)


def test_sgd_and_adam_are_plain_l2(linear):
    obj, _, _ = linear
    for opt in ("sgd", "adam"):
        np.testing.assert_array_equal(optimizer_penalty(obj, opt).factors, np.ones(obj.n_params))
        assert WEIGHT_DECAY_TABLE[opt]["D"].startswith("I")


def test_real_adamw_is_closer_to_the_adamw_prediction(linear):
    """A small λ (v̂ barely moves): AdamW settles where (H + λD)⁻¹Hθ̂ says, not where plain L2 says."""
    obj, theta, state = linear
    lam = 0.3
    res = analyze_weight_decay(obj, [lam], "adamw", optimizer_state=state, theta_hat=theta, refit=False)
    l2 = rl.analyze(obj, [lam], theta_hat=theta, refit=False)
    run = optimizer_refit(obj, theta, lam, "adamw", optimizer_state=state, lr=1e-3, epochs=40, batch_size=32)
    shift = np.linalg.norm(run["theta"] - theta)
    err_aw = np.linalg.norm(res.predicted[0] - run["theta"]) / shift
    err_l2 = np.linalg.norm(l2.predicted[0] - run["theta"]) / shift
    assert err_aw < 0.5 and err_aw < err_l2 / 5, (err_aw, err_l2)
    assert res.conventions["weight_decay"]["optimizer"] == "adamw"
    assert res.penalty["detail"]["optimizer"] == "adamw"
    # and SGD's weight decay settles at the L2 prediction
    sgd = optimizer_refit(obj, theta, lam, "sgd", lr=0.01, momentum=0.0, epochs=40, batch_size=32)
    assert np.linalg.norm(l2.predicted[0] - sgd["theta"]) / np.linalg.norm(sgd["theta"] - theta) < 0.1


def test_bad_states(linear, tmp_path):
    obj, _, state = linear
    other = torch.nn.Linear(4, 1).double()
    bad = torch.optim.AdamW(other.named_parameters())
    other(torch.randn(3, 4, dtype=torch.float64)).sum().backward()
    bad.step()
    with pytest.raises(OptimizerStateError, match=r"weight has shape \(1, 4\) but the model's weight has shape \(1, 6\)"):
        optimizer_penalty(obj, "adamw", bad.state_dict())
    adam = torch.optim.Adam(obj.model.named_parameters())
    with pytest.raises(OptimizerStateError, match="of adam, not adamw"):
        optimizer_penalty(obj, "adamw", adam.state_dict())
    sgd = torch.optim.SGD(obj.model.named_parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(OptimizerStateError, match="of sgd, not adamw"):
        optimizer_penalty(obj, "adamw", sgd.state_dict())
    fresh = torch.optim.AdamW(obj.model.named_parameters())  # never stepped: no exp_avg_sq
    with pytest.raises(OptimizerStateError, match="no exp_avg_sq for weight"):
        optimizer_penalty(obj, "adamw", fresh.state_dict())
    with pytest.raises(OptimizerStateError, match="needs the optimizer's state"):
        optimizer_penalty(obj, "adamw")
    f = tmp_path / "state.pt"
    torch.save(state, f)
    np.testing.assert_array_equal(optimizer_penalty(obj, "adamw", load_optimizer_state(f)).factors,
                                  optimizer_penalty(obj, "adamw", state).factors)
    f.write_bytes(b"not a torch file")
    with pytest.raises(OptimizerStateError, match="weights_only=True"):
        load_optimizer_state(f)
    torch.save(obj.model.state_dict(), f)
    with pytest.raises(OptimizerStateError, match="a model's state_dict"):
        load_optimizer_state(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert optimizer_penalty(obj, "adamw", state).factors.min() > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_param_groups_in_another_order_are_refused_or_matched_by_name(optimizer):
    """The usual recipe, weights with decay and biases without, lists the parameters group by group: matched by
    position to named_parameters(), Adam's and SGD's group factors landed on the wrong parameters, silently.
    Matched by position, the moments' shapes now refuse it; built from named_parameters(), the state names its
    parameters and every factor lands where it belongs."""
    torch.manual_seed(0)
    F = torch.nn.functional
    X, Y = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    obj = rl.TorchObjective(net, F.mse_loss, [(X, Y)])
    cls, extra = {"sgd": (torch.optim.SGD, {"momentum": 0.9}), "adam": (torch.optim.Adam, {}),
                  "adamw": (torch.optim.AdamW, {})}[optimizer]

    def stepped(named):
        pick = (lambda n, p: (n, p)) if named else (lambda n, p: p)
        groups = [{"params": [pick(n, p) for n, p in net.named_parameters() if n.endswith(end)], "weight_decay": wd}
                  for end, wd in (("weight", 0.1), ("bias", 0.0))]
        opt = cls(groups, lr=1e-2, **extra)
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(net(X), Y).backward()
            opt.step()
        return opt.state_dict()

    with pytest.raises(OptimizerStateError, match=r"another order \(param groups\?\).*named_parameters\(\)"):
        optimizer_penalty(obj, optimizer, stepped(named=False))
    d = optimizer_penalty(obj, optimizer, stepped(named=True)).factors
    names, sizes = obj.param_blocks()
    for name, block in zip(names, np.split(d, np.cumsum(sizes)[:-1]), strict=True):
        assert (block > 0).all() if name.endswith("weight") else not block.any(), (name, block)
    # No moments to tell the order by (SGD without momentum) and different decays: refused, not guessed.
    if optimizer == "sgd":
        extra = {}
        with pytest.raises(OptimizerStateError, match="cannot be told"):
            optimizer_penalty(obj, "sgd", stepped(named=False))


def test_param_groups_that_swap_parameters_of_one_shape_are_refused():
    """Two layers of one shape in groups of different decays, listed decayed-first: the moments' shapes cannot
    tell the order, and matched by position the factors were swapped, silently. Refused; groups of one decay,
    or of different decays whose parameters' shapes tell them apart, stay accepted."""
    torch.manual_seed(1)
    F = torch.nn.functional
    X, Y = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 4, dtype=torch.float64)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(4, 4, bias=False)).double()
    obj = rl.TorchObjective(net, F.mse_loss, [(X, Y)])

    def state(decays):
        opt = torch.optim.SGD([{"params": [net[2].weight], "weight_decay": decays[0]},
                               {"params": [net[0].weight], "weight_decay": decays[1]}], lr=1e-2, momentum=0.9)
        opt.zero_grad()
        F.mse_loss(net(X), Y).backward()
        opt.step()
        return opt.state_dict()

    with pytest.raises(OptimizerStateError, match=r"among parameters of shape \(4, 4\).*cannot be told"):
        optimizer_penalty(obj, "sgd", state((0.1, 0.0)))
    assert (optimizer_penalty(obj, "sgd", state((0.1, 0.1))).factors == 1).all()
