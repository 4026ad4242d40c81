"""AdamW's weight decay on a language model: the prediction path runs on an LMObjective and its D is the state's."""

import warnings

import numpy as np
import torch

import ridgelens as rl
from ridgelens.lm import ByteTransformer, LMConfig, stdlib_split
from ridgelens.objectives.lm import LMObjective
from ridgelens.penalty import optimizer_penalty
from ridgelens.pipeline import analyze_weight_decay, optimizer_fixed_point, optimizer_refit


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
                                   k=2, n_probes=2, slq_steps=6)
    # The auto choices for an LM of 2,316 parameters away from a minimum: matrix-free, and the GGN because a
    # short Lanczos run found a negative Ritz value of H (checked below: a Rayleigh quotient of H is < 0).
    assert res.method == "matrix-free" and res.curvature_kind == "ggn"
    assert "indefinite" in res.choices["curvature"] and "analysis=matrix-free" in res.choices["analysis"]
    v = rl.eigen(rl.hessian(obj, obj.theta0), 1, which="smallest", tol=1e-2, method="lanczos").eigenvectors[:, 0]
    v, e, t0 = v.numpy(), 1e-3, obj.theta0
    assert obj.value(t0 + e * v) - 2 * obj.value(t0) + obj.value(t0 - e * v) < 0  # vᵀHv < 0 by finite differences
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


def _tiny_gpt2():
    import transformers

    cfg = transformers.GPT2Config(vocab_size=256, n_positions=16, n_embd=8, n_layer=1, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


class _LossOnly(torch.nn.Module):
    """A causal LM whose forward returns only a loss (given labels), as some wrappers do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, labels=None):
        return {"loss": self.inner(input_ids=input_ids, labels=labels).loss} if labels is not None else {}


def test_optimizer_refit_steps_a_hugging_face_model_as_torch_optim_does():
    """The refit goes through the objective's own loss (an output object here), step for step as a plain loop."""
    model = _tiny_gpt2()
    windows = stdlib_split(8, 64).train
    obj = LMObjective(model, windows, dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    lam, lr, bs, epochs = 0.1, 1e-2, 3, 2
    run = optimizer_refit(obj, obj.theta0, lam, "adamw", lr=lr, batch_size=bs, epochs=epochs, average_last=1e-9)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))  # the caller's model
    # The reference: torch.optim.AdamW on a float64 copy, the same minibatches, HF's logits and cross-entropy.
    ref = _tiny_gpt2().double()
    opt = torch.optim.AdamW(ref.parameters(), lr=lr, weight_decay=lam)
    X, Y = windows[:, :-1], windows[:, 1:]
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), bs):
            idx = perm[i:i + bs]
            logits = ref(input_ids=X[idx], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), Y[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    expect = torch.cat([p.detach().reshape(-1) for p in ref.parameters()]).numpy()
    assert run["steps"] == epochs * -(-len(X) // bs)
    np.testing.assert_allclose(run["theta"], expect, rtol=0, atol=1e-10 * np.abs(expect).max())
    # A wrapper whose forward returns only the loss refits the same way (transformers' loss is float32-level).
    loss_only = LMObjective(_LossOnly(model), windows, dtype=torch.float64)
    other = optimizer_refit(loss_only, loss_only.theta0, lam, "adamw", lr=lr, batch_size=bs, epochs=epochs,
                            average_last=1e-9)
    moved = np.linalg.norm(expect - obj.theta0)
    assert np.linalg.norm(other["theta"] - expect) <= 1e-3 * moved


class _TanhBigram(torch.nn.Module):
    """A tiny next-byte model without LayerNorm (embedding → tanh → logits): R has no scale symmetry, so the
    frozen-v̂ fixed point is a proper local minimum (a ByteTransformer's residual stream feeds only LayerNorms,
    whose ε alone bounds the decay there; see docs/weight_decay.md)."""

    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(256, 4)
        self.head = torch.nn.Linear(4, 256)

    def forward(self, idx):
        return self.head(torch.tanh(self.tok(idx)))


def test_adamw_fixed_point_is_where_frozen_v_adamw_converges():
    """optimizer_fixed_point solves ∇R + λDθ = 0, and full-batch AdamW without momentum, v̂ frozen, lands on it."""
    torch.manual_seed(0)
    obj = LMObjective(_TanhBigram().double(), stdlib_split(4, 64).train, dtype=torch.float64)
    theta_hat = optimizer_refit(obj, obj.theta0, 0.0, "adamw", lr=3e-2, epochs=20, batch_size=4,
                                average_last=1e-9)["theta"]
    state = optimizer_refit(obj, theta_hat, 0.0, "adamw", lr=3e-3, epochs=2, batch_size=4)["state"]
    D = optimizer_penalty(obj, "adamw", state).factors
    lam = 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.RidgelensWarning)  # θ̂ is not stationary: the first-order term is kept
        start = rl.predict(obj, [lam], "adamw", optimizer_state=state, theta_hat=theta_hat).thetas[0]
    fp = optimizer_fixed_point(obj, lam, "adamw", optimizer_state=state, x0=start)
    assert obj.penalty is None  # the caller's objective keeps its own penalty
    theta = fp.theta
    assert fp.converged and fp.method == "trust-ncg"
    pull = lam * D * theta
    assert np.linalg.norm(obj.gradient(theta) + pull) <= 1e-8 * np.linalg.norm(pull)
    move = np.linalg.norm(theta - theta_hat)
    assert move > 0.3 * np.linalg.norm(theta_hat)  # a real move, not θ̂ or the start kept
    # The reference: θ ← θ − lr·(∇R(θ)/(√v̂ + ε) + λθ) from θ̂, full batch, which is torch's AdamW step with v̂
    # frozen and no momentum (β₁ = 0), at a step size below 2 / the largest eigenvalue of D^-1/2 (H + λD) D^-1/2.
    top = rl.eigen(rl.hessian(obj, theta_hat).sandwich(D ** -0.5), 1, tol=1e-3).eigenvalues[0]
    lr, x = 1.0 / (float(top) + lam), theta_hat.copy()
    for _ in range(400):
        x = x - lr * (obj.gradient(x) / D + lam * x)
    np.testing.assert_allclose(x, theta, rtol=0, atol=1e-6 * move)
