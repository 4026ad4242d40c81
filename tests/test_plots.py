"""Figures: structural checks on what was drawn (no pixels compared)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from ridgelens import LeastSquares, NegativeCurvatureWarning, RidgelensError, analyze
from ridgelens.plots import (
    plot_coefficient_paths,
    plot_quadratic_contours,
    plot_rel_error,
    plot_shrinkage,
)

ANGLE = np.deg2rad(30)
Q = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
H = Q @ np.diag([2.0, 0.25]) @ Q.T
THETA = np.array([2.0, 1.5])


def test_contour_tangent_points_lie_on_both_curves():
    ax = Figure().add_subplot()
    lams = [0.1, 0.5, 2.0]
    drawn = plot_quadratic_contours(H, THETA, lams, ax=ax)
    assert len(drawn["ellipses"]) == 3 and len(drawn["circles"]) == 3
    for lam, t, ell, circ in zip(lams, drawn["tangent_points"], drawn["ellipses"], drawn["circles"], strict=True):
        # θ̃ solves (H + λI)θ = Hθ̂: the loss gradient and the penalty gradient cancel there.
        np.testing.assert_allclose(H @ (t - THETA), -lam * t, atol=1e-12)
        r = np.hypot(*circ.get_data())
        np.testing.assert_allclose(r, np.linalg.norm(t), rtol=1e-12)
        # Tangency: the ellipse through θ̃ stays outside the circle and touches it at θ̃.
        verts = np.vstack([p.vertices for p in ell.get_paths()])
        norms = np.linalg.norm(verts, axis=1)
        assert norms.min() >= np.linalg.norm(t) * (1 - 1e-3)
        assert np.linalg.norm(verts - t, axis=1).min() < 0.02
        assert len(ell.levels) == 1
    # The path runs from θ̂ (λ = 0) towards 0 (λ → ∞).
    x, y = drawn["path"].get_data()
    np.testing.assert_allclose([x[0], y[0]], THETA, atol=1e-12)
    assert np.hypot(x[-1], y[-1]) < 0.01 * np.linalg.norm(THETA)
    assert len(drawn["axes"]) == 2


def test_contour_rejects_bad_input():
    ax = Figure().add_subplot()
    with pytest.raises(RidgelensError, match="2-D"):
        plot_quadratic_contours(np.eye(3), np.ones(3), [1.0], ax=ax)
    with pytest.warns(NegativeCurvatureWarning), pytest.raises(RidgelensError, match="positive definite"):
        plot_quadratic_contours(np.diag([1.0, -1.0]), np.ones(2), [2.0], ax=ax)


def test_paths_error_and_shrinkage_draw_the_analysis():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    y = X @ np.array([3.0, -1.0, 0.5, 0.0]) + rng.normal(size=60)
    res = analyze(LeastSquares(X, y), [1e-3, 1e-1, 10.0])
    ax = Figure().add_subplot()
    drawn = plot_coefficient_paths(res, ax=ax)
    assert len(drawn["lines"]) == 4 and len(drawn["markers"]) == 4
    j = drawn["indices"][0]
    np.testing.assert_allclose(drawn["lines"][0].get_ydata(), res.predicted[:, j])
    np.testing.assert_allclose(drawn["markers"][0].get_offsets()[:, 1], res.refit[:, j])
    line = plot_rel_error(res, ax=Figure().add_subplot())
    assert len(line.get_xdata()) == 3
    sh = plot_shrinkage(res.path, 1, ax=Figure().add_subplot())
    np.testing.assert_allclose(sh["factors"].get_ydata(), res.path.factors[1])
