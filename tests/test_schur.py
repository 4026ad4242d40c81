"""The matrix-free Schur complement against dense float64 references (unpenalized biases, intercepts)."""

import numpy as np
import pytest
import torch

import ridgelens as rl
from ridgelens import _auto
from ridgelens.operators import _schur
from ridgelens.ridge._krylov import krylov_schur_path

# The inner modes of SchurComplementOperator: CG on H_uu, and H_uu formed and factored once
# (with H_pu kept, so each product with S is 1 HVP, or without it, 2 HVPs).
MODES = [pytest.param({"inner": "cg"}, id="cg"),
         pytest.param({"inner": "dense", "store_coupling": True}, id="dense"),
         pytest.param({"inner": "dense", "store_coupling": False}, id="dense-2hvp")]

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


def hvps_of_last_product(S):
    """HVPs one product with S costs after setup: 1 + CG iterations, or 1 (H_pu kept) / 2 in dense mode."""
    return 1 + S.inner_iterations[-1] if S.inner == "cg" else 1 + (not S.store_coupling)


@pytest.mark.parametrize("mode", MODES)
def test_schur_operator_products_match_dense(mlp, mode):
    obj, theta, H, mask = mlp
    S = rl.SchurComplementOperator(rl.hessian(obj, theta), mask, **mode)
    assert S.shape == (mask.sum(), mask.sum()) and S.torch_dtype == torch.float64 and S.inner_tol == 1e-10
    assert S.inner == mode["inner"] and S.store_coupling == mode.get("store_coupling", False)
    v = np.random.default_rng(0).normal(size=S.n)
    Sv, y = S.matvec_with_solve(torch.from_numpy(v))
    ref = dense_schur(H, mask)
    np.testing.assert_allclose(Sv.numpy(), ref @ v, rtol=0, atol=1e-9 * np.linalg.norm(ref @ v))
    Huu, Hup = H[np.ix_(~mask, ~mask)], H[np.ix_(~mask, mask)]
    np.testing.assert_allclose(y.numpy(), np.linalg.solve(Huu, Hup @ v), rtol=0,
                               atol=1e-8 * np.linalg.norm(np.linalg.solve(Huu, Hup @ v)))
    # Every HVP is counted: the #u that formed H_uu (dense mode), then those of the product.
    assert S.n_setup_matvecs == (S.n_free if S.inner == "dense" else 0) and (S.inner == "cg") == bool(S.inner_iterations)
    assert S.n_products == 1 and S.n_hvps == S.n_setup_matvecs + hvps_of_last_product(S)
    assert S.base.n_matvecs == S.n_hvps
    if S.inner == "dense":
        np.testing.assert_allclose(S.free_eigenvalues, np.linalg.eigvalsh(Huu)[[0, -1]], rtol=1e-10)
    before = S.n_hvps
    S.matvec(v)  # the NumPy view: one more product, its HVPs counted in n_hvps; H_uu is not formed again
    assert S.n_hvps - before == hvps_of_last_product(S)


def test_inner_mode_choice(mlp, monkeypatch):
    obj, theta, _H, mask = mlp
    op = rl.hessian(obj, theta)
    S = rl.SchurComplementOperator(op, mask)  # 15 free parameters: dense, H_pu (108 × 15) kept
    assert (S.inner, S.store_coupling, S.n_hvps) == ("dense", True, 0)  # formed at the first product
    monkeypatch.setattr(_schur, "COUPLING_MAX_BYTES", 108 * 15 * 8 - 1)
    assert rl.SchurComplementOperator(op, mask).store_coupling is False
    monkeypatch.setattr(_auto, "DENSE_FREE_MAX", 14)
    S = rl.SchurComplementOperator(op, mask)
    assert (S.inner, S.store_coupling) == ("cg", False)
    assert rl.SchurComplementOperator(op, mask, inner="dense").inner == "dense"
    with pytest.raises(rl.RidgelensError, match="inner must be one of"):
        rl.SchurComplementOperator(op, mask, inner="cholesky")
    with pytest.raises(rl.RidgelensError, match="store_coupling=True needs inner='dense'"):
        rl.SchurComplementOperator(op, mask, inner="cg", store_coupling=True)


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
def test_ridge_path_on_a_schur_operator_reuses_its_factored_free_block(mlp):
    obj, theta, H, mask = mlp
    lam = np.geomspace(0.02, 2.0, 4)
    op = rl.hessian(obj, theta)
    S = rl.SchurComplementOperator(op, mask, inner="dense")
    rl.eigen(S, 3, method="lanczos")  # forms and factors H_uu: n_free HVPs
    assert S.n_setup_matvecs == S.n_free == 15
    before = op.n_matvecs
    path = rl.ridge_path(S, theta, lam, tol=1e-10)
    assert S.n_setup_matvecs == 15  # not formed again
    assert path.curvature == "schur-complement" and path.n_matvecs == op.n_matvecs - before
    ref = reference_path(H, theta, lam, mask)
    np.testing.assert_allclose(path.thetas, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    with pytest.raises(rl.RidgelensError, match="differs from the mask"):
        rl.ridge_path(S, theta, lam, penalized=np.ones(mask.size, dtype=bool))
    with pytest.raises(rl.RidgelensError, match="matrix-free path"):
        rl.ridge_path(S, theta, lam, method="dense")


@NEGATIVE_S
def test_inner_modes_give_the_same_path_and_count_every_hvp(mlp):
    obj, theta, H, mask = mlp
    lam = np.geomspace(0.02, 2.0, 6)
    ref = reference_path(H, theta, lam, mask)
    paths = {}
    for mode in MODES:
        mode = mode.values[0]
        S = rl.SchurComplementOperator(rl.hessian(obj, theta), mask, **mode)
        r = krylov_schur_path(S, theta, lam, tol=1e-10)
        assert r["converged"].all() and (r["residuals"] <= 1e-10).all()
        for i in range(lam.size):
            np.testing.assert_allclose(r["thetas"][i], ref[i], rtol=0, atol=1e-6 * np.abs(ref[i]).max())
        # The exact HVP count, from the operator's own counters: the start vector r = Hθ̂ (one HVP)
        # and its solve H_uu⁻¹ r_u, then each product with S.
        assert r["n_matvecs"] == S.n_hvps == S.base.n_matvecs
        if S.inner == "dense":
            per = 1 if S.store_coupling else 2  # H[v; 0], and H[0; y] unless H_pu is kept
            assert S.n_setup_matvecs == S.n_free == 15
            assert r["n_matvecs"] == S.n_free + per * (r["n_products"] + 1)
        else:
            assert len(S.inner_iterations) == r["n_products"] + 1
            assert r["n_matvecs"] == len(S.inner_iterations) + sum(S.inner_iterations)
        paths[S.inner, S.store_coupling] = r
    cg, dense, dense2 = paths["cg", False], paths["dense", True], paths["dense", False]
    for other in (dense, dense2):  # the modes agree with each other, basis size included
        np.testing.assert_allclose(other["thetas"], cg["thetas"], rtol=0, atol=1e-7 * np.abs(ref).max())
        assert abs(other["n_products"] - cg["n_products"]) <= 1
    assert dense["n_matvecs"] < dense2["n_matvecs"] < cg["n_matvecs"]


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


@pytest.mark.parametrize("mode", MODES)
def test_indefinite_free_block_is_a_clear_error(mode):
    rng = np.random.default_rng(2)
    A = rng.normal(size=(8, 8))
    H = A @ A.T / 8
    H[6:, 6:] = np.diag([1.0, -1.0])  # H_uu indefinite
    mask = np.r_[np.ones(6, bool), np.zeros(2, bool)]
    S = rl.SchurComplementOperator(H, mask, **mode)
    with pytest.raises(rl.RidgelensError, match=r"H_uu .* is not positive definite.*Gauss-Newton"):
        S.matvec(np.ones(6))
    if S.inner == "dense":  # the dense mode states H_uu's smallest eigenvalue (and does not form H_uu again)
        before = S.n_hvps
        with pytest.raises(rl.RidgelensError, match=r"smallest eigenvalue is -1 \(largest 1\)"):
            S.matvec(np.ones(6))
        assert S.n_hvps == before + 1
    with pytest.raises(rl.RidgelensError, match="not positive definite"):  # inner="auto": dense
        rl.ridge_path(rl.DenseOperator(H), np.ones(8), [0.1], penalized=mask, method="krylov")
    H[6:, 6:] = np.diag([1.0, 1e-9])  # positive definite, but one CG iteration cannot solve a 2×2 system
    slow = rl.SchurComplementOperator(H, mask, inner="cg", inner_max_iter=1)
    with pytest.raises(rl.RidgelensError, match=r"did not converge.*inner_max_iter"):
        slow.matvec(np.ones(6))
    assert np.isfinite(rl.SchurComplementOperator(H, mask, inner="dense").matvec(np.ones(6))).all()
    H[6:, 6:] = np.diag([1.0, 1e-14])  # condition number 1e14: refused by the dense mode
    with pytest.raises(rl.RidgelensError, match=r"numerically singular: its smallest eigenvalue is 1e-14.*condition"):
        rl.SchurComplementOperator(H, mask, inner="dense").matvec(np.ones(6))


@pytest.mark.parametrize("inner", ["cg", "dense"])
def test_float32_model_gets_a_float32_schur_operator(mlp, inner):
    obj, theta, H, mask = mlp
    net32 = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))
    obj32 = rl.TorchObjective(net32, torch.nn.functional.mse_loss, [(x.float(), y.float()) for x, y in obj.batches],
                              unpenalized=["*.bias"])
    S = rl.SchurComplementOperator(rl.hessian(obj32, theta), mask, inner=inner)
    assert S.torch_dtype == torch.float32 and 1e-6 < S.inner_tol < 1e-4
    v = np.random.default_rng(3).normal(size=S.n)
    sv, y = S.matvec_with_solve(torch.tensor(v, dtype=torch.float32))
    assert sv.dtype == y.dtype == torch.float32  # dense: solved in float64, cast back
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


@pytest.mark.parametrize(("mode", "budget"), [(MODES[0], 300), (MODES[1], 30), (MODES[2], 40)],
                         ids=["cg", "dense", "dense-2hvp"])
def test_schur_path_resumes_from_checkpoint(tmp_path, mode, budget):
    mode = mode.values[0]
    rng = np.random.default_rng(4)
    A = rng.normal(size=(60, 60))
    H = A @ A.T / 60 + 0.05 * np.eye(60)
    mask = np.ones(60, bool)
    mask[::7] = False
    theta, lam = rng.normal(size=60), np.array([1e-3, 1e-2, 1e-1])
    ref = krylov_schur_path(rl.SchurComplementOperator(H, mask, **mode), theta, lam, tol=1e-10)

    class Dies(rl.CurvatureOperator):  # H, until the product budget runs out mid-path
        def __init__(self, budget):
            super().__init__(60)
            self.budget = budget

        def _matmat(self, V):
            if self.n_matvecs > self.budget:
                raise KeyboardInterrupt
            return torch.from_numpy(H) @ V

    with pytest.raises(KeyboardInterrupt):
        krylov_schur_path(rl.SchurComplementOperator(Dies(budget), mask, **mode), theta, lam, tol=1e-10,
                          checkpoint=tmp_path)
    saved = torch.load(tmp_path / "krylov_schur_path.pt", weights_only=True)
    assert ("free_cholesky" in saved) == (mode["inner"] == "dense")
    again = rl.SchurComplementOperator(Dies(10**9), mask, **mode)
    got = krylov_schur_path(again, theta, lam, tol=1e-10, checkpoint=tmp_path)
    np.testing.assert_allclose(got["thetas"], ref["thetas"], rtol=1e-12, atol=1e-12)
    # Resumed, not restarted, and the saved factor of H_uu is used: no HVPs to form it again.
    assert got["n_matvecs"] == ref["n_matvecs"] and again.n_matvecs < ref["n_matvecs"]
    assert again.n_setup_matvecs == 0


def test_ridge_path_resumes_from_checkpoint(tmp_path):
    rng = np.random.default_rng(4)
    A = rng.normal(size=(30, 30))
    H = A @ A.T / 30 + 0.05 * np.eye(30)
    mask = np.ones(30, bool)
    mask[::7] = False
    theta, lam = rng.normal(size=30), np.array([1e-3, 1e-1])
    ref = rl.ridge_path(H, theta, lam, penalized=mask, method="krylov", tol=1e-10)

    class Dies(rl.CurvatureOperator):
        def _matmat(self, V):
            if self.n_matvecs > 20:  # 5 to form H_uu, 1 to start, then 14 products with S
                raise KeyboardInterrupt
            return torch.from_numpy(H) @ V

    with pytest.raises(KeyboardInterrupt):
        rl.ridge_path(Dies(30), theta, lam, penalized=mask, method="krylov", tol=1e-10, checkpoint=tmp_path)
    got = rl.ridge_path(Dies(30), theta, lam, penalized=mask, method="krylov", tol=1e-10, checkpoint=tmp_path)
    np.testing.assert_allclose(got.thetas, ref.thetas, rtol=1e-12, atol=1e-12)
    assert got.n_matvecs == ref.n_matvecs
