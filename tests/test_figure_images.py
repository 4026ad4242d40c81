"""Figures against committed baseline images, and structural checks of what they claim.

Pixels: each case of ``figure_cases.CASES`` is rendered with pinned settings and compared with
``tests/baseline/NAME.png`` by matplotlib's ``compare_images`` (RMS tolerance). Structure: no text
runs off the figure (the cut-off "q1: σ = 2" label of contour.png failed this), titles and axis
labels do not collide, legends do not cover θ̂ or θ̃, and the numbers drawn are the ones an
independent computation gives (scikit-learn, dense eigh).
"""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.testing.compare import compare_images

import figure_cases as fc

BASELINE = Path(__file__).parent / "baseline"
#: RMS difference (0-255 grey levels) tolerated: text anti-aliasing across FreeType builds.
TOL = 3.0
UPDATE = os.environ.get("RIDGELENS_UPDATE_BASELINES") == "1"


@pytest.fixture(scope="module")
def cases():
    """The three analyses the cases share, computed once."""
    return {"diabetes": fc.diabetes(), "cancer": fc.cancer(), "matrix_free": fc.diabetes_matrix_free()}


_DRAWN = {}


def _draw(name, cases):
    """Each case is drawn once per session (the tests only read it)."""
    if name not in _DRAWN:
        _DRAWN[name] = _draw_new(name, cases)
    return _DRAWN[name]


def _draw_new(name, cases):
    arg = {"model_contours": "diabetes", "paths": "diabetes", "rel_error_exact": "diabetes",
           "rel_error_trend": "cancer", "shrinkage_matrix_free": "matrix_free"}.get(name)
    with matplotlib.rc_context(fc.RC):
        fig, drawn = fc.CASES[name](cases[arg]) if arg else fc.CASES[name]()
        FigureCanvasAgg(fig).draw()  # lay out (constrained layout) with the pinned fonts
    return fig, drawn


@pytest.mark.parametrize("name", sorted(fc.CASES))
def test_figure_matches_baseline(name, cases, tmp_path):
    fig, _ = _draw(name, cases)
    actual = tmp_path / f"{name}.png"
    with matplotlib.rc_context(fc.RC):
        fig.savefig(actual, dpi=fc.DPI)
    expected = BASELINE / f"{name}.png"
    if UPDATE:
        BASELINE.mkdir(exist_ok=True)
        expected.write_bytes(actual.read_bytes())
    assert expected.is_file(), f"no baseline {expected}; make one with RIDGELENS_UPDATE_BASELINES=1"
    diff = compare_images(str(expected), str(actual), tol=TOL)
    assert diff is None, diff


def _texts(fig):
    """Every text that is drawn: tick labels of ticks outside the view limits are not."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * abs(lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi):
                    hidden.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(matplotlib.text.Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


@pytest.mark.parametrize("name", sorted(fc.CASES))
def test_no_text_runs_off_the_figure(name, cases):
    fig, _ = _draw(name, cases)
    r = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    for t in _texts(fig):
        bb = t.get_window_extent(r)
        assert bb.x0 >= -1 and bb.y0 >= -1 and bb.x1 <= W + 1 and bb.y1 <= H + 1, (t.get_text(), bb, (W, H))


@pytest.mark.parametrize("name", sorted(fc.CASES))
def test_titles_and_axis_labels_do_not_collide(name, cases):
    fig, _ = _draw(name, cases)
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(r) for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (name, boxes[i], boxes[j])


def _marker_px(ax, xy):
    return ax.transData.transform(np.atleast_2d(xy))


def test_legend_never_covers_theta_hat_or_theta_tilde(cases):
    fig, d = _draw("model_contours", cases)
    r = fig.canvas.get_renderer()
    leg = d["legend"].get_window_extent(r)
    ax = fig.axes[0]
    for xy in np.vstack([[[0.0, 0.0]], d["predicted"], d["refit"]]):
        x, y = _marker_px(ax, xy)[0]
        assert not leg.contains(x, y), (xy, leg)
    fig, d = _draw("contour", cases)
    leg = fig.axes[0].get_legend().get_window_extent(fig.canvas.get_renderer())
    for xy in np.vstack([fc.DEMO_THETA[None, :], d["tangent_points"]]):
        x, y = _marker_px(fig.axes[0], xy)[0]
        assert not leg.contains(x, y), (xy, leg)


def test_contour_axis_labels_inside_the_axes(cases):
    fig, d = _draw("contour", cases)
    r = fig.canvas.get_renderer()
    box = fig.axes[0].get_window_extent(r)
    for t in d["axis_labels"]:
        bb = t.get_window_extent(r)
        assert box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1, (t.get_text(), bb, box)
        assert "σ" in t.get_text()


def test_matrix_free_shrinkage_states_the_share_outside_against_dense_eigh(cases):
    fig, d = _draw("shrinkage_matrix_free", cases)
    _, res = cases["matrix_free"]
    from ridgelens.data import load_dataset

    X = load_dataset("diabetes").X
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / X.shape[0]  # the intercept profiled out: S = H_pp − H_pu H_uu⁻¹ H_up, in closed form
    w, V = np.linalg.eigh(S)
    top = V[:, np.argsort(w)[::-1][:4]]
    th = res.theta_hat[:10]
    share = np.linalg.norm(th - top @ (top.T @ th)) / np.linalg.norm(th)
    np.testing.assert_allclose(d["outside_share"], share, rtol=1e-4)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"{100 * share:.1f}%" in text and "top 4 of 10" in text
    # Both ends of the spectrum are on the axis: the flattest σ of S as well as the top ones.
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= w.min() and hi >= w.max()
