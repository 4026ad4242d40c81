"""Figures: structural checks on what was drawn (no pixels compared)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from ridgelens import LeastSquares, NegativeCurvatureWarning, RidgelensError, analyze, ridge_path
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
    assert len(drawn["lines"]) == 4 and len(drawn["markers"]) == 4 and drawn["fine"]
    # The smooth line is the eigen form on a fine grid: at any λ it is the closed-form ridge.
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    for k, j in enumerate(drawn["indices"]):
        lam_g, th_g = drawn["lines"][k].get_data()
        for g in (0, 137, 299):
            ref = np.linalg.solve(Xc.T @ Xc / 60 + lam_g[g] * np.eye(4), Xc.T @ yc / 60)
            np.testing.assert_allclose(th_g[g], ref[j], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(drawn["markers"][k].get_offsets()[:, 1], res.predicted[:, j])
        np.testing.assert_allclose(drawn["refits"][k].get_offsets()[:, 1], res.refit[:, j])
    # The coefficients drawn first move most over the drawn λ range.
    moved = [np.ptp(np.r_[ln.get_ydata(), res.theta_hat[j]]) for ln, j in zip(drawn["lines"], drawn["indices"],
                                                                                strict=True)]
    assert moved == sorted(moved, reverse=True)
    err = plot_rel_error(res, ax=Figure().add_subplot())
    assert err["exact"] and err["line"] is None and err["missing"].size == 0  # a quadratic loss: rounding only
    sh = plot_shrinkage(res.path, 1, ax=Figure().add_subplot())
    np.testing.assert_allclose(sh["factors"].get_ydata(), res.path.factors[1])
    assert sh["outside_share"] == 0.0 and sh["shrunk_share"] is None


# --- the contour picture for any model, the three steps, df(λ), the spectral density -----------

from ridgelens import Logistic  # noqa: E402
from ridgelens.plots import (  # noqa: E402
    effective_df_curve,
    plot_effective_df,
    plot_model_contours,
    plot_ridge_steps,
    plot_spectral_density,
)


def _vertices(cs):
    return np.vstack([p.vertices for p in cs.get_paths() if len(p.vertices)])


def test_model_contours_two_parameter_least_squares_is_the_textbook_picture():
    # Two features, no intercept: the plane is the whole space and the loss is exactly quadratic.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2)) @ np.array([[1.5, 0.0], [0.9, 0.4]])
    y = X @ np.array([1.0, 2.0]) + 0.1 * rng.normal(size=80)
    obj = LeastSquares(X, y, fit_intercept=False)
    res = analyze(obj, [0.05, 0.3, 1.0])
    drawn = plot_model_contours(obj, res, ax=Figure().add_subplot(), resolution=121)
    assert drawn["directions"] == (0, 1)
    B, th = drawn["basis"], res.theta_hat
    H = X.T @ X / 80
    for k, i in enumerate(drawn["indices"]):
        lam = res.lambdas[i]
        theta = np.linalg.solve(H + lam * np.eye(2), H @ th)  # independent closed form
        uv = drawn["predicted"][k]
        np.testing.assert_allclose(th + B @ uv, theta, atol=1e-10)
        # The tangent point lies on the model ellipse and on the penalty circle.
        lev = drawn["levels"][k]
        np.testing.assert_allclose(0.5 * (theta - th) @ H @ (theta - th), lev, rtol=1e-10)
        ell, true, circ = drawn["model_ellipses"][k], drawn["true_contours"][k], drawn["penalty_contours"][k]
        assert len(ell.levels) == len(true.levels) == len(circ.levels) == 1
        ev = _vertices(ell)
        assert np.linalg.norm(ev - uv, axis=1).min() < 0.02 * np.linalg.norm(th)
        cv = th + _vertices(circ) @ B.T
        np.testing.assert_allclose(np.linalg.norm(cv, axis=1), np.linalg.norm(theta), rtol=2e-3)
        # Tangency: the ellipse stays outside the circle.
        assert np.linalg.norm(th + ev @ B.T, axis=1).min() >= np.linalg.norm(theta) * (1 - 2e-3)
        # A quadratic loss: the true contour is the model ellipse.
        tv = _vertices(true)
        vals = np.array([obj.value(th + B @ p) for p in tv]) - obj.value(th)
        np.testing.assert_allclose(vals, lev, rtol=0.03)  # linear interpolation between grid nodes
    np.testing.assert_allclose(drawn["refit"], drawn["predicted"], atol=1e-8)


def test_model_contours_logistic_true_loss_against_the_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X @ np.array([1.5, -1.0, 0.5, 0.2]) + rng.logistic(size=300) > 0).astype(float)
    obj = Logistic(X, y)
    res = analyze(obj, [1e-2, 1e-1, 1.0])
    ax = Figure().add_subplot()
    drawn = plot_model_contours(obj, res, ax=ax, resolution=61)
    # The plane is chosen among the penalized directions (the intercept is not penalized), by the
    # same rule as the interactive page.
    from ridgelens.report import ExplorerData, explorer_figure

    assert drawn["directions"] == explorer_figure(ExplorerData.from_analysis(res))[1]["directions"]
    mask = res.path.penalized
    assert not mask[-1] and mask[:-1].all()
    B = drawn["basis"]
    np.testing.assert_allclose(B[mask].T @ B[mask], np.eye(2), atol=1e-12)  # circles stay circles
    # θ_u follows at its best response: the plane's directions are H-orthogonal to the unpenalized axis.
    X1 = np.c_[X, np.ones(300)]  # weights, then the intercept
    pr = 1 / (1 + np.exp(-X1 @ res.theta_hat))
    Hd = (X1 * (pr * (1 - pr))[:, None]).T @ X1 / 300  # mean log-loss Hessian, independent closed form
    np.testing.assert_allclose((Hd @ B)[~mask], 0.0, atol=1e-10)
    to_plane = lambda T: (T[:, mask] - res.theta_hat[mask]) @ B[mask]  # noqa: E731
    np.testing.assert_allclose(drawn["predicted"], to_plane(res.predicted), atol=1e-12)
    np.testing.assert_allclose(drawn["refit"], to_plane(res.refit), atol=1e-12)
    np.testing.assert_allclose(drawn["predicted_artist"].get_offsets(), drawn["predicted"])
    labels = [t.get_text() for t in drawn["legend"].get_texts()]
    assert all(f"λ = {v:g}" in labels for v in res.lambdas)  # every λ is in the legend
    r0 = obj.value(res.theta_hat)
    a, b = drawn["directions"]
    for k, lev in enumerate(drawn["levels"]):
        tv = _vertices(drawn["true_contours"][k])
        vals = np.array([obj.value(res.theta_hat + B @ p) for p in tv]) - r0
        np.testing.assert_allclose(vals, lev, rtol=0.05)  # on the true loss's level set
        mv = _vertices(drawn["model_ellipses"][k])
        s = res.path.eigenvalues[[a, b]]
        np.testing.assert_allclose(0.5 * (s[0] * mv[:, 0] ** 2 + s[1] * mv[:, 1] ** 2), lev, rtol=0.05)
    x, yv = drawn["path"].get_data()
    np.testing.assert_allclose([x[0], yv[0]], [0, 0], atol=1e-9)  # the path starts at θ̂ (λ = 0)
    with pytest.raises(RidgelensError, match="different"):
        plot_model_contours(obj, res, directions=(1, 1), ax=ax)


def test_ridge_steps_plane_and_bars():
    path = ridge_path(H, THETA, [0.5])
    drawn = plot_ridge_steps(path, 0, axes=Figure().subplots(1, 4))
    assert drawn["kind"] == "plane" and len(drawn["axes"]) == 4
    v = drawn["values"]
    np.testing.assert_allclose(v["rotated"], Q.T @ THETA * np.sign(Q.T @ THETA) * np.sign(v["rotated"]))
    np.testing.assert_allclose(v["scaled"], v["rotated"] * np.array([2.0, 0.25]) / np.array([2.5, 0.75]))
    np.testing.assert_allclose(v["rotated_back"], np.linalg.solve(H + 0.5 * np.eye(2), H @ THETA), atol=1e-12)
    tips = [art.get_offsets()[0] for art in drawn["artists"]]
    for tip, key in zip(tips, ["theta_hat_p", "rotated", "scaled", "rotated_back"], strict=True):
        np.testing.assert_allclose(tip, v[key])
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 5))
    path5 = ridge_path(A @ A.T, rng.normal(size=5), [0.1, 1.0])
    bars = plot_ridge_steps(path5, 1, axes=Figure().subplots(2, 2))
    assert bars["kind"] == "bars"
    np.testing.assert_allclose([p.get_height() for p in bars["artists"][2]], path5.scaled[1])
    with pytest.raises(RidgelensError, match="plane"):
        plot_ridge_steps(path5, 0, kind="plane", axes=Figure().subplots(1, 4))


def test_effective_df_curve_is_the_trace_formula():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(6, 6))
    Hm = A @ A.T
    path = ridge_path(Hm, rng.normal(size=6), [1e-2, 1.0, 10.0])
    drawn = plot_effective_df(path, ax=Figure().add_subplot())
    lam, df = drawn["lambdas"], drawn["df"]
    for lam_i, df_i in zip(lam[::50], df[::50], strict=True):  # df = tr(H (H + λI)⁻¹)
        np.testing.assert_allclose(df_i, np.trace(np.linalg.solve(Hm + lam_i * np.eye(6), Hm)), rtol=1e-10)
    assert np.all(np.diff(df) < 0) and df[0] > 5.9 and df[-1] < 0.1
    np.testing.assert_allclose(drawn["markers"].get_offsets()[:, 1], path.effective_df)
    np.testing.assert_allclose(effective_df_curve([2.0, 0.0], [0.0, 2.0]), [1.0, 0.5])


def test_spectral_density_from_eigenvalues_and_quadrature():
    ev = np.array([0.01, 0.02, 0.5, 3.0, 3.1, -0.2])
    drawn = plot_spectral_density(ev, ax=Figure().add_subplot(), scale="linear")
    x, dens = drawn["grid"], drawn["density"]
    np.testing.assert_allclose(np.trapezoid(dens, x), 1.0, rtol=1e-3)
    np.testing.assert_allclose(drawn["rug"].get_xdata(), ev)
    logd = plot_spectral_density(ev, ax=Figure().add_subplot())
    assert logd["left_out"] == 1
    np.testing.assert_allclose(np.trapezoid(logd["density"], np.log10(logd["grid"])), 5 / 6, rtol=1e-3)
    quad = plot_spectral_density(nodes=[1.0, 10.0], weights=[0.25, 0.75], ax=Figure().add_subplot(), width=0.01)
    peak = quad["grid"][np.argmax(quad["density"])]
    assert abs(np.log10(peak) - 1.0) < 0.01  # the heavier node
    with pytest.raises(RidgelensError, match="either"):
        plot_spectral_density(ev, nodes=ev, ax=Figure().add_subplot())
    with pytest.raises(RidgelensError, match="same shape"):
        plot_spectral_density(nodes=[1.0, 2.0], weights=[1.0], ax=Figure().add_subplot())


def test_rel_error_plot_without_any_valid_lambda_says_so():
    import io
    from types import SimpleNamespace

    fig = Figure()
    ax = fig.add_subplot()
    drawn = plot_rel_error(SimpleNamespace(lambdas=np.array([0.01, 0.1]), rel_error=np.full(2, np.nan)), ax=ax)
    fig.savefig(io.BytesIO(), format="png")  # log axes with no positive data would raise here
    assert drawn["line"] is None and "no λ" in ax.texts[0].get_text()
    np.testing.assert_array_equal(drawn["missing"], [0.01, 0.1])  # marked, not dropped


def test_rel_error_plot_counts_lambdas_never_refitted_and_marks_only_failures():
    """A default grid refits only its chosen λ: the others are counted in the legend, not marked ×."""
    from types import SimpleNamespace

    lam = np.array([0.01, 0.1, 1.0, 10.0])
    refit = np.full((4, 3), np.nan)
    refit[1] = [1.0, 2.0, 3.0]  # refitted, error finite
    refit[2] = [1.0, 2.0, 3.0]  # refitted, prediction invalid: error NaN
    err = np.array([np.nan, 0.2, np.nan, np.nan])
    ax = Figure().add_subplot()
    drawn = plot_rel_error(SimpleNamespace(lambdas=lam, rel_error=err, refit=refit), ax=ax)
    np.testing.assert_array_equal(drawn["missing"], [1.0])
    assert "not refitted: 2 of 4 λ" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_lm_error_marks_lambdas_without_a_prediction_and_unconverged_retraining():
    """The demo LM's Hessian predicts only at λ = 1: the other λ are marked ×, not dropped; unconverged θ* are open."""
    import json
    from pathlib import Path

    from ridgelens.plots import plot_lm_error

    report = json.loads((Path(__file__).parent / "baseline" / "lm_demo_results.json").read_text())
    ax = Figure().add_subplot()
    plot_lm_error(report, ax=ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    missing = [e is None for e in report["curvature"]["hessian"]["rel_error"]]
    assert "Hessian: no prediction" in labels and "retraining not converged" in labels
    crosses = [c for c in ax.collections if c.get_label() == "Hessian: no prediction"]
    assert len(crosses) == 1 and len(crosses[0].get_offsets()) == sum(missing) == 2
