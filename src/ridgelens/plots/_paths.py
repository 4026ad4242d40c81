"""Coefficient paths, prediction error and shrinkage factors."""

from __future__ import annotations

import numpy as np

from ridgelens._shrinkage import shrinkage
from ridgelens.plots._common import get_ax, scaled_label
from ridgelens.report._plane import display_eigenvalues
from ridgelens.ridge._path import SCALED_VIEW

#: A relative error at or below this is rounding, not a trend (float64, a few hundred ε).
ROUNDING = 1e-13


def fine_path(analysis, grid) -> np.ndarray | None:
    """θ̃_p(λ) for the penalized parameters on any λ ``grid``, from the eigen form; shape (g, n_p).

    ``θ̃_p = Q diag(1/(σ+λ)) (σ∘Qᵀθ̂_p − Qᵀg̃)``, the first-order term included when the
    analysis kept it. None when the eigenvectors do not span the penalized block (a
    matrix-free, top-k analysis): then only the analysed λ have a prediction. NaN rows
    where some σ + λ ≤ 0.
    """
    path = analysis.path
    Q = path.eigenvectors
    n_pen = int(np.count_nonzero(path.penalized))
    gc = analysis.gradient_coords
    if Q is None or np.shape(Q) != (n_pen, n_pen) or (path.gradient_used and gc is None):
        return None
    sigma = display_eigenvalues(path.eigenvalues, path.rank_tol)[0]
    num = sigma * path.coords - (0.0 if gc is None else gc)
    scaled, ok = shrinkage(sigma, np.asarray(grid, dtype=np.float64), numerator=num[None, :])
    out = scaled @ np.asarray(Q).T
    out[~ok.all(axis=1)] = np.nan
    return out


def plot_coefficient_paths(analysis, *, ax=None, max_params: int = 8, points: int = 300):
    """Coefficient paths against λ: predicted θ̃ as smooth lines, refit θ* as open circles.

    The prediction is drawn on a fine log grid of ``points`` λ from the eigen form (free once
    H is decomposed; dots mark the analysed λ), or, for a matrix-free analysis, joined
    between the analysed λ (said in the title). The ``max_params`` penalized parameters that
    move most over the drawn range are shown; λ with no valid prediction are marked.

    Returns ``{"lines", "markers", "refits", "indices", "grid", "fine", "invalid"}``.
    """
    ax = get_ax(ax)
    lam = analysis.lambdas
    path = analysis.path
    pen = np.flatnonzero(path.penalized)
    pos = lam > 0
    lo, hi = (lam[pos].min() / 10, lam[pos].max() * 10) if pos.any() else (1e-6, 1.0)
    sigma = display_eigenvalues(path.eigenvalues, path.rank_tol)[0]
    floor = -float(sigma.min()) if sigma.min() < 0 else 0.0
    grid = np.geomspace(max(lo, 1.001 * floor) if floor else lo, max(hi, 2 * floor), points)
    fp = fine_path(analysis, grid)
    fine = fp is not None
    if fine:
        curves, xs = fp, grid
    else:
        keep = pos & path.valid
        curves, xs = analysis.predicted[keep][:, pen], lam[keep]
    theta_p = analysis.theta_hat[pen]
    with np.errstate(invalid="ignore"):
        moved = np.nanmax(np.abs(np.vstack([curves, theta_p[None, :]]) - theta_p), axis=0) if xs.size else theta_p * 0
    order = np.argsort(-np.nan_to_num(moved, nan=-1.0), kind="stable")[:max_params]
    idx = pen[order]
    lines, markers, refits = [], [], []
    for k, (j, c) in enumerate(zip(idx, order, strict=True)):
        color = f"C{k % 10}"
        (ln,) = ax.plot(xs, curves[:, c], color=color, lw=1.4, label=analysis.param_names[j])
        lines.append(ln)
        ok = pos & path.valid
        markers.append(ax.scatter(lam[ok], analysis.predicted[ok, j], color=color, s=12, zorder=4))
        if analysis.refit is not None:
            refits.append(ax.scatter(lam[pos], analysis.refit[pos, j], color=color, s=34, marker="o",
                                     facecolor="none", linewidths=1.1, zorder=5))
    invalid = lam[pos & ~path.valid]
    for v in invalid:
        ax.axvline(v, color="0.6", ls=":", lw=1.0)
    if invalid.size:
        ax.plot([], [], color="0.6", ls=":", label="no valid prediction")
    if floor:
        ax.axvspan(lo, floor, color="0.92", zorder=0, label=f"λ ≤ {floor:.3g}: no minimizer (σ < 0)")
    ax.set_xscale("log")
    ax.set_xlim(lo, max(hi, 2 * floor))
    ax.axhline(0, color="0.7", lw=0.6)
    ax.set_xlabel("λ  (penalty (λ/2)‖θ‖², mean loss)")
    ax.set_ylabel("coefficient")
    left = f", {pen.size - idx.size} more not shown" if pen.size > idx.size else ""
    ax.set_title(f"Paths of the {idx.size} coefficients that move most{left}\n"
                 + ("predicted θ̃(λ) from the eigen form (lines; dots at the analysed λ)" if fine
                    else "predicted θ̃(λ) at the analysed λ (lines join them)")
                 # on a line of its own: in one, the line ran off the figure (the legend takes the right side)
                 + (",\nrefit θ*(λ) (circles)" if analysis.refit is not None else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return {"lines": lines, "markers": markers, "refits": refits, "indices": idx, "grid": xs, "fine": fine,
            "invalid": invalid}


def plot_rel_error(analysis, *, ax=None, rounding: float = ROUNDING):
    """‖θ̃ − θ*‖/‖θ*‖ against λ (log–log), honest about rounding and about missing values.

    Errors at or below ``rounding`` are not a trend: when every error is, the panel says
    "exact to rounding" and draws them as points in a band, without a line. λ whose
    prediction is invalid (σ + λ ≤ 0) or whose refit failed are marked along the bottom (×),
    refits that did not converge are drawn as open markers, and λ never refitted (a default
    grid refits only the chosen λ) are counted in the legend, not marked.

    Returns ``{"line", "exact", "missing", "not_converged"}`` (``exact``: every shown error
    is rounding; ``missing``: the λ marked ×).
    """
    ax = get_ax(ax)
    lam, err = analysis.lambdas, analysis.rel_error
    if err is None:
        raise ValueError("the analysis has no refit; run analyze(..., refit=True)")
    pos = lam > 0
    ok = pos & np.isfinite(err)
    refit = getattr(analysis, "refit", None)  # rows all NaN: never refitted (a default grid refits only its choice)
    skipped = (np.isnan(np.asarray(refit, dtype=np.float64)).all(axis=1) if refit is not None
               else np.zeros(lam.size, dtype=bool))
    missing = lam[pos & ~np.isfinite(err) & ~skipped]
    conv = getattr(analysis, "refit_converged", None)
    conv = np.ones(lam.size, dtype=bool) if conv is None else np.asarray(conv, dtype=bool)
    exact = bool(ok.any()) and bool(np.all(err[ok] <= rounding))
    floor = np.finfo(float).eps
    line = None
    if pos.any():  # log axes with no positive data cannot be drawn
        ax.set_xscale("log")
        ax.set_yscale("log")
    if exact:
        ax.axhspan(floor / 10, rounding, color="C2", alpha=0.12, label=f"rounding level (≤ {rounding:.0e})")
        ax.scatter(lam[ok], np.maximum(err[ok], floor), color="C2", s=28, zorder=5, label="‖θ̃ − θ*‖/‖θ*‖")
        ax.text(0.5, 0.75, "exact to rounding at every λ\n(predicted = refit: the loss is quadratic)",
                ha="center", va="center", transform=ax.transAxes, fontsize=11, color="C2")
        ax.set_ylim(floor / 10, 1.0)
    elif ok.any():
        (line,) = ax.plot(lam[ok], np.maximum(err[ok], floor), color="C3", lw=1.2, zorder=4)
        good, bad = ok & conv, ok & ~conv
        if good.any():
            ax.scatter(lam[good], np.maximum(err[good], floor), color="C3", s=30, zorder=5, label="‖θ̃ − θ*‖/‖θ*‖")
        if bad.any():
            ax.scatter(lam[bad], np.maximum(err[bad], floor), facecolor="none", edgecolor="C3", s=50, zorder=5,
                       label="refit did not converge")
        if np.any(err[ok] <= rounding):
            ax.axhspan(floor / 10, rounding, color="0.5", alpha=0.1, label=f"rounding level (≤ {rounding:.0e})")
    if missing.size:
        ax.scatter(missing, np.full(missing.size, 0.03), marker="x", color="k", s=40, zorder=6, clip_on=False,
                   transform=ax.get_xaxis_transform(), label="no valid prediction or refit")
    if skipped.any():
        ax.plot([], [], " ", label=f"not refitted: {int(skipped.sum())} of {lam.size} λ")
    if not pos.any():
        ax.text(0.5, 0.5, "no λ > 0 to draw on a log axis", ha="center", va="center", transform=ax.transAxes)
    elif not ok.any():
        ax.text(0.5, 0.5, "no λ > 0 has both a valid prediction and a refit", ha="center", va="center",
                transform=ax.transAxes)
    if pos.any():
        ax.set_xlim(lam[pos].min() / 2, lam[pos].max() * 2)
    ax.set_xlabel("λ")
    ax.set_ylabel("‖θ̃ − θ*‖ / ‖θ*‖")
    ax.set_title("How far the quadratic model's prediction is from the refit")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    return {"line": line, "exact": exact, "missing": missing, "not_converged": lam[ok & ~conv]}


def plot_shrinkage(path, index: int = 0, *, ax=None, density=None):
    """Shrinkage factors σⱼ/(σⱼ+λ) against σⱼ (log axis) at ``path.lambdas[index]``, with |Qᵀθ̂|ⱼ.

    The curve σ/(σ+λ) is drawn over the whole spectrum, with the vertical line σ = λ
    (factor ½): to its left directions shrink, to its right they survive. When the path
    holds only some directions (a matrix-free, top-k analysis) the ``density``
    (:class:`~ridgelens.spectra.SpectralDensity`, SLQ) shows where the rest of the spectrum
    lies — the flat end, which is the point — and the panel states the share of θ̂ outside
    the computed directions (``path.outside_share``) and the estimated share of directions
    with σ < λ. Rounding-level σ are counted as 0 and said so.

    Returns ``{"factors", "coords", "curve", "density", "outside_share", "shrunk_share"}``.
    """
    ax = get_ax(ax)
    lam = float(path.lambdas[index])
    sigma, zeroed, tol = display_eigenvalues(path.eigenvalues, path.rank_tol)
    keep = sigma > 0
    n_pen = int(np.count_nonzero(path.penalized))
    partial = sigma.size < n_pen or path.outside_share > 0
    factors, _ = shrinkage(sigma, [lam])
    lo_s = sigma[keep].min() if keep.any() else max(lam, 1e-12)
    hi_s = sigma[keep].max() if keep.any() else max(lam, 1e-12)
    nodes = None
    if density is not None:
        nodes = display_eigenvalues(density.nodes, tol)[0]  # rounding-level Ritz values are σ = 0
        w = np.asarray(density.weights, dtype=np.float64)
        w = w / w.sum()
        if np.any(nodes > 0):
            lo_s = min(lo_s, nodes[nodes > 0].min())
    at = lam if lam > 0 else lo_s  # λ = 0 has no place on the log axis: every factor is 1 (or 0 where σ = 0)
    lo_x, hi_x = min(lo_s, at) / 3, max(hi_s, at) * 3
    xs = np.geomspace(lo_x, hi_x, 300)
    (curve,) = ax.plot(xs, xs / (xs + lam), color="0.55", lw=1.0, label="σ/(σ+λ) for any σ")
    (f,) = ax.plot(sigma[keep], factors[0, keep], ls="none", marker="o", ms=4, color="C0",
                   label=f"{'computed directions' if partial else 'directions'} with σ > 0 ({int(keep.sum())})")
    vline = ax.axvline(lam, color="C3", ls="--", lw=0.9, label=f"σ = λ = {lam:g}: factor ½") if lam > 0 else None
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(-0.02, 1.1)
    ax.set_xlabel("eigenvalue σⱼ" + (" of S (penalized block)" if path.curvature == "schur-complement" else "")
                  + scaled_label(path, "", " of D^{-1/2}HD^{-1/2}"))
    ax.set_ylabel("shrinkage factor σⱼ/(σⱼ+λ)")
    ax2 = ax.twinx()
    coord = scaled_label(path, "|Qᵀθ̂|ⱼ", "|Qᵀφ̂|ⱼ, φ = D^{1/2}θ")
    (c,) = ax2.plot(sigma[keep], np.abs(path.coords[keep]), ls="none", marker="x", color="C1", label=coord)
    ax2.set_ylabel(coord)
    ax2.set_ylim(0, max(float(np.abs(path.coords[keep]).max(initial=0.0)), 1e-300) * 1.15)
    dens_art, shrunk = None, None
    if nodes is not None:
        shrunk = float(w[nodes < lam].sum())
        keep_n = nodes > 0
        u, w_u = np.log10(nodes[keep_n]), w[keep_n]
        ug = np.log10(xs)
        width = (ug[-1] - ug[0]) / 60
        d = (w_u[None, :] * np.exp(-0.5 * ((ug[:, None] - u[None, :]) / width) ** 2)).sum(axis=1)
        dens_art = ax.fill_between(xs, 0, 0.9 * d / max(float(d.max()), 1e-300), color="C2", alpha=0.18,
                                   label="where the spectrum lies (SLQ density)")
    notes = [SCALED_VIEW] if path.scaled_view else []
    if partial:
        notes.append(f"computed: the top {sigma.size} of {n_pen} directions")
        notes.append(f"θ̂ outside them: {100 * path.outside_share:.1f}% of ‖θ̂_p‖")
    if shrunk is not None:
        notes.append(f"σ < λ (shrunk by over half): ≈ {100 * shrunk:.0f}% of directions (SLQ)")
        flat = float(w[nodes <= 0].sum())
        if flat >= 0.005:
            notes.append(f"σ ≤ 0 (rounding level or below): ≈ {100 * flat:.0f}% of directions, factor 0")
    if zeroed:
        notes.append(f"{zeroed} rounding-level σ (|σ| ≤ {tol:.1g}) counted as 0")
    if np.any(sigma <= 0):
        notes.append(f"{int(np.sum(sigma <= 0))} directions with σ ≤ 0 (not on the log axis)")
    if notes:
        ax.text(0.02, 0.97, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=7,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
    handles = [h for h in (curve, f, vline, c, dens_art) if h is not None]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(0.0, 0.45))
    ax.set_title(f"Shrinkage at λ = {lam:g}: directions with σ ≪ λ shrink, σ ≫ λ survive", fontsize=10)
    return {"factors": f, "coords": c, "curve": curve, "density": dens_art,
            "outside_share": float(path.outside_share), "shrunk_share": shrunk}
