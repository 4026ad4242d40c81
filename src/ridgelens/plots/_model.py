"""The contour-line picture for any model: the plane through θ̂ spanned by two penalized eigen-directions."""

from __future__ import annotations

import numpy as np

from ridgelens._shrinkage import shrinkage
from ridgelens.errors import RidgelensError
from ridgelens.plots._common import get_ax
from ridgelens.report._plane import display_eigenvalues, embed_plane, plane_directions

#: At most this many λ are drawn (each gets its own colour and legend entry).
MAX_LAMBDAS = 8


def plot_model_contours(objective, analysis, *, directions=None, indices=None, ax=None,
                        resolution: int = 61, margin: float = 0.3):
    """True-loss contours against the quadratic model's ellipses, in a plane through θ̂.

    The plane is spanned by two eigenvectors ``q_a``, ``q_b`` of the curvature the
    **penalized** block sees (``analysis.path``: H, or its Schur complement S when the
    intercept or other parameters are unpenalized), chosen by
    :func:`ridgelens.report._plane.plane_directions` — the same rule the interactive page
    uses, so the PNG and the page show the same plane. A point ``(u, v)`` of the plane is
    ``θ_p = θ̂_p + u·q_a + v·q_b`` with the unpenalized block following at its best
    response, ``θ_u = θ̂_u − H_uu⁻¹H_up(θ_p − θ̂_p)``. There the quadratic model is
    ``½(σ_a u² + σ_b v²)`` (axis-aligned ellipses) and the penalty ``(λ/2)‖θ_p‖²`` has circular
    level sets around the projection of 0 (the textbook picture, DLB figure 7.1). With a penalty
    matrix (λ/2)θᵀDθ (``path.scaled_view``) all of this holds in φ = D^{1/2}θ, where the eigen view
    lives: the plane is ``φ_p = φ̂_p + u·q_a + v·q_b`` (θ = D^{-1/2}φ), the penalty ``(λ/2)‖φ_p‖²``,
    and the axes say so. For each λ:

    - the **true** loss ``R(θ) − R(θ̂)`` (solid) and the quadratic model (dash-dot) at the
      model's level through the projected θ̃(λ), so their gap is the model's error;
    - the penalty contour through the projected θ̃(λ) (dashed);
    - the predicted θ̃(λ) (filled circle) and the refit θ*(λ) (open square), projected
      orthogonally (in the penalized coordinates) into the plane.

    Parameters
    ----------
    objective : Objective
        The objective the analysis was made from (``resolution²`` evaluations of ``value``).
    analysis : Analysis
        From :func:`ridgelens.analyze`; with unpenalized parameters its spectrum must be
        complete (a dense analysis) to place the unpenalized block.
    directions : pair of int, optional
        0-based indices of the penalized eigen-directions (descending σ).
    indices : sequence of int, optional
        Which of ``analysis.lambdas`` to draw (default: every valid λ > 0, at most
        ``MAX_LAMBDAS``, spread out). λ without a valid prediction are listed in the legend.
    ax : matplotlib Axes, optional
    resolution : int
        Grid points per side for the true loss and the penalty.
    margin : float
        Extra room around the drawn points, as a fraction of their span.

    Returns
    -------
    dict
        ``true_contours``, ``model_ellipses``, ``penalty_contours`` (one ContourSet per λ),
        ``levels``, ``predicted`` and ``refit`` (arrays (k, 2) of plane coordinates; refit
        None without a refit), ``predicted_artist``, ``refit_artist``, ``theta_hat``, ``path``
        (Line2D or None), ``directions``, ``sigma`` (σ_a, σ_b), ``basis`` (array (n, 2): the
        plane's two directions in the full θ), ``indices``, ``to_scale``, ``legend``.
    """
    path = analysis.path
    th = np.asarray(analysis.theta_hat, dtype=np.float64)
    mask = np.asarray(path.penalized, dtype=bool)
    a, b = plane_directions(path.eigenvalues, path.coords, analysis.lambdas, directions, rank_tol=path.rank_tol)
    Qp = np.asarray(path.eigenvectors, dtype=np.float64)
    if Qp.ndim != 2 or Qp.shape[0] != int(mask.sum()) or max(a, b) >= Qp.shape[1]:
        raise RidgelensError("the model-plane figure needs the penalized block's eigenvectors; this analysis "
                             f"holds {Qp.shape} for {int(mask.sum())} penalized parameters")
    sig = display_eigenvalues(path.eigenvalues, path.rank_tol)[0][[a, b]]
    B = embed_plane(analysis, Qp[:, [a, b]], mask)  # in φ = D^{1/2}θ (φ = θ without a penalty matrix)
    pf = path.penalty_factors
    s = np.ones_like(th) if not path.scaled_view else np.where(pf > 0, 1 / np.sqrt(np.where(pf > 0, pf, 1.0)), 1.0)
    ph = th / s
    lam = analysis.lambdas
    if indices is None:
        ok = np.flatnonzero(path.valid & (lam > 0))
        take = np.unique(np.linspace(0, ok.size - 1, min(MAX_LAMBDAS, ok.size)).round().astype(int))
        indices = ok[take] if ok.size else ok
    idx = np.asarray(indices, dtype=int).reshape(-1)
    ax = get_ax(ax)

    Bp = B[mask]  # orthonormal columns: q_a, q_b in the penalized coordinates
    to_plane = lambda T: (np.atleast_2d(T)[:, mask] / s[mask] - ph[mask]) @ Bp  # noqa: E731  (k, n) -> (k, 2)
    pred = to_plane(analysis.predicted[idx]) if idx.size else np.empty((0, 2))
    refit = to_plane(analysis.refit[idx]) if analysis.refit is not None and idx.size else None
    path_uv = _eigen_path(analysis, (a, b))
    origin = -ph[mask] @ Bp  # where 0 (the penalty's centre) projects
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
    B = s[:, None] * B  # the plane's directions in θ
    flat = th[None, :] + UU.reshape(-1, 1) * B[:, 0] + VV.reshape(-1, 1) * B[:, 1]
    r0 = objective.value(th)
    true = np.array([objective.value(t) for t in flat]).reshape(UU.shape) - r0
    model = 0.5 * (sig[0] * UU**2 + sig[1] * VV**2)
    pen = 0.5 * np.sum((flat[:, mask] / s[mask]) ** 2, axis=1).reshape(UU.shape)  # ½θᵀDθ = ½‖φ_p‖²

    levels = 0.5 * (sig[0] * pred[:, 0] ** 2 + sig[1] * pred[:, 1] ** 2) if idx.size else np.empty(0)
    true_cs, model_cs, pen_cs = [], [], []
    colors = [f"C{(k % 9) + 1}" for k in range(idx.size)]
    for k, i in enumerate(idx):
        lev = levels[k]
        if lev > 0:
            true_cs.append(ax.contour(UU, VV, true, levels=[lev], colors=[colors[k]], linestyles="solid",
                                      linewidths=1.5))
            model_cs.append(ax.contour(UU, VV, model, levels=[lev], colors=[colors[k]], linestyles="dashdot",
                                       linewidths=1.0))
        p_lev = 0.5 * float(np.sum((ph[mask] + Bp @ pred[k]) ** 2))
        pen_cs.append(ax.contour(UU, VV, pen, levels=[p_lev], colors=[colors[k]], linestyles="dashed",
                                 linewidths=1.0))
        ax.plot([], [], color=colors[k], lw=1.5, label=f"λ = {lam[i]:g}")
    for i in np.flatnonzero((lam > 0) & ~path.valid):
        ax.plot([], [], ls="none", marker="x", color="0.5", label=f"λ = {lam[i]:g}: no valid prediction")
    path_line = None
    if path_uv is not None:
        (path_line,) = ax.plot(path_uv[:, 0], path_uv[:, 1], color="0.35", lw=1.0, label="θ̃(λ), λ: 0 → ∞")
    pred_art = ax.scatter(pred[:, 0], pred[:, 1], s=40, color=colors, edgecolor="k", zorder=5,
                          label="θ̃(λ) predicted")
    refit_art = None
    if refit is not None:
        refit_art = ax.scatter(refit[:, 0], refit[:, 1], s=70, marker="s", facecolor="none",
                               edgecolor=colors, linewidths=1.5, zorder=6, label="θ*(λ) refit")
    hat = ax.scatter([0], [0], marker="*", s=160, color="C0", zorder=6, label="θ̂")
    ax.scatter([origin[0]], [origin[1]], marker="+", color="k", s=60, zorder=6, label="θ_p = 0")
    ax.plot([], [], color="0.3", ls="solid", label="true loss")
    ax.plot([], [], color="0.3", ls="dashdot", label="quadratic model")
    ax.plot([], [], color="0.3", ls="dashed", label="penalty")
    if to_scale:
        ax.set_aspect("equal")
    ax.set_xlim(us[0], us[-1])
    ax.set_ylim(vs[0], vs[-1])
    of = "S" if path.curvature == "schur-complement" else ("G" if analysis.curvature_kind == "ggn" else "H")
    x = "θ"
    if path.scaled_view:  # the eigen view of D^{-1/2}HD^{-1/2}, in φ = D^{1/2}θ
        of, x = f"{of} of D^{{-1/2}}HD^{{-1/2}}" if of == "S" else "D^{-1/2}HD^{-1/2}", "φ"
    ax.set_xlabel(f"q{a + 1}ᵀ({x}_p − {x}̂_p)   (σ{a + 1} = {sig[0]:.3g})" + ("   φ = D^{1/2}θ" if x == "φ" else ""))
    ax.set_ylabel(f"q{b + 1}ᵀ({x}_p − {x}̂_p)   (σ{b + 1} = {sig[1]:.3g})")
    left_out = [analysis.param_names[j] for j in np.flatnonzero(~mask)]
    which = (f"penalized eigen-directions q{a + 1}, q{b + 1} of {of}"
             + (f" ({', '.join(left_out[:3])}{' …' if len(left_out) > 3 else ''} unpenalized, at its best response)"
                if left_out else ""))
    ax.set_title(f"{analysis.objective}: true loss vs quadratic model through θ̂\n{which}"
                 + ("" if to_scale else "\naxes not to scale: circles look like ellipses"), fontsize=9)
    leg = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return {"true_contours": true_cs, "model_ellipses": model_cs, "penalty_contours": pen_cs,
            "levels": levels, "predicted": pred, "refit": refit, "predicted_artist": pred_art,
            "refit_artist": refit_art, "theta_hat": hat, "path": path_line, "directions": (a, b),
            "sigma": sig, "basis": B, "indices": idx, "to_scale": to_scale, "legend": leg}


def _eigen_path(analysis, directions, points: int = 200):
    """θ̃(λ) − θ̂ in the plane's coordinates on a fine log grid from ~0 to ~∞, from the eigen form.

    Coordinate j is ``(σⱼ(Qᵀθ̂)ⱼ − (Qᵀg̃)ⱼ)/(σⱼ + λ) − (Qᵀθ̂)ⱼ``; None when the first-order
    term was used but its coordinates are not kept (matrix-free).
    """
    path = analysis.path
    gc = analysis.gradient_coords
    if path.gradient_used and gc is None:
        return None
    sigma, _, _ = display_eigenvalues(path.eigenvalues, path.rank_tol)
    pos = sigma[sigma > 0]
    if pos.size == 0:
        return None
    j = list(directions)
    smin = float(sigma.min())
    if smin < 0:  # the quadratic model has a minimizer only for λ > −σ_min
        grid = np.geomspace(-1.01 * smin, max(pos.max(), -smin) * 1e3, points)
    else:
        grid = np.concatenate([[0.0], np.geomspace(pos.min() * 1e-3, pos.max() * 1e3, points)])
    num = sigma[j] * path.coords[j] - (0.0 if gc is None else gc[j])
    scaled, _ = shrinkage(sigma[j], grid, numerator=num[None, :])
    return scaled - path.coords[j]
