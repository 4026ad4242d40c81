"""Review follow-ups: Lanczos edge cases of the split basis, partial graph reuse, CLI option checks."""

import signal
import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from ridgelens.cli import main
from ridgelens.spectra._lanczos import lanczos


def psd(n, spectrum, seed=0):
    Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]
    return (Q * spectrum) @ Q.T


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
    hv_reused = op._hvp_reuse(v).clone()
    op._hvp_reuse = lambda u: u  # a pass-through graph, as autograd may give
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
