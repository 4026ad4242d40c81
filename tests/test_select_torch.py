"""select_lambda for a torch model: matrix-free (top-k + SLQ) evidence against the exact one.

Reference: the Gauss–Newton matrix of a small MLP formed here from its Jacobian (torch.func,
float64), its exact eigenvalues (numpy eigh), θ̃(λ) by a dense solve and the loss by hand —
none of it through ridgelens' analysis.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens.select import select_lambda, select_on_analysis

GRID = np.geomspace(1e-4, 1.0, 9)


@pytest.fixture(scope="module")
def mlp():
    """A 3→4→1 tanh MLP (21 parameters) trained to ‖∇R‖ < 1e-6 on 80 real diabetes rows."""
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:80, [2, 3, 8]], y[:80]
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    Xt, yt = torch.tensor(X), torch.tensor(y)[:, None]
    obj = rl.TorchObjective(net, lambda o, t: 0.5 * ((o - t) ** 2).sum(-1).mean(), [(Xt, yt)])
    theta = obj.minimize(method="lbfgs", max_iter=2000, tol=1e-10).theta
    assert np.linalg.norm(obj.gradient(theta)) < 1e-6
    return obj, theta, X, y


def _forward(theta, X):
    W1, b1, W2, b2 = theta[:12].reshape(4, 3), theta[12:16], theta[16:20].reshape(1, 4), theta[20:]
    return torch.tanh(X @ W1.T + b1) @ W2.T + b2


def exact_evidence(theta_hat, X, y, grid):
    """−log E/n by Laplace with the exact GGN spectrum: R(θ̃) + (λ/2)‖θ̃‖² − Σ log(λ/(σ+λ))/(2n).

    θ̃ = (G + λI)⁻¹Gθ̂: θ̂ is stationary to below ridgelens' grad_tol, which then drops ∇R(θ̂).
    """
    Xt = torch.tensor(X)
    J = torch.func.jacrev(lambda t: _forward(t, Xt).reshape(-1))(torch.tensor(theta_hat)).numpy()
    n = len(y)
    G = J.T @ J / n
    sigma = np.clip(np.linalg.eigvalsh(G), 0.0, None)
    crit = []
    for lam in grid:
        th = np.linalg.solve(G + lam * np.eye(G.shape[0]), G @ theta_hat)  # ‖∇R(θ̂)‖ < grad_tol
        loss = 0.5 * float(np.mean((_forward(torch.tensor(th), Xt).numpy() - y[:, None]) ** 2))
        crit.append(loss + 0.5 * lam * th @ th - np.log(lam / (sigma + lam)).sum() / (2 * n))
    return np.array(crit), np.sort(sigma)[::-1]


def test_matrix_free_evidence_is_the_exact_one_up_to_the_slq_rest(mlp):
    """Top-k exactly + the SLQ density for the other N − k eigenvalues, against exact eigh.

    Tolerance, per λ: the rest's log-det term ``Σ_{j>k} log(λ/(σⱼ+λ))/(2n)`` is the only
    estimated part (θ̃ and the top-k eigenvalues are exact to ~1e-10), and it is a Hutchinson
    estimate: with 16 Rademacher probes on a 17-dimensional rest its error was at most 19% of
    the term over seeds 0–9, so 35% of it is allowed (ignoring the rest, or counting the k-th
    eigenvalue in it, misses by 100%). Also the bound that holds for any probes: both the term
    and its estimate lie in [(N − k)·log(λ/(σ_k+λ))/(2n), 0].
    """
    obj, theta, X, y = mlp
    ref, sigma = exact_evidence(theta, X, y, GRID)
    k, n = 4, len(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # premises (tiny negative Ritz values), not the point here
        res = rl.analyze(obj, GRID, theta_hat=theta, method="matrix-free", k=k, curvature="ggn", refit=False,
                         n_probes=16, seed=0)
    sel = select_on_analysis(obj, res, "evidence")
    assert "top 4 eigenvalues exactly, the other 17 from the SLQ density" in sel.diagnostics["treatment"]
    gap = np.abs(sel.criterion - ref)
    rest = np.abs([np.log(lam / (sigma[k:] + lam)).sum() for lam in GRID]) / (2 * n)
    bound = (sigma.size - k) * np.abs(np.log(GRID / (sigma[k - 1] + GRID))) / (2 * n)
    assert np.all(gap <= 0.35 * rest) and np.all(gap <= bound)
    assert rest.min() > 1e-4  # the rest matters here: the test would see it ignored
    assert sel.lambda_ == GRID[int(np.argmin(ref))]


def test_dense_evidence_and_validation_of_a_torch_model(mlp):
    """Dense: the exact evidence to 1e-8; validation: the held-out loss of θ̃(λ) by hand."""
    obj, theta, X, y = mlp
    ref, _ = exact_evidence(theta, X, y, GRID)
    sel = select_lambda(obj, GRID, method="evidence", theta_hat=theta, options={"curvature": "ggn"})
    # Measured 1.8e-9 on one machine and 1.16e-8 on another (AMD EPYC), both at λ = 1e-4 and
    # falling as 1/λ: θ̂'s weights reach 2e4, L-BFGS stops at ‖∇R‖ 2.3e-7, and the reference drops
    # ∇R(θ̂). Without its log-det term it is off by 1.9e-2 to 0.39.
    np.testing.assert_allclose(sel.criterion, ref, rtol=1e-7)
    Xv, yv = load_diabetes(return_X_y=True)
    Xv, yv = Xv[80:120, [2, 3, 8]], yv[80:120]
    Xv, yv = (Xv - Xv.mean(0)) / Xv.std(0), (yv - yv.mean()) / yv.std()
    val = rl.TorchObjective(obj.model, obj.loss_fn, [(torch.tensor(Xv), torch.tensor(yv)[:, None])])
    sel = select_lambda(obj, GRID, method="validation", validation=val, theta_hat=theta,
                        options={"curvature": "ggn"})
    Xt = torch.tensor(Xv)
    res = rl.analyze(obj, GRID, theta_hat=theta, curvature="ggn", refit=False)
    by_hand = [0.5 * float(np.mean((_forward(torch.tensor(t), Xt).numpy() - yv[:, None]) ** 2))
               for t in res.path.thetas]
    np.testing.assert_allclose(sel.criterion, by_hand, rtol=1e-10)
    c = sel.diagnostics["confirm"]
    assert c["refit_converged"] and c["refit_loss"] > 0
