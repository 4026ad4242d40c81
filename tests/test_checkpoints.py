"""Checkpoints of the Krylov runs: the blocked basis, resumes across block boundaries, refusals of other runs."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import psd


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



class _HvpOnly:
    """A NumPy objective with only ``hvp`` (no closed form, no fingerprint): H = XᵀX / n."""

    def __init__(self, X):
        self.X, self.n_params = X, X.shape[1]

    def hvp(self, theta, v):
        return self.X.T @ (self.X @ v) / len(self.X)


def test_checkpoint_of_an_operator_that_cannot_name_itself_is_refused_for_another(tmp_path):
    """A scipy LinearOperator, or an hvp-only objective at the same θ with other data: same size, no
    fingerprint. Lanczos and the Krylov path resumed the other operator's state (top eigenvalues
    99.995, 97.9, 96.0 of diag(2, …, 100), flagged converged); now it is refused, and the same
    operator still resumes to its dense eigenvalues."""
    import scipy.sparse.linalg as sla

    d = np.arange(1.0, 51.0)
    one, other = (sla.aslinearoperator(np.diag(v)) for v in (d, 2 * d[::-1]))
    opts = dict(k=3, method="lanczos", progress=False)
    rl.eigen(one, checkpoint=tmp_path / "a", **opts)
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        rl.eigen(other, checkpoint=tmp_path / "a", **opts)
    again = rl.eigen(one, checkpoint=tmp_path / "a", **opts)
    np.testing.assert_allclose(np.sort(again.eigenvalues), d[-3:], rtol=1e-8)

    rng = np.random.default_rng(6)
    X = rng.normal(size=(60, 20))
    theta, lam = rng.normal(size=20), np.array([1e-2, 1.0])
    rl.ridge_path(rl.hessian(_HvpOnly(X), theta), theta, lam, method="krylov", checkpoint=tmp_path / "b")
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        rl.ridge_path(rl.hessian(_HvpOnly(X[::-1] * 1.5), theta), theta, lam, method="krylov",
                      checkpoint=tmp_path / "b")

    # A Schur complement of such an H: known by H's product and the mask.
    from ridgelens.ridge._krylov import krylov_schur_path

    mask = np.arange(50) % 7 != 0
    krylov_schur_path(rl.SchurComplementOperator(rl.as_operator(one), mask), d, lam, checkpoint=tmp_path / "c")
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        krylov_schur_path(rl.SchurComplementOperator(rl.as_operator(other), mask), d, lam, checkpoint=tmp_path / "c")


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



def test_shuffled_loader_gives_one_fingerprint_and_other_labels_another():
    """A DataLoader with shuffle=True cuts other batches in another order on every pass: its fingerprint hashed
    one pass, so no checkpoint of it could ever be resumed. It digests samples in sorted order now: the same
    for every pass and for the same data in order, and another for permuted labels."""
    torch.manual_seed(0)
    X, Y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 1, dtype=torch.float64)
    net = torch.nn.Linear(3, 1).double()

    def fingerprint(y, shuffle):
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8, shuffle=shuffle)
        return rl.TorchObjective(net, torch.nn.functional.mse_loss, loader).fingerprint()

    first = fingerprint(Y, True)
    assert fingerprint(Y, True) == first
    assert fingerprint(Y[torch.randperm(50)], True) != first
    assert fingerprint(Y, False) != fingerprint(Y[torch.randperm(50)], False)


def test_digest_of_tensors_numpy_has_no_type_for():
    """bfloat16 θ (an LM in bfloat16) made every operator's fingerprint raise TypeError: numpy has no bfloat16."""
    from ridgelens._checkpoint import digest

    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16)
    b = a.clone()
    b[1] = 2.5
    same_bytes = a.view(torch.float16)  # the same bits under another dtype: another tensor
    assert digest(a) == digest(a.clone()) and len({digest(a), digest(b), digest(same_bytes)}) == 3
    assert digest(a) != digest(a.reshape(3, 1)) and digest(torch.tensor(1.0, dtype=torch.bfloat16))
