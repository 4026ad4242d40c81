"""Property tests of the ridge path on random PSD matrices (Hypothesis).

Every property is checked against an independent dense reference: a direct solve of
(H + λP)θ = Hθ̂ − g, the eigen form Q diag(σ/(σ+λ)) Qᵀθ̂ built with numpy's ``eigh``, or a
projector onto range(H) built from the factor B of H = BBᵀ.
"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ridgelens as rl

SETTINGS = settings(max_examples=50, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
SCALES = st.sampled_from([1e-3, 1.0, 1e3])


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


@st.composite
def psd_problems(draw, full_rank=None, conditioned=None):
    """(H, θ̂, B, scale) with H = BBᵀ; B has full column rank r (r < n: H singular).

    B is either Gaussian (n × (n+3) when full rank, n × r when singular) or, when
    ``conditioned``, U diag(s) Vᵀ with the non-zero eigenvalues s² in scale·[0.1, 10].
    """
    n = draw(st.integers(1, 8))
    if full_rank is None:
        full_rank = draw(st.booleans()) or n == 1
    r = n if full_rank else draw(st.integers(1, n - 1))
    if conditioned is None:
        conditioned = draw(st.booleans())
    rng = np.random.default_rng(draw(SEEDS))
    scale = draw(SCALES)
    if conditioned:
        U = np.linalg.qr(rng.normal(size=(n, r)))[0]
        V = np.linalg.qr(rng.normal(size=(r + 2, r)))[0]
        B = (U * np.sqrt(scale * 10.0 ** rng.uniform(-1, 1, r))) @ V.T
    else:
        B = rng.normal(size=(n, n + 3 if full_rank else r)) * np.sqrt(scale / (n + 3))
    H = B @ B.T
    theta = rng.normal(size=n)
    return H, theta, B, scale


def eigen_form(H, theta, lam):
    sigma, Q = np.linalg.eigh(H)
    return Q @ (sigma / (sigma + lam) * (Q.T @ theta))


def range_projector(B):
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    U = U[:, s > 1e-12 * s.max()]
    return U @ U.T


def lambda_grid(scale):
    return scale * np.r_[0.0, np.logspace(-4, 4, 9)]


@SETTINGS
@given(psd_problems())
def test_factors_in_unit_interval_and_non_increasing(problem):
    H, theta, B, scale = problem
    path = rl.ridge_path(H, theta, lambda_grid(scale))
    F = path.factors
    assert path.valid.all()
    # At λ = 0: factor 1 on range(H), 0 on its null space, so df(0) = rank(H).
    rank = np.linalg.matrix_rank(B)
    np.testing.assert_allclose(F[0], np.r_[np.ones(rank), np.zeros(len(H) - rank)], rtol=0, atol=1e-12)
    assert path.effective_df[0] == pytest.approx(rank, abs=1e-12)
    assert np.all(F >= 0) and np.all(F <= 1 + 1e-15)
    assert np.all(np.diff(F, axis=0) <= 1e-15), "factors must not grow with λ"
    # Eigenvalues are descending and non-negative for a PSD matrix.
    assert np.all(np.diff(path.eigenvalues) <= 0) and np.all(path.eigenvalues >= 0)
    # df(λ) = Σ factors = trace(H (H + λI)⁻¹), decreasing from rank(H) to ~0.
    lam = path.lambdas
    for i in range(1, lam.size):
        tr = np.trace(np.linalg.solve(H + lam[i] * np.eye(len(H)), H))
        assert path.effective_df[i] == pytest.approx(tr, rel=1e-9, abs=1e-12)
    assert np.all(np.diff(path.effective_df) <= 1e-12)


@SETTINGS
@given(psd_problems())
def test_lambda_zero_gives_projection_onto_range(problem):
    H, theta, B, _ = problem
    proj = range_projector(B) @ theta
    pinv_ref = np.linalg.pinv(H, rtol=1e-10) @ H @ theta
    assert rel_err(pinv_ref, proj) < 1e-6  # the two references agree
    path = rl.ridge_path(H, theta, [0.0])
    assert path.valid.all()
    assert rel_err(path.thetas[0], proj) < 1e-8, (path.thetas[0], proj, path.eigenvalues)
    if np.linalg.matrix_rank(B) == len(H):
        assert rel_err(path.thetas[0], theta) < 1e-8


@SETTINGS
@given(psd_problems(conditioned=True))
def test_lambda_to_zero_limit_is_projection_onto_range(problem):
    # The limit λ → 0⁺ (not only the λ = 0 convention): the non-zero eigenvalues are in
    # scale·[0.1, 10], so at λ = 1e-7·scale the path is within ~1e-6 of its limit.
    H, theta, B, scale = problem
    proj = range_projector(B) @ theta
    path = rl.ridge_path(H, theta, scale * np.array([1e-5, 1e-6, 1e-7]))
    errs = [rel_err(t, proj) for t in path.thetas]
    assert errs[-1] < 1e-5, errs
    assert errs[0] < 1e-3, errs


@SETTINGS
@given(psd_problems())
def test_lambda_to_infinity_gives_zero(problem):
    H, theta, _, scale = problem
    path = rl.ridge_path(H, theta, [1e12 * scale])
    assert np.linalg.norm(path.thetas[0]) <= 1e-10 * np.linalg.norm(theta)
    assert path.effective_df[0] < 1e-10


@SETTINGS
@given(psd_problems())
def test_direct_eigen_and_steps_agree(problem):
    H, theta, _, scale = problem
    lambdas = lambda_grid(scale)[1:]
    path = rl.ridge_path(H, theta, lambdas)
    Q = path.eigenvectors
    assert np.allclose(Q.T @ Q, np.eye(len(H)), atol=1e-12)
    assert np.allclose(path.coords, Q.T @ theta, atol=1e-12)
    for i, lam in enumerate(lambdas):
        direct = np.linalg.solve(H + lam * np.eye(len(H)), H @ theta)
        assert rel_err(path.thetas[i], direct) < 1e-8
        assert rel_err(eigen_form(H, theta, lam), direct) < 1e-8
        st_ = path.steps(i)
        assert np.allclose(st_["rotated"], Q.T @ theta)
        assert np.allclose(st_["scaled"], st_["factors"] * st_["rotated"], rtol=0, atol=1e-15 * 10)
        assert rel_err(Q @ st_["scaled"], direct) < 1e-8
        assert np.array_equal(st_["rotated_back"], path.thetas[i])


@SETTINGS
@given(psd_problems(), st.sampled_from(["operator", "spectrum"]))
def test_path_sources_agree(problem, kind):
    H, theta, _, scale = problem
    lambdas = lambda_grid(scale)
    ref = rl.ridge_path(H, theta, lambdas)
    src = rl.DenseOperator(H) if kind == "operator" else rl.eigen(H)
    path = rl.ridge_path(src, theta, lambdas)
    assert np.allclose(path.thetas, ref.thetas, rtol=0, atol=1e-12 * np.linalg.norm(theta))


@st.composite
def masked_problems(draw):
    n = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(SEEDS))
    scale = draw(SCALES)
    B = rng.normal(size=(n, n + 3)) * np.sqrt(scale / (n + 3))
    H = B @ B.T + 0.05 * scale * np.eye(n)  # positive definite
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: any(m) and not all(m)))
    theta = rng.normal(size=n)
    g = rng.normal(size=n) * scale * 0.1
    return H, theta, np.array(mask), g, scale


@SETTINGS
@given(masked_problems())
def test_schur_complement_path_equals_masked_solve(problem):
    H, theta, mask, _, scale = problem
    lambdas = lambda_grid(scale)
    P = np.diag(mask.astype(float))
    path = rl.ridge_path(H, theta, lambdas, penalized=mask)
    assert path.curvature == "schur-complement" and path.valid.all()
    p, u = mask, ~mask
    S = H[np.ix_(p, p)] - H[np.ix_(p, u)] @ np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, p)])
    assert np.allclose(path.eigenvalues, np.sort(np.linalg.eigvalsh(S))[::-1], rtol=1e-9,
                       atol=1e-12 * scale)
    for i, lam in enumerate(lambdas):
        direct = np.linalg.solve(H + lam * P, H @ theta)
        assert rel_err(path.thetas[i], direct) < 1e-8, (lam, path.thetas[i], direct)
        # The eigen view of S reproduces the penalized block.
        assert rel_err(path.eigenvectors @ path.scaled[i], direct[p]) < 1e-8
    # λ → ∞: the penalized block goes to 0; the free block re-fits given θ_p = 0.
    big = rl.ridge_path(H, theta, [1e12 * scale], penalized=mask).thetas[0]
    assert np.linalg.norm(big[p]) < 1e-9 * np.linalg.norm(theta)
    free = theta[u] + np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, p)] @ theta[p])
    assert rel_err(big[u], free) < 1e-6


@SETTINGS
@given(masked_problems(), st.booleans())
def test_gradient_term(problem, use_mask):
    H, theta, mask, g, scale = problem
    if not use_mask:
        mask = np.ones_like(mask)
    lambdas = lambda_grid(scale)[1:]
    P = np.diag(mask.astype(float))
    path = rl.ridge_path(H, theta, lambdas, penalized=mask, gradient=g)
    assert path.gradient_used
    for i, lam in enumerate(lambdas):
        direct = np.linalg.solve(H + lam * P, H @ theta - g)
        assert rel_err(path.thetas[i], direct) < 1e-8, (lam, path.thetas[i], direct)
    # A zero gradient changes nothing.
    no_g = rl.ridge_path(H, theta, lambdas, penalized=mask)
    zero_g = rl.ridge_path(H, theta, lambdas, penalized=mask, gradient=np.zeros_like(g))
    assert np.allclose(no_g.thetas, zero_g.thetas, rtol=0, atol=1e-13 * np.linalg.norm(theta))


@SETTINGS
@given(psd_problems(), st.integers(1, 5), SEEDS)
def test_dense_operator_matmat_and_symmetry(problem, k, seed):
    H, _, _, _ = problem
    op = rl.DenseOperator(H)
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(len(H), k))
    stacked = np.column_stack([op.matvec(V[:, j]) for j in range(k)])
    M = op.matmat(V)
    assert op.n_matvecs == 2 * k
    assert np.allclose(M, stacked, rtol=0, atol=1e-13 * np.abs(H).max())
    assert np.allclose(M, H @ V, rtol=0, atol=1e-13 * np.abs(H).max())
    assert np.array_equal(op.to_dense(), H) and op.is_dense
    u, v = V[:, 0], rng.normal(size=len(H))
    assert u @ op.matvec(v) == pytest.approx(op.matvec(u) @ v, rel=1e-12, abs=1e-14 * np.abs(H).max())


def _torch_objective():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(23, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(23, 2, generator=g, dtype=torch.float64)
    return rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X[:10], Y[:10]), (X[10:], Y[10:])])


TORCH_OBJ = _torch_objective()


@SETTINGS
@given(SEEDS, st.integers(1, 4))
def test_hessian_operator_symmetric_and_matmat(seed, k):
    obj = TORCH_OBJ
    rng = np.random.default_rng(seed)
    theta = obj.theta0 + 0.5 * rng.normal(size=obj.n_params)
    op = rl.HessianOperator(obj, theta)
    u, v = rng.normal(size=obj.n_params), rng.normal(size=obj.n_params)
    Hu, Hv = op.matvec(u), op.matvec(v)
    assert u @ Hv == pytest.approx(Hu @ v, rel=1e-10, abs=1e-12 * np.linalg.norm(Hu) * np.linalg.norm(v))
    V = rng.normal(size=(obj.n_params, k))
    stacked = np.column_stack([op.matvec(V[:, j]) for j in range(k)])
    assert np.allclose(op.matmat(V), stacked, rtol=0, atol=1e-13)
    assert op.n_matvecs == 2 + 2 * k
    lin = op.as_linear_operator()
    assert np.allclose(lin.matvec(u), Hu, rtol=0, atol=1e-13)
    assert np.allclose(lin.rmatvec(u), Hu, rtol=0, atol=1e-13)


# --- negative curvature -------------------------------------------------------------------

@st.composite
def indefinite_problems(draw):
    n = draw(st.integers(2, 7))
    rng = np.random.default_rng(draw(SEEDS))
    n_neg = draw(st.integers(1, n - 1))
    sigma = np.r_[rng.uniform(0.5, 5.0, n - n_neg), -rng.uniform(0.1, 2.0, n_neg)]
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    H = (Q * sigma) @ Q.T
    return 0.5 * (H + H.T), rng.normal(size=n), sigma


@SETTINGS
@given(indefinite_problems())
def test_negative_curvature_nan_rows(problem):
    H, theta, sigma = problem
    most_negative = sigma.min()
    # Away from the boundary λ = −σ_min, where rounding of the computed σ_min decides.
    lambdas = np.r_[0.0, 0.5, 0.99, 1.01, 1.5, 10.0] * -most_negative
    with pytest.warns(rl.NegativeCurvatureWarning, match="negative eigenvalues") as rec:
        path = rl.ridge_path(H, theta, lambdas)
    assert f"{most_negative:.4g}" in str(rec[0].message)
    expect_valid = sigma.min() + lambdas > 0
    np.testing.assert_array_equal(path.valid, expect_valid)
    assert np.isnan(path.thetas[~expect_valid]).all()
    assert np.isnan(path.factors[~expect_valid]).all()
    assert np.isnan(path.effective_df[~expect_valid]).all()
    for i in np.flatnonzero(expect_valid):
        direct = np.linalg.solve(H + lambdas[i] * np.eye(len(H)), H @ theta)
        assert rel_err(path.thetas[i], direct) < 1e-8
    assert path.eigenvalues.min() == pytest.approx(most_negative, rel=1e-10)


@SETTINGS
@given(indefinite_problems())
def test_negative_curvature_clip(problem):
    H, theta, _ = problem
    lambdas = np.r_[0.0, 0.1, 1.0, 10.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clipping is the documented remedy: no warning
        path = rl.ridge_path(H, theta, lambdas, negative="clip")
    assert path.valid.all() and np.all(path.eigenvalues >= 0)
    w, Q = np.linalg.eigh(H)
    wp = np.maximum(w, 0.0)
    for i, lam in enumerate(lambdas):
        f = np.divide(wp, wp + lam, out=np.zeros_like(wp), where=wp + lam > 0)
        assert rel_err(path.thetas[i], Q @ (f * (Q.T @ theta))) < 1e-8
    # At λ = 0 the negative directions are dropped: projection onto the positive eigenspace.
    pos = Q[:, w > 0]
    assert rel_err(path.thetas[0], pos @ (pos.T @ theta)) < 1e-8


@SETTINGS
@given(indefinite_problems())
def test_negative_curvature_raise(problem):
    H, theta, sigma = problem
    with pytest.raises(rl.RidgelensError, match="negative eigenvalue") as exc:
        rl.ridge_path(H, theta, [1.0], negative="raise")
    assert f"{sigma.min():.4g}" in str(exc.value)


def test_negative_curvature_boundary_is_invalid():
    # σ + λ ≤ 0 is invalid, including σ + λ = 0 exactly (no minimizer: a flat direction
    # with a non-zero linear term).
    H = np.diag([2.0, -0.5])
    with pytest.warns(rl.NegativeCurvatureWarning, match=r"-0\.5.*λ ≤ 0\.5: 2 λ marked invalid"):
        path = rl.ridge_path(H, np.ones(2), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(path.valid, [False, False, True])
    np.testing.assert_allclose(path.thetas[2], [2 / 3, -1.0])  # σ/(σ+λ): 2/3 and −0.5/0.5


def test_negative_option_is_validated():
    with pytest.raises(rl.RidgelensError, match="negative must be one of"):
        rl.ridge_path(np.eye(2), np.ones(2), [1.0], negative="ignore")


def test_psd_matrix_with_raise_does_not_raise():
    H = np.diag([2.0, 1.0, 0.0])
    path = rl.ridge_path(H, np.ones(3), [0.0, 1.0], negative="raise")
    np.testing.assert_allclose(path.thetas, [[1.0, 1.0, 0.0], [2 / 3, 0.5, 0.0]])
    np.testing.assert_allclose(path.factors, [[1.0, 1.0, 0.0], [2 / 3, 0.5, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(path.effective_df, [2.0, 7 / 6], rtol=1e-15)
