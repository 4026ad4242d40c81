"""ridge_path(method="multishift-cg"): multi-shift CG against dense solves, the Krylov path and its resume."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import mixed_curvature_mlp, psd
from ridgelens.ridge._multishift import multishift_cg_path


def solves(H, theta, lam, g=None):
    b = H @ theta - (0.0 if g is None else g)
    return np.stack([np.linalg.solve(H + lv * np.eye(H.shape[0]), b) for lv in lam])


def rel_err(got, ref):
    return np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)


N = 200
LAM = np.array([0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0])
SPECTRA = {  # both cond 1e4; on the geometric one CG loses orthogonality early and needs ~3x the steps
    "uniform": np.sort(np.random.default_rng(5).uniform(1e-4, 1.0, N)),
    "geometric": np.geomspace(1e-4, 1.0, N),
}


@pytest.fixture(scope="module")
def mlp():
    return mixed_curvature_mlp()  # curvature of both signs


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
@pytest.mark.parametrize("with_gradient", [False, True])
def test_matches_dense_solves_on_spd(spectrum, with_gradient):
    H = psd(N, SPECTRA[spectrum], seed=1)
    theta = np.random.default_rng(1).normal(size=N)
    g = 1e-2 * np.random.default_rng(2).normal(size=N) if with_gradient else None
    p = rl.ridge_path(H, theta, LAM, gradient=g, method="multishift-cg", tol=1e-10, max_matvecs=2000)
    assert p.method == "multishift-cg" and p.valid.all() and p.converged.all()
    assert (p.residuals <= 1e-10).all()
    assert rel_err(p.thetas, solves(H, theta, LAM, g)).max() <= 1e-7
    assert p.ritz_values.min() > 0 and p.gradient_used == with_gradient


def test_indefinite_marks_lambdas_below_minus_sigma_min_invalid():
    H = psd(N, np.linspace(-0.5, 3.0, N), seed=3)
    theta = np.random.default_rng(1).normal(size=N)
    lam = np.array([0.0, 0.1, 0.4, 0.49, 0.51, 0.6, 1.0, 2.0])
    with pytest.warns(rl.NegativeCurvatureWarning, match="no minimizer"):
        p = rl.ridge_path(H, theta, lam, method="multishift-cg", tol=1e-10, max_matvecs=2000)
    np.testing.assert_array_equal(p.valid, lam > 0.5)
    assert np.isnan(p.thetas[~p.valid]).all() and not np.isnan(p.thetas[p.valid]).any()
    assert p.converged[p.valid].all() and not p.converged[~p.valid].any()
    assert p.ritz_values.min() == pytest.approx(-0.5, rel=1e-8)
    assert rel_err(p.thetas[p.valid], solves(H, theta, lam[p.valid])).max() <= 1e-7


def test_torch_mlp_against_its_dense_hessian(mlp):
    obj, theta = mlp
    op = rl.hessian(obj, theta)
    H = op.to_dense()
    H = 0.5 * (H + H.T)
    smin = np.linalg.eigvalsh(H)[0]
    assert smin < 0  # the point has curvature of both signs
    lam = np.concatenate([[0.0, 0.5 * -smin], -smin + np.geomspace(1e-2, 10.0, 5)])
    before = op.n_matvecs
    with pytest.warns(rl.NegativeCurvatureWarning):
        p = rl.ridge_path(op, theta, lam, method="multishift-cg", tol=1e-10, max_matvecs=3000)
    assert p.n_matvecs == op.n_matvecs - before
    np.testing.assert_array_equal(p.valid, lam > -smin)
    ref = solves(H, theta, lam[p.valid])
    assert rel_err(p.thetas[p.valid], ref).max() <= 1e-7
    assert np.isnan(p.thetas[~p.valid]).all()


def test_hvp_count_is_the_operators_and_close_to_krylov():
    H = psd(N, SPECTRA["uniform"], seed=1)
    theta = np.random.default_rng(1).normal(size=N)
    counts = {}
    for method in ("multishift-cg", "krylov"):
        op = rl.DenseOperator(H)
        p = rl.ridge_path(op, theta, LAM, method=method, tol=1e-10, max_matvecs=2000)
        assert p.n_matvecs == op.n_matvecs  # the start product Hθ̂ included
        counts[method] = p.n_matvecs
    # Measured: 109 (multishift-cg) against 108 (krylov, fully reorthogonalized).
    assert abs(counts["multishift-cg"] - counts["krylov"]) <= 3, counts


def test_low_rank_view_as_with_krylov():
    H = psd(N, SPECTRA["uniform"], seed=1)
    theta = np.random.default_rng(1).normal(size=N)
    top = rl.eigen(H, 5, method="dense")
    a = rl.ridge_path(H, theta, LAM, method="multishift-cg", tol=1e-10, low_rank=top)
    b = rl.ridge_path(H, theta, LAM, method="krylov", tol=1e-10, low_rank=top)
    np.testing.assert_allclose(a.factors, b.factors)
    np.testing.assert_allclose(a.coords, b.coords)
    assert a.outside_share == pytest.approx(b.outside_share)
    with pytest.raises(rl.RidgelensError, match="low_rank must be a Spectrum"):
        rl.ridge_path(H, theta, LAM, method="multishift-cg", low_rank=rl.eigen(H[:10, :10], 2, method="dense"))


def test_budget_gives_a_partial_result_with_a_warning():
    H = psd(N, SPECTRA["uniform"], seed=1)
    theta = np.random.default_rng(1).normal(size=N)
    with pytest.warns(rl.ConvergenceWarning, match="multishift-cg path stopped after 30 products"):
        p = rl.ridge_path(H, theta, LAM, method="multishift-cg", tol=1e-10, max_matvecs=30)
    assert p.n_matvecs == 30 and not p.converged.all() and p.converged[-1]  # λ = 1 converges first
    assert np.isfinite(p.thetas).all()


def test_checkpoint_resume_gives_the_same_thetas_and_count(tmp_path):
    H = psd(N, SPECTRA["uniform"], seed=1)
    theta = np.random.default_rng(1).normal(size=N)
    g = 1e-2 * np.random.default_rng(2).normal(size=N)
    ref = multishift_cg_path(rl.DenseOperator(H), theta, LAM, gradient=g, tol=1e-10, max_matvecs=2000)
    with pytest.warns(rl.ConvergenceWarning):  # stops at 25; the checkpoint holds the state after 20
        multishift_cg_path(rl.DenseOperator(H), theta, LAM, gradient=g, tol=1e-10, max_matvecs=25,
                           checkpoint=tmp_path)
    saved = torch.load(tmp_path / "multishift_cg_path.pt", weights_only=True)
    assert saved["nmv"] == 20 and saved["X"].shape == (LAM.size, N) and len(saved["lanczos"]["alphas"]) == 19
    op = rl.DenseOperator(H)
    got = multishift_cg_path(op, theta, LAM, gradient=g, tol=1e-10, max_matvecs=2000, checkpoint=tmp_path)
    np.testing.assert_array_equal(got["thetas"], ref["thetas"])
    np.testing.assert_array_equal(got["residuals"], ref["residuals"])
    assert got["n_matvecs"] == ref["n_matvecs"] and op.n_matvecs == ref["n_matvecs"] - 20
    # Through ridge_path, and another θ̂ is refused.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = rl.ridge_path(H, theta, LAM, gradient=g, method="multishift-cg", tol=1e-10, max_matvecs=2000,
                          checkpoint=tmp_path)
    np.testing.assert_array_equal(p.thetas, ref["thetas"])
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        rl.ridge_path(H, theta + 1.0, LAM, gradient=g, method="multishift-cg", tol=1e-10, checkpoint=tmp_path)


def test_unpenalized_parameters_need_krylov():
    H = psd(20, np.linspace(0.1, 2.0, 20))
    theta = np.ones(20)
    mask = np.ones(20, bool)
    mask[0] = False
    with pytest.raises(rl.RidgelensError, match=r"method='krylov'.*Schur complement"):
        rl.ridge_path(H, theta, [0.1, 1.0], penalized=mask, method="multishift-cg")
    with pytest.raises(rl.RidgelensError, match="method='krylov'"):
        rl.ridge_path(rl.SchurComplementOperator(H, mask), theta, [0.1, 1.0], method="multishift-cg")
    with pytest.raises(rl.RidgelensError, match="needs the operator"):
        rl.ridge_path(rl.eigen(H), theta, [0.1], method="multishift-cg")


def test_auto_never_picks_multishift_and_tiny_cases():
    H = np.diag([3.0, 1.0])
    assert rl.ridge_path(H, [1.0, 1.0], [0.0, 1.0]).method == "dense-eigh"
    p = rl.ridge_path(H, [1.0, 1.0], [0.0, 1.0], method="multishift-cg")  # 2 steps: an invariant space
    np.testing.assert_allclose(p.thetas, [[1.0, 1.0], [0.75, 0.5]], rtol=1e-12)
    assert p.converged.all() and p.n_matvecs == 3
    with pytest.raises(rl.RidgelensError, match="is zero"):
        rl.ridge_path(H, [0.0, 0.0], [1.0], method="multishift-cg")


def _singular_case(n=60, seed=3):
    H = psd(n, np.concatenate([np.zeros(10), np.geomspace(1e-2, 1.0, n - 10)]), seed=seed)
    H = 0.5 * (H + H.T)
    rng = np.random.default_rng(seed)
    return H, rng.normal(size=n), rng  # θ̂ has a null-space component


def _lstsq_path(H, b, lam):
    return np.stack([np.linalg.lstsq(H, b, rcond=1e-10)[0] if lv == 0 else
                     np.linalg.solve(H + lv * np.eye(H.shape[0]), b) for lv in lam])


@pytest.mark.parametrize("g_kind", ["none", "in range"])
def test_singular_psd_lambda_zero_is_the_minimum_norm_solution(g_kind):
    H, theta, rng = _singular_case()
    g = None if g_kind == "none" else 0.1 * H @ rng.normal(size=H.shape[0])
    lam = np.array([0.0, 1e-3, 0.1, 1.0])
    ref = _lstsq_path(H, H @ theta - (0.0 if g is None else g), lam)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = rl.ridge_path(H, theta, lam, gradient=g, method="multishift-cg", tol=1e-10, max_matvecs=2000)
        k = rl.ridge_path(H, theta, lam, gradient=g, method="krylov", tol=1e-10, max_matvecs=2000)
    assert p.valid.all() and p.converged.all()
    assert rel_err(p.thetas, ref).max() <= 1e-7 and rel_err(k.thetas, ref).max() <= 1e-7


def test_gradient_outside_range_at_lambda_zero_is_nan_and_said_so():
    # b = Hθ̂ − g with a null-space component: (H + 0·I)x = b has no solution. Dense and Krylov give
    # lstsq's pseudo-inverse solution; CG diverges, so its row is NaN with a warning that names the
    # cause (before: "negative curvature", with a most negative Ritz value of 0 on a PSD H).
    H, theta, rng = _singular_case()
    g = 0.1 * rng.normal(size=H.shape[0])
    lam = np.array([0.0, 1e-3, 0.1, 1.0])
    ref = _lstsq_path(H, H @ theta - g, lam)
    assert rel_err(rl.ridge_path(H, theta, lam, gradient=g, method="krylov", tol=1e-10).thetas, ref).max() <= 1e-7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = rl.ridge_path(H, theta, lam, gradient=g, method="multishift-cg", tol=1e-10, max_matvecs=2000)
    kinds = {type(w.message) for w in caught}
    assert rl.NegativeCurvatureWarning not in kinds and rl.ConvergenceWarning in kinds
    assert any("null space" in str(w.message) for w in caught)
    np.testing.assert_array_equal(p.valid, [False, True, True, True])
    assert np.isnan(p.thetas[0]).all() and p.converged[1:].all()
    assert rel_err(p.thetas[1:], ref[1:]).max() <= 1e-7


def test_duplicate_unsorted_single_lambda_and_identity():
    H = psd(80, np.linspace(0.05, 2.0, 80), seed=1)
    theta = np.random.default_rng(1).normal(size=80)
    g = 0.1 * np.random.default_rng(2).normal(size=80)
    for lam in ([0.3], [1.0, 0.1, 1.0, 0.0, 0.1]):
        lam = np.array(lam)
        p = rl.ridge_path(H, theta, lam, gradient=g, method="multishift-cg", tol=1e-11)
        assert p.converged.all() and rel_err(p.thetas, solves(H, theta, lam, g)).max() <= 1e-8
    np.testing.assert_array_equal(p.thetas[0], p.thetas[2])

    class Identity(rl.CurvatureOperator):
        def _matmat(self, V):
            return V  # hands back its input

    op = Identity(80)
    p = rl.ridge_path(op, theta, [0.0, 1.0, 3.0], gradient=g, method="multishift-cg")
    np.testing.assert_allclose(p.thetas, np.stack([(theta - g) / (1 + lv) for lv in (0, 1, 3)]), rtol=1e-13)
    # the path's 2 products; the operator also counts as_operator's symmetry probe of a user's own subclass (2)
    assert p.n_matvecs == 2 and op.n_matvecs == 4 and p.converged.all()
