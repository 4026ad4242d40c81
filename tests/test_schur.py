"""The matrix-free Schur complement against dense float64 references (unpenalized biases, intercepts)."""

import numpy as np
import pytest
import torch

import ridgelens as rl

# At the test MLP's θ̂, S has a few small negative eigenvalues: warned about, and expected here.
NEGATIVE_S = pytest.mark.filterwarnings("ignore::ridgelens.NegativeCurvatureWarning")


def dense_schur(H, mask):
    p, u = mask, ~mask
    return H[np.ix_(p, p)] - H[np.ix_(p, u)] @ np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, p)])


def reference_path(H, theta, lam, mask, g=None):
    """θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g) by one dense solve per λ."""
    b = H @ theta - (0.0 if g is None else g)
    P = np.diag(mask.astype(float))
    return np.array([np.linalg.solve(H + lam_i * P, b) for lam_i in lam])


@pytest.fixture(scope="module")
def mlp():
    """A tanh MLP (123 parameters, its 15 biases left unpenalized) part-way to its minimum.

    S has a few small negative eigenvalues there (about −0.009), so the λ used stay above that.
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)).double()
    X = torch.randn(200, 6, dtype=torch.float64)
    y = torch.tanh(X @ torch.randn(6, 3, dtype=torch.float64)) + 0.1 * torch.randn(200, 3, dtype=torch.float64)
    batches = [(X[:128], y[:128]), (X[128:], y[128:])]
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, batches, unpenalized=["*.bias"])
    theta = obj.minimize(method="lbfgs", max_iter=60, tol=1e-10).theta
    H = rl.hessian(obj, theta).to_dense()  # n exact HVPs: the reference, independent of the Schur code
    mask = obj.penalized
    assert (~mask).sum() == 15 and np.linalg.eigvalsh(H[np.ix_(~mask, ~mask)]).min() > 0
    return obj, theta, H, mask


def test_schur_operator_products_match_dense(mlp):
    obj, theta, H, mask = mlp
    S = rl.SchurComplementOperator(rl.hessian(obj, theta), mask)
    assert S.shape == (mask.sum(), mask.sum()) and S.torch_dtype == torch.float64 and S.inner_tol == 1e-10
    v = np.random.default_rng(0).normal(size=S.n)
    Sv, y = S.matvec_with_solve(torch.from_numpy(v))
    ref = dense_schur(H, mask)
    np.testing.assert_allclose(Sv.numpy(), ref @ v, rtol=0, atol=1e-9 * np.linalg.norm(ref @ v))
    Huu, Hup = H[np.ix_(~mask, ~mask)], H[np.ix_(~mask, mask)]
    np.testing.assert_allclose(y.numpy(), np.linalg.solve(Huu, Hup @ v), rtol=0,
                               atol=1e-8 * np.linalg.norm(np.linalg.solve(Huu, Hup @ v)))
    # Every HVP is counted: one outer product plus one per inner CG iteration.
    assert S.n_products == 1 and S.n_matvecs == 1 + S.inner_iterations[0] and S.base.n_matvecs == S.n_matvecs
    before = S.n_matvecs
    S.matvec(v)  # the NumPy view counts HVPs too, not products
    assert S.n_matvecs - before == 1 + S.inner_iterations[1]


@NEGATIVE_S
def test_schur_path_matches_dense_path_for_every_lambda(mlp):
    obj, theta, H, mask = mlp
    lam = np.geomspace(0.02, 2.0, 6)  # above |σ_min(S)|: a minimizer exists for each
    ref = reference_path(H, theta, lam, mask)
    dense = rl.ridge_path(H, theta, lam, penalized=mask, method="dense")
    op = rl.hessian(obj, theta)
    k = rl.ridge_path(op, theta, lam, penalized=mask, method="krylov", tol=1e-10)
    assert k.method == "krylov" and k.curvature == dense.curvature == "schur-complement"
    assert k.valid.all() and k.converged.all() and (k.residuals <= 1e-10).all()
    for i in range(lam.size):  # every λ, the unpenalized coordinates included
        np.testing.assert_allclose(k.thetas[i], ref[i], rtol=0, atol=1e-6 * np.abs(ref[i]).max())
        np.testing.assert_allclose(k.thetas[i, ~mask], dense.thetas[i, ~mask], rtol=0,
                                   atol=1e-6 * np.abs(dense.thetas[i, ~mask]).max())
    assert k.n_matvecs == op.n_matvecs  # every HVP, the inner CG ones included


@NEGATIVE_S
def test_schur_path_with_gradient_term(mlp):
    obj, theta, H, mask = mlp
    g = obj.gradient(theta)  # θ̂ is not quite stationary: keep the first-order term
    lam = np.array([0.05, 0.5])
    ref = reference_path(H, theta, lam, mask, g)
    k = rl.ridge_path(rl.hessian(obj, theta), theta, lam, penalized=mask, gradient=g, method="krylov", tol=1e-10)
    d = rl.ridge_path(H, theta, lam, penalized=mask, gradient=g, method="dense")
    assert k.gradient_used and k.converged.all()
    np.testing.assert_allclose(k.thetas, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(d.thetas, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_least_squares_intercept_krylov_matches_dense():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 12)) + 3.0  # off-centre features: the intercept couples to every weight
    y = X @ rng.normal(size=12) + rng.normal(size=80)
    obj = rl.LeastSquares(X, y)
    mask = obj.penalized
    assert not mask.all()
    theta = obj.minimize().theta + 0.01 * rng.normal(size=obj.n_params)  # off θ̂: exercise g
    g = obj.gradient(theta)
    op = rl.hessian(obj, theta)
    H = op.to_dense()
    lam = np.array([0.0, 1e-3, 0.1, 10.0])
    k = rl.ridge_path(op, theta, lam, penalized=mask, gradient=g, method="krylov", tol=1e-11)
    d = rl.ridge_path(op, theta, lam, penalized=mask, gradient=g, method="dense")
    ref = reference_path(H, theta, lam, mask, g)
    np.testing.assert_allclose(k.thetas, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(k.thetas, d.thetas, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    # The eigen view of S, with a size check on the low-rank spectrum.
    S = rl.SchurComplementOperator(op, mask)
    spec = rl.eigen(S, 3, method="lanczos", tol=1e-10)
    k2 = rl.ridge_path(op, theta, lam, penalized=mask, method="krylov", low_rank=spec)
    Q = d.eigenvectors[:, :3]
    np.testing.assert_allclose(k2.factors[1:], d.factors[1:, :3], rtol=1e-8)
    np.testing.assert_allclose(k2.outside_share, np.linalg.norm(theta[mask] - Q @ (Q.T @ theta[mask]))
                               / np.linalg.norm(theta[mask]), rtol=1e-6)
    with pytest.raises(rl.RidgelensError, match=r"low_rank must be a Spectrum .*\(n = 12\), got n = 13.*SchurComplementOperator"):
        rl.ridge_path(op, theta, lam, penalized=mask, method="krylov", low_rank=rl.eigen(H, 3))


def test_eigen_of_schur_operator_matches_dense_schur(mlp):
    obj, theta, H, mask = mlp
    w = np.linalg.eigvalsh(dense_schur(H, mask))[::-1]
    S = rl.SchurComplementOperator(rl.hessian(obj, theta), mask)
    s = rl.eigen(S, 6, method="lanczos", tol=1e-9)
    assert s.converged.all() and s.n == mask.sum()
    np.testing.assert_allclose(s.eigenvalues, w[:6], rtol=1e-6)


def test_indefinite_free_block_is_a_clear_error():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(8, 8))
    H = A @ A.T / 8
    H[6:, 6:] = np.diag([1.0, -1.0])  # H_uu indefinite
    mask = np.r_[np.ones(6, bool), np.zeros(2, bool)]
    S = rl.SchurComplementOperator(H, mask)
    with pytest.raises(rl.RidgelensError, match=r"H_uu .* is not positive definite.*Gauss-Newton"):
        S.matvec(np.ones(6))
    with pytest.raises(rl.RidgelensError, match="not positive definite"):
        rl.ridge_path(rl.DenseOperator(H), np.ones(8), [0.1], penalized=mask, method="krylov")
    H[6:, 6:] = np.diag([1.0, 1e-9])  # positive definite, but one CG iteration cannot solve a 2×2 system
    slow = rl.SchurComplementOperator(H, mask, inner_max_iter=1)
    with pytest.raises(rl.RidgelensError, match=r"did not converge.*inner_max_iter"):
        slow.matvec(np.ones(6))


def test_float32_model_gets_a_float32_schur_operator(mlp):
    obj, theta, H, mask = mlp
    net32 = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))
    obj32 = rl.TorchObjective(net32, torch.nn.functional.mse_loss, [(x.float(), y.float()) for x, y in obj.batches],
                              unpenalized=["*.bias"])
    S = rl.SchurComplementOperator(rl.hessian(obj32, theta), mask)
    assert S.torch_dtype == torch.float32 and 1e-6 < S.inner_tol < 1e-4
    v = np.random.default_rng(3).normal(size=S.n)
    sv = S.matvec_tensor(torch.tensor(v, dtype=torch.float32))
    assert sv.dtype == torch.float32
    ref = dense_schur(H, mask) @ v
    np.testing.assert_allclose(sv.double().numpy(), ref, atol=1e-3 * np.linalg.norm(ref))


def test_analyze_matrix_free_with_unpenalized_biases_agrees_with_dense(mlp):
    obj, theta, _H, mask = mlp
    lam = [0.05, 0.2, 1.0]
    with pytest.warns(rl.RidgelensWarning):  # θ̂ is not quite stationary (and S has a small negative σ)
        dense = rl.analyze(obj, lam, theta_hat=theta, refit=False, method="dense")
        free = rl.analyze(obj, lam, theta_hat=theta, refit=False, method="matrix-free", k=4, path_tol=1e-10,
                          eig_tol=1e-9, n_probes=2, slq_steps=15)
    assert free.method == "matrix-free" and free.path.curvature == dense.path.curvature == "schur-complement"
    assert free.path.gradient_used and dense.path.gradient_used
    np.testing.assert_allclose(free.predicted, dense.predicted, rtol=0, atol=1e-6 * np.abs(dense.predicted).max())
    # The spectrum is of S (penalized coordinates), and every HVP is accounted for.
    assert free.spectrum.n == mask.sum()
    np.testing.assert_allclose(free.spectrum.eigenvalues, dense.path.eigenvalues[:4], rtol=1e-6)
    assert free.density.n == mask.sum()
    assert free.n_matvecs == free.spectrum.n_matvecs + free.density.n_matvecs + free.path.n_matvecs
    assert free.to_dict()["curvature"] == "schur-complement"


def test_schur_path_resumes_from_checkpoint(tmp_path):
    rng = np.random.default_rng(4)
    A = rng.normal(size=(60, 60))
    H = A @ A.T / 60 + 0.05 * np.eye(60)
    mask = np.ones(60, bool)
    mask[::7] = False
    theta, lam = rng.normal(size=60), np.array([1e-3, 1e-2, 1e-1])
    ref = rl.ridge_path(H, theta, lam, penalized=mask, method="krylov", tol=1e-10)

    class Dies(rl.CurvatureOperator):  # H, until the product budget runs out mid-path
        def __init__(self, budget):
            super().__init__(60)
            self.budget = budget

        def _matvec(self, v):
            if self.n_matvecs > self.budget:
                raise KeyboardInterrupt
            return H @ v

    with pytest.raises(KeyboardInterrupt):
        rl.ridge_path(Dies(300), theta, lam, penalized=mask, method="krylov", tol=1e-10, checkpoint=tmp_path)
    assert (tmp_path / "krylov_schur_path.pt").exists()
    again = Dies(10**9)
    got = rl.ridge_path(again, theta, lam, penalized=mask, method="krylov", tol=1e-10, checkpoint=tmp_path)
    np.testing.assert_allclose(got.thetas, ref.thetas, rtol=1e-12, atol=1e-12)
    assert got.n_matvecs == ref.n_matvecs and again.n_matvecs < ref.n_matvecs  # resumed, not restarted
