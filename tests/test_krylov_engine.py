"""Review follow-ups: Lanczos edge cases of the split basis, partial graph reuse, CLI option checks."""

import signal
import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import psd
from ridgelens.cli import main
from ridgelens.spectra._lanczos import lanczos


@pytest.fixture
def alarm():
    """Fail (instead of hanging the suite) if the test body takes more than 20 s."""
    def boom(*_):
        raise TimeoutError("took more than 20 s (an endless restart loop?)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _check_pairs(H, r, which, k):
    w = np.linalg.eigvalsh(H)
    ref = {"largest": w[::-1][:k], "smallest": w[:k],
           "both": np.r_[w[::-1][: (k + 1) // 2], w[: k - (k + 1) // 2]]}[which]
    np.testing.assert_allclose(r["eigenvalues"], np.sort(ref)[::-1], rtol=1e-8, atol=1e-8)
    Q = r["eigenvectors"].numpy()
    assert Q.shape == (H.shape[0], k)
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=1e-8)
    np.testing.assert_allclose(H @ Q, Q * r["eigenvalues"], atol=1e-7 * np.abs(w).max())


# k == n, ncv == n, k = 1, ncv = k + 1 (the smallest basis), and restarts that keep p > k pairs.
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
@pytest.mark.parametrize(("k", "ncv"), [(24, None), (23, 24), (1, 3), (5, 6), (4, 12), (3, 9)])
def test_lanczos_split_basis_edge_cases_match_dense(which, k, ncv, alarm):
    H = psd(24, np.r_[-np.geomspace(1, 8, 6), np.geomspace(0.5, 40, 18)], seed=3)
    r = lanczos(rl.DenseOperator(H), k, which=which, ncv=ncv, tol=1e-11, max_matvecs=20000)
    assert r["converged"].all()
    _check_pairs(H, r, which, k)


def test_lanczos_with_ncv_k_plus_one_terminates(alarm):
    # Keeping k + 1 pairs at a restart filled the whole basis: the next pass took no step and
    # the loop restarted forever without a product.
    H = psd(30, np.geomspace(0.1, 100, 30), seed=1)
    r = lanczos(rl.DenseOperator(H), 3, ncv=4, tol=1e-10, max_matvecs=5000)
    assert r["converged"].all() and r["n_matvecs"] > 4
    _check_pairs(H, r, "largest", 3)


def test_lanczos_resumes_from_a_checkpoint_taken_at_the_end_of_a_pass(tmp_path, alarm):
    # ncv = 10, k = 1: the 10th product (a checkpoint) is the last step of the first pass, so the
    # saved state has j = ncv; resuming used to crash on the Ritz values it never computed.
    H = psd(40, np.geomspace(0.1, 100, 40), seed=2)
    first = lanczos(rl.DenseOperator(H), 1, ncv=10, tol=1e-10, max_matvecs=12, checkpoint=tmp_path)
    assert not first["converged"].all()
    again = lanczos(rl.DenseOperator(H), 1, ncv=10, tol=1e-10, checkpoint=tmp_path)
    assert again["converged"].all() and again["n_matvecs"] > 12
    _check_pairs(H, again, "largest", 1)


def test_schur_path_checkpoint_of_another_mask_of_the_same_size_is_refused(tmp_path):
    from ridgelens.ridge._krylov import krylov_schur_path

    rng = np.random.default_rng(4)
    A = rng.normal(size=(40, 40))
    H = A @ A.T / 40 + 0.05 * np.eye(40)
    m1, m2 = np.ones(40, bool), np.ones(40, bool)
    m1[::7], m2[1::7] = False, False  # as many free parameters, other ones
    theta, lam = rng.normal(size=40), np.array([1e-2, 1e-1])
    with pytest.warns(rl.ConvergenceWarning):
        krylov_schur_path(rl.SchurComplementOperator(H, m1), theta, lam, tol=1e-10, max_matvecs=12,
                          checkpoint=tmp_path)
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):  # was: resumed, NaN/wrong θ̃
        krylov_schur_path(rl.SchurComplementOperator(H, m2), theta, lam, tol=1e-10, checkpoint=tmp_path)


@pytest.fixture(scope="module")
def small_mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    X = torch.randn(60, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (60,))
    batches = [(X[i:i + 20], y[i:i + 20]) for i in range(0, 60, 20)]
    obj = rl.TorchObjective(net, torch.nn.functional.cross_entropy, batches)
    H = rl.hessian(obj, obj.theta0, form="double-backward").to_dense()
    return net, X, y, obj, H


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


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--unpenalized", "*.weight", "--unpenalized", "*.bias"], "--unpenalized *.weight *.bias leaves no parameter"),
    (["--penalize-intercept"], "--penalize-intercept is for the linear and logistic"),
    (["--no-intercept"], "--no-intercept is for the linear and logistic"),
])
def test_mlp_option_combinations_are_refused_by_name(tmp_path, capsys, argv, needle):
    code, _out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "mlp", "--hidden", "2",
                          "--train-iters", "2", "--lambdas", "0.1", *argv, "--out", str(tmp_path / "o"))
    assert code == 2 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_checkpoints_of_another_point_are_refused(tmp_path, small_mlp):
    """Same sizes and options, another θ: neither Lanczos nor the Krylov path may resume from it."""
    obj = small_mlp[3]
    theta = obj.theta0
    other = theta + 1e-3
    ck = tmp_path / "ck"
    opts = dict(method="lanczos", ncv=8, tol=1e-15, max_matvecs=25, checkpoint=ck, progress=False)
    with pytest.warns(rl.ConvergenceWarning):  # stops at the budget, after checkpoints were written
        rl.eigen(rl.hessian(obj, theta), 3, **opts)
    assert (ck / "lanczos.pt").exists()
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        rl.eigen(rl.hessian(obj, other), 3, **opts)
    lam = [1.0, 2.0]  # above the most negative curvature of this untrained net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.NegativeCurvatureWarning)
        rl.ridge_path(rl.hessian(obj, theta), theta, lam, method="krylov", tol=1e-15, max_matvecs=25, checkpoint=ck)
    assert (ck / "krylov_path.pt").exists()
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):  # another operator point
        rl.ridge_path(rl.hessian(obj, other), theta, lam, method="krylov", tol=1e-15, max_matvecs=25, checkpoint=ck)
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):  # another θ̂ on the same operator
        rl.ridge_path(rl.hessian(obj, theta), other, lam, method="krylov", tol=1e-15, max_matvecs=25, checkpoint=ck)


def test_refit_checkpoint_of_another_point_is_refused(tmp_path, small_mlp):
    obj = small_mlp[3]
    theta = obj.minimize(l2=0.05, method="trust-ncg", max_iter=100).theta
    ck = tmp_path / "ck"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck)
        again = rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck)  # resumes its own refit
        np.testing.assert_array_equal(again.refit, first.refit)
        with pytest.raises(rl.RidgelensError, match="refit of another run"):
            rl.analyze(obj, [1.0], theta_hat=theta + 1e-3, checkpoint=ck)
        with pytest.raises(rl.RidgelensError, match="refit of another run"):  # same θ̂, another refit method
            rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck, refit_options={"method": "lbfgs"})


def test_matrix_free_premise_counts_the_paths_own_ritz_values(small_mlp):
    obj = small_mlp[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rl.analyze(obj, [1.0, 2.0], theta_hat=obj.theta0, method="matrix-free", k=3, refit=False)
    assert res.path.ritz_values is not None and res.path.ritz_values.size > 0
    assert res.min_eigenvalue <= res.path.ritz_values.min()
    # small_mlp's H is the dense Hessian at θ0: Ritz values lie inside its spectrum
    assert res.min_eigenvalue >= np.linalg.eigvalsh(small_mlp[4]).min() - 1e-8


def test_lanczos_both_ends_restart_keeps_vectors_from_both_ends():
    """Clusters at both ends: the restart must keep extra Ritz vectors from the bottom too.

    Keeping them from the top only needed 211 products here; from both ends, 96.
    """
    w = np.r_[np.linspace(-1, -0.9, 10), np.linspace(-0.5, 0.5, 380), np.linspace(0.9, 1.0, 10)]
    H = psd(400, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rl.ConvergenceWarning)
        s = rl.eigen(H, 6, which="both", method="lanczos", tol=1e-8, ncv=16, max_matvecs=150)
    ref = np.r_[np.sort(w)[::-1][:3], np.sort(w)[:3]]
    np.testing.assert_allclose(np.sort(s.eigenvalues), np.sort(ref), atol=1e-12)


# ---------------------------------------------------------------- second review: SLQ, blocked basis, checkpoints


def _slq_probes(n, n_probes, seed):
    """The Rademacher probes spectral_density draws, one at a time, for ``seed``."""
    from ridgelens.spectra._density import _rademacher

    gen = torch.Generator().manual_seed(int(seed))
    return [_rademacher(n, 1, gen, "cpu", torch.float64)[0].numpy() for _ in range(n_probes)]


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_with_m_at_least_n_is_the_exact_quadratic_form_of_each_probe(reorth):
    # m ≥ n: each probe's Gauss quadrature is exact, n Σ wᵢ f(θᵢ) = mean over probes of vᵀf(H)v.
    # On a diagonal H a Rademacher probe's vᵀf(H)v is tr f(H) itself. Without reorthogonalization
    # the basis loses orthogonality by step n (ghosts): the quadrature is then close, not exact.
    from ridgelens.spectra import spectral_density

    rtol = 1e-8 if reorth == "full" else 1e-4

    n = 24
    d = np.geomspace(0.01, 10, n)
    diag = spectral_density(np.diag(d), n_probes=2, m=n + 5, seed=3, reorth=reorth)
    assert diag.n_matvecs == 2 * n
    for f in (np.log, np.sqrt, lambda t: t / (t + 0.05), lambda t: t**2):
        np.testing.assert_allclose(diag.trace_of(f), f(d).sum(), rtol=rtol)
    H = psd(n, d, seed=5)
    w, Q = np.linalg.eigh(H)
    d2 = spectral_density(H, n_probes=3, m=100, seed=7, reorth=reorth)
    np.testing.assert_allclose(d2.weights.sum(), 1.0, rtol=1e-12)
    for f in (np.log, lambda t: 1 / (t + 0.1)):
        fH = (Q * f(w)) @ Q.T
        ref = np.mean([v @ fH @ v for v in _slq_probes(n, 3, 7)])
        np.testing.assert_allclose(d2.trace_of(f), ref, rtol=rtol)
    # df(λ) is n Σ wᵢ θᵢ/(θᵢ + λ) here (no negative nodes), the same quadrature
    np.testing.assert_allclose(d2.effective_df([0.1]), d2.trace_of(lambda t: t / (t + 0.1)), rtol=1e-12)


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_m1_invariant_exit_seed_and_probes(reorth):
    from ridgelens.spectra import spectral_density

    n = 40
    H = psd(n, np.r_[np.full(20, 1.0), np.full(12, 3.0), np.full(8, 7.0)], seed=2)  # 3 distinct eigenvalues
    probes = _slq_probes(n, 4, 11)
    one = spectral_density(H, n_probes=4, m=1, seed=11, reorth=reorth)  # m = 1: the Rayleigh quotients
    np.testing.assert_allclose(one.nodes, [v @ H @ v / n for v in probes], rtol=1e-12)
    np.testing.assert_allclose(one.weights, 0.25)
    # The Krylov space of each probe is invariant after 3 steps: T is 3 × 3, its nodes H's eigenvalues.
    inv = spectral_density(H, n_probes=4, m=30, seed=11, reorth=reorth)
    assert inv.nodes.size == 12 and inv.n_matvecs == 12
    np.testing.assert_allclose(np.sort(inv.nodes), np.repeat([1.0, 3.0, 7.0], 4), atol=1e-8)
    np.testing.assert_allclose(inv.weights.sum(), 1.0, rtol=1e-12)
    w, Q = np.linalg.eigh(H)
    fH = (Q * np.log(w)) @ Q.T
    np.testing.assert_allclose(inv.trace_of(np.log), np.mean([v @ fH @ v for v in probes]), rtol=1e-8)
    again = spectral_density(H, n_probes=4, m=30, seed=11, reorth=reorth)
    np.testing.assert_array_equal(again.nodes, inv.nodes)
    np.testing.assert_array_equal(again.weights, inv.weights)
    assert not np.array_equal(spectral_density(H, n_probes=4, m=2, seed=12, reorth=reorth).nodes,
                              spectral_density(H, n_probes=4, m=2, seed=11, reorth=reorth).nodes)


class _F32(rl.CurvatureOperator):
    """A float32 operator with a native tensor product (as a float32 torch model has)."""

    def __init__(self, H):
        super().__init__(H.shape[0], dtype=torch.float32)
        self.H32 = torch.from_numpy(H).float()

    def _matmat(self, V):
        return self.H32 @ V


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_float32_agrees_with_float64(reorth):
    from ridgelens.spectra import spectral_density

    w = np.r_[np.geomspace(50, 1, 20), np.random.default_rng(7).uniform(0, 0.5, 280)]
    H = psd(300, w, seed=8)
    ref = spectral_density(H, n_probes=4, m=40, seed=1, reorth="full")
    got = spectral_density(_F32(H), n_probes=4, m=40, seed=1, reorth=reorth)
    assert got.reorth == {"none": "local"}.get(reorth, reorth) and got.nodes.dtype == np.float64
    lam = np.array([0.01, 0.1, 1.0])
    # "none" in float32: a near-zero Ritz value moves; df(0.01) within 0.2 % (SLQ's own error is larger)
    np.testing.assert_allclose(got.effective_df(lam), ref.effective_df(lam), rtol=1e-3 if reorth == "full" else 3e-3)
    np.testing.assert_allclose(got.trace_of(lambda t: t), w.sum(), rtol=0.1)
    np.testing.assert_allclose(got.weights.sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("size", [1, 15, 16, 17, 32, 33])
def test_blocked_basis_matches_one_stacked_matrix(size):
    from ridgelens.ridge._krylov import _Basis

    rng = np.random.default_rng(size)
    R = rng.normal(size=(size, 7))
    b = _Basis(7, "cpu", torch.float64)
    for r in R:
        b.append(torch.from_numpy(r))
    assert len(b) == size and len(b._blocks) == -(-size // 16)
    np.testing.assert_array_equal(b.stacked().numpy(), R)
    np.testing.assert_array_equal(torch.stack(b.rows_list()).numpy(), R)
    for m in sorted({1, min(size, 15), min(size, 16), min(size, 17), size}):
        Y = rng.normal(size=(3, m))
        np.testing.assert_allclose(b.combine(torch.from_numpy(Y), m).numpy(), Y @ R[:m], rtol=1e-12, atol=1e-12)
        Qm = np.linalg.qr(R[:m].T)[0].T if m <= 7 else None
        if Qm is not None:  # orthogonalize_ against orthonormal rows: w − QᵀQw, coefficients Qw
            q = _Basis(7, "cpu", torch.float64)
            for r in Qm:
                q.append(torch.from_numpy(r))
            w0 = rng.normal(size=7)
            w = torch.from_numpy(w0.copy())
            h = q.orthogonalize_(w, m)
            np.testing.assert_allclose(h.numpy(), Qm @ w0, atol=1e-12)
            np.testing.assert_allclose(w.numpy(), w0 - Qm.T @ (Qm @ w0), atol=1e-12)
    big = _Basis(40, "cpu", torch.float64)  # orthogonalize_ across blocks (m = 17 and 33 rows)
    Q = np.linalg.qr(rng.normal(size=(40, 40)))[0].T
    for r in Q[:33]:
        big.append(torch.from_numpy(r))
    for m in (16, 17, 32, 33):
        w0 = rng.normal(size=40)
        w = torch.from_numpy(w0.copy())
        h = big.orthogonalize_(w, m)
        np.testing.assert_allclose(h.numpy(), Q[:m] @ w0, atol=1e-12)
        np.testing.assert_allclose(w.numpy(), w0 - Q[:m].T @ (Q[:m] @ w0), atol=1e-12)


@pytest.mark.parametrize("n", [16, 17, 32])
def test_krylov_path_ending_exactly_at_a_block_boundary(n):
    # With n parameters the run stops after n steps: the basis ends exactly at, or one past, a block.
    from ridgelens.ridge._krylov import krylov_path

    H = psd(n, np.geomspace(0.1, 10, n), seed=n)
    theta = np.random.default_rng(1).normal(size=n)
    lam = np.array([1e-3, 1e-1, 1.0])
    r = krylov_path(rl.DenseOperator(H), theta, lam, tol=1e-15)
    assert r["basis_size"] == n
    ref = np.stack([np.linalg.solve(H + lv * np.eye(n), H @ theta) for lv in lam])
    np.testing.assert_allclose(r["thetas"], ref, rtol=1e-9, atol=1e-9)


def _dies(H, budget):
    Ht = torch.from_numpy(H)

    class Dies(rl.CurvatureOperator):
        def _matmat(self, V):
            if self.n_matvecs > budget:
                raise KeyboardInterrupt
            return Ht @ V

    return Dies(H.shape[0])


def test_krylov_path_resumes_across_a_block_boundary(tmp_path):
    n = 120
    H = psd(n, np.geomspace(1e-3, 10, n), seed=9)
    theta = np.random.default_rng(2).normal(size=n)
    g = 1e-3 * np.random.default_rng(3).normal(size=n)
    lam = np.array([1e-3, 1e-2, 1e-1])
    from ridgelens.ridge._krylov import krylov_path

    ref = krylov_path(rl.DenseOperator(H), theta, lam, gradient=g, tol=1e-10)
    assert ref["basis_size"] > 40
    with pytest.raises(KeyboardInterrupt):  # killed at product 25: the last checkpoint holds 20 rows
        krylov_path(_dies(H, 25), theta, lam, gradient=g, tol=1e-10, checkpoint=tmp_path)
    saved = torch.load(tmp_path / "krylov_path.pt", weights_only=True)
    assert len(saved["V"]) == 20 and saved["T"].shape == (19, 19)
    got = krylov_path(_dies(H, 10**9), theta, lam, gradient=g, tol=1e-10, checkpoint=tmp_path)
    np.testing.assert_allclose(got["thetas"], ref["thetas"], rtol=1e-12, atol=1e-12)
    assert got["n_matvecs"] == ref["n_matvecs"]
    exact = np.stack([np.linalg.solve(H + lv * np.eye(n), H @ theta - g) for lv in lam])
    np.testing.assert_allclose(got["thetas"], exact, rtol=1e-6, atol=1e-6 * np.abs(exact).max())


def test_schur_path_with_one_free_parameter_resumes_across_a_block_boundary(tmp_path):
    from ridgelens.ridge._krylov import krylov_schur_path

    n = 90
    H = psd(n, np.geomspace(1e-2, 10, n), seed=4)
    mask = np.ones(n, bool)
    mask[5] = False  # n_free = 1: the free basis rows have one entry
    theta = np.random.default_rng(5).normal(size=n)
    lam = np.array([1e-2, 1e-1, 1.0])
    P = np.diag(mask.astype(float))
    exact = np.stack([np.linalg.solve(H + lv * P, H @ theta) for lv in lam])
    ref = krylov_schur_path(rl.SchurComplementOperator(rl.DenseOperator(H), mask), theta, lam, tol=1e-11)
    assert ref["basis_size"] > 33
    np.testing.assert_allclose(ref["thetas"], exact, rtol=1e-7, atol=1e-7 * np.abs(exact).max())
    with pytest.raises(KeyboardInterrupt):  # 1 HVP forms H_uu, 1 starts, then S products (1 HVP each)
        krylov_schur_path(rl.SchurComplementOperator(_dies(H, 37), mask), theta, lam, tol=1e-11,
                          checkpoint=tmp_path)
    saved = torch.load(tmp_path / "krylov_schur_path.pt", weights_only=True)
    assert saved["Y_free"].shape == (30, 1) and len(saved["V"]) == 31
    got = krylov_schur_path(rl.SchurComplementOperator(_dies(H, 10**9), mask), theta, lam, tol=1e-11,
                            checkpoint=tmp_path)
    np.testing.assert_allclose(got["thetas"], ref["thetas"], rtol=1e-12, atol=1e-12)


def test_operator_handing_back_its_input_is_not_orthogonalized_in_place():
    # A NumPy operator that returns its input comes back through torch.from_numpy as a tensor whose
    # storage starts at the row, not at the basis' storage: the guard compared storage starts only,
    # so rows past the first were orthogonalized in place (Lanczos on I returned zero eigenvectors).
    from ridgelens.ridge._krylov import _Basis

    class Identity(rl.CurvatureOperator):
        def _matmat(self, V):
            return V  # hands back its input (a row of the basis itself)

    r = lanczos(Identity(30), 3, ncv=8, tol=1e-10, max_matvecs=200)
    np.testing.assert_allclose(r["eigenvalues"], 1.0)
    Q = r["eigenvectors"].numpy()
    np.testing.assert_allclose(Q.T @ Q, np.eye(3), atol=1e-12)
    b = _Basis(5, "cpu", torch.float64)
    for row in np.eye(5)[:3]:
        b.append(torch.from_numpy(row))
    assert b.holds(b.row(0)) and b.holds(b.row(2))
    assert b.holds(torch.from_numpy(b.row(2).numpy()))  # what tensor_matvec hands back for I
    assert not b.holds(torch.from_numpy(b.row(2).numpy().copy()))


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_restart_extras_against_the_previous_rule(which):
    from ridgelens.spectra._lanczos import _extras, _wanted

    rng = np.random.default_rng(0)
    for m in (2, 3, 8, 17):
        theta = np.sort(rng.normal(size=m))
        for k in range(1, m + 1):
            want = _wanted(theta, k, which)
            got = _extras(theta, m, want, which)
            rest = [i for i in range(m) if i not in set(want.tolist())]
            assert sorted(got) == rest and len(set(got)) == len(got)
            if which != "both":  # unchanged: the previous rule
                assert got == [i for i in _wanted(theta, m, which) if i not in set(want)]
            else:  # top, bottom, next top, next bottom, ...
                top, bottom = sorted(rest, reverse=True), sorted(rest)
                expect = []
                for hi, lo in zip(top, bottom, strict=True):
                    for i in (hi, lo):
                        if i not in expect:
                            expect.append(i)
                assert got == expect
                if len(rest) >= 2:
                    assert got[0] == max(rest) and got[1] == min(rest)


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_analyze_killed_mid_refit_resumes_with_its_own_refits(tmp_path, small_mlp, method, monkeypatch):
    obj = small_mlp[3]
    theta = obj.minimize(l2=0.05, method="trust-ncg", max_iter=100).theta
    lam = [0.5, 1.0, 2.0]
    ck = tmp_path / "ck"
    opts = dict(theta_hat=theta, checkpoint=ck, method=method, k=3, refit_options={"method": "trust-ncg"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = rl.analyze(obj, lam, **opts)
        assert sorted(p.name for p in ck.glob("refit_*.pt")) == ["refit_0.pt", "refit_1.pt", "refit_2.pt"]
        (ck / "refit_1.pt").unlink()  # killed during the second refit
        (ck / "refit_2.pt").unlink()
        calls = []
        real = type(obj).minimize

        def counting(self, *a, **kw):
            calls.append(kw.get("l2"))
            return real(self, *a, **kw)

        monkeypatch.setattr(type(obj), "minimize", counting)
        again = rl.analyze(obj, lam, **opts)
    assert calls == [1.0, 2.0]  # refit 0 read back, not refitted
    np.testing.assert_array_equal(again.refit[0], first.refit[0])
    np.testing.assert_allclose(again.refit, first.refit, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(again.path.thetas, first.path.thetas, rtol=1e-10, atol=1e-12)
    assert again.method == method


def test_analyze_that_finds_theta_hat_itself_resumes_its_refits(tmp_path, monkeypatch):
    # No θ̂ given: analyze minimizes first; the same run started again finds the same θ̂ and resumes.
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    obj = rl.Logistic(X[:200, :4], (y[:200] > 140).astype(float))
    ck = tmp_path / "ck"
    first = rl.analyze(obj, [0.01, 0.1], checkpoint=ck)
    real = type(obj).minimize
    monkeypatch.setattr(type(obj), "minimize",
                        lambda self, *a, **kw: (_ for _ in ()).throw(AssertionError("refit again"))
                        if kw.get("l2") else real(self, *a, **kw))
    again = rl.analyze(obj, [0.01, 0.1], checkpoint=ck)
    np.testing.assert_array_equal(again.refit, first.refit)


def test_refit_method_is_mlp_only_and_sets_its_own_iteration_default(tmp_path, capsys, monkeypatch):
    code, _out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--refit-method", "lbfgs",
                          "--lambdas", "0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and "--refit-method is for --model mlp" in err, err
    with pytest.raises(SystemExit):
        main(["analyze", "--data", "diabetes", "--model", "mlp", "--refit-method", "newton", "--lambdas", "0.1",
              "--out", str(tmp_path / "o")])
    assert "invalid choice" in capsys.readouterr().err
    from ridgelens.cli import _analyze as cli_analyze

    seen = []

    def fake(args, ds, lam, out):
        seen.append((args.refit_method, args.refit_iters))
        raise rl.RidgelensError("stop here")

    monkeypatch.setattr(cli_analyze, "_analyze_mlp", fake)
    for extra in ([], ["--refit-method", "lbfgs"], ["--refit-method", "lbfgs", "--refit-iters", "7"]):
        run(capsys, "analyze", "--data", "diabetes", "--model", "mlp", "--lambdas", "0.1", *extra,
            "--out", str(tmp_path / "o"))
    assert seen == [("trust-ncg", 200), ("lbfgs", 500), ("lbfgs", 7)]


def test_negative_curvature_warning_says_whether_any_lambda_lost_its_minimizer():
    H = psd(40, np.r_[-0.1, np.linspace(1, 2, 39)])
    theta = np.random.default_rng(3).normal(size=40)
    with pytest.warns(rl.NegativeCurvatureWarning, match="every λ given is above it, so each of the 2"):
        ok = rl.ridge_path(H, theta, [0.5, 1.0], method="krylov", tol=1e-10)
    assert ok.valid.all()
    with pytest.warns(rl.NegativeCurvatureWarning, match="1 of 2 λ have no minimizer"):
        part = rl.ridge_path(H, theta, [0.05, 1.0], method="krylov", tol=1e-10)
    assert part.valid.tolist() == [False, True]
