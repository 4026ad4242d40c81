"""The interactive page's layout and teaching panels, checked in a real headless Chromium.

Screenshots of the demo page at three λ are compared with committed baselines
(tests/baseline/explorer_*.png, RMS tolerance; regenerate with RIDGELENS_UPDATE_BASELINES=1).
The layout is checked from the DOM: the legend never covers θ̂ or θ̃, axis titles do not
collide with subplot titles, and the readout does not collide with the slider.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from ridgelens import ridge_path
from ridgelens._shrinkage import rounding_tol
from ridgelens.cli import main
from ridgelens.report import ExplorerData, demo_data, explorer_figure, lambda_grid
from ridgelens.report._data import DEMO_H, DEMO_THETA
from ridgelens.report._plane import display_eigenvalues
from ridgelens.report._screenshot import page_screenshots, set_step

CHROMIUM = os.environ.get("RIDGELENS_CHROMIUM", "/usr/bin/chromium")
BASELINE = Path(__file__).parent / "baseline"
UPDATE = os.environ.get("RIDGELENS_UPDATE_BASELINES") == "1"
#: RMS (0-255) tolerated between screenshots: anti-aliasing of text and curves across Chromium builds.
TOL = 6.0
SHOT_LAMBDAS = (0.1, 0.5, 2.0)  # the demo's analysed λ: slider stops on every machine


def test_slider_stops_are_round_numbers_and_ticks_are_powers_of_ten():
    data = demo_data()
    fig, info = explorer_figure(data)
    grid = info["lambdas"]
    extra = set(data.lambdas)
    for v in grid[grid > 0]:
        m = v / 10 ** np.floor(np.log10(v) + 1e-12)
        assert v in extra or any(np.isclose(m, r) for r in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)), v
    labels = [s.label for s in fig.layout.sliders[0].steps]
    shown = [lab for lab in labels if lab]
    assert shown[0] == "0" and set(shown[1:]) <= {"0.01", "0.1", "1", "10", "100"} and len(shown) >= 4
    assert len(grid) <= 41 + data.lambdas.size + 1  # few enough stops that Plotly shows every label


def test_rounding_level_eigenvalue_neither_starts_the_slider_nor_drives_df_negative():
    # σ = −4.4e-16 next to σ_max = 2: rounding noise (below the one rule's 3·ε·2 = 1.3e-15). Drawn as it
    # is, the slider started at 4.6e-16 and df(λ) = Σσ/(σ+λ) went far below 0 there.
    base = demo_data()
    data = dataclasses.replace(base, eigenvalues=np.array([2.0, 0.25, -4.4e-16]), coords=np.array([2.4, 0.3, 1e-3]),
                               eigenvectors=None, penalized_names=["a", "b", "c"], param_names=["a", "b", "c"],
                               predicted=None, refit=None, rank_tol=0.0)
    grid = lambda_grid(data)
    assert grid[0] == 0.0 and grid[1] >= 0.25 / 30 / 10  # not 4.6e-16
    _, info = explorer_figure(data)
    df = info["steps"]["df"]
    assert np.all(df >= 0) and np.all(df <= 2 + 1e-12)
    # Built from an analysis, the page says what it zeroed.
    from ridgelens import LeastSquares, analyze
    from ridgelens.data import load_dataset

    ds = load_dataset("diabetes")
    res = analyze(LeastSquares(ds.X, ds.y), [1e-3, 1e-1])
    sigma = res.path.eigenvalues.copy()
    sigma[-1] = -0.5 * rounding_tol(sigma)  # rounding level by the core's rule (n·ε·σ_max = 2.0e-17 here)
    res = dataclasses.replace(res, path=dataclasses.replace(res.path, eigenvalues=sigma))
    page = ExplorerData.from_analysis(res)
    assert any("1 eigenvalue with |σ| ≤" in n and "drawn as 0" in n for n in page.notes), page.notes
    assert lambda_grid(page)[1] > 1e-8
    # The one rule cuts both ways: a value above it is curvature, in the figures as in the results.
    sigma[-1] = -4.4e-12
    assert display_eigenvalues(sigma)[1] == 0 and display_eigenvalues(sigma)[2] == rounding_tol(sigma)



@pytest.fixture(scope="module")
def demo_html(tmp_path_factory):
    html = tmp_path_factory.mktemp("page") / "demo.html"
    assert main(["explore", "--demo", "--out", str(html)]) == 0
    return html


def _steps():
    grid = lambda_grid(demo_data())
    return [int(np.flatnonzero(grid == v)[0]) for v in SHOT_LAMBDAS]


def test_screenshots_at_three_lambdas_match_the_baselines(browser, demo_html, tmp_path):
    from matplotlib.testing.compare import compare_images

    shots = page_screenshots(demo_html, _steps(), CHROMIUM, browser=browser)
    for v, png in zip(SHOT_LAMBDAS, shots, strict=True):
        actual = tmp_path / f"explorer_{v:g}.png"
        actual.write_bytes(png)
        expected = BASELINE / actual.name
        if UPDATE:
            expected.write_bytes(png)
        assert expected.is_file(), f"no baseline {expected}; make one with RIDGELENS_UPDATE_BASELINES=1"
        diff = compare_images(str(expected), str(actual), tol=TOL)
        assert diff is None, diff


_BOXES = """() => { const g = document.getElementById('explorer'); const L = g._fullLayout;
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const px = (i, k) => { const t = g.data[i]; const xa = L[t.xaxis.replace('x', 'xaxis')],
        ya = L[t.yaxis.replace('y', 'yaxis')]; const r = g.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p(t.x[k]), r.top + ya._offset + ya.l2p(t.y[k])]; };
  return {legend: box(g.querySelector('.legend .bg')),
          axis_titles: [...g.querySelectorAll('.g-xtitle text, .g-ytitle text')].map(box),
          subplot_titles: [...g.querySelectorAll('.annotation-text')].map(box),
          title: box(g.querySelector('.gtitle')), slider: box(g.querySelector('.slider-container')),
          theta_hat: px(1, 0), theta_tilde: px(5, 0)}; }"""


def _inside(p, b, pad=0.0):
    return b[0] - pad <= p[0] <= b[2] + pad and b[1] - pad <= p[1] <= b[3] + pad


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_layout_legend_titles_and_rotation_panel(browser, demo_html):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.goto(demo_html.as_uri())
    page.wait_for_selector(".slider-rail-rect")
    grid = lambda_grid(demo_data())
    _, info = explorer_figure(demo_data())
    assert info["rotation"]
    for i in _steps():
        set_step(page, i)
        boxes = page.evaluate(_BOXES)
        for key in ("theta_hat", "theta_tilde"):  # the legend never covers θ̂ or θ̃
            assert not _inside(boxes[key], boxes["legend"], pad=8), (key, boxes)
        for at in boxes["axis_titles"]:
            for st in boxes["subplot_titles"]:
                assert not _overlap(at, st), (at, st)
        assert not _overlap(boxes["title"], boxes["slider"]), boxes
        # The θ-space panel: θ̂'s parts along q1, q2, each scaled by σⱼ/(σⱼ+λ), sum to θ̃ (rotated back).
        ref = ridge_path(DEMO_H, DEMO_THETA, [grid[i]])
        gd = "document.getElementById('explorer')"
        n = page.evaluate(f"{gd}.data.length")
        names = page.evaluate(f"{gd}.data.map(t => t.name || '')")
        k = names.index("scaled: σⱼ/(σⱼ+λ)·(Qᵀθ̂)ⱼ·qⱼ")
        assert k + 2 < n
        first = np.array(page.evaluate(f"[{gd}.data[{k}].x[1], {gd}.data[{k}].y[1]]"))
        tip = np.array(page.evaluate(f"[{gd}.data[{k + 2}].x[0], {gd}.data[{k + 2}].y[0]]"))
        Q = ref.eigenvectors
        np.testing.assert_allclose(first, ref.scaled[0, 0] * Q[:, 0], atol=1e-12)
        np.testing.assert_allclose(tip, np.linalg.solve(DEMO_H + grid[i] * np.eye(2), DEMO_H @ DEMO_THETA),
                                   atol=1e-12)
    page.close()
