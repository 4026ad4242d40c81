"""The contour-line picture for any model: the plane through θ̂ spanned by two eigenvectors of H."""

from __future__ import annotations

import warnings

import numpy as np

from ridgelens.errors import NegativeCurvatureWarning
from ridgelens.plots._common import get_ax
from ridgelens.report._plane import check_directions, default_directions
from ridgelens.ridge import ridge_path


def plot_model_contours(objective, analysis, *, directions=None, indices=None, ax=None,
                        resolution: int = 61, margin: float = 0.3):
    """True-loss contours against the quadratic model's ellipses, in a plane through θ̂.

    The plane is ``θ = θ̂ + u·q_a + v·q_b`` for two eigenvectors ``q_a``, ``q_b`` of H at θ̂;
    the axes are the coordinates ``u``, ``v``. In it the quadratic model is
    ``½(σ_a u² + σ_b v²)`` (axis-aligned ellipses) and the penalty ``(λ/2)‖θ_p‖²`` restricted
    to the plane has circular level sets (ellipses when some parameters are unpenalized)
    around the projection of 0. For each λ shown:

    - the **true** loss ``R(θ) − R(θ̂)`` (solid) and the quadratic model (dash-dot) at the
      model's level through the projected θ̃(λ), so their gap is the model's error;
    - the penalty contour through the projected θ̃(λ) (dashed);
    - the predicted θ̃(λ) (filled circle) and the refit θ*(λ) (open square), projected
      orthogonally into the plane. When the plane holds θ̃ (a 2-parameter model) θ̃ is the
      tangent point of the dash-dot ellipse and the dashed circle.

    Parameters
    ----------
    objective : Objective
        The objective the analysis was made from (its ``value`` is evaluated on the grid:
        ``resolution²`` evaluations).
    analysis : Analysis
        From :func:`ridgelens.analyze`; its spectrum must hold the chosen directions.
    directions : pair of int, optional
        Indices of the eigenvectors (descending σ). Default: the top one and a flatter one
        that the analysed λ shrink visibly, see :func:`ridgelens.report.default_directions`.
    indices : sequence of int, optional
        Which of ``analysis.lambdas`` to draw (default: all valid ones, at most 4, spread out).
    ax : matplotlib Axes, optional
    resolution : int
        Grid points per side for the true loss and the penalty.
    margin : float
        Extra room around the drawn points, as a fraction of their span.

    Returns
    -------
    dict
        ``true_contours``, ``model_ellipses``, ``penalty_contours`` (one ContourSet per λ),
        ``levels`` (model levels, one per λ), ``predicted`` and ``refit`` (arrays (k, 2) of
        plane coordinates, refit None without a refit), ``predicted_artist``,
        ``refit_artist``, ``theta_hat``, ``path`` (Line2D or None), ``directions``,
        ``sigma`` (σ_a, σ_b), ``basis`` (array (n, 2): q_a, q_b), ``indices``, ``to_scale``
        (False when the two axes needed different scales).
    """
    spec = analysis.spectrum
    sigma_all, Q_all = spec.eigenvalues, spec.Q
    th = np.asarray(analysis.theta_hat, dtype=np.float64)
    mask = np.asarray(analysis.path.penalized, dtype=bool)
    if directions is None:
        directions = default_directions(sigma_all, Q_all.T @ th, analysis.lambdas)
    a, b = check_directions(directions, sigma_all.size)
    B = Q_all[:, [a, b]]
    sig = sigma_all[[a, b]]
    lam = analysis.lambdas
    if indices is None:
        ok = np.flatnonzero(analysis.path.valid & (lam > 0))
        indices = ok[np.unique(np.linspace(0, ok.size - 1, min(4, ok.size)).round().astype(int))] if ok.size else ok
    idx = np.asarray(indices, dtype=int).reshape(-1)
    ax = get_ax(ax)

    to_plane = lambda T: (np.atleast_2d(T) - th) @ B  # noqa: E731  (k, n) -> (k, 2)
    pred = to_plane(analysis.predicted[idx]) if idx.size else np.empty((0, 2))
    refit = to_plane(analysis.refit[idx]) if analysis.refit is not None and idx.size else None

    path_uv = _dense_path(analysis, B)
    origin = -th @ B  # where 0 (the penalty's centre) projects
    pts = [np.zeros((1, 2)), origin[None, :], pred]
    if refit is not None:
        pts.append(refit)
    if path_uv is not None:
        pts.append(path_uv)
    pts = np.vstack([p for p in pts if p.size])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    spans = np.maximum(hi - lo, 1e-12 * max(float(np.abs(pts).max()), 1e-300))
    to_scale = spans.max() <= 4 * spans.min()  # else each axis gets its own scale, and says so
    half = (0.5 + margin) * (np.full(2, spans.max()) if to_scale else spans)
    centre = (lo + hi) / 2
    us = np.linspace(centre[0] - half[0], centre[0] + half[0], resolution)
    vs = np.linspace(centre[1] - half[1], centre[1] + half[1], resolution)
    UU, VV = np.meshgrid(us, vs)
    flat = th[None, :] + UU.reshape(-1, 1) * B[:, 0] + VV.reshape(-1, 1) * B[:, 1]
    r0 = objective.value(th)
    true = np.array([objective.value(t) for t in flat]).reshape(UU.shape) - r0
    model = 0.5 * (sig[0] * UU**2 + sig[1] * VV**2)
    pen = 0.5 * np.sum(flat[:, mask] ** 2, axis=1).reshape(UU.shape)

    levels = 0.5 * (sig[0] * pred[:, 0] ** 2 + sig[1] * pred[:, 1] ** 2) if idx.size else np.empty(0)
    true_cs, model_cs, pen_cs = [], [], []
    for k, i in enumerate(idx):
        color = f"C{k + 1}"
        lev = levels[k]
        if lev > 0:
            true_cs.append(ax.contour(UU, VV, true, levels=[lev], colors=[color], linestyles="solid",
                                      linewidths=1.5))
            model_cs.append(ax.contour(UU, VV, model, levels=[lev], colors=[color], linestyles="dashdot",
                                       linewidths=1.0))
        p_lev = 0.5 * float(np.sum((th + B @ pred[k])[mask] ** 2))
        pen_cs.append(ax.contour(UU, VV, pen, levels=[p_lev], colors=[color], linestyles="dashed",
                                 linewidths=1.0))
        ax.plot([], [], color=color, lw=1.5, label=f"λ = {lam[i]:g}")
    path_line = None
    if path_uv is not None:
        (path_line,) = ax.plot(path_uv[:, 0], path_uv[:, 1], color="0.35", lw=1.0, label="θ̃(λ), λ: 0 → ∞")
    colors = [f"C{k + 1}" for k in range(idx.size)]
    pred_art = ax.scatter(pred[:, 0], pred[:, 1], s=40, color=colors, edgecolor="k", zorder=5,
                          label="θ̃(λ) predicted")
    refit_art = None
    if refit is not None:
        refit_art = ax.scatter(refit[:, 0], refit[:, 1], s=60, marker="s", facecolor="none",
                               edgecolor=colors, linewidths=1.5, zorder=6, label="θ*(λ) refit")
    hat = ax.scatter([0], [0], marker="*", s=160, color="C0", zorder=6, label="θ̂")
    ax.scatter([origin[0]], [origin[1]], marker="+", color="k", s=60, zorder=6)
    ax.plot([], [], color="0.3", ls="solid", label="true loss")
    ax.plot([], [], color="0.3", ls="dashdot", label="quadratic model")
    ax.plot([], [], color="0.3", ls="dashed", label="penalty")
    if to_scale:
        ax.set_aspect("equal")
    ax.set_xlim(us[0], us[-1])
    ax.set_ylim(vs[0], vs[-1])
    ax.set_xlabel(f"q{a + 1}ᵀ(θ − θ̂)   (σ{a + 1} = {sig[0]:.3g})")
    ax.set_ylabel(f"q{b + 1}ᵀ(θ − θ̂)   (σ{b + 1} = {sig[1]:.3g})")
    ax.set_title(f"{analysis.objective}: true loss vs quadratic model, (q{a + 1}, q{b + 1}) plane through θ̂"
                 + ("" if to_scale else "\n(axes not to scale: circles look like ellipses)"), fontsize=10)
    ax.legend(loc="best", fontsize=7)
    return {"true_contours": true_cs, "model_ellipses": model_cs, "penalty_contours": pen_cs,
            "levels": levels, "predicted": pred, "refit": refit, "predicted_artist": pred_art,
            "refit_artist": refit_art, "theta_hat": hat, "path": path_line, "directions": (a, b),
            "sigma": sig, "basis": B, "indices": idx, "to_scale": to_scale}


def _dense_path(analysis, B, points: int = 160):
    """θ̃(λ) on a log grid from ~0 to ~∞, projected into the plane; None when it cannot be had."""
    path, spec = analysis.path, analysis.spectrum
    if path.gradient_used:  # the first-order term g is not kept in the Analysis
        return None
    sigma = path.eigenvalues[path.eigenvalues > 0]
    if sigma.size == 0:
        return None
    smin = float(path.eigenvalues.min())
    start = sigma.min() * 1e-3
    if smin < 0:  # the quadratic model has a minimizer only for λ > −σ_min
        grid = np.geomspace(max(start, -1.01 * smin), max(sigma.max(), -smin) * 1e3, points)
    else:
        grid = np.concatenate([[0.0], np.geomspace(start, sigma.max() * 1e3, points)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeCurvatureWarning)  # the analysis has said so already
        if path.penalized.all() and spec.complete:
            thetas = ridge_path(spec, analysis.theta_hat, grid).thetas
        elif spec.complete:
            H = (spec.Q * spec.eigenvalues) @ spec.Q.T
            thetas = ridge_path(H, analysis.theta_hat, grid, penalized=path.penalized).thetas
        else:
            return None
    return (thetas - analysis.theta_hat) @ B
