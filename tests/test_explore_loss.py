"""The page's true-loss contours, its 2-D slice for many parameters, and its glide between slider stops.

References are independent of the page: the loss evaluated directly at points built from a dense
Hessian (not the analysis' spectrum), dense solves of (H + λP)θ = Hθ̂ for θ̃, and the ridge path
at the two stops a glide runs between.
"""

import json

import numpy as np
import pytest

import ridgelens as rl
from ridgelens import LeastSquares, Logistic, analyze, ridge_path
from ridgelens.data import load_dataset
from ridgelens.report import (
    ExplorerData,
    demo_data,
    explorer_figure,
    explorer_html,
    loss_plane,
    write_explorer,
)
from ridgelens.report._data import DEMO_H, DEMO_THETA


def _least_squares():
    ds = load_dataset("diabetes", standardize=True)
    obj = LeastSquares(ds.X, ds.y)  # an unpenalized intercept: the plane keeps it at its best response
    return obj, obj.hessian_dense


def _logistic():
    ds = load_dataset("breast_cancer", standardize=True)
    obj = Logistic(ds.X[:, :5], ds.y)
    return obj, obj.hessian_dense


def _torch():
    import torch

    torch.manual_seed(0)
    ds = load_dataset("diabetes", standardize=True)
    X = torch.tensor(ds.X[:120, :4])
    Y = torch.tensor(ds.y[:120])[:, None]
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)])  # θ̂: its weights as given
    return obj, lambda t: rl.hessian(obj, t, form="double-backward").to_dense().numpy()


def _plane_point(H, obj, res, a, b, x, y):
    """θ at plane coordinates (x, y), built from the dense H: θ_p moves along q_a, q_b; θ_u follows."""
    mask = np.asarray(obj.penalized, bool)
    u = ~mask
    S = H[np.ix_(mask, mask)]
    if u.any():
        S = S - H[np.ix_(mask, u)] @ np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, mask)])
    w, V = np.linalg.eigh(S)
    V = V[:, np.argsort(-w)]
    Q = np.asarray(res.path.eigenvectors)
    q = [V[:, k] * np.sign(V[:, k] @ Q[:, k]) for k in (a, b)]  # the eigenvectors' sign is a convention
    th = res.theta_hat
    d = (x - q[0] @ th[mask]) * q[0] + (y - q[1] @ th[mask]) * q[1]
    theta = th.copy()
    theta[mask] += d
    if u.any():
        theta[u] -= np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, mask)] @ d)
    return theta


@pytest.mark.filterwarnings("ignore::ridgelens.GradientNotZeroWarning", "ignore::ridgelens.NegativeCurvatureWarning")
@pytest.mark.parametrize("make", [_least_squares, _logistic, _torch], ids=["linear", "logistic", "torch"])
def test_loss_grid_is_the_loss_at_its_points(make):
    obj, hess = make()
    res = analyze(obj, [0.01, 0.1, 1.0], refit=False, method="dense")
    lp = loss_plane(obj, res, resolution=9)
    a, b = lp["directions"]
    assert lp["z"].shape == (9, 9) and lp["evaluations"] == 82
    H = hess(res.theta_hat)
    r0 = obj.value(res.theta_hat)
    for i, j in ((0, 0), (4, 4), (8, 8), (2, 7), (7, 1)):
        want = obj.value(_plane_point(H, obj, res, a, b, lp["x"][j], lp["y"][i])) - r0
        assert lp["z"][i, j] == pytest.approx(want, rel=1e-8, abs=1e-12 * np.abs(lp["z"]).max()), (i, j)
    # The grid covers the page's contour view: θ̂, its projection and 0 lie inside.
    za, zb = res.path.coords[[a, b]]
    assert lp["x"][0] < min(0, za) and lp["x"][-1] > max(0, za) and lp["y"][0] < min(0, zb) < lp["y"][-1]
    if isinstance(obj, LeastSquares):  # an exactly quadratic loss: it is the model ½Σσ(c − ĉ)² everywhere
        sa, sb = res.path.eigenvalues[[a, b]]
        X, Y = np.meshgrid(lp["x"], lp["y"])
        model = 0.5 * (sa * (X - za) ** 2 + sb * (Y - zb) ** 2)
        np.testing.assert_allclose(lp["z"], model, rtol=0, atol=1e-8 * model.max())


@pytest.fixture(scope="module")
def diabetes_page(tmp_path_factory):
    obj, _ = _least_squares()
    res = analyze(obj, [1e-3, 1e-2, 0.1], refit=False)
    data = ExplorerData.from_analysis(res, objective=obj)
    page = write_explorer(data, tmp_path_factory.mktemp("page") / "diabetes.html")
    return obj, res, data, page


def _segments_distance(xs, ys, p):
    """Distance from p to a polyline given as Plotly x, y lists (None between pieces)."""
    pts = np.array([[np.nan if v is None else v for v in xs], [np.nan if v is None else v for v in ys]]).T
    a, b = pts[:-1], pts[1:]
    ok = np.all(np.isfinite(a), axis=1) & np.all(np.isfinite(b), axis=1)
    a, b = a[ok], b[ok]
    t = np.clip(np.einsum("ij,ij->i", p - a, b - a) / np.einsum("ij,ij->i", b - a, b - a), 0, 1)
    return float(np.min(np.linalg.norm(a + t[:, None] * (b - a) - p, axis=1)))


def test_true_loss_on_the_page_passes_through_theta_tilde_for_a_quadratic_loss(diabetes_page):
    data = diabetes_page[2]
    fig, info = explorer_figure(data)
    assert info["true_loss"] and info["slice"]
    (grid_trace,) = [t for t in fig.data if t.type == "contour"]
    np.testing.assert_array_equal(np.asarray(grid_trace.z), data.loss_plane["z"])
    k = next(n for n, t in enumerate(fig.data) if t.name == "true loss through θ̃'s level")
    width = np.ptp(data.loss_plane["x"])
    for i in (10, 20, 30):  # least squares: the true contour at the model's level through θ̃ runs through θ̃
        step = fig.layout.sliders[0].steps[i]
        n = step.args[2].index(k)
        xs, ys = step.args[0]["x"][n], step.args[0]["y"][n]
        assert len(xs) > 10
        assert _segments_distance(xs, ys, info["steps"]["plane"][i]) < 0.01 * width
    # A page for another plane than the grid's says it draws no true loss.
    text = explorer_html(data, directions=(0, 2))
    assert "not on the plane drawn here" in text


def test_slice_panel_shows_theta_projected_on_the_plane(diabetes_page):
    obj, res, data, _ = diabetes_page
    fig, info = explorer_figure(data)
    a, b = info["directions"]
    assert any("2-D slice of the 10 parameters" in ann.text for ann in fig.layout.annotations)
    # Independent: the plane from eigh of the dense Schur complement, θ̃ from dense solves.
    H, mask = obj.hessian_dense(), obj.penalized
    u = ~mask
    S = H[np.ix_(mask, mask)] - H[np.ix_(mask, u)] @ np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, mask)])
    w, V = np.linalg.eigh(S)
    V = V[:, np.argsort(-w)][:, [a, b]]
    P = V @ V.T  # the projector on the plane (the eigenvectors' signs do not matter)
    loads = np.linalg.norm(V, axis=1)
    i_top = int(np.argmax(loads))
    e = P[:, i_top] / np.linalg.norm(P[:, i_top])  # that parameter's axis, projected and normalized
    f = P @ np.eye(mask.sum())[np.argsort(-loads)[1]]
    f -= (f @ e) * e
    f /= np.linalg.norm(f)
    marker = next(n for n, t in enumerate(fig.data) if t.xaxis == "x5" and t.mode == "markers"
                  and t.hovertemplate and "rotated back" in t.hovertemplate)
    P_full = np.diag(mask.astype(float))
    for i in (0, 15, 30):
        lam = info["lambdas"][i]
        tt = np.linalg.solve(H + lam * P_full, H @ res.theta_hat)[mask]
        step = fig.layout.sliders[0].steps[i]
        n = step.args[2].index(marker)
        shown = [step.args[0]["x"][n][0], step.args[0]["y"][n][0]]
        np.testing.assert_allclose(shown, [e @ tt, f @ tt], rtol=1e-7, atol=1e-9 * np.linalg.norm(tt))


def test_browser_draws_the_true_loss_and_its_grid_is_the_loss(browser, diabetes_page):
    obj, res, data, path = diabetes_page
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".slider-rail-rect")
    gd = "document.getElementById('explorer')"
    assert page.locator(".contour").count() >= 1  # Plotly drew the contour trace
    k = page.evaluate(f"{gd}.data.findIndex(t => t.type === 'contour')")
    x, y, z = page.evaluate(f"(() => {{ const t = {gd}._fullData[{k}]; "  # the arrays as Plotly decoded them
                            "return [Array.from(t.x), Array.from(t.y), Array.from(t.z, r => Array.from(r))]; })()")
    a, b = data.loss_plane["directions"]
    H, r0 = obj.hessian_dense(), obj.value(res.theta_hat)
    for i, j in ((0, 0), (12, 12), (24, 3)):  # the page's numbers are the loss at those points, evaluated here
        want = obj.value(_plane_point(H, obj, res, a, b, x[j], y[i])) - r0
        assert z[i][j] == pytest.approx(want, rel=1e-9, abs=1e-12 * np.abs(data.loss_plane["z"]).max())
    before = page.locator(".gtitle").text_content()
    box = page.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(box["x"] + 0.6 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function(f"{gd}.layout.title.text !== {json.dumps(before)}")
    m = page.evaluate(f"{gd}.data.findIndex(t => t.name === \"true loss through θ̃'s level\")")
    xs, ys, tt = page.evaluate(f"[{gd}.data[{m}].x, {gd}.data[{m}].y, [{gd}.data[5].x[0], {gd}.data[5].y[0]]]")
    assert _segments_distance(xs, ys, np.array(tt)) < 0.01 * np.ptp(data.loss_plane["x"])
    assert errors == []
    page.close()


def test_browser_glides_between_slider_stops(browser, tmp_path):
    path = write_explorer(demo_data(), tmp_path / "demo.html")
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.goto(path.as_uri())
    page.wait_for_selector(".slider-rail-rect")
    gd = "document.getElementById('explorer')"
    _, info = explorer_figure(demo_data())
    grid = info["lambdas"]
    # The state half-way between two stops is the mean of theirs (θ̃ marker, trace 5); the ridge path is the reference.
    i0 = 12
    ref = ridge_path(DEMO_H, DEMO_THETA, grid[[i0, i0 + 1]]).scaled[:, list(info["directions"])]
    st = page.evaluate(f"(() => {{ const s = window.ridgelensTween.state({i0} + 0.25); const n = s.traces.indexOf(5);"
                       " return [s.x[n][0], s.y[n][0]]; })()")
    np.testing.assert_allclose(st, 0.75 * ref[0] + 0.25 * ref[1], rtol=1e-12)
    # A real click: the marker passes through states strictly between the two λ's, in order.
    start = page.evaluate(f"[{gd}.data[5].x[0], {gd}.data[5].y[0]]")
    page.evaluate(f"""(() => {{ window.__seen = []; const g = {gd};
        const rec = () => {{ const v = [g.data[5].x[0], g.data[5].y[0]], l = window.__seen[window.__seen.length - 1];
          if (!l || l[0] !== v[0]) window.__seen.push(v); requestAnimationFrame(rec); }}; rec(); }})()""")
    page.evaluate("window.ridgelensTween.ms = 1200")  # a slower glide: frames to see on a busy machine too
    before = page.locator(".gtitle").text_content()
    box = page.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function(f"{gd}.layout.title.text !== {json.dumps(before)}")
    page.wait_for_timeout(50)
    seen = np.array(page.evaluate("window.__seen"))
    end = np.array(page.evaluate(f"[{gd}.data[5].x[0], {gd}.data[5].y[0]]"))
    active = page.evaluate(f"{gd}.layout.sliders[0].active")
    np.testing.assert_allclose(end, ridge_path(DEMO_H, DEMO_THETA, [grid[active]]).scaled[0, list(info["directions"])])
    inner = seen[1:-1] if np.allclose(seen[0], start) else seen[:-1]
    lo, hi = np.minimum(start, end), np.maximum(start, end)
    assert len(inner) >= 3, seen  # not a jump: frames between the stops
    assert np.all((inner > lo) & (inner < hi)), (inner, start, end)
    steps = np.diff(np.vstack([start, inner, end]), axis=0)  # every coordinate moves one way only
    assert np.all(steps * np.sign(end - start) >= -1e-12)
    page.close()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("directions", [0, 99], "directions must be two different indices in \\[0, 10\\)"),
    ("directions", [-1, 0], "directions must be two different indices"),
    ("directions", [1, 1], "directions must be two different indices"),
    ("directions", [0.5, 1.7], "expected directions, x, y and z"),
    ("directions", [True, False], "expected directions, x, y and z"),
    ("x", [-1e400, 0.0, 1.0], "x and y must be finite"),
    ("z", [[0, 1], [1, 2]], "z must have shape"),
])
def test_a_malformed_loss_grid_in_a_results_file_is_named(diabetes_page, tmp_path, capsys, field, value, message):
    """All but z's shape were read back with exit 0 before (0.5 → q1; [0, 99] and [−1, 0] put a note on q100 / q0
    on the page)."""
    from ridgelens.cli import main

    lp = {"directions": [0, 1], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0], "z": [[0.0] * 3] * 3, field: value}
    d = json.loads(json.dumps(diabetes_page[1].to_dict() | {"loss_plane": lp},
                              default=lambda o: o.tolist() if hasattr(o, "tolist") else o))
    with pytest.raises(rl.RidgelensError, match=r"results\.json: 'loss_plane': " + message):
        ExplorerData.from_results(d)
    src = tmp_path / "results.json"
    src.write_text(json.dumps(d))
    assert main(["explore", str(src), "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ridgelens: error:") and "'loss_plane'" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_the_loss_grid_refuses_another_objective_and_a_bad_resolution(diabetes_page):
    obj, res, _, _ = diabetes_page
    ds = load_dataset("diabetes", standardize=True)
    with pytest.raises(rl.RidgelensError, match=r"objective must be the objective the analysis was made from \(11"):
        loss_plane(LeastSquares(ds.X[:, :3], ds.y), res)
    with pytest.raises(rl.RidgelensError, match="objective must be"):
        loss_plane(None, res)
    for bad in ("9", 2.5, 10**6, True):
        with pytest.raises(rl.RidgelensError, match="resolution must be an integer from 3 to 1000"):
            loss_plane(obj, res, resolution=bad)
    with pytest.raises(rl.RidgelensError, match=r"analysis must be ridgelens\.analyze.s result, got dict"):
        ExplorerData.from_analysis(res.to_dict())


def test_an_objective_given_for_a_page_without_a_plane_adds_a_note_instead_of_failing():
    """Before: from_analysis(res, objective=obj) raised where the page itself draws fine without the objective
    (a penalty matrix; a matrix-free analysis with unpenalized parameters)."""
    ds = load_dataset("diabetes", standardize=True)
    weighted = LeastSquares(ds.X, ds.y)
    weighted.set_penalty(np.r_[np.ones(5), 2 * np.ones(5), 0.0])
    plain = LeastSquares(ds.X, ds.y)
    for obj, kw in ((weighted, {}), (plain, {"method": "matrix-free", "k": 3})):
        res = analyze(obj, [0.1, 1.0], refit=False, **kw)
        bare, given = ExplorerData.from_analysis(res), ExplorerData.from_analysis(res, objective=obj)
        assert given.loss_plane is None and np.array_equal(given.eigenvalues, bare.eigenvalues)
        assert given.notes == [*bare.notes, given.notes[-1]] and "The true loss is not drawn" in given.notes[-1]
