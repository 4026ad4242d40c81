"""LeastSquares precision against independent references, and sample weights.

- θ̂ against NIST StRD certified values (Longley; Wampler 1 to 5), counted in certified
  digits (log relative error, LRE), as in McCullough's assessments of statistical software.
- The ridge path and the penalized curvature's eigenvalues on *raw* Longley (the path on raw
  Wampler3 too) against 50-digit mpmath solves and eigendecompositions.
- ``sample_weight`` against row repetition (integer weights), row deletion (zero weights)
  and scikit-learn's ``Ridge(alpha=λ·Σw, sample_weight=w)``.
"""

import warnings
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

import ridgelens as rl
from ridgelens.errors import IllConditionedWarning
from ridgelens.objectives.linear import LeastSquares

pytest.importorskip("statsmodels")

# NIST StRD, Linear Least Squares Regression, "Longley" (certified with 500-digit arithmetic):
# https://www.itl.nist.gov/div898/strd/lls/data/Longley.shtml
# y = B0 + B1 x1 + ... + B6 x6 with x1..x6 = GNP deflator, GNP, unemployed, armed forces,
# population, year (statsmodels' column order). Written here as (B1, ..., B6, B0).
LONGLEY_CERTIFIED = np.array([
    15.0618722713733, -0.358191792925910e-01, -2.02022980381683, -1.03322686717359,
    -0.511041056535807e-01, 1829.15146461355, -3482258.63459582,
])
MIN_DIGITS = 11.0


def lre(estimate, certified):
    """Certified digits: −log10 |estimate − certified| / |certified| (15 when exact)."""
    err = np.abs(np.asarray(estimate) - certified) / np.abs(certified)
    with np.errstate(divide="ignore"):
        return np.minimum(15.0, -np.log10(err))


def longley():
    from statsmodels.datasets import longley as data

    ds = data.load()
    return np.asarray(ds.exog, dtype=np.float64), np.asarray(ds.endog, dtype=np.float64)


def wampler(coefficients):
    """NIST Wampler data: x = 0..20, y = Σₖ cₖ xᵏ exactly (NIST lists these exact decimals), design x..x⁵."""
    x = np.arange(21)
    y = np.array([float(sum(c * Fraction(int(xi)) ** k for k, c in enumerate(coefficients))) for xi in x])
    return np.column_stack([x ** k for k in range(1, 6)]).astype(np.float64), y


WAMPLER1 = [Fraction(1)] * 6  # certified: all 1
WAMPLER2 = [Fraction(1, 10 ** k) for k in range(6)]  # certified: 1, 0.1, ..., 1e-5

# NIST StRD Wampler3, 4 and 5 (public domain): the same design, y = Σₖ xᵏ plus residuals that grow
# by 100× from one set to the next, so the fit gets worse (R² 0.999996, 0.957, 0.0022) while the
# certified B0..B5 stay exactly 1. https://www.itl.nist.gov/div898/strd/lls/data/Wampler3.shtml
# (and Wampler4, Wampler5): y for x = 0..20, the certified standard deviations of B0..B5 and the
# certified residual sum of squares, as NIST lists them; cross-checked against Apache
# commons-math's OLSMultipleLinearRegressionTest and LabPlot's FitTest, which copy the same tables.
WAMPLER_NOISY = {
    "Wampler3": ([760, -2042, 2111, -1684, 3888, 1858, 11379, 17560, 39287, 64382, 113159, 175108, 273291,
                  400186, 581243, 811568, 1121004, 1506550, 2002767, 2611612, 3369180],
                 [2152.32624678170, 2363.55173469681, 779.343524331583, 101.475507550350, 5.64566512170752,
                  0.112324854679312], 83554268),
    "Wampler4": ([75901, -204794, 204863, -204436, 253665, -200894, 214131, -185192, 221249, -138370, 315911,
                  -27644, 455253, 197434, 783995, 608816, 1370781, 1303798, 2205519, 2408860, 3444321],
                 [215232.624678170, 236355.173469681, 77934.3524331583, 10147.5507550350, 564.566512170752,
                  11.2324854679312], 835542680000),
    "Wampler5": ([7590001, -20479994, 20480063, -20479636, 25231365, -20476094, 20489331, -20460392, 18417449,
                  -20413570, 20591111, -20302844, 18651453, -20077766, 21059195, -19666384, 26348481, -18971402,
                  22480719, -17866340, 10958421],
                 [21523262.4678170, 23635517.3469681, 7793435.24331583, 1014755.07550350, 56456.6512170752,
                  1123.24854679312], 8355426800000000),
}


def wampler_noisy(name):
    X, _ = wampler(WAMPLER1)
    return X, np.array(WAMPLER_NOISY[name][0], dtype=np.float64)


def theta_hat(X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        return LeastSquares(X, y, **kwargs).minimize()


# ----------------------------------------------------------------- NIST certified θ̂
def test_longley_certified_digits():
    X, y = longley()
    hat = theta_hat(X, y)
    assert hat.converged
    digits = lre(hat.theta, LONGLEY_CERTIFIED)
    assert digits.min() >= MIN_DIGITS, digits
    # The intercept penalized or not, θ̂ is the same OLS solution.
    assert lre(theta_hat(X, y, penalize_intercept=True).theta, LONGLEY_CERTIFIED).min() >= MIN_DIGITS


@pytest.mark.parametrize("power", [20, 30])
def test_longley_in_other_units_keeps_its_digits(power):
    # Scaling columns by powers of 2 is exact, and so is the certified solution's answer to
    # it. 2^±30 makes cond(Xc) ≈ 2.5e19: an SVD of Xc alone would see two columns as zero.
    X, y = longley()
    scale = 2.0 ** (power * np.array([1, -1, 0, 1, -1, 0.5]))
    certified = LONGLEY_CERTIFIED.copy()
    certified[:6] /= scale
    digits = lre(theta_hat(X * scale, y).theta, certified)
    assert digits.min() >= MIN_DIGITS, digits


@pytest.mark.parametrize(("name", "coefficients"), [("Wampler1", WAMPLER1), ("Wampler2", WAMPLER2)])
def test_wampler_certified_digits(name, coefficients):
    X, y = wampler(coefficients)
    certified = np.array([float(c) for c in coefficients[1:]] + [float(coefficients[0])])
    digits = lre(theta_hat(X, y).theta, certified)
    assert digits.min() >= MIN_DIGITS, (name, digits)
    # Without an intercept column: the data through the origin minus y(0), same slopes.
    digits = lre(theta_hat(X[1:], y[1:] - float(coefficients[0]), fit_intercept=False).theta, certified[:-1])
    assert digits.min() >= MIN_DIGITS, (name, digits)


@pytest.mark.parametrize("name", sorted(WAMPLER_NOISY))
def test_noisy_wampler_data_have_their_certified_solution(name):
    # In exact (integer) arithmetic: r = y − Σₖ xᵏ is orthogonal to every column of [1, x, ..., x⁵],
    # so B0..B5 = 1 is these y's least-squares solution; Σr² is the certified residual sum of
    # squares, and s²·diag((AᵀA)⁻¹) with s² = RSS/15 gives the certified standard deviations.
    y, sd, rss = WAMPLER_NOISY[name]
    r = [yi - sum(x ** k for k in range(6)) for x, yi in enumerate(y)]
    assert [sum(ri * x ** k for x, ri in enumerate(r)) for k in range(6)] == [0] * 6
    assert sum(ri * ri for ri in r) == rss
    mp.mp.dps = 50
    A = mp.matrix([[x ** k for k in range(6)] for x in range(21)])
    cov = mp.inverse(A.T * A) * mp.mpf(rss) / 15
    assert [float(mp.nstr(mp.sqrt(cov[k, k]), 15)) for k in range(6)] == sd  # all 15 digits NIST prints
    # Wampler4's and Wampler5's residuals are Wampler3's times 100 and 10⁴.
    scale = {"Wampler3": 1, "Wampler4": 100, "Wampler5": 10 ** 4}[name]
    assert [yi - scale * y3 for yi, y3 in zip(y, WAMPLER_NOISY["Wampler3"][0], strict=True)] == \
        [(1 - scale) * sum(x ** k for k in range(6)) for x in range(21)]


@pytest.mark.parametrize("name", sorted(WAMPLER_NOISY))
@pytest.mark.parametrize("ones_column", [False, True])
def test_noisy_wampler_certified_digits(name, ones_column):
    X, y = wampler_noisy(name)
    if ones_column:  # no intercept of ours: the constant is the design's first column
        fits = [theta_hat(np.hstack([np.ones((len(y), 1)), X]), y, fit_intercept=False)]
    else:
        fits = [theta_hat(X, y), theta_hat(X, y, penalize_intercept=True)]
    for hat in fits:
        digits = lre(hat.theta, np.ones(6))
        assert digits.min() >= MIN_DIGITS, (name, digits)


@pytest.mark.parametrize("name", sorted(WAMPLER_NOISY))
def test_noisy_wampler_digits_are_at_least_numpys(name):
    # A backward-stable float64 solve has forward error ~ ε·(κ + κ²·‖r‖/(‖A‖‖θ‖)): the residuals grow
    # 100× per set while the certified θ stays 1, so numpy's lstsq (LAPACK gelsd) loses 2 digits per
    # set; refining the augmented system removes the κ² term, so ours keeps more, with or without a
    # column of ones.
    X, y = wampler_noisy(name)
    A = np.hstack([np.ones((len(y), 1)), X])
    numpy_digits = lre(np.linalg.lstsq(A, y, rcond=None)[0], 1.0).min()
    assert lre(theta_hat(X, y).theta, 1.0).min() >= numpy_digits + 1.0
    assert lre(theta_hat(A, y, fit_intercept=False).theta, 1.0).min() >= numpy_digits + 1.0


@pytest.mark.parametrize("options", [{}, {"penalize_intercept": True}, {"fit_intercept": False}])
def test_weighted_noisy_wampler_matches_mpmath(options):
    # Weights enter the refinement's residual AᵀWρ (each wᵢρᵢ split exactly into two doubles).
    # Wampler5's residuals divided by the weights stay W-orthogonal to [X, 1], so the weighted fit
    # is θ = 1 again with residuals 1e4 times the data's scale: float64 solves keep ~6 digits.
    # Against 50-digit weighted normal equations on the exact doubles.
    X, y5 = wampler_noisy("Wampler5")
    w = np.random.default_rng(3).uniform(0.1, 2.0, size=len(y5))
    poly = np.array([sum(float(x) ** k for k in range(6)) for x in range(len(y5))])
    y = poly + (y5 - poly) / w
    mp.mp.dps = 50
    A = mp_matrix(X if options.get("fit_intercept") is False else np.hstack([X, np.ones((len(y), 1))]))
    W = mp.diag([mp.mpf(float(v)) for v in w])
    ref = mp.lu_solve(A.T * W * A, A.T * W * mp.matrix([mp.mpf(float(v)) for v in y]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        theta = LeastSquares(X, y, sample_weight=w, **options).minimize().theta
    assert lre(theta, np.array([float(v) for v in ref])).min() >= MIN_DIGITS


def test_longley_warns_with_the_condition_number():
    X, y = longley()
    obj = LeastSquares(X, y)
    with pytest.warns(IllConditionedWarning, match=r"condition number 4\.86e\+09 > 1e\+08") as rec:
        obj.minimize()
    assert "hessian_dense" in str(rec[0].message)
    A = np.hstack([X, np.ones((len(y), 1))])
    assert obj.design_svd().condition_number == pytest.approx(np.linalg.cond(A), rel=1e-6)
    with warnings.catch_warnings():  # once per objective
        warnings.simplefilter("error")
        obj.minimize(l2=1.0)
        obj.penalized_spectrum()
    Xd, yd = np.random.default_rng(0).normal(size=(50, 4)), np.arange(50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LeastSquares(Xd, yd).minimize()


# ------------------------------------------------------------------ mpmath references
def mp_matrix(X):
    return mp.matrix([[mp.mpf(float(v)) for v in row] for row in X])


def mp_ridge(X, y, lam, *, mode):
    """50-digit ridge solution; mode "free" (intercept unpenalized), "penalized" or "none"."""
    mp.mp.dps = 50
    n, d = X.shape
    A = mp_matrix(np.hstack([X, np.ones((n, 1))]) if mode != "none" else X)
    yy = mp.matrix([mp.mpf(float(v)) for v in y])
    P = mp.eye(A.cols)
    if mode == "free":
        P[d, d] = 0
    theta = mp.lu_solve(A.T * A + n * mp.mpf(lam) * P, A.T * yy)
    return np.array([float(v) for v in theta])


def mp_curvature_eigenvalues(X, *, mode):
    """50-digit eigenvalues (descending) of S = XcᵀXc/n (free intercept) or H = AᵀA/n."""
    mp.mp.dps = 50
    n, d = X.shape
    if mode == "free":
        Xm = mp_matrix(X)
        means = [mp.fsum(Xm[i, j] for i in range(n)) / n for j in range(d)]
        A = mp.matrix(n, d)
        for i in range(n):
            for j in range(d):
                A[i, j] = Xm[i, j] - means[j]
    else:
        A = mp_matrix(np.hstack([X, np.ones((n, 1))]) if mode == "penalized" else X)
    E, _ = mp.eigsy(A.T * A / n)
    return np.sort(np.array([float(e) for e in E]))[::-1]


OPTIONS = {"free": {}, "penalized": {"penalize_intercept": True}, "none": {"fit_intercept": False}}
PATH_TOL = 1e-10


@pytest.mark.parametrize("lam", [1e-6, 1e-4, 1e-2, 1.0, 100.0])
def test_ridge_path_on_raw_longley_matches_mpmath(lam):
    X, y = longley()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        for mode, kwargs in OPTIONS.items():
            if mode != "free" and lam not in (1e-2, 1.0):
                continue
            ref = mp_ridge(X, y, lam, mode=mode)
            res = LeastSquares(X, y, **kwargs).minimize(l2=lam)
            assert res.converged
            err = np.abs(res.theta - ref).max() / np.abs(ref).max()
            assert err < PATH_TOL, (mode, lam, err)
            if mode == "free":  # the weights alone, against their own largest
                err_w = np.abs(res.theta[:-1] - ref[:-1]).max() / np.abs(ref[:-1]).max()
                assert err_w < PATH_TOL, (lam, err_w)


WAMPLER3_PATH_TOL = 2e-9


@pytest.mark.parametrize("lam", [1e-6, 1e-2, 1.0, 100.0])
def test_ridge_path_on_raw_wampler3_matches_mpmath(lam):
    # Per coefficient, against its own value. Not raw Longley's 1e-10: this design's float64 limit
    # (cond(Xc) = 4.3e6, large residuals) is about 1e-9; scikit-learn's SVD Ridge is 9e-10 off at λ = 1e-6.
    X, y = wampler_noisy("Wampler3")
    ref = mp_ridge(X, y, lam, mode="free")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        res = LeastSquares(X, y).minimize(l2=lam)
    sk = Ridge(alpha=len(y) * lam, solver="svd").fit(X, y)
    err = (np.abs(res.theta - ref) / np.abs(ref)).max()
    err_sk = (np.abs(np.r_[sk.coef_, sk.intercept_] - ref) / np.abs(ref)).max()
    assert err < WAMPLER3_PATH_TOL and err <= 2.0 * err_sk, (lam, err, err_sk)


@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_penalized_spectrum_on_raw_longley_matches_mpmath(mode):
    X, y = longley()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        obj = LeastSquares(X, y, **OPTIONS[mode])
        sigma, Q = obj.penalized_spectrum()
        theta_hat = obj.minimize().theta
    ref = mp_curvature_eigenvalues(X, mode=mode)
    p = obj.penalized.sum()
    assert sigma.shape == (p,) and Q.shape == (p, p)
    # Every eigenvalue to relative accuracy, the smallest too (cond(S) = 3.3e11 here; an eigh
    # of the formed Schur complement or Hessian loses 6e-11 to 2.5e-9 in the smallest).
    assert np.all(np.abs(sigma - ref) / ref < 1e-12), np.abs(sigma - ref) / ref
    assert np.allclose(Q.T @ Q, np.eye(p), rtol=0, atol=1e-13)
    # The exact predicted path from it: θ̃_p = Q diag(σ/(σ+λ)) Qᵀ θ̂_p (free b = ȳ − x̄ᵀw).
    for lam in (1e-4, 1e-2, 1.0):
        ref_path = mp_ridge(X, y, lam, mode=mode)
        pen = obj.penalized
        pred = np.array(theta_hat)
        pred[pen] = Q @ (sigma / (sigma + lam) * (Q.T @ theta_hat[pen]))
        if mode == "free":
            pred[-1] = y.mean() - X.mean(axis=0) @ pred[:-1]
        err = np.abs(pred - ref_path).max() / np.abs(ref_path).max()
        assert err < PATH_TOL, (lam, err)


@pytest.mark.parametrize("lam, digits", [(1e-6, 13.5), (1e-4, 13.5), (1e-2, 12.5), (100.0, 13.5)])
def test_predicted_path_on_raw_longley_keeps_its_digits(lam, digits):
    """analyze's θ̃(λ), per coefficient, against 50-digit ridge: 14.0, 14.0, 13.0 and 14.2 digits here
    (11.8, 11.8, 10.8 and 12.2 when θ̃ was Q diag(σ/(σ+λ)) Qᵀθ̂; now the ridge fit of the fitted
    values, LeastSquares.penalized_path)."""
    X, y = longley()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        res = rl.analyze(LeastSquares(X, y), lambdas=[lam], refit=False)
    assert lre(res.predicted[0], mp_ridge(X, y, lam, mode="free")).min() >= digits


@pytest.mark.parametrize("power", [-40, -20, -15, -10, 10, 15, 20, 40])
def test_a_column_in_far_units_keeps_the_path_exact(power):
    """Diabetes with one column in units 10^power. Tiny units: its θ̂ coefficient is 10^-power times
    larger, and Vtθ̂ spread Vt's rounding of it over every coordinate: θ̃ was off by 2e-6 (1e-10),
    0.1, 2e4 and 2e24 (1e-40) while the refit was right. Large units: the SVD's small directions
    are off by ε·10^power, and θ̃ and the refit with them (9e-8 at 1e10, 1e-2 at 1e15, 0.3 at 1e20,
    as scikit-learn's solver="svd"), while the table said 1e-16. The reference solves in the
    column's own units: (ZᵀZ/n + λD⁻²)φ = Zᵀy_c/n with Z = X_c D⁻¹, w = D⁻¹φ, well conditioned."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    n, scale = len(y), np.ones(X.shape[1])
    scale[2] = 10.0 ** power
    X = X * scale
    lams = [1e-3, 0.1, 10.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        res = rl.analyze(LeastSquares(X, y), lambdas=lams)
    Z = (X - X.mean(axis=0)) / scale
    for k, lam in enumerate(lams):
        w = np.linalg.solve(Z.T @ Z / n + lam * np.diag(scale ** -2.0), Z.T @ (y - y.mean()) / n) / scale
        ref = np.r_[w, y.mean() - X.mean(axis=0) @ w]
        assert np.linalg.norm(res.predicted[k] - ref) / np.linalg.norm(ref) < 1e-13, lam
        assert np.linalg.norm(res.refit[k] - ref) / np.linalg.norm(ref) < 1e-13, lam
    assert np.max(res.rel_error) < 1e-13  # and the table says so (it said 0.14 at 1e-15)


# ------------------------------------------------------------------- small designs
def random_problem(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 3.0
    return X, X @ rng.normal(size=d) + 2.0 + rng.normal(size=n)


@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_penalized_spectrum_matches_eigh_of_the_dense_curvature(mode):
    X, y = random_problem()
    obj = LeastSquares(X, y, **OPTIONS[mode])
    H = obj.hessian_dense()
    if mode == "free":  # Schur complement onto the weights
        H = H[:-1, :-1] - np.outer(H[:-1, -1], H[-1, :-1]) / H[-1, -1]
    sigma, Q = obj.penalized_spectrum()
    assert np.all(np.diff(sigma) <= 0)
    assert np.allclose(sigma, np.linalg.eigvalsh(H)[::-1], rtol=1e-12, atol=0)
    assert np.allclose(H @ Q, Q * sigma, rtol=0, atol=1e-12 * sigma[0])


def test_rank_deficient_design_gives_minimum_norm_solution():
    X, y = random_problem()
    X = np.hstack([X, 2.0 * X[:, :1] - X[:, 1:2]])  # an exact linear combination
    obj = LeastSquares(X, y)
    hat = obj.minimize()
    assert "rank 5 < 6" in hat.message and hat.converged
    Xc = X - X.mean(axis=0)
    w = np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]  # minimum-norm
    assert np.allclose(hat.theta[:-1], w, rtol=0, atol=1e-12 * np.abs(w).max())
    # ... which is where the ridge path goes as λ → 0.
    assert np.allclose(obj.minimize(l2=1e-12).theta, hat.theta, rtol=1e-8, atol=0)
    sigma, Q = obj.penalized_spectrum()
    assert sigma[-1] == 0.0 and np.all(sigma[:-1] > 0)
    assert np.allclose(Q.T @ Q, np.eye(6), rtol=0, atol=1e-13)
    assert np.allclose(Xc @ Q[:, -1], 0.0, rtol=0, atol=1e-12 * np.abs(Xc).max())


def test_wide_design_spectrum_is_complete():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(8, 20)), rng.normal(size=8)
    obj = LeastSquares(X, y)
    sigma, Q = obj.penalized_spectrum()
    assert obj.design_svd().rank == 7  # centring removes one of the 8 dimensions
    assert np.all(sigma[:7] > 0) and np.all(sigma[7:] == 0)
    assert np.allclose(Q.T @ Q, np.eye(20), rtol=0, atol=1e-13)
    hat = obj.minimize()
    assert hat.converged  # an exact fit; minimum-norm weights
    w = np.linalg.lstsq(X - X.mean(axis=0), y - y.mean(), rcond=None)[0]
    assert np.allclose(hat.theta[:-1], w, rtol=0, atol=1e-12 * np.abs(w).max())


# ------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_integer_weights_equal_repeated_rows(mode):
    X, y = random_problem(n=30)
    counts = np.random.default_rng(1).integers(0, 4, size=30)  # 0 drops the row
    weighted = LeastSquares(X, y, sample_weight=counts, **OPTIONS[mode])
    repeated = LeastSquares(np.repeat(X, counts, axis=0), np.repeat(y, counts), **OPTIONS[mode])
    theta = np.random.default_rng(2).normal(size=weighted.n_params)
    assert weighted.value(theta) == pytest.approx(repeated.value(theta), rel=1e-13)
    assert np.allclose(weighted.gradient(theta), repeated.gradient(theta), rtol=1e-12, atol=0)
    assert np.allclose(weighted.hessian_dense(), repeated.hessian_dense(), rtol=1e-12, atol=0)
    for lam in (0.0, 1e-3, 1.0):
        a, b = weighted.minimize(l2=lam), repeated.minimize(l2=lam)
        assert a.converged and np.allclose(a.theta, b.theta, rtol=1e-11, atol=0), lam
    sw, sr = weighted.penalized_spectrum()[0], repeated.penalized_spectrum()[0]
    assert np.allclose(sw, sr, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["free", "none"])
def test_weights_match_sklearn_with_alpha_lambda_times_weight_sum(mode):
    X, y = random_problem(n=40)
    w = np.random.default_rng(4).uniform(0.0, 3.0, size=40)
    fit_intercept = mode == "free"
    obj = LeastSquares(X, y, sample_weight=w, fit_intercept=fit_intercept)
    for lam in (0.0, 1e-3, 0.1, 10.0):
        if lam == 0.0:
            m = LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
        else:  # scikit-learn minimizes Σwᵢrᵢ² + α‖w‖²; ours is that over 2Σw with α = λΣw
            m = Ridge(alpha=lam * w.sum(), fit_intercept=fit_intercept, solver="svd").fit(X, y, sample_weight=w)
        ref = np.r_[m.coef_, m.intercept_] if fit_intercept else m.coef_
        assert np.allclose(obj.minimize(l2=lam).theta, ref, rtol=1e-10, atol=0), lam
    # Scaling every weight changes nothing: the loss is their weighted mean.
    assert np.allclose(LeastSquares(X, y, sample_weight=7.5 * w, fit_intercept=fit_intercept)
                       .minimize(l2=0.1).theta, obj.minimize(l2=0.1).theta, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("weights", "message"), [
    (-np.ones(10), r"sample_weight\[0\] = -1 is negative \(10 negative"),
    (np.r_[np.ones(9), np.nan], r"sample_weight\[9\] = nan is not finite"),
    (np.r_[np.ones(9), np.inf], r"sample_weight\[9\] = inf is not finite"),
    (np.ones(9), r"sample_weight must have shape \(10,\).*got shape \(9,\)"),
    (np.ones((10, 1)), r"sample_weight must have shape \(10,\).*got shape \(10, 1\)"),
    (np.zeros(10), "sample_weight sums to 0"),
    (["a"] * 10, "sample_weight must be numbers"),
])
def test_bad_weights_are_named(weights, message):
    X, y = random_problem(n=10)
    with pytest.raises(rl.DataError, match=message):
        LeastSquares(X, y, sample_weight=weights)


@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_predicted_path_of_analyze_on_raw_longley_matches_mpmath(mode):
    # The prediction θ̃(λ) itself (not only the refit), built from the design's SVD by the dense solver.
    from ridgelens import analyze, ridge_path

    X, y = longley()
    lams = [1e-4, 1e-2, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)
        obj = LeastSquares(X, y, **OPTIONS[mode])
        res = analyze(obj, lams, refit=False)
        through_h = ridge_path(rl_hessian(obj, res.theta_hat), res.theta_hat, lams, penalized=obj.penalized)
    for i, lam in enumerate(lams):
        ref = mp_ridge(X, y, lam, mode=mode)
        err = np.abs(res.predicted[i] - ref).max() / np.abs(ref).max()
        assert err < PATH_TOL, (mode, lam, err)
        if mode == "free":
            err_w = np.abs(res.predicted[i][:-1] - ref[:-1]).max() / np.abs(ref[:-1]).max()
            assert err_w < PATH_TOL, (lam, err_w)
    # the Gram-matrix route is what loses digits here (the reason the SVD route exists)
    worst = max(np.abs(through_h.thetas[i] - mp_ridge(X, y, lam, mode=mode)).max() for i, lam in enumerate(lams))
    assert worst > 0


def rl_hessian(obj, theta):
    from ridgelens import hessian

    return hessian(obj, theta)
