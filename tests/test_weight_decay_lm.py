"""AdamW's weight decay on a language model: the prediction path runs on an LMObjective and its D is the state's."""

import warnings

import numpy as np
import torch

import ridgelens as rl
from ridgelens.lm import ByteTransformer, LMConfig, stdlib_split
from ridgelens.objectives.lm import LMObjective
from ridgelens.penalty import optimizer_penalty
from ridgelens.pipeline import analyze_weight_decay, optimizer_refit


def test_adamw_prediction_runs_on_a_language_model():
    torch.manual_seed(0)
    net = ByteTransformer(LMConfig(layers=1, width=4, heads=1, context=4)).double()
    obj = LMObjective(net, stdlib_split(4, 64).train, dtype=torch.float64)
    warm = optimizer_refit(obj, obj.theta0, 0.0, "adamw", lr=3e-3, epochs=3, batch_size=4)
    state = warm["state"]
    assert warm["steps"] == 12 and np.isfinite(warm["final_loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.RidgelensWarning)  # θ̂ is not stationary: the first-order term is kept
        res = analyze_weight_decay(obj, [1e-2, 1e-1], "adamw", optimizer_state=state, refit=False,
                                   method="matrix-free", curvature="ggn", k=2, n_probes=2, slq_steps=6)
    # D is √(exp_avg_sq / (1 − β₂^step)) + ε, parameter by parameter in the model's order.
    group = state["param_groups"][0]
    beta2, eps = group["betas"][1], group["eps"]
    expect = np.concatenate([np.sqrt(state["state"][pid]["exp_avg_sq"].reshape(-1).numpy()
                                     / (1 - beta2 ** float(state["state"][pid]["step"]))) + eps
                             for pid in group["params"]])
    assert list(group["param_names"]) == [n for n, _ in net.named_parameters()]
    np.testing.assert_allclose(optimizer_penalty(obj, "adamw", state).factors, expect, rtol=1e-12)
    assert res.conventions["weight_decay"]["optimizer"] == "adamw"
    th = res.path.thetas
    assert th.shape == (2, obj.n_params) and np.all(np.isfinite(th))
    # The path solves, with that D, (G + λD)θ̃ = Gθ̂ − g: check the residual with the GGN applied independently.
    G = rl.ggn(obj, obj.theta0)
    g = obj.gradient(obj.theta0)
    rhs = G.matvec(obj.theta0) - g
    for lam, t in zip([1e-2, 1e-1], th, strict=True):
        r = G.matvec(t) + lam * expect * t - rhs
        assert np.linalg.norm(r) <= 1e-5 * np.linalg.norm(rhs)
