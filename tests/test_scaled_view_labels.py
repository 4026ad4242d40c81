"""With per-parameter penalty factors the eigen view is of D^{-1/2}HD^{-1/2} in φ = D^{1/2}θ: figures and page say so."""

import json

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens.plots import plot_effective_df, plot_ridge_steps, plot_shrinkage
from ridgelens.report import ExplorerData, explorer_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LAM = [0.01, 0.1, 1.0]
SCALED = "D^{-1/2}HD^{-1/2}"


@pytest.fixture(scope="module")
def analyses():
    X, y = load_diabetes(return_X_y=True)
    plain = rl.analyze(rl.LeastSquares(X, y), LAM, refit=False)
    obj = rl.LeastSquares(X, y)
    d = obj.set_penalty(np.linspace(0.5, 3.0, 10)).factors  # the intercept keeps factor 0
    weighted = rl.analyze(obj, LAM, refit=False)
    return plain, weighted, d


def test_the_labelled_view_is_that_of_the_scaled_curvature(analyses):
    plain, weighted, d = analyses
    assert weighted.path.scaled_view and not plain.path.scaled_view
    # Independent: the eigenvalues of D^{-1/2}HD^{-1/2} on the positive factors, through the Schur complement.
    H = rl.LeastSquares(*load_diabetes(return_X_y=True)).hessian_dense(weighted.theta_hat)
    p = d > 0
    s = np.where(p, 1 / np.sqrt(np.where(p, d, 1)), 1.0)
    Hs = s[:, None] * H * s[None, :]
    S = Hs[np.ix_(p, p)] - Hs[np.ix_(p, ~p)] @ np.linalg.solve(Hs[np.ix_(~p, ~p)], Hs[np.ix_(~p, p)])
    np.testing.assert_allclose(np.sort(weighted.path.eigenvalues), np.linalg.eigvalsh(S), rtol=1e-9)
    # 0/1 factors leave H itself: no scaled view to announce.
    mask = rl.ridge_path(H, weighted.theta_hat, LAM, penalty=p.astype(float))
    assert not mask.scaled_view


def test_figures_name_the_scaled_view(analyses):
    plain, weighted, _ = analyses
    for res, scaled in ((plain, False), (weighted, True)):
        fig, ax = plt.subplots()
        plot_shrinkage(res.path, 1, ax=ax)
        texts = [ax.get_xlabel(), *(a.get_ylabel() for a in fig.axes), *(t.get_text() for t in ax.texts)]
        assert any(SCALED in t for t in texts) == scaled
        assert any("φ" in t for t in texts) == scaled
        _, ax2 = plt.subplots()
        plot_effective_df(res.path, ax=ax2)
        assert (SCALED in ax2.get_title()) == scaled
        out = plot_ridge_steps(res.path, 1)
        assert ("φ = D^{1/2}θ" in out["axes"][0].figure.get_suptitle()) == scaled
        plt.close("all")


def test_page_names_the_scaled_view(analyses):
    plain, weighted, _ = analyses
    for res, scaled in ((plain, False), (weighted, True)):
        d = json.loads(json.dumps(res.to_dict(), default=lambda o: np.asarray(o).tolist()))
        for data in (ExplorerData.from_analysis(res), ExplorerData.from_results(d)):
            assert data.scaled_view == scaled
            assert any(SCALED in n for n in data.notes) == scaled
            fig, _ = explorer_figure(data)
            titles = [a.text for a in fig.layout.annotations]
            assert any(SCALED in t for t in titles) == scaled
            assert ("φ = D^{1/2}θ" in fig.layout.xaxis.title.text) == scaled


def test_model_plane_is_drawn_in_the_scaled_coordinates(analyses):
    from ridgelens.plots import plot_model_contours

    _, weighted, d = analyses
    X, y = load_diabetes(return_X_y=True)
    obj = rl.LeastSquares(X, y)
    obj.set_penalty(d[:-1])
    fig, ax = plt.subplots()
    out = plot_model_contours(obj, weighted, ax=ax)
    assert "φ" in ax.get_xlabel() and SCALED in ax.get_title()
    # The loss is quadratic: along the plane's directions (in θ, the intercept at its best response) the
    # true loss rises exactly as ½(σ_a u² + σ_b v²), the quadratic model drawn.
    B, (sa, sb) = out["basis"], out["sigma"]
    th, r0 = weighted.theta_hat, obj.value(weighted.theta_hat)
    for u, v in ((1.0, 0.0), (0.0, 1.0), (0.7, -0.4)):
        step = 1e-2 * np.linalg.norm(th) * np.array([u, v])
        assert obj.value(th + B @ step) - r0 == pytest.approx(0.5 * (sa * step[0] ** 2 + sb * step[1] ** 2), rel=1e-6)
    # θ̃(λ) sits at (σ/(σ+λ) − 1)·(Qᵀφ̂) on each plane axis (θ̂ is stationary: no first-order term).
    a, b = out["directions"]
    path = weighted.path
    expect = (path.factors[out["indices"]][:, [a, b]] - 1) * path.coords[[a, b]]
    np.testing.assert_allclose(out["predicted"], expect, rtol=1e-7, atol=1e-10 * np.abs(path.coords).max())
    plt.close(fig)
