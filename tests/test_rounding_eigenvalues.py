"""Rounding-level eigenvalues are zero, not negative curvature (one tolerance, dtype-aware).

A real small MLP (diabetes, 10 → 64 → 1, 769 parameters) has a Gauss–Newton matrix JᵀJ/n of
rank ≤ 442: positive semi-definite by construction, with ≥ 327 exact zero eigenvalues. Formed
in float32, those come out of eigh as ±1e-8: below float32's n·ε·σmax, far above float64's.
The reference is the same matrix formed in float64.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import ridgelens as rl
from helpers import lbfgs_fit
from ridgelens._shrinkage import rounding_tol, snap_rounding


def mlp_objective(dtype):
    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0), dtype=dtype)
    Y = torch.tensor((y - y.mean()) / y.std(), dtype=dtype)[:, None]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)).to(dtype)
    return rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X[i:i + 150], Y[i:i + 150]) for i in (0, 150, 300)])


@pytest.fixture(scope="module")
def ggn32():
    obj = mlp_objective(torch.float32)
    G = rl.ggn(obj, obj.theta0).to_dense()
    assert G.dtype == torch.float32
    return obj, G


def test_tolerance_is_dtype_aware():
    s = np.array([4.0, 1.0, -3e-15, 2e-12])
    assert rounding_tol(s) == 4 * 2.0**-52 * 4.0
    assert rounding_tol(s, torch.float32) == 4 * 2.0**-23 * 4.0
    snapped, tol = snap_rounding(s)
    assert snapped.tolist() == [4.0, 1.0, 0.0, 2e-12] and tol == rounding_tol(s)


def test_float32_ggn_has_no_negative_curvature(ggn32):
    obj, G = ggn32
    raw = np.linalg.eigvalsh(G.double().numpy())
    tol32 = rounding_tol(raw, torch.float32)
    # The premise: eigh sees negative eigenvalues beyond float64's tolerance, all within float32's.
    assert raw.min() < -100 * rounding_tol(raw, torch.float64) and raw.min() > -tol32
    spec = rl.eigen(G)
    assert spec.min_eigenvalue == 0.0
    ref = np.linalg.eigvalsh(rl.ggn(mlp_objective(torch.float64), obj.theta0).to_dense().numpy())
    # Every eigenvalue the float32 spectrum calls zero is below the tolerance in float64 too.
    assert np.abs(ref).min() <= tol32 and (spec.eigenvalues == 0).sum() >= (np.abs(ref) <= 1e-3 * tol32).sum()


def test_float32_ggn_path_is_valid_and_df_is_the_float64_one(ggn32):
    obj, _G = ggn32
    lams = np.array([0.0, 1e-9, 1e-6, 1e-3, 0.1, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", rl.NegativeCurvatureWarning)
        res = rl.analyze(obj, lams, theta_hat=obj.theta0, curvature="ggn", refit=False, method="dense")
    assert res.path.valid.all() and res.min_eigenvalue == 0.0
    df = res.effective_df
    assert (df >= 0).all() and (np.diff(df) <= 1e-9).all()
    ref64 = rl.analyze(mlp_objective(torch.float64), lams, theta_hat=obj.theta0, curvature="ggn", refit=False,
                       method="dense")
    # Each eigenvalue set to 0 (|σ| ≤ tol) takes at most tol/(tol + λ) from df(λ): away from the
    # tolerance (n·ε₃₂·σmax ≈ 1.1e-3 here, float32's resolution of this spectrum) df is the float64 one.
    tol, zeros = res.path.rank_tol, int((res.path.eigenvalues == 0).sum())
    big = lams >= 50 * tol
    assert big.sum() == 2
    bound = zeros * tol / (tol + lams[big]) + 1e-4 * ref64.effective_df[big]
    assert (np.abs(df[big] - ref64.effective_df[big]) <= bound).all()
    assert res.effective_df[0] == pytest.approx(np.count_nonzero(res.path.eigenvalues))


def test_genuine_negative_curvature_still_warns():
    obj = mlp_objective(torch.float64)
    with pytest.warns(rl.NegativeCurvatureWarning):
        res = rl.analyze(obj, [1e-3, 1.0], theta_hat=obj.theta0, refit=False, method="dense")
    assert res.min_eigenvalue < -1e-3  # the Hessian at a random θ: well beyond rounding


def test_df_curve_and_page_slider_ignore_a_rounding_level_eigenvalue():
    from types import SimpleNamespace

    from ridgelens.plots import effective_df_curve
    from ridgelens.report._page import lambda_grid

    sigma = np.array([4.0, 1.0, 1.3e-16, -4.2e-16])  # the last two: below 4 · ε · 4 = 3.6e-15
    grid = np.geomspace(1e-18, 10, 50)
    df = effective_df_curve(sigma, grid)
    np.testing.assert_allclose(df, 4 / (4 + grid) + 1 / (1 + grid), rtol=1e-12)  # closed form, two directions
    lam = lambda_grid(SimpleNamespace(eigenvalues=sigma, lambdas=np.array([0.1]), rank_tol=0.0))
    # from the smallest real eigenvalue (σ_min/30, rounded up to the slider's round stops), not from 1e-16
    assert lam[0] == 0.0 and 1.0 / 30 <= lam[1] <= 0.1


# ------------------------------------------------------------- a trained ~310-parameter MLP
# Issue 9 §3's example (−4.2e-12 on a 310-parameter MLP) as close as it reproduces here: diabetes with
# one feature twice (BMI, as tables often repeat a column), 11 → 24 → 1, 313 parameters, trained by
# L-BFGS in float64. The loss sees each hidden unit's two BMI weights only through their sum, so the
# 24 directions e(w_j,BMI) − e(w_j,BMI') are exact null directions of H and of the GGN (closed form,
# checked below against the formed matrices): eigh returns them at rounding level, some negative.
# θ̂ is a trained, not an exact, minimizer: H also has genuine negative curvature of order 1e-6,
# far above the rule, which must still warn.
HIDDEN = 24


@pytest.fixture(scope="module")
def twin_feature_mlp():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X = torch.tensor(np.c_[X, X[:, 2]])
    Y = torch.tensor((y - y.mean()) / y.std())[:, None]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(11, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)).double()
    lbfgs_fit(net, torch.nn.functional.mse_loss, X, Y, max_iter=300, history_size=50)
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)])
    null = np.zeros((obj.n_params, HIDDEN))  # first-layer weight (j, k) is entry 11·j + k of θ
    null[11 * np.arange(HIDDEN) + 2, np.arange(HIDDEN)] = 2 ** -0.5
    null[11 * np.arange(HIDDEN) + 10, np.arange(HIDDEN)] = -(2 ** -0.5)
    return obj, null


def test_trained_mlp_hessian_zeroes_its_null_directions_and_keeps_its_curvature(twin_feature_mlp):
    obj, null = twin_feature_mlp
    assert obj.n_params == 313
    H = rl.hessian(obj, obj.theta0).to_dense().numpy()
    raw = np.linalg.eigvalsh(H)
    tol = rounding_tol(raw)
    # The premise, against the closed-form null space: H maps it to rounding, and eigh reports 24
    # eigenvalues at rounding level, some of them negative; the genuine negative ones are far beyond.
    assert np.abs(H @ null).max() <= tol
    tiny = np.abs(raw) <= tol
    assert tiny.sum() == HIDDEN and (raw[tiny] < 0).any()
    genuine = raw[raw < -tol]
    assert genuine.size >= 1 and genuine.max() < -1e3 * tol
    with pytest.warns(rl.NegativeCurvatureWarning, match=f"{genuine.size} of 313"):
        res = rl.analyze(obj, [1e-3, 1.0], theta_hat=obj.theta0, refit=False, method="dense")
    sigma = res.path.eigenvalues
    assert (sigma == 0).sum() == HIDDEN and (sigma < 0).sum() == genuine.size
    np.testing.assert_allclose(np.sort(sigma[sigma < 0]), genuine, rtol=1e-8)


def test_trained_mlp_ggn_has_no_negative_curvature_and_the_page_ignores_its_rounding(twin_feature_mlp):
    from ridgelens.plots import effective_df_curve
    from ridgelens.report import ExplorerData, lambda_grid

    obj, null = twin_feature_mlp
    G = rl.ggn(obj, obj.theta0).to_dense().numpy()
    raw = np.linalg.eigvalsh(G)
    tol = rounding_tol(raw)
    assert np.abs(G @ null).max() <= tol
    assert raw.min() < 0 and raw.min() >= -tol  # a rounding-level negative eigenvalue, as in issue 9 §3
    lams = np.array([0.0, 1e-9, 1e-6, 1e-3, 0.1, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", rl.NegativeCurvatureWarning)
        res = rl.analyze(obj, lams, theta_hat=obj.theta0, curvature="ggn", refit=False, method="dense")
    sigma = res.path.eigenvalues
    assert res.path.valid.all() and res.min_eigenvalue == 0.0 and (sigma >= 0).all()
    assert (sigma == 0).sum() == (np.abs(raw) <= tol).sum() >= HIDDEN
    # df(λ) against the closed form Σ σ/(σ + λ) over G's eigenvalues above the rule (dense eigh, float64)
    ref = raw[raw > tol]
    df = res.effective_df
    assert (df >= 0).all() and (np.diff(df) <= 0).all()
    np.testing.assert_allclose(df[1:], [np.sum(ref / (ref + lam)) for lam in lams[1:]], rtol=1e-9)
    assert df[0] == ref.size
    grid = np.geomspace(1e-20, 1e2, 60)
    assert (effective_df_curve(sigma, grid) >= 0).all()
    # The page's slider starts from the smallest real eigenvalue, not from a rounding value.
    page = ExplorerData.from_analysis(res)
    assert lambda_grid(page)[1] >= ref.min() / 30 / 10
