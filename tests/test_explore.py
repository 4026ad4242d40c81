"""`ridgelens explore` and the interactive page: the file, its numbers, and a real headless Chromium."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ridgelens import GradientNotZeroWarning, LeastSquares, analyze, ridge_path
from ridgelens.cli import main
from ridgelens.report import (
    ExplorerData,
    demo_data,
    explorer_figure,
    explorer_html,
    explorer_steps,
    fmt,
    lambda_grid,
)
from ridgelens.report._data import DEMO_H, DEMO_THETA


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def results_json(tmp_path_factory):
    """A real results.json from `ridgelens analyze` (least squares on diabetes: fast)."""
    out = tmp_path_factory.mktemp("analyze")
    assert main(["analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "1e-3,1e-2,0.1",
                 "--out", str(out)]) == 0
    return out / "results.json"


def test_demo_page_is_one_offline_file(tmp_path, capsys):
    page = tmp_path / "sub" / "page.html"
    code, out, err = run(capsys, "explore", "--demo", "--out", page)
    assert code == 0, err
    assert "wrote" in out and err == ""
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert len(text) > 1_000_000  # plotly.js itself is inside
    assert "plotly.js v" in text or "plotly.js" in text
    # No external resource: no <script src>, no <link href>, no CDN.
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert "cdn.plot.ly/plotly" not in text.split("</head>")[0]
    assert list(tmp_path.rglob(".*.tmp")) == []


def test_page_numbers_are_the_ridge_path(tmp_path):
    data = demo_data()
    grid = lambda_grid(data)
    assert grid[0] == 0.0 and np.all(np.diff(grid) > 0)
    assert set(data.lambdas) <= set(grid)  # the analysed λ are slider stops
    fig, info = explorer_figure(data)
    np.testing.assert_array_equal(info["lambdas"], grid)
    ref = ridge_path(DEMO_H, DEMO_THETA, grid)  # independent: solves with H itself
    st = info["steps"]
    np.testing.assert_allclose(st["thetas_p"], np.linalg.solve(DEMO_H[None] + grid[:, None, None] * np.eye(2),
                                                               DEMO_H @ DEMO_THETA), atol=1e-12)
    np.testing.assert_allclose(st["df"], ref.effective_df, atol=1e-12)
    a, b = info["directions"]
    np.testing.assert_allclose(st["plane"], ref.scaled[:, [a, b]], atol=1e-12)
    # Each slider step carries the readout that the browser shows, and the θ̃ marker's position.
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == grid.size
    for i in (0, 7, grid.size - 1):
        step = slider.steps[i]
        assert float(step.value) == grid[i]
        title = step.args[1]["title.text"]
        assert f"θ̃ = ({fmt(ref.thetas[i, 0])}, {fmt(ref.thetas[i, 1])})" in title
        assert f"df(λ) = {fmt(ref.effective_df[i])}" in title
        k = step.args[2].index(5)  # trace 5 is the θ̃ marker
        np.testing.assert_allclose([step.args[0]["x"][k][0], step.args[0]["y"][k][0]], st["plane"][i])


def test_results_file_round_trip(results_json, tmp_path, capsys):
    d = json.loads(results_json.read_text())
    data = ExplorerData.from_results(d)
    np.testing.assert_array_equal(data.eigenvalues, d["penalized_eigenvalues"])
    np.testing.assert_array_equal(data.coords, d["coords"])
    assert data.penalized_names == d["param_names"][:10]
    # A dense analysis writes Q, so the page built from the file can show θ̃ per parameter too.
    np.testing.assert_array_equal(data.eigenvectors, d["penalized_eigenvectors"])
    # `analyze` evaluated the true loss on the page's plane; the page built from the file carries it.
    assert d["loss_plane"]["evaluations"] == 25**2 + 1 and data.loss_plane["z"].shape == (25, 25)
    np.testing.assert_array_equal(data.loss_plane["z"], d["loss_plane"]["z"])
    file_steps = explorer_steps(data, np.asarray(d["lambdas"]), (0, 1))
    np.testing.assert_allclose(file_steps["thetas_p"], np.asarray(d["predicted"])[:, :10], rtol=1e-9, atol=1e-9)
    # The same numbers as the in-memory analysis (which also knows Q).
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    res = analyze(LeastSquares(X, y), d["lambdas"])
    live = ExplorerData.from_analysis(res)
    np.testing.assert_allclose(live.eigenvalues, data.eigenvalues, rtol=1e-10)
    st = explorer_steps(live, res.lambdas, (0, 1))
    np.testing.assert_allclose(st["thetas_p"], res.predicted[:, :10], rtol=1e-9, atol=1e-9)
    page = tmp_path / "page.html"
    code, _out, err = run(capsys, "explore", results_json, "--out", page, "--directions", "1,3")
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    readout = "(q1ᵀθ̃, q3ᵀθ̃)"  # Plotly writes the figure's JSON with \u escapes
    assert "diabetes" in text and (readout in text or json.dumps(readout)[1:-1] in text)
    assert "Paths: predicted" in text


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"lambdas": [0.1]}', "missing field 'penalized_eigenvalues'"),
])
def test_bad_results_exit_2_one_line_no_output(tmp_path, capsys, content, message):
    src = tmp_path / "results.json"
    if content is not None:
        src.write_text(content)
    page = tmp_path / "out" / "page.html"
    code, _out, err = run(capsys, "explore", src, "--out", page)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("ridgelens: error:")
    assert not page.exists() and not (tmp_path / "out").exists()


def test_malformed_fields_and_arguments(results_json, tmp_path, capsys):
    d = json.loads(results_json.read_text())
    d["coords"] = d["coords"][:-1]
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps(d))
    page = tmp_path / "p.html"
    assert run(capsys, "explore", bad, "--out", page)[0] == 2
    code, _, err = run(capsys, "explore", results_json, "--demo", "--out", page)
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "explore", "--out", page)
    assert code == 2 and "RESULTS_JSON" in err
    code, _, err = run(capsys, "explore", results_json, "--out", page, "--directions", "1,11")
    assert code == 2 and "only 10 eigen-directions" in err
    code, _, err = run(capsys, "explore", "--demo", "--out", tmp_path)
    assert code == 2 and "is a folder" in err
    assert not page.exists()
    # An existing page is left whole when a later run fails.
    page.write_text("old")
    assert run(capsys, "explore", bad, "--out", page)[0] == 2
    assert page.read_text() == "old"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(theta_hat=[None] * len(d["theta_hat"])), "'theta_hat' must be 11 finite numbers, one per "
                                                                  "parameter; got nan at entry 0"),
    (lambda d: d.update(theta_hat=d["theta_hat"][:3]), "'theta_hat' must be 11 finite numbers, one per parameter; "
                                                       "got 3 entries"),
    (lambda d: d.update(penalized_eigenvalues=d["penalized_eigenvalues"][:1], coords=d["coords"][:1]),
     "has 1 penalized eigen-direction; the explorer page draws the loss in a plane of two"),
    (lambda d: d["eigenvalues"].__setitem__(0, "a"), "bad.json: the analysis dict has a malformed field "
                                                     "'eigenvalues': could not convert string to float: 'a'"),
])
def test_a_results_file_without_a_drawable_theta_hat_or_plane_is_refused_by_field(results_json, tmp_path, capsys,
                                                                                   edit, message):
    """Before: an all-NaN θ̂ drew a 5 MB page of NaN; one direction said only 'must be two lists … ≥ 2'."""
    d = json.loads(results_json.read_text())
    edit(d)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    code, _out, err = run(capsys, "explore", bad, "--out", tmp_path / "p.html")
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.html").exists()


def test_negative_curvature_starts_the_slider_above_minus_sigma_min():
    data = ExplorerData(title="t", eigenvalues=np.array([3.0, 1.0, -0.5]), coords=np.array([1.0, 1.0, 1.0]),
                        eigenvectors=None, penalized_names=["a", "b", "c"], lambdas=np.array([0.1, 1.0]),
                        param_names=["a", "b", "c"], notes=[])
    grid = lambda_grid(data)
    assert grid.min() > 0.5 and 1.0 in grid and 0.1 not in grid
    assert "<!DOCTYPE html>" in explorer_html(data)


# --- the real browser -------------------------------------------------------------------------



def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 1250})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".slider-rail-rect")
    return page, requests, errors


def _numbers(text: str, label: str) -> list[float]:
    m = re.search(re.escape(label) + r" = \(([^)]*)\)", text)
    assert m, (label, text)
    return [float(v) for v in m.group(1).split(",")]


def _close_to_printed(shown: float, value: float) -> None:
    # Equal to the Python value to the printed precision (DIGITS significant digits).
    assert shown == pytest.approx(value, rel=1e-4, abs=1e-12), (shown, value)


def test_browser_slider_moves_theta_tilde(browser, tmp_path):
    html = tmp_path / "demo.html"
    assert main(["explore", "--demo", "--out", str(html)]) == 0
    page, requests, errors = _open(browser, html)
    gd = "document.getElementById('explorer')"
    before = page.locator(".gtitle").text_content()
    box = page.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + box["height"] / 2)  # a real click on the rail
    page.wait_for_function(f"{gd}.layout.title.text !== {json.dumps(before)}")
    active = page.evaluate(f"{gd}.layout.sliders[0].active")
    lam = float(page.evaluate(f"{gd}.layout.sliders[0].steps[{active}].value"))
    assert lam == lambda_grid(demo_data())[active] and lam > 0.5
    shown = page.locator(".gtitle").text_content()
    ref = ridge_path(DEMO_H, DEMO_THETA, [lam])
    theta = _numbers(shown, "θ̃")
    for s, v in zip(theta, ref.thetas[0], strict=True):
        _close_to_printed(s, v)
    assert f"λ = {fmt(lam)}" in shown
    # The θ̃ marker in the contour view moved to the rotated coordinates Qᵀθ̃.
    xy = page.evaluate(f"[{gd}.data[5].x[0], {gd}.data[5].y[0]]")
    a, b = explorer_figure(demo_data())[1]["directions"]
    np.testing.assert_allclose(xy, ref.scaled[0, [a, b]], rtol=1e-12)
    # The shrinkage bars and both tables followed.
    np.testing.assert_allclose(page.evaluate(f"{gd}.data[6].y"), ref.factors[0], rtol=1e-12)
    tables = page.locator(".table").all_text_contents()
    assert any(fmt(ref.factors[0, 0]) in t for t in tables)
    assert any(fmt(ref.thetas[0, 1]) in t for t in tables)
    # Hovering the θ̃ marker shows its values.
    page.mouse.move(2, 2)
    bb = page.evaluate(f"""(() => {{ const g = {gd}; const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;
        const r = g.getBoundingClientRect();
        return [r.left + xa._offset + xa.l2p(g.data[5].x[0]), r.top + ya._offset + ya.l2p(g.data[5].y[0])]; }})()""")
    page.mouse.move(*bb)
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5000)
    hover = page.locator(".hoverlayer").text_content()
    assert fmt(ref.scaled[0, a]) in hover or f"{ref.scaled[0, a]:.5g}" in hover
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests  # offline: nothing else was asked for
    page.close()


def test_browser_results_page(browser, results_json, tmp_path):
    html = tmp_path / "results.html"
    assert main(["explore", str(results_json), "--out", str(html)]) == 0
    page, requests, errors = _open(browser, html)
    gd = "document.getElementById('explorer')"
    page.keyboard.press("Tab")
    before = page.locator(".gtitle").text_content()
    box = page.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(box["x"] + 0.25 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function(f"{gd}.layout.title.text !== {json.dumps(before)}")  # the glide has ended
    active = page.evaluate(f"{gd}.layout.sliders[0].active")
    lam = float(page.evaluate(f"{gd}.layout.sliders[0].steps[{active}].value"))
    d = json.loads(results_json.read_text())
    sigma, z = np.array(d["penalized_eigenvalues"]), np.array(d["coords"])
    data = ExplorerData.from_results(d)
    a, b = explorer_figure(data)[1]["directions"]
    expect = sigma / (sigma + lam) * z  # θ̃ in the eigenbasis, computed here from the file
    shown = _numbers(page.locator(".gtitle").text_content(), f"(q{a + 1}ᵀθ̃, q{b + 1}ᵀθ̃)")
    for s, v in zip(shown, expect[[a, b]], strict=True):
        _close_to_printed(s, v)
    assert errors == [] and all(u.startswith("file://") for u in requests)
    page.close()


def test_top_k_results_from_a_matrix_free_analysis_are_accepted(results_json):
    d = json.loads(results_json.read_text())
    d["penalized_eigenvalues"], d["coords"] = d["penalized_eigenvalues"][:4], d["coords"][:4]
    d["penalized_eigenvectors"] = None  # a matrix-free analysis writes no Q
    data = ExplorerData.from_results(d)
    assert data.eigenvalues.size == 4 and any("top 4 of 10" in n for n in data.notes)
    d["penalized_eigenvalues"] = d["penalized_eigenvalues"] * 3
    d["coords"] = d["coords"] * 3
    with pytest.raises(ValueError, match="12 penalized eigenvalues"):
        ExplorerData.from_results(d)


def test_page_keeps_the_first_order_term_when_theta_hat_is_not_stationary(tmp_path):
    """A θ̂ off the minimum: the page's θ̃ is the analysis' (H + λP)⁻¹(Hθ̂ − g), not the pure shrinkage."""
    from ridgelens.data import load_dataset

    ds = load_dataset("diabetes", standardize=True)
    obj = LeastSquares(ds.X, ds.y)  # the intercept is unpenalized: the Schur complement
    exact = obj.minimize().theta
    theta = exact + 0.05 * np.abs(exact).max() * np.random.default_rng(0).standard_normal(exact.size)
    with pytest.warns(GradientNotZeroWarning):
        res = analyze(obj, [1e-3, 1e-1], theta_hat=theta, refit=False)
    assert res.path.gradient_used
    data = ExplorerData.from_analysis(res)
    assert data.gradient_coords is not None and any("◆" in n for n in data.notes)
    # Independent reference: dense solves of (H + λP)x = Hθ̂ − g on the whole grid, penalized block.
    H, g, P = obj.hessian_dense(), obj.gradient(theta), np.diag(obj.penalized.astype(float))
    grid = lambda_grid(data)
    fig, info = explorer_figure(data)
    ref = np.array([np.linalg.solve(H + lam * P, H @ theta - g) for lam in info["lambdas"]])
    np.testing.assert_allclose(info["steps"]["thetas_p"], ref[:, obj.penalized], rtol=0,
                               atol=1e-9 * np.abs(ref).max())
    np.testing.assert_array_equal(info["lambdas"], grid)
    # At the analysed λ the page shows the analysis' own prediction, and the centre (◆) is drawn.
    at = [int(np.flatnonzero(grid == lam)[0]) for lam in res.lambdas]
    np.testing.assert_allclose(info["steps"]["thetas_p"][at], res.predicted[:, obj.penalized], rtol=1e-9)
    assert any(tr.name == "minimizer of the quadratic model" for tr in fig.data)
    # results.json carries the term, and a page built from it shows the same θ̃.
    d = json.loads(json.dumps(res.to_dict(), default=lambda o: o.tolist() if hasattr(o, "tolist") else o))
    again = ExplorerData.from_results(d)
    np.testing.assert_allclose(again.gradient_coords, data.gradient_coords, rtol=1e-12)
    html_text = explorer_html(again)
    assert "θ̂ − H⁻¹g" in html_text


def _analysis_for(path, n):
    """A real Analysis of the right size whose path (and λ) are ``path``'s: the page's whole chain."""
    from dataclasses import replace

    rng = np.random.default_rng(0)
    obj = LeastSquares(rng.normal(size=(30, n - 1)), rng.normal(size=30))  # n − 1 weights + intercept
    res = analyze(obj, [0.1], refit=False)
    return replace(res, path=path, lambdas=path.lambdas, theta_hat=path.theta_hat, refit=None,
                   gradient_norm=1.0)


def test_gradient_coords_are_q_transpose_g_even_where_sigma_is_zero_or_g_is_tiny():
    # Recovered as σz − scaledᵢ(σ + λᵢ), Qᵀg̃ was 0 in a σ = 0 direction when the smallest λ is 0 (the
    # path's 0/0 := 0), though g has a component there (a Hessian whose null space g reaches, as a
    # network's can), so the page's θ̃ at λ > 0 lost −(Qᵀg̃)ⱼ/λ; and it cancelled for a tiny g̃.
    n, rng = 8, np.random.default_rng(4)
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    H = (Q * np.array([0.0, 0.0, 1e-3, 0.1, 1.0, 3.0, 10.0, 100.0])) @ Q.T
    theta = 100.0 * rng.normal(size=n)
    lam = np.array([0.0, 1e-2, 1.0])
    for g in (rng.normal(size=n), 1e-9 * rng.normal(size=n)):
        p = ridge_path(H, theta, lam, gradient=g, method="dense")
        res = _analysis_for(p, n)
        want = p.eigenvectors.T @ g
        np.testing.assert_allclose(res.gradient_coords, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
        data = ExplorerData.from_analysis(res)
        st = explorer_steps(data, lam, (6, 7))
        ref = np.stack([np.linalg.lstsq(H, H @ theta - g, rcond=1e-12)[0] if lv == 0 else
                        np.linalg.solve(H + lv * np.eye(n), H @ theta - g) for lv in lam])
        np.testing.assert_allclose(st["thetas_p"], ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_page_steps_match_ridge_path_with_an_intercept_and_negative_curvature():
    n, rng = 7, np.random.default_rng(5)
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    H = (Q * np.array([-0.3, 0.05, 0.2, 1.0, 2.0, 5.0, 9.0])) @ Q.T
    H[0, 0] += 0.0 if H[0, 0] > 0.5 else 0.5 - H[0, 0]  # the intercept's own curvature stays positive
    mask = np.ones(n, bool)
    mask[0] = False
    theta, g = rng.normal(size=n), 0.3 * rng.normal(size=n)
    with pytest.warns(Warning):  # negative curvature in S
        p = ridge_path(H, theta, [0.5, 2.0], penalized=mask, gradient=g, method="dense")
    assert p.eigenvalues.min() < 0 and p.curvature == "schur-complement"
    data = ExplorerData.from_analysis(_analysis_for(p, n))
    grid = lambda_grid(data)
    assert grid.min() > -p.eigenvalues.min()
    st = explorer_steps(data, grid, (0, 1))
    with pytest.warns(Warning):
        again = ridge_path(H, theta, grid, penalized=mask, gradient=g, method="dense")
    P = np.diag(mask.astype(float))
    ref = np.stack([np.linalg.solve(H + lv * P, H @ theta - g) for lv in grid])
    np.testing.assert_allclose(again.thetas, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(st["thetas_p"], ref[:, mask], rtol=0, atol=1e-10 * np.abs(ref).max())
    # The ellipses' centre (◆) is the quadratic model's stationary point, seen in the plane.
    fig, info = explorer_figure(data)
    a, b = info["directions"]
    centre = p.eigenvectors.T @ np.linalg.solve(H, H @ theta - g)[mask]
    (dia,) = [tr for tr in fig.data if tr.name == "minimizer of the quadratic model"]
    np.testing.assert_allclose([dia.x[0], dia.y[0]], centre[[a, b]], rtol=1e-9)
