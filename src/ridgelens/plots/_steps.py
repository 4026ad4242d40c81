"""The slides' three steps as one panel figure: rotate into the eigenbasis, shrink, rotate back."""

from __future__ import annotations

import numpy as np

from ridgelens.errors import RidgelensError
from ridgelens.plots._common import scaled_label
from ridgelens.ridge._path import SCALED_VIEW

_TITLES = ("θ̂", "1. rotate: Qᵀθ̂", "2. shrink: × σⱼ/(σⱼ+λ)", "3. rotate back: θ̃ = Q·(…)")


def plot_ridge_steps(path, index: int = 0, *, axes=None, kind: str = "auto", max_bars: int = 40):
    """θ̂ → Qᵀθ̂ → diag(σ/(σ+λ))Qᵀθ̂ → θ̃(λ), at ``path.lambdas[index]``, as four panels.

    With two penalized parameters (``kind="plane"``) each panel draws the vector as an arrow
    in the plane, with H's eigen-axes: they are tilted in the parameter panels and become
    the coordinate axes after the rotation. Otherwise (``kind="bars"``) each panel shows
    the coordinates as bars: parameters in the first and last panel, eigen-directions
    (descending σ) in the middle two.

    Parameters
    ----------
    path : RidgePath
    index : int
        Which λ of the path.
    axes : sequence of 4 matplotlib Axes, optional
        Default: a new row of four panels in a new pyplot figure.
    kind : {"auto", "plane", "bars"}
    max_bars : int
        Bars mode shows at most this many coordinates (the largest |θ̂ⱼ| / |(Qᵀθ̂)ⱼ|).

    Returns
    -------
    dict
        ``axes``; ``values``: the four vectors drawn (``theta_hat_p``, ``rotated``,
        ``scaled``, ``rotated_back``); ``artists``: per panel, the PathCollection of the
        arrow tips (plane) or the BarContainer (bars); ``kind``.
    """
    steps = path.steps(int(index))
    r = path.eigenvalues.size
    if kind == "auto":
        kind = "plane" if r == 2 else "bars"
    if kind not in ("plane", "bars"):
        raise RidgelensError(f"kind must be 'auto', 'plane' or 'bars', got {kind!r}")
    if kind == "plane" and r != 2:
        raise RidgelensError(f"kind='plane' needs 2 penalized parameters, the path has {r}; use kind='bars'")
    if axes is None:
        import matplotlib.pyplot as plt

        axes = plt.figure(figsize=(13, 3.6), layout="constrained").subplots(1, 4)
    axes = list(np.ravel(axes))
    if len(axes) != 4:
        raise RidgelensError(f"axes must hold 4 Axes, got {len(axes)}")
    vecs = [steps["theta_hat_p"], steps["rotated"], steps["scaled"], steps["rotated_back"]]
    if kind == "plane":
        artists = _plane(axes, path, steps, vecs)
    else:
        artists = _bars(axes, path, steps, vecs, max_bars)
    axes[0].figure.suptitle(scaled_label(path, f"θ̃ = Q diag(σ/(σ+λ)) Qᵀ θ̂ at λ = {steps['lambda']:g}",
                                         f"φ̃ = Q diag(σ/(σ+λ)) Qᵀ φ̂ at λ = {steps['lambda']:g} ({SCALED_VIEW})"),
                            fontsize=10)
    return {"axes": axes, "values": dict(zip(("theta_hat_p", "rotated", "scaled", "rotated_back"),
                                             vecs, strict=True)),
            "artists": artists, "kind": kind}


def _plane(axes, path, steps, vecs):
    Q, sigma, f = path.eigenvectors, path.eigenvalues, steps["factors"]
    lim = 1.25 * max(float(np.linalg.norm(vecs[0])), 1e-12)
    eye = np.eye(2)
    artists = []
    for k, (ax, v) in enumerate(zip(axes, vecs, strict=True)):
        basis = Q if k in (0, 3) else eye  # eigen-axes in parameter coordinates, or the coordinate axes
        for j in range(2):
            q = basis[:, j] * lim
            ax.plot([-q[0], q[0]], [-q[1], q[1]], color="0.6", lw=0.8, ls=":")
            ax.annotate(f"q{j + 1} (σ={sigma[j]:.3g})", 0.8 * q, fontsize=7, color="0.35", ha="center")
        ghost = {2: vecs[1], 3: vecs[0]}.get(k)
        if ghost is not None:
            ax.annotate("", xy=ghost, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": "0.75", "lw": 1.2})
        ax.annotate("", xy=v, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": f"C{k}", "lw": 2})
        artists.append(ax.scatter([v[0]], [v[1]], color=f"C{k}", s=18, zorder=5))
        if k == 2:
            for j in range(2):
                ax.annotate(f"×{f[j]:.2f}", vecs[2] * eye[j] + 0.04 * lim, fontsize=8, color="C2")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(_TITLES[k], fontsize=9)
        ax.set_xlabel(scaled_label(path, "θ₁", "φ₁ = √d₁·θ₁") if k in (0, 3) else "q₁ coordinate", fontsize=8)
        ax.set_ylabel(scaled_label(path, "θ₂", "φ₂ = √d₂·θ₂") if k in (0, 3) else "q₂ coordinate", fontsize=8)
        ax.text(0.02, 0.02, "(" + ", ".join(f"{c:.3g}" for c in v) + ")", transform=ax.transAxes, fontsize=8)
    return artists


def _bars(axes, path, steps, vecs, max_bars):
    names = [scaled_label(path, "θ", "φ") + f"{j + 1}" for j in np.flatnonzero(path.penalized)]
    p_keep = np.sort(np.argsort(-np.abs(vecs[0]))[:max_bars])
    e_keep = np.sort(np.argsort(-np.abs(vecs[1]))[:max_bars])
    artists = []
    for k, (ax, v) in enumerate(zip(axes, vecs, strict=True)):
        keep = p_keep if k in (0, 3) else e_keep
        x = np.arange(keep.size)
        ghost = {2: vecs[1], 3: vecs[0]}.get(k)
        if ghost is not None:
            ax.bar(x, ghost[keep], color="0.85", width=0.8)
        artists.append(ax.bar(x, v[keep], color=f"C{k}", width=0.5 if ghost is not None else 0.8))
        ax.axhline(0, color="0.5", lw=0.6)
        labels = [names[j] for j in keep] if k in (0, 3) else [f"q{j + 1}" for j in keep]
        ax.set_xticks(x, labels, rotation=90, fontsize=6)
        ax.set_title(_TITLES[k], fontsize=9)
    axes[1].set_xlabel("eigen-direction (descending σ)", fontsize=8)
    axes[2].set_xlabel("grey: before shrinking", fontsize=8)
    axes[3].set_xlabel("grey: θ̂", fontsize=8)
    return artists
