"""The page's panels: the rotation (or 2-D slice), the true loss, the paths, the tables.

Each builder adds its traces to the Plotly figure and returns its moving traces for the slider
(trace index -> a function of the slider's step giving ``(x, y)``); :mod:`ridgelens.report._page`
lays out the figure and wires the slider.
"""

from __future__ import annotations

import numpy as np

from ridgelens.report._loss import level_lines

#: Significant digits of every number the page prints.
DIGITS = 5
MAX_TABLE_ROWS = 40


def fmt(x: float) -> str:
    """How the page prints a number (``DIGITS`` significant digits; NaN as an em dash)."""
    return "—" if not np.isfinite(x) else f"{x:.{DIGITS}g}"


def tables_panel(fig, go, data, st, sigma, labels, i0, row) -> dict:
    """The two tables: per direction (σⱼ, (Qᵀθ̂)ⱼ, factor, (Qᵀθ̃)ⱼ) and, when Q is known, per parameter.

    More than :data:`MAX_TABLE_ROWS` directions: the rows of the largest |(Qᵀθ̂)ⱼ|. Returns the
    tables' trace indices -> their cells at a slider step.
    """
    z, r = data.coords, data.eigenvalues.size
    rows = np.arange(r) if r <= MAX_TABLE_ROWS else np.sort(np.argsort(-np.abs(z))[:MAX_TABLE_ROWS])

    def dir_cells(i):
        return [[labels[j] for j in rows], [fmt(sigma[j]) for j in rows], [fmt(z[j]) for j in rows],
                [fmt(st["factors"][i, j]) for j in rows], [fmt(st["scaled"][i, j]) for j in rows]]

    fig.add_trace(go.Table(header={"values": ["direction", "σⱼ", "(Qᵀθ̂)ⱼ", "σⱼ/(σⱼ+λ)", "(Qᵀθ̃)ⱼ"],
                                   "fill": {"color": "#e8e8f0"}},
                           cells={"values": dir_cells(i0)}, name="directions"), row=row, col=1)
    tables = {len(fig.data) - 1: dir_cells}
    if "thetas_p" in st:
        thp = np.asarray(data.eigenvectors @ z)  # θ̂_p

        def par_cells(i):
            return [data.penalized_names, [fmt(v) for v in thp], [fmt(v) for v in st["thetas_p"][i]]]

        fig.add_trace(go.Table(header={"values": ["parameter", "θ̂", "θ̃(λ)"], "fill": {"color": "#e8e8f0"}},
                               cells={"values": par_cells(i0)}, name="parameters"), row=row, col=2)
        tables[len(fig.data) - 1] = par_cells
    return tables


def _slice_axes(data, directions):
    """How the rotation panel draws the plane of ``directions``: ``D`` (2×2) maps (c_a, c_b) to its axes.

    With 2 parameters the plane is all of θ and ``D = Q`` (rows θ₁, θ₂): the panel shows θ itself.
    With more it is a 2-D slice, drawn in an orthonormal basis of the plane: the direction of the
    parameter that lies most in it (its projection), and the perpendicular turned towards the next one.
    Returns ``(D, x title, y title)``.
    """
    Qab = np.asarray(data.eigenvectors)[:, list(directions)]
    names = [f"√d·{n}" if data.scaled_view else n for n in data.penalized_names]  # φ = D^{1/2}θ when scaled
    if Qab.shape[0] == 2:
        return Qab, names[0], names[1]
    load = np.linalg.norm(Qab, axis=1)
    i, j = np.argsort(-load, kind="stable")[:2]
    w = Qab[i] / load[i]
    perp = np.array([-w[1], w[0]])
    perp = perp if perp @ Qab[j] >= 0 else -perp
    return np.vstack([w, perp]), f"along {names[i]} (projected)", f"⊥ in the plane (towards {names[j]})"


def rotation_panel(fig, go, data, st, i0, directions, row, col) -> dict:
    """θ in the (q_a, q_b) plane: θ̂'s part split along q_a, q_b; each part scaled; summed back.

    Read as the slides' three steps: rotate (the coordinates (Qᵀθ̂)ⱼ are θ̂'s parts along the
    eigen-axes, dotted), scale (each part by σⱼ/(σⱼ+λ): the coloured segments shrink as λ
    moves), rotate back (θ̃ is their sum). With 2 parameters the plane is θ's own coordinates;
    with more it is a 2-D slice (:func:`_slice_axes`), and θ̂, θ̃ are their projections on it.
    Returns the moving traces for the slider.
    """
    D, xt, yt = _slice_axes(data, directions)
    a, b = directions
    z = np.asarray(data.coords)[[a, b]]
    th = D @ z
    ext = 1.2 * float(np.linalg.norm(th))
    for j, k in ((0, a), (1, b)):
        back = 0.3 if row == 2 else 1.0  # a slice's θ̂ may lie on either side of the origin
        fig.add_trace(go.Scatter(x=[-back * ext * D[0, j], ext * D[0, j]], y=[-back * ext * D[1, j], ext * D[1, j]],
                                 mode="lines", line={"color": "#999", "dash": "dot", "width": 1}, showlegend=False,
                                 hoverinfo="skip"), row=row, col=col)
        tip = ext * D[:, j] * (1.0 if row == 2 or z[j] >= 0 else -1.0)  # a slice: on the side θ̂'s part lies
        fig.add_annotation(x=tip[0], y=tip[1], text=f"q{k + 1}", showarrow=False, font={"size": 11},
                           xanchor="left", row=row, col=col)
    p1 = z[0] * D[:, 0]
    fig.add_trace(go.Scatter(x=[0, p1[0], th[0]], y=[0, p1[1], th[1]], mode="lines",
                             line={"color": "#bbb", "dash": "dash"}, name="θ̂ rotated: its parts (Qᵀθ̂)ⱼ·qⱼ",
                             showlegend=row == 2, hoverinfo="skip"), row=row, col=col)
    fig.add_trace(go.Scatter(x=[th[0]], y=[th[1]], mode="markers", showlegend=False,
                             marker={"symbol": "star", "size": 14, "color": "#1f77b4"},
                             hovertemplate="θ̂ = (%{x:.5g}, %{y:.5g})<extra></extra>"), row=row, col=col)

    def parts(i):
        s = st["scaled"][i, [a, b]]
        a1 = s[0] * D[:, 0]
        return a1, a1 + s[1] * D[:, 1]

    a1, tt = parts(i0)
    base = len(fig.data)
    fig.add_trace(go.Scatter(x=[0, a1[0]], y=[0, a1[1]], mode="lines", line={"color": "#9467bd", "width": 4},
                             name="scaled: σⱼ/(σⱼ+λ)·(Qᵀθ̂)ⱼ·qⱼ", showlegend=row == 2, hoverinfo="skip"),
                  row=row, col=col)
    fig.add_trace(go.Scatter(x=[a1[0], tt[0]], y=[a1[1], tt[1]], mode="lines", line={"color": "#9467bd", "width": 4},
                             showlegend=False, hoverinfo="skip"), row=row, col=col)
    fig.add_trace(go.Scatter(x=[tt[0]], y=[tt[1]], mode="markers", showlegend=False,
                             marker={"size": 12, "color": "#ff7f0e", "line": {"color": "black", "width": 1}},
                             hovertemplate="θ̃ = (%{x:.5g}, %{y:.5g})<extra>rotated back</extra>"), row=row, col=col)
    lim = 1.15 * float(np.linalg.norm(th))
    if row == 2:  # θ's own coordinates (2 parameters): the picture as the slides draw it
        xr = yr = [-0.35 * lim, lim]
    else:  # a slice: wherever θ̂'s part and its two pieces lie
        pts = np.array([[0.0, 0.0], th, p1, *(ext * D[:, j] * (1.0 if z[j] >= 0 else -1.0) for j in (0, 1))])
        xr, yr = ([float(pts[:, k].min()) - 0.3 * lim, float(pts[:, k].max()) + 0.3 * lim] for k in (0, 1))
    anchor = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")
    fig.update_xaxes(title_text=xt, range=xr, row=row, col=col)
    fig.update_yaxes(title_text=yt, range=yr, scaleanchor=anchor, scaleratio=1, row=row, col=col)
    return {base: lambda i: ([0, parts(i)[0][0]], [0, parts(i)[0][1]]),
            base + 1: lambda i: ([parts(i)[0][0], parts(i)[1][0]], [parts(i)[0][1], parts(i)[1][1]]),
            base + 2: lambda i: ([parts(i)[1][0]], [parts(i)[1][1]])}


def true_loss_panel(fig, go, lp, st, i0, sig, centre, hat, lambdas, grid) -> dict:
    """The true loss against the quadratic model: faint contours of the grid, and the one through θ̃'s level.

    The quadratic model's ellipse through θ̃ is at the model's value there, relative to θ̂:
    ``m(θ̃) − m(θ̂)`` with ``m(c) = ½ Σ σⱼ (cⱼ − centreⱼ)²``; the true loss ``R(θ) − R(θ̂)`` at that
    same level is drawn solid, so their gap is the model's error (none for a quadratic loss).
    Returns the moving trace for the slider.
    """
    (sa, sb), (za, zb) = sig, centre
    model = lambda c: 0.5 * (sa * (c[0] - za) ** 2 + sb * (c[1] - zb) ** 2)  # noqa: E731
    lev = np.array([model(c) for c in st["plane"]]) - model(hat)
    at = np.isin(grid, lambdas[lambdas > 0])
    top = float(np.nanmax(np.abs(lev[at]))) if at.any() else float(np.nanmax(np.abs(lev)))
    size = top / 6 if np.isfinite(top) and top > 0 else None
    fig.add_trace(go.Contour(x=lp["x"], y=lp["y"], z=lp["z"], showscale=False, opacity=0.6, ncontours=12,
                             **({"autocontour": False, "contours": {"start": size, "end": 12 * size, "size": size,
                                                                    "coloring": "lines"}} if size else
                                {"contours": {"coloring": "lines"}}),
                             colorscale=[[0, "#8fb08f"], [1, "#8fb08f"]], line={"width": 0.8},
                             name="true loss R(θ) − R(θ̂), on a grid", showlegend=True,
                             hovertemplate="true loss R(θ) − R(θ̂) = %{z:.5g}<extra>grid</extra>"), row=1, col=1)
    x0, y0 = level_lines(lp, lev[i0])
    fig.add_trace(go.Scatter(x=x0, y=y0, mode="lines", line={"color": "#1b5e20", "width": 2.5},
                             name="true loss through θ̃'s level", hoverinfo="skip"), row=1, col=1)
    return {len(fig.data) - 1: lambda i: level_lines(lp, lev[i])}


def paths_panel(fig, go, data, grid, st, lam_x, i0, max_lines: int = 8) -> dict:
    """Coefficient paths with a marker of the current λ; smooth (the slider's grid) when Q is known.

    Draws the ``max_lines`` penalized parameters that move most, the refits θ* at the analysed
    λ as open circles, and a vertical line at the slider's λ. Returns the moving trace.
    """
    lam = data.lambdas
    ok = lam > 0
    pos = grid > 0
    pen_idx = [data.param_names.index(nm) for nm in data.penalized_names if nm in data.param_names]
    if "thetas_p" in st:  # θ̃_p on the slider's grid, from the eigen form, a decade around the analysed λ
        near = pos & (grid >= lam[ok].min() / 10) & (grid <= lam[ok].max() * 10) if ok.any() else pos
        xs, curves = grid[near], st["thetas_p"][near]
    else:
        xs, curves = lam[ok], data.predicted[ok][:, pen_idx]
    th = data.eigenvectors @ data.coords if data.eigenvectors is not None else data.predicted[0, pen_idx]
    moved = np.nanmax(np.abs(np.vstack([curves, th[None, :]]) - th), axis=0)
    top = np.argsort(-np.nan_to_num(moved, nan=-1.0), kind="stable")[:max_lines]
    values = [curves[:, top]]
    for k, c in enumerate(top):
        j = pen_idx[c]
        color = f"hsl({(k * 47) % 360},60%,45%)"
        fig.add_trace(go.Scatter(x=xs, y=curves[:, c], mode="lines", line={"color": color},
                                 name=f"θ̃ {data.param_names[j]}", showlegend=False,
                                 hovertemplate=f"{data.param_names[j]}<br>" + "λ = %{x:.4g}<br>θ̃ = %{y:.5g}"
                                 "<extra>predicted</extra>"), row=2, col=2)
        if data.refit is not None:
            values.append(data.refit[ok][:, [j]])
            fig.add_trace(go.Scatter(x=lam[ok], y=data.refit[ok, j], mode="markers",
                                     marker={"symbol": "circle-open", "color": color, "size": 8},
                                     name=f"θ* {data.param_names[j]}", showlegend=False,
                                     hovertemplate=f"{data.param_names[j]}<br>" + "λ = %{x:.4g}<br>θ* = "
                                     "%{y:.5g}<extra>refit</extra>"), row=2, col=2)
    allv = np.concatenate([np.ravel(v) for v in values])
    allv = allv[np.isfinite(allv)]
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (-1.0, 1.0)
    fig.add_trace(go.Scatter(x=[lam_x(i0)] * 2, y=[lo, hi], mode="lines", line={"color": "#ff7f0e", "width": 2},
                             name="current λ", showlegend=False, hoverinfo="skip"), row=2, col=2)
    return {len(fig.data) - 1: lambda i: ([lam_x(i)] * 2, [lo, hi])}
