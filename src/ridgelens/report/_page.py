"""The interactive λ explorer: one Plotly figure with a λ slider, in one offline HTML file."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_bytes
from ridgelens._shrinkage import shrinkage
from ridgelens.errors import RidgelensError
from ridgelens.report._data import ExplorerData
from ridgelens.report._panels import (
    DIGITS,
    MAX_TABLE_ROWS,
    fmt,
    paths_panel,
    rotation_panel,
    tables_panel,
    true_loss_panel,
)
from ridgelens.report._plane import display_eigenvalues, plane_box, plane_directions
from ridgelens.report._tween import TWEEN_JS

#: Mantissas of the slider's stops per decade, from coarse to fine: the stops are round numbers.
_MANTISSAS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
              (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0))


def lambda_grid(data: ExplorerData, points: int = 41) -> np.ndarray:
    """The slider's λ: round numbers (1, 2, 5 … × 10ᵏ) over the spectrum's range, every analysed λ, and 0.

    The range is [σ_min/30, 30·σ_max] over the positive σ (rounding-level σ count as 0), and
    starts above −σ_min when the curvature has negative eigenvalues. The mantissas per decade
    are the finest set of :data:`_MANTISSAS` giving at most ``points`` stops (before the
    analysed λ are added): more stops than the slider has room for labels would make
    Plotly thin out the labels, and the powers of ten among them.
    """
    sigma = display_eigenvalues(data.eigenvalues, data.rank_tol)[0]
    pos = sigma[sigma > 0]
    if pos.size == 0:
        raise RidgelensError("the page needs at least one positive eigenvalue")
    lo, hi = pos.min() / 30, pos.max() * 30
    floor = -float(sigma.min()) if sigma.min() < 0 else 0.0  # the model has a minimizer only above it
    lo = max(lo, 1.05 * floor) if floor > 0 else lo
    hi = max(hi, 2 * lo)
    lam = data.lambdas[np.isfinite(data.lambdas) & (data.lambdas > floor)]
    decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    for mant in reversed(_MANTISSAS):  # the finest set with at most `points` stops (Plotly thins crowded labels)
        grid = np.array([float(f"{m}e{int(k)}") for k in decades for m in mant])
        grid = grid[(grid >= lo) & (grid <= hi)]
        if grid.size <= points:
            break
    grid = np.union1d(grid, lam)
    if floor == 0:
        grid = np.union1d([0.0], grid)
    return grid


def _tick_label(value: float) -> str:
    """A slider tick: 0 and the powers of ten are labelled, the other stops are not."""
    if value == 0:
        return "0"
    e = np.log10(value)
    if abs(e - round(e)) >= 1e-12:
        return ""
    return f"{value:g}" if -2 <= round(e) <= 3 else f"1e{round(e)}"  # short: every label fits its stop


def explorer_steps(data: ExplorerData, grid, directions) -> dict:
    """Everything the slider shows at each λ of ``grid``: factors, scaled coordinates, df, θ̃_p.

    The rotated coordinates are (σⱼ(Qᵀθ̂)ⱼ − (Qᵀg̃)ⱼ)/(σⱼ + λ), the pure shrinkage σⱼ/(σⱼ+λ)·(Qᵀθ̂)ⱼ
    when there is no first-order term; 0/0 (σ = λ = 0) is 0, as in :func:`ridge_path`.
    """
    sigma, z = display_eigenvalues(data.eigenvalues, data.rank_tol)[0], data.coords
    lam = np.asarray(grid, dtype=np.float64)
    factors, _ = shrinkage(sigma, lam)
    num = sigma * z - (0.0 if data.gradient_coords is None else data.gradient_coords)
    scaled, _ = shrinkage(sigma, lam, numerator=num[None, :])
    out = {"lambdas": lam, "factors": factors, "scaled": scaled, "df": factors.sum(axis=1),
           "plane": scaled[:, list(directions)]}
    if data.eigenvectors is not None:
        out["thetas_p"] = scaled @ data.eigenvectors.T
    return out


def explorer_figure(data: ExplorerData, *, directions=None, points: int = 41):
    """The Plotly figure: contour view, shrinkage bars, df(λ), paths and tables, one λ slider.

    Returns ``(figure, info)``; ``info`` holds the slider's ``lambdas``, the ``directions``
    and the per-step values of :func:`explorer_steps`.
    """
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RidgelensError("the interactive page needs plotly: pip install 'ridgelens[plot]'") from exc

    sigma, z, r = display_eigenvalues(data.eigenvalues, data.rank_tol)[0], data.coords, data.eigenvalues.size
    a, b = plane_directions(sigma, z, data.lambdas, directions, rank_tol=data.rank_tol)
    if sigma[a] <= 0 or sigma[b] <= 0:
        raise RidgelensError(f"the contour view needs two directions with σ > 0; σ{a + 1} = {sigma[a]:.3g}, "
                             f"σ{b + 1} = {sigma[b]:.3g}")
    grid = lambda_grid(data, points)
    st = explorer_steps(data, grid, (a, b))
    has_paths = data.predicted is not None and np.isfinite(data.predicted).any()
    has_q = "thetas_p" in st
    rotation = has_q and r == 2  # the whole θ-space is the plane: show rotate → scale → rotate back in it
    sliced = has_q and r > 2  # the same three steps in the (q_a, q_b) plane: a 2-D slice, in a row of its own
    qa, qb = f"q{a + 1}", f"q{b + 1}"
    n_rows = min(r, MAX_TABLE_ROWS)
    table_share = max(0.5, min(2.5, (n_rows + 2) / 8))
    right2 = ("θ in its own coordinates: rotate, scale by σⱼ/(σⱼ+λ), rotate back" if rotation else
              "Paths: predicted θ̃ (lines), refit θ* (circles)" if has_paths else "|Qᵀθ̂| and |Qᵀθ̃|")
    slice_row = [[{"type": "xy"}, None]] if sliced else []
    slice_title = ([f"A 2-D slice of the {r} parameters: θ's part in the ({qa}, {qb}) plane —<br>rotate, "
                    "scale by σⱼ/(σⱼ+λ), rotate back"] if sliced else [])

    fig = make_subplots(
        rows=3 + sliced, cols=2, row_heights=[0.45, 0.3, *([0.4] if sliced else []), 0.25 * table_share],
        vertical_spacing=0.1 if not sliced else 0.07, horizontal_spacing=0.1,
        specs=[[{"type": "xy"}, {"type": "xy"}], [{"type": "xy"}, {"type": "xy"}], *slice_row,
               [{"type": "table"}, {"type": "table"}] if has_q else [{"type": "table", "colspan": 2}, None]],
        subplot_titles=(f"Eigen-coordinates{' of D^{-1/2}HD^{-1/2}' if data.scaled_view else ''}: the ({qa}, {qb}) "
                        "plane", "Shrinkage factor σⱼ/(σⱼ+λ) per direction",
                        "df(λ) = Σ σⱼ/(σⱼ+λ)", right2, *slice_title, "Per direction",
                        *(["Per parameter"] if has_q else [])))
    table_row = 4 if sliced else 3

    # Contour view (eigen-plane coordinates c = Qᵀθ: ellipses are axis-aligned, as in DLB fig. 7.1).
    # They are centred on the quadratic model's minimizer: θ̂ itself, or Qᵀθ̂ − Qᵀg̃/σ with a first-order term.
    sa, sb = sigma[a], sigma[b]
    gc = data.gradient_coords
    box = plane_box(sigma, z, gc, (a, b))
    (ha, hb), (za, zb) = box["hat"], box["centre"]  # θ̂, and the quadratic model's minimizer
    lp = data.loss_plane
    true_loss = lp is not None and tuple(lp["directions"]) == (a, b)
    dense = np.concatenate([[0.0], np.geomspace(grid[grid > 0].min() / 100, grid.max() * 100, 300)])
    dense = dense[dense >= grid.min()]
    fa, fb = sa / (sa + dense), sb / (sb + dense)
    fig.add_trace(go.Scatter(x=fa * za, y=fb * zb, mode="lines", line={"color": "#555", "width": 1.5},
                             name="θ̃(λ), λ: 0 → ∞", hoverinfo="skip"), row=1, col=1)  # 0 (its hover: see the end)
    fig.add_trace(go.Scatter(x=[ha], y=[hb], mode="markers", marker={"symbol": "star", "size": 16, "color": "#1f77b4"},
                             name="θ̂ (no penalty)", hovertemplate=f"θ̂: {qa}ᵀθ̂ = " + "%{x:.5g}, "
                             + f"{qb}ᵀθ̂ = " + "%{y:.5g}<extra></extra>"), row=1, col=1)  # 1
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "cross", "size": 9, "color": "black"},
                             name="0", hoverinfo="skip"), row=1, col=1)  # 2
    t = np.linspace(0, 2 * np.pi, 181)

    def shapes(i):
        ca, cb = st["plane"][i]
        lev = 0.5 * (sa * (ca - za) ** 2 + sb * (cb - zb) ** 2)
        rad = float(np.hypot(ca, cb))
        ell = (za + np.sqrt(2 * lev / sa) * np.cos(t), zb + np.sqrt(2 * lev / sb) * np.sin(t))
        return (rad * np.cos(t), rad * np.sin(t)), ell

    i0 = int(np.argmin(np.abs(grid - (data.lambdas[0] if data.lambdas.size else grid[len(grid) // 2]))))
    circ, ell = shapes(i0)
    fig.add_trace(go.Scatter(x=circ[0], y=circ[1], mode="lines", line={"dash": "dash", "color": "#d62728"},
                             name="penalty circle through θ̃", hoverinfo="skip"), row=1, col=1)  # 3
    fig.add_trace(go.Scatter(x=ell[0], y=ell[1], mode="lines",
                             line={"color": "#2ca02c", **({"dash": "dashdot"} if true_loss else {})},
                             name="quadratic model's ellipse through θ̃" if true_loss else "loss ellipse through θ̃",
                             hoverinfo="skip"), row=1, col=1)  # 4
    fig.add_trace(go.Scatter(x=[st["plane"][i0, 0]], y=[st["plane"][i0, 1]], mode="markers",
                             marker={"size": 12, "color": "#ff7f0e", "line": {"color": "black", "width": 1}},
                             name="θ̃(λ) predicted", hovertemplate=f"θ̃: {qa}ᵀθ̃ = " + "%{x:.5g}, " + f"{qb}ᵀθ̃ = "
                             + "%{y:.5g}<extra></extra>"), row=1, col=1)  # 5
    # Shrinkage bars, one per eigen-direction (descending σ).
    labels = [f"q{j + 1}" for j in range(r)]
    bar_hover = [f"σ = {fmt(sigma[j])}<br>(Qᵀθ̂) = {fmt(z[j])}" for j in range(r)]
    fig.add_trace(go.Bar(x=labels, y=st["factors"][i0], marker={"color": "#9467bd"}, name="σⱼ/(σⱼ+λ)", showlegend=False,
                         hovertext=bar_hover, hovertemplate="%{x}: factor %{y:.5g}<br>%{hovertext}<extra></extra>"),
                  row=1, col=2)  # 6
    # df(λ) with the current λ.
    pos = grid > 0
    fig.add_trace(go.Scatter(x=grid[pos], y=st["df"][pos], mode="lines", line={"color": "#1f77b4"}, name="df(λ)", showlegend=False,
                             hovertemplate="λ = %{x:.4g}<br>df = %{y:.5g}<extra></extra>"), row=2, col=1)  # 7
    lam_x = lambda i: grid[i] if grid[i] > 0 else grid[pos].min()  # noqa: E731  (λ = 0 has no place on a log axis)
    fig.add_trace(go.Scatter(x=[lam_x(i0)], y=[st["df"][i0]], mode="markers", marker={"size": 10, "color": "#ff7f0e"},
                             name="df at λ", showlegend=False, hovertemplate="df = %{y:.5g}<extra></extra>"), row=2, col=1)  # 8
    # What each slider step rewrites: trace index -> (x, y) per step.
    moving = {3: lambda i: shapes(i)[0], 4: lambda i: shapes(i)[1],
              5: lambda i: ([st["plane"][i, 0]], [st["plane"][i, 1]]),
              6: lambda i: (labels, st["factors"][i]), 8: lambda i: ([lam_x(i)], [st["df"][i]])}
    if rotation:
        moving.update(rotation_panel(fig, go, data, st, i0, (a, b), 2, 2))
    elif has_paths:
        moving.update(paths_panel(fig, go, data, grid, st, lam_x, i0))
    else:
        fig.add_trace(go.Bar(x=labels, y=np.abs(z), name="|Qᵀθ̂|", showlegend=False, marker={"color": "#c7c7c7"},
                             hovertemplate="%{x}: |Qᵀθ̂| = %{y:.5g}<extra></extra>"), row=2, col=2)
    if sliced:
        moving.update(rotation_panel(fig, go, data, st, i0, (a, b), 3, 1))
    if true_loss:
        moving.update(true_loss_panel(fig, go, lp, st, i0, (sa, sb), (za, zb), (ha, hb), data.lambdas, grid))
    if has_q and data.refit is not None and np.isfinite(data.refit).any():  # θ* beside θ̃ in the eigen-plane
        pen_idx = [data.param_names.index(nm) for nm in data.penalized_names]
        ok = np.all(np.isfinite(data.refit[:, pen_idx]), axis=1)
        cz = data.refit[ok][:, pen_idx] @ data.eigenvectors[:, [a, b]]
        fig.add_trace(go.Scatter(x=cz[:, 0], y=cz[:, 1], mode="markers", name="θ*(λ) refit, at the analysed λ",
                                 marker={"symbol": "square-open", "size": 11, "color": "#8c564b",
                                         "line": {"width": 2}}, customdata=data.lambdas[ok],
                                 hovertemplate="refit θ* at λ = %{customdata:.4g}<br>" + f"{qa}ᵀθ* = "
                                 + "%{x:.5g}, " + f"{qb}ᵀθ* = " + "%{y:.5g}<extra></extra>"), row=1, col=1)
    tables = tables_panel(fig, go, data, st, sigma, labels, i0, table_row)

    def readout(i):
        lam_i = grid[i]
        s = f"λ = {fmt(lam_i)}   ·   df(λ) = {fmt(st['df'][i])}   ·   ({qa}ᵀθ̃, {qb}ᵀθ̃) = " \
            f"({fmt(st['plane'][i, 0])}, {fmt(st['plane'][i, 1])})"
        if has_q and r <= 3:
            s += "   ·   θ̃ = (" + ", ".join(fmt(v) for v in st["thetas_p"][i]) + ")"
        return s

    # The slider: each step holds the moving traces' values and the readout; the page's script (TWEEN_JS)
    # animates between the stops and applies them (method "skip": Plotly itself changes nothing).
    dynamic = sorted(moving) + sorted(tables)
    steps = []
    for i in range(grid.size):
        xy = [moving[k](i) for k in sorted(moving)]
        xs = [v[0] for v in xy] + [None] * len(tables)
        ys = [v[1] for v in xy] + [None] * len(tables)
        cells = [None] * len(moving) + [tables[k](i) for k in sorted(tables)]
        steps.append({"method": "skip", "label": _tick_label(grid[i]), "value": repr(float(grid[i])),
                      "args": [{"x": xs, "y": ys, "cells.values": cells}, {"title.text": readout(i)}, dynamic]})
    fig.update_layout(
        title={"text": readout(i0), "x": 0.01, "xanchor": "left", "y": 0.995, "yref": "container", "yanchor": "top",
               "font": {"size": 15}},  # above the slider, clear of its tick labels
        sliders=[{"active": i0, "steps": steps, "currentvalue": {"visible": False}, "pad": {"t": 0, "b": 10},
                  "x": 0.0, "len": 1.0, "y": 1.1, "yanchor": "bottom", "font": {"size": 10},
                  "ticklen": 4, "minorticklen": 2}],
        height=int(950 + 180 * table_share + 420 * sliced), margin={"t": 200, "l": 60, "r": 30, "b": 30}, bargap=0.2,
        # Above the panels, under the slider: it never covers θ̂, θ̃ or a curve.
        legend={"orientation": "h", "x": 0.0, "y": 1.035, "xanchor": "left", "yanchor": "bottom",
                "font": {"size": 11}},
        hovermode="closest", template="plotly_white",
    )
    for ann in fig.layout.annotations:  # the subplot titles, a little smaller
        ann.font.size = 12
    if gc is not None:  # the centre of the ellipses, added last so the slider's trace indices stay put
        fig.add_trace(go.Scatter(x=[za], y=[zb], mode="markers",
                                 marker={"symbol": "diamond", "size": 12, "color": "#2ca02c"},
                                 name="minimizer of the quadratic model",
                                 hovertemplate=f"θ̂ − H⁻¹g: {qa} " + "%{x:.5g}, " + f"{qb} " + "%{y:.5g}<extra></extra>"),
                      row=1, col=1)
    # The path's hover points are the slider's stops, in a trace after the θ̃ marker: where θ̃ sits on one,
    # the two tie and θ̃'s own hover (the earlier trace, the larger marker) wins.
    fig.add_trace(go.Scatter(x=st["plane"][:, 0], y=st["plane"][:, 1], mode="markers",
                             marker={"size": 4, "opacity": 0}, showlegend=False, customdata=grid, name="θ̃(λ) path",
                             hovertemplate="λ = %{customdata:.4g}<br>" + f"{qa}ᵀθ̃ = " + "%{x:.5g}<br>"
                             + f"{qb}ᵀθ̃ = " + "%{y:.5g}<extra>path</extra>"), row=1, col=1)
    spans = np.abs([za, zb, ha, hb])
    if max(spans[0], spans[2]) <= 10 * max(min(spans[1], spans[3]), 1e-300):  # to scale: circles look like circles
        fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    coord = "φ, φ = D^{1/2}θ" if data.scaled_view else "θ"  # the eigen view of D^{-1/2}HD^{-1/2} lives in φ
    fig.update_xaxes(title_text=f"{qa}ᵀ{coord}  (σ{a + 1} = {fmt(sa)})", row=1, col=1, range=list(box["x"]))
    fig.update_yaxes(title_text=f"{qb}ᵀ{coord}  (σ{b + 1} = {fmt(sb)})", row=1, col=1, range=list(box["y"]))
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_xaxes(type="log", title_text="λ", row=2, col=1)
    if has_paths and not rotation:
        fig.update_xaxes(type="log", title_text="λ", row=2, col=2)
    return fig, {"lambdas": grid, "directions": (a, b), "steps": st, "initial": i0, "rotation": rotation,
                 "slice": sliced, "true_loss": true_loss}


def explorer_html(data: ExplorerData, *, directions=None, points: int = 41) -> str:
    """The whole page as one HTML string: plotly.js inlined, no network needed."""
    fig, info = explorer_figure(data, directions=directions, points=points)
    notes = list(data.notes)
    if data.loss_plane is not None and not info["true_loss"]:
        a, b = data.loss_plane["directions"]
        notes.append(f"The true loss was evaluated on the (q{a + 1}, q{b + 1}) plane, not on the plane drawn here: "
                     "its contours are not shown.")
    if info["true_loss"] and data.gradient_coords is not None:
        notes.append("θ̂ is not stationary, so the quadratic model can put θ̃ below R(θ̂); where the true loss "
                     "never gets that low on this plane, no true contour through θ̃'s level is drawn.")
    body = fig.to_html(full_html=False, include_plotlyjs=True, include_mathjax=False, div_id="explorer",
                       config={"displaylogo": False, "responsive": True}, post_script=TWEEN_JS)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    conv = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in data.conventions.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ridgelens explorer — {html.escape(data.title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:12px 24px;color:#222}} h1{{font-size:20px;margin:4px 0}}
p,li{{font-size:13px;line-height:1.35}} .notes li{{color:#a33}} details{{margin-top:8px}}</style>
</head><body>
<h1>ridgelens: what L2 regularization does — {html.escape(data.title)}</h1>
<p>{_formula(data)} Move the λ slider: θ̃ slides along its path where a loss ellipse (solid) touches a
penalty circle (dashed); the bars and the tables follow. Hover for values.</p>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
{body}
<details><summary>Conventions</summary><ul>{conv}</ul></details>
<script type="application/json" id="ridgelens-meta">{_meta_json(data)}</script>
</body></html>
"""


def _formula(data: ExplorerData) -> str:
    if data.gradient_coords is None:
        return ("θ̃(λ) = Q diag(σⱼ/(σⱼ+λ)) Qᵀθ̂: rotate θ̂ into the curvature's eigenbasis, shrink coordinate j by "
                "σⱼ/(σⱼ+λ), rotate back.")
    return ("θ̃(λ) = Q diag(1/(σⱼ+λ)) (σ∘Qᵀθ̂ − Qᵀg): θ̂ is not stationary, so the quadratic model keeps its "
            "gradient g and its minimizer is θ̂ − H⁻¹g (◆), not θ̂ (★). Rotate into the curvature's eigenbasis, "
            "shrink that minimizer's coordinate j by σⱼ/(σⱼ+λ), rotate back.")


def _meta_json(data: ExplorerData) -> str:
    meta = {"title": data.title, "n_directions": int(data.eigenvalues.size), "digits": DIGITS}
    return json.dumps(meta).replace("</", "<\\/")


def write_explorer(data: ExplorerData, path, *, directions=None, points: int = 41) -> Path:
    """Build the page and write it to ``path`` atomically (nothing is written if building fails)."""
    text = explorer_html(data, directions=directions, points=points)
    return atomic_write_bytes(path, text.encode("utf-8"))
