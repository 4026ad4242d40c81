"""The accurate residual and transpose product of least squares' refinement, against exact rational arithmetic.

``ridgelens.objectives._accurate`` splits X and the vector so that BLAS products come out exact;
the result must be what a sum in twice the working precision gives: within about ε of the exact
value, plus ε² of the terms' magnitudes, however the terms cancel and however the columns scale.
"""

from fractions import Fraction

import numpy as np
import pytest

from ridgelens.objectives._accurate import accurate_residual, accurate_transpose

EPS = np.finfo(np.float64).eps


def exact_residual(X, y, coef, intercept, rho):
    return np.array([float(Fraction(y[i]) - Fraction(rho[i]) - Fraction(intercept)
                           - sum(Fraction(a) * Fraction(c) for a, c in zip(X[i], coef, strict=True)))
                     for i in range(X.shape[0])])


def cancelling_case(rng, n, d):
    """Columns and coefficients over 16 decades each; y cancels X coef + b to 1e-15..1e-6 of it."""
    X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-8, 8, size=d) * 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    coef = rng.normal(size=d) * 10.0 ** rng.uniform(-8, 8, size=d)
    coef[0] = 0.0
    fit = X @ coef
    intercept = 0.375 * np.abs(fit).max()
    y = fit + intercept + 10.0 ** rng.uniform(-15, -6, size=n) * rng.normal(size=n) * np.abs(fit).max()
    return X, y, coef, intercept


@pytest.mark.parametrize("n, d", [(30, 2), (30, 7), (40, 12), (12, 600)])
def test_residual_is_as_if_summed_in_twice_the_precision(n, d):
    rng = np.random.default_rng(d)
    X, y, coef, intercept = cancelling_case(rng, n, d)
    rho = 1e-7 * rng.normal(size=n) * np.abs(y - X @ coef - intercept)
    exact = exact_residual(X, y, coef, intercept, rho)
    terms = np.abs(X * coef).sum(axis=1) + np.abs(y) + np.abs(rho)
    bound = 2 * EPS * np.abs(exact) + 4 * EPS ** 2 * terms
    got = accurate_residual(X, y, coef, intercept, rho)
    assert np.all(np.abs(got - exact) <= bound)
    # The same bound is out of reach of the plain float64 residual: the test can fail.
    plain = y - rho - X @ coef - intercept
    assert np.any(np.abs(plain - exact) > bound)


def test_transpose_product_over_several_blocks_of_rows():
    rng = np.random.default_rng(3)
    n, d = 2500, 20  # 1,638 rows per block of 2**15 entries: two blocks, whose parts are summed exactly
    X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-6, 6, size=d)
    w = rng.normal(size=d)
    v = rng.normal(size=n) * 10.0 ** rng.uniform(-6, 6, size=n)
    v -= X @ np.linalg.lstsq(X, v, rcond=None)[0]  # Xᵀv ≈ 0: every column's sum cancels
    v += 1e-9 * np.abs(v).max() * (X @ w) / np.abs(X @ w).max()  # and a little not orthogonal to X
    exact = np.array([float(sum(Fraction(a) * Fraction(b) for a, b in zip(X[:, j], v, strict=True)))
                      for j in range(d)])
    terms = np.abs(X * v[:, None]).sum(axis=0)
    bound = 2 * EPS * np.abs(exact) + 4 * EPS ** 2 * terms
    assert np.all(np.abs(accurate_transpose(X, v) - exact) <= bound)
    assert np.any(np.abs(X.T @ v - exact) > bound)


def test_overflowing_split_falls_back_to_the_plain_residual():
    X = np.array([[1e307, -1e307], [3.0, 4.0]])
    y, coef = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    got = accurate_residual(X, y, coef, 0.0)
    assert np.array_equal(got, y - X @ coef)
    assert np.array_equal(accurate_transpose(X, y), X.T @ y)


def test_a_zero_factor_does_not_set_the_bound_of_the_others():
    # A zero coefficient beside a large column, a zero entry of v (a sample weighted 0) beside a
    # large row: their products are 0, and must not coarsen how the others' products are cut.
    rng = np.random.default_rng(5)
    n, d = 40, 12
    X = rng.normal(size=(n, d))
    coef = rng.normal(size=d)
    X[:, 0], coef[0] = 1e30, 0.0
    y = X[:, 1:] @ coef[1:] + 1e-10 * rng.normal(size=n)
    exact = exact_residual(X, y, coef, 0.0, np.zeros(n))
    terms = np.abs(X * coef).sum(axis=1) + np.abs(y)
    assert np.all(np.abs(accurate_residual(X, y, coef, 0.0) - exact) <= 2 * EPS * np.abs(exact) + 4 * EPS ** 2 * terms)
    X, v = rng.normal(size=(n, d)), rng.normal(size=n)
    v -= X @ np.linalg.lstsq(X, v, rcond=None)[0]  # Xᵀv ≈ 0: every column's sum cancels
    X[0], v[0] = 1e30, 0.0
    exact = np.array([float(sum(Fraction(a) * Fraction(b) for a, b in zip(X[:, j], v, strict=True)))
                      for j in range(d)])
    terms = np.abs(X * v[:, None]).sum(axis=0)
    assert np.all(np.abs(accurate_transpose(X, v) - exact) <= 2 * EPS * np.abs(exact) + 4 * EPS ** 2 * terms)


def test_transpose_product_of_a_wide_design_holds_about_a_group_of_blocks(monkeypatch):
    # Each block of rows gives (slices × d) products: over a wide design, all of them at once were
    # 21x the design's size (d = 20,000, one row a block). They are summed group by group.
    import tracemalloc

    from ridgelens.objectives import _accurate

    rng = np.random.default_rng(4)
    X, v = rng.normal(size=(100, 20_000)), rng.normal(size=100)
    tracemalloc.start()
    got = accurate_transpose(X, v)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6 * 8 * _accurate._GROUP_ENTRIES  # a few copies of one group's products (48 MiB), not 336 MiB
    np.testing.assert_allclose(got, X.T @ v, rtol=1e-12, atol=1e-12 * np.abs(X.T @ v).max())
    # and summed group by group (one block each), the product is still as if in twice the working precision
    monkeypatch.setattr(_accurate, "_GROUP_ENTRIES", 1)
    test_transpose_product_over_several_blocks_of_rows()
