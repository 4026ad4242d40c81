"""Thick-restart Lanczos: edge cases of the basis, restarts, resumes, aliasing, against dense eigh."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import psd
from ridgelens.spectra._lanczos import lanczos


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

