"""The interactive λ explorer: one Plotly figure with a λ slider, in one offline HTML file."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_bytes
from ridgelens._shrinkage import shrinkage, snap_rounding
from ridgelens.errors import RidgelensError
from ridgelens.report._data import ExplorerData
from ridgelens.report._plane import check_directions, default_directions

#: Significant digits of every number the page prints.
DIGITS = 5
MAX_TABLE_ROWS = 40


def fmt(x: float) -> str:
    """How the page prints a number (``DIGITS`` significant digits; NaN as an em dash)."""
    return "—" if not np.isfinite(x) else f"{x:.{DIGITS}g}"


def lambda_grid(data: ExplorerData, points: int = 41) -> np.ndarray:
    """The slider's λ: a log grid over the spectrum's range, plus every analysed λ (and 0)."""
    sigma, _ = snap_rounding(data.eigenvalues)  # a results file may hold rounding-level ±1e-12: those are 0
    pos = sigma[sigma > 0]
    if pos.size == 0:
        raise RidgelensError("the page needs at least one positive eigenvalue")
    lo, hi = pos.min() / 30, pos.max() * 30
    floor = -float(sigma.min()) if sigma.min() < 0 else 0.0  # the model has a minimizer only above it
    lo = max(lo, 1.05 * floor) if floor > 0 else lo
    lam = data.lambdas[np.isfinite(data.lambdas) & (data.lambdas > floor)]
    grid = np.geomspace(lo, max(hi, 2 * lo), points)
    grid = np.union1d(grid, lam)
    if floor == 0:
        grid = np.union1d([0.0], grid)
    return grid


def explorer_steps(data: ExplorerData, grid, directions) -> dict:
    """Everything the slider shows at each λ of ``grid``: factors, scaled coordinates, df, θ̃_p.

    The rotated coordinates are (σⱼ(Qᵀθ̂)ⱼ − (Qᵀg̃)ⱼ)/(σⱼ + λ), the pure shrinkage σⱼ/(σⱼ+λ)·(Qᵀθ̂)ⱼ
    when there is no first-order term; 0/0 (σ = λ = 0) is 0, as in :func:`ridge_path`.
    """
    sigma, z = data.eigenvalues, data.coords
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

    sigma, z, r = data.eigenvalues, data.coords, data.eigenvalues.size
    if directions is None:
        directions = default_directions(sigma, z, data.lambdas)
    a, b = check_directions(directions, r)
    if sigma[a] <= 0 or sigma[b] <= 0:
        raise RidgelensError(f"the contour view needs two directions with σ > 0; σ{a + 1} = {sigma[a]:.3g}, "
                             f"σ{b + 1} = {sigma[b]:.3g}")
    grid = lambda_grid(data, points)
    st = explorer_steps(data, grid, (a, b))
    has_paths = data.predicted is not None and np.isfinite(data.predicted).any()
    has_q = "thetas_p" in st
    qa, qb = f"q{a + 1}", f"q{b + 1}"
    n_rows = min(r, MAX_TABLE_ROWS)
    table_share = max(0.5, min(2.5, (n_rows + 2) / 8))

    fig = make_subplots(
        rows=3, cols=2, row_heights=[0.45, 0.3, 0.25 * table_share], vertical_spacing=0.07, horizontal_spacing=0.09,
        specs=[[{"type": "xy"}, {"type": "xy"}], [{"type": "xy"}, {"type": "xy"}],
               [{"type": "table"}, {"type": "table"}] if has_q else [{"type": "table", "colspan": 2}, None]],
        subplot_titles=(f"Contour view: the ({qa}, {qb}) eigen-plane", "Shrinkage factor σⱼ/(σⱼ+λ) per direction",
                        "df(λ) = Σ σⱼ/(σⱼ+λ)",
                        "Paths: predicted θ̃ (lines), refit θ* (markers)" if has_paths else "|Qᵀθ̂| and |Qᵀθ̃|",
                        "Per direction", *(["Per parameter"] if has_q else [])))

    # Contour view (eigen-plane coordinates c = Qᵀθ: ellipses are axis-aligned, as in DLB fig. 7.1).
    # They are centred on the quadratic model's minimizer: θ̂ itself, or Qᵀθ̂ − Qᵀg̃/σ with a first-order term.
    sa, sb = sigma[a], sigma[b]
    gc = data.gradient_coords
    ha, hb = z[a], z[b]  # θ̂
    za, zb = (ha, hb) if gc is None else (ha - gc[a] / sa, hb - gc[b] / sb)
    dense = np.concatenate([[0.0], np.geomspace(grid[grid > 0].min() / 100, grid.max() * 100, 300)])
    dense = dense[dense >= grid.min()]
    fa, fb = sa / (sa + dense), sb / (sb + dense)
    fig.add_trace(go.Scatter(x=fa * za, y=fb * zb, mode="lines", line={"color": "#555", "width": 1.5},
                             name="θ̃(λ), λ: 0 → ∞", customdata=dense,
                             hovertemplate="λ = %{customdata:.4g}<br>" + f"{qa}ᵀθ̃ = " + "%{x:.5g}<br>"
                             + f"{qb}ᵀθ̃ = " + "%{y:.5g}<extra>path</extra>"), row=1, col=1)  # 0
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
    fig.add_trace(go.Scatter(x=ell[0], y=ell[1], mode="lines", line={"color": "#2ca02c"},
                             name="loss ellipse through θ̃", hoverinfo="skip"), row=1, col=1)  # 4
    fig.add_trace(go.Scatter(x=[st["plane"][i0, 0]], y=[st["plane"][i0, 1]], mode="markers",
                             marker={"size": 12, "color": "#ff7f0e", "line": {"color": "black", "width": 1}},
                             name="θ̃(λ)", hovertemplate=f"θ̃: {qa}ᵀθ̃ = " + "%{x:.5g}, " + f"{qb}ᵀθ̃ = "
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
    lam0_x = grid[i0] if grid[i0] > 0 else grid[pos].min()
    fig.add_trace(go.Scatter(x=[lam0_x], y=[st["df"][i0]], mode="markers", marker={"size": 10, "color": "#ff7f0e"},
                             name="df at λ", showlegend=False, hovertemplate="df = %{y:.5g}<extra></extra>"), row=2, col=1)  # 8
    dynamic = [3, 4, 5, 6, 8]
    # Paths at the analysed λ (static), or the rotated coordinates before/after.
    if has_paths:
        lam = data.lambdas
        ok = lam > 0
        pen_idx = [data.param_names.index(nm) for nm in data.penalized_names if nm in data.param_names]
        top = sorted(pen_idx, key=lambda j: -abs(np.nan_to_num(data.predicted[0, j])))[:8]
        for k, j in enumerate(top):
            color = f"hsl({(k * 47) % 360},60%,45%)"
            fig.add_trace(go.Scatter(x=lam[ok], y=data.predicted[ok, j], mode="lines", line={"color": color},
                                     name=f"θ̃ {data.param_names[j]}", legendgroup="paths", showlegend=False,
                                     hovertemplate=f"{data.param_names[j]}<br>" + "λ = %{x:.4g}<br>θ̃ = %{y:.5g}"
                                     "<extra>predicted</extra>"), row=2, col=2)
            if data.refit is not None:
                fig.add_trace(go.Scatter(x=lam[ok], y=data.refit[ok, j], mode="markers",
                                         marker={"symbol": "circle-open", "color": color, "size": 8},
                                         name=f"θ* {data.param_names[j]}", showlegend=False,
                                         hovertemplate=f"{data.param_names[j]}<br>" + "λ = %{x:.4g}<br>θ* = "
                                         "%{y:.5g}<extra>refit</extra>"), row=2, col=2)
    else:
        fig.add_trace(go.Bar(x=labels, y=np.abs(z), name="|Qᵀθ̂|", showlegend=False, marker={"color": "#c7c7c7"},
                             hovertemplate="%{x}: |Qᵀθ̂| = %{y:.5g}<extra></extra>"), row=2, col=2)
    # Tables.
    rows = np.arange(r) if r <= MAX_TABLE_ROWS else np.sort(np.argsort(-np.abs(z))[:MAX_TABLE_ROWS])

    def dir_cells(i):
        return [[labels[j] for j in rows], [fmt(sigma[j]) for j in rows], [fmt(z[j]) for j in rows],
                [fmt(st["factors"][i, j]) for j in rows], [fmt(st["scaled"][i, j]) for j in rows]]

    fig.add_trace(go.Table(header={"values": ["direction", "σⱼ", "(Qᵀθ̂)ⱼ", "σⱼ/(σⱼ+λ)", "(Qᵀθ̃)ⱼ"],
                                   "fill": {"color": "#e8e8f0"}},
                           cells={"values": dir_cells(i0)}, name="directions"), row=3, col=1)
    dynamic.append(len(fig.data) - 1)
    thp = None
    if has_q:
        thp = np.asarray(data.eigenvectors @ z)  # θ̂_p

        def par_cells(i):
            return [data.penalized_names, [fmt(v) for v in thp], [fmt(v) for v in st["thetas_p"][i]]]

        fig.add_trace(go.Table(header={"values": ["parameter", "θ̂", "θ̃(λ)"], "fill": {"color": "#e8e8f0"}},
                               cells={"values": par_cells(i0)}, name="parameters"), row=3, col=2)
        dynamic.append(len(fig.data) - 1)

    def readout(i):
        lam_i = grid[i]
        s = f"λ = {fmt(lam_i)}   ·   df(λ) = {fmt(st['df'][i])}   ·   ({qa}ᵀθ̃, {qb}ᵀθ̃) = " \
            f"({fmt(st['plane'][i, 0])}, {fmt(st['plane'][i, 1])})"
        if has_q and r <= 3:
            s += "   ·   θ̃ = (" + ", ".join(fmt(v) for v in st["thetas_p"][i]) + ")"
        return s

    # The slider: each step restyles the dynamic traces and rewrites the readout (no custom JS).
    steps = []
    for i in range(grid.size):
        circ, ell = shapes(i)
        xs = [circ[0], ell[0], [st["plane"][i, 0]], labels, [grid[i] if grid[i] > 0 else grid[pos].min()]]
        ys = [circ[1], ell[1], [st["plane"][i, 1]], st["factors"][i], [st["df"][i]]]
        cells = [None] * (len(dynamic) - (2 if has_q else 1)) + [dir_cells(i)]
        if has_q:
            cells.append(par_cells(i))
        xs += [None] * (len(dynamic) - len(xs))
        ys += [None] * (len(dynamic) - len(ys))
        label = fmt(grid[i]) if i % 6 == 0 or i == grid.size - 1 else ""  # tick labels; the title has λ
        steps.append({"method": "update", "label": label, "value": repr(float(grid[i])),
                      "args": [{"x": xs, "y": ys, "cells.values": cells}, {"title.text": readout(i)}, dynamic]})
    fig.update_layout(
        title={"text": readout(i0), "x": 0.01, "font": {"size": 15}},
        sliders=[{"active": i0, "steps": steps, "currentvalue": {"visible": False}, "pad": {"t": 0, "b": 10},
                  "x": 0.0, "len": 1.0, "y": 1.04, "yanchor": "bottom", "font": {"size": 10},
                  "ticklen": 4, "minorticklen": 2}],
        height=int(900 + 180 * table_share), margin={"t": 170, "l": 60, "r": 30, "b": 30}, bargap=0.2,
        legend={"x": 0.005, "y": 1.0 - 0.01, "xanchor": "left", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.75)",
                "font": {"size": 10}},
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
    spans = np.abs([za, zb, ha, hb])
    if max(spans[0], spans[2]) <= 10 * max(min(spans[1], spans[3]), 1e-300):  # to scale: circles look like circles
        fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    pad = 0.15 * max(spans.max(), 1e-12)
    fig.update_xaxes(title_text=f"{qa}ᵀθ  (σ{a + 1} = {fmt(sa)})", row=1, col=1,
                     range=[min(0, za, ha) - pad, max(0, za, ha) + pad])
    fig.update_yaxes(title_text=f"{qb}ᵀθ  (σ{b + 1} = {fmt(sb)})", row=1, col=1,
                     range=[min(0, zb, hb) - pad, max(0, zb, hb) + pad])
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_xaxes(type="log", title_text="λ", row=2, col=1)
    if has_paths:
        fig.update_xaxes(type="log", title_text="λ", row=2, col=2)
    return fig, {"lambdas": grid, "directions": (a, b), "steps": st, "initial": i0}


def explorer_html(data: ExplorerData, *, directions=None, points: int = 41) -> str:
    """The whole page as one HTML string: plotly.js inlined, no network needed."""
    fig, _ = explorer_figure(data, directions=directions, points=points)
    body = fig.to_html(full_html=False, include_plotlyjs=True, include_mathjax=False, div_id="explorer",
                       config={"displaylogo": False, "responsive": True})
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.notes)
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
