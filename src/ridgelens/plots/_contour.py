"""The contour-line picture of L2 regularization (Deep Learning Book, figure 7.1)."""

from __future__ import annotations

import numpy as np

from ridgelens._validation import check_lambdas
from ridgelens.errors import RidgelensError
from ridgelens.plots._common import get_ax
from ridgelens.ridge import ridge_path


def plot_quadratic_contours(H, theta_hat, lambdas, *, ax=None, path_points: int = 200, margin: float = 0.35):
    """Draw loss ellipses (solid), penalty circles (dashed), θ̂, θ̃(λ), the path and the eigen-axes.

    For each λ the ellipse ``½(θ−θ̂)ᵀH(θ−θ̂) = const`` and the circle ``‖θ‖ = ‖θ̃(λ)‖``
    are drawn through θ̃(λ), where they touch: the regularized minimizer is the
    tangent point of a loss contour and a penalty contour.

    Parameters
    ----------
    H : array of shape (2, 2)
        Positive definite Hessian of the quadratic loss.
    theta_hat : array of shape (2,)
        The unregularized minimizer.
    lambdas : sequence of float
        The λ whose tangent points are shown.
    ax : matplotlib Axes, optional

    Returns
    -------
    dict
        ``ellipses`` and ``circles`` (ContourSet / lines, one per λ), ``theta_hat``,
        ``tangent_points`` (array (m, 2)), ``path`` (Line2D), ``axes`` (Line2Ds),
        ``levels`` (loss levels of the ellipses, one per λ).
    """
    H = np.asarray(H, dtype=np.float64)
    th = np.asarray(theta_hat, dtype=np.float64)
    if H.shape != (2, 2) or th.shape != (2,):
        raise RidgelensError(f"the contour picture is 2-D: H must be (2, 2) and theta_hat (2,), got {H.shape}, {th.shape}")
    lam = check_lambdas(lambdas)
    path = ridge_path(H, th, lam)
    sigma, Q = path.eigenvalues, path.eigenvectors
    if sigma.min() <= 0:
        raise RidgelensError(f"the contour picture needs H positive definite; smallest eigenvalue {sigma.min():.3g}")
    ax = get_ax(ax)

    # The whole path, λ from ~0 to ~∞ on a log grid.
    grid = np.concatenate([[0.0], np.geomspace(sigma.min() * 1e-3, sigma.max() * 1e3, path_points)])
    full = ridge_path(H, th, grid).thetas
    pts = np.vstack([full, [[0.0, 0.0]], path.thetas])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = max(float((hi - lo).max()), 1e-12)
    lo, hi = lo - margin * span, hi + margin * span
    xs, ys = np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300)
    XX, YY = np.meshgrid(xs, ys)
    D = np.stack([XX - th[0], YY - th[1]], axis=-1)
    loss = 0.5 * np.einsum("...i,ij,...j->...", D, H, D)
    levels = np.array([0.5 * (t - th) @ H @ (t - th) for t in path.thetas])

    colors = [f"C{i + 1}" for i in range(lam.size)]
    ellipses, circles = [], []
    for i, (lev, t) in enumerate(zip(levels, path.thetas, strict=True)):
        if lev > 0:
            ellipses.append(ax.contour(XX, YY, loss, levels=[lev], colors=[colors[i]], linestyles="solid",
                                       linewidths=1.4))
        r = float(np.linalg.norm(t))
        a = np.linspace(0, 2 * np.pi, 400)
        (c,) = ax.plot(r * np.cos(a), r * np.sin(a), ls="--", color=colors[i], lw=1.2,
                       label=f"λ = {lam[i]:g}: ‖θ‖ = {r:.3g}")
        circles.append(c)
    (path_line,) = ax.plot(full[:, 0], full[:, 1], color="0.35", lw=1.0, label="θ̃(λ), λ: 0 → ∞")
    axes = []
    for j in range(2):
        q = Q[:, j] * span * 0.6
        (ln,) = ax.plot([th[0] - q[0], th[0] + q[0]], [th[1] - q[1], th[1] + q[1]], color="0.6", lw=0.8, ls=":")
        axes.append(ln)
    # Each eigen-axis is labelled at the end of its segment nearer the view's centre, the text
    # pointing inwards, so that no label runs off the axes (the old label at θ̂ + q/2 did).
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2])
    labels = []
    for j in range(2):
        q = Q[:, j] * span * 0.6
        end = min((th + 0.55 * q, th - 0.55 * q), key=lambda p: float(np.linalg.norm(p - centre)))
        labels.append(ax.annotate(f"q{j + 1} (σ = {sigma[j]:.3g})", end, fontsize=8, color="0.3",
                                  ha="left" if end[0] < centre[0] else "right",
                                  va="bottom" if end[1] < centre[1] else "top",
                                  bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                        "alpha": 0.8}))
    hat = ax.scatter([th[0]], [th[1]], marker="*", s=160, color="C0", zorder=5, label="θ̂ (no penalty)")
    tang = ax.scatter(path.thetas[:, 0], path.thetas[:, 1], s=36, color=colors, zorder=5, edgecolor="k",
                      label="θ̃(λ): tangent points")
    ax.scatter([0], [0], marker="+", color="k", s=60)
    ax.set_aspect("equal")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.set_title("Loss ellipses (solid) meet penalty circles (dashed) at θ̃(λ)")
    ax.legend(loc="best", fontsize=7)
    return {"ellipses": ellipses, "circles": circles, "theta_hat": hat, "tangent_points": path.thetas,
            "tangent_artist": tang, "path": path_line, "axes": axes, "levels": levels,
            "axis_labels": labels}
