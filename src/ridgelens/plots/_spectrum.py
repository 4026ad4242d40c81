"""df(λ) and the spectral density of the curvature."""

from __future__ import annotations

import numpy as np

from ridgelens._shrinkage import shrinkage, snap_rounding
from ridgelens._validation import check_eigenvalues, check_lambdas
from ridgelens.errors import RidgelensError
from ridgelens.plots._common import get_ax, scaled_label
from ridgelens.report._plane import display_eigenvalues
from ridgelens.spectra._density import gaussian_density


def effective_df_curve(eigenvalues, lambdas) -> np.ndarray:
    """df(λ) = Σⱼ σⱼ/(σⱼ+λ) for each λ (σⱼ = 0 contributes 0), shape (m,).

    Examples
    --------
    >>> effective_df_curve([3.0, 1.0], [0.0, 1.0])
    array([2.  , 1.25])
    """
    sigma, _ = snap_rounding(check_eigenvalues(eigenvalues, "eigenvalues"))  # rounding-level |σ| is 0: no negative df
    factors, _ = shrinkage(sigma, check_lambdas(lambdas, "lambdas"))
    return factors.sum(axis=1)  # NaN where some σⱼ + λ ≤ 0: no minimizer there, so no df


def plot_effective_df(path, *, ax=None, points: int = 200):
    """The effective number of parameters df(λ) = Σⱼ σⱼ/(σⱼ+λ) against λ (log axis).

    The curve runs from ~rank (λ → 0) to ~0 (λ → ∞); the path's own λ are marked.

    Parameters
    ----------
    path : RidgePath
    ax : matplotlib Axes, optional
    points : int
        Grid points of the curve.

    Returns
    -------
    dict
        ``curve`` (Line2D), ``markers`` (PathCollection at the path's λ > 0), ``lambdas``
        and ``df`` (the curve's arrays), ``rank`` (the horizontal line).
    """
    ax = get_ax(ax)
    sigma, zeroed, tol = display_eigenvalues(path.eigenvalues, path.rank_tol)  # rounding noise is not curvature
    pos = sigma[sigma > 0]
    if pos.size == 0:
        raise RidgelensError("df(λ) needs at least one positive eigenvalue; the curvature has none")
    lo = pos.min() * 1e-3
    if sigma.min() < 0:  # df is defined (as the model's) only where every σ + λ > 0
        lo = max(lo, -1.01 * sigma.min())
    lam_p = path.lambdas[path.lambdas > 0]
    lo = min(lo, lam_p.min()) if lam_p.size else lo
    hi = max(pos.max() * 1e3, lam_p.max() if lam_p.size else 0.0)
    grid = np.geomspace(lo, hi, points)
    df = effective_df_curve(sigma, grid)
    (curve,) = ax.plot(grid, df, color="C0", lw=1.5, label="df(λ) = Σ σⱼ/(σⱼ+λ)")
    keep = (path.lambdas > 0) & path.valid
    markers = ax.scatter(path.lambdas[keep], path.effective_df[keep], color="C3", zorder=5, s=24,
                         label="analysed λ")
    rank = ax.axhline(int((sigma > 0).sum()), color="0.6", ls=":", lw=0.8,
                      label=f"rank = {int((sigma > 0).sum())} of {sigma.size}"
                      + (f" ({zeroed} rounding-level σ, |σ| ≤ {tol:.1g}, counted as 0)" if zeroed else ""))
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("effective number of parameters")
    ax.set_title(scaled_label(path, "df(λ): how many directions survive the penalty",
                              "df(λ) of D^{-1/2}HD^{-1/2}: how many directions survive the penalty (λ/2)θᵀDθ"))
    ax.legend(fontsize=7, loc="best")
    return {"curve": curve, "markers": markers, "lambdas": grid, "df": df, "rank": rank}


def smoothed_density(nodes, weights, grid, width: float) -> np.ndarray:
    """Σₖ wₖ N(x; nodeₖ, width²) on ``grid``: a smoothed density of the spectrum, shape (g,)."""
    return gaussian_density(nodes, weights, grid, width)


def plot_spectral_density(eigenvalues=None, *, nodes=None, weights=None, ax=None, scale: str = "log",
                          width: float | None = None, points: int = 400):
    """The spectral density of the curvature, smoothed by a Gaussian kernel, with a rug of the nodes.

    Give either the eigenvalues (an array, or a :class:`Spectrum`: each eigenvalue weighs
    1/n) or ``nodes`` and ``weights`` of a quadrature (stochastic Lanczos quadrature:
    the weights of one probe sum to 1).

    Parameters
    ----------
    eigenvalues : array of shape (n,) or Spectrum, optional
    nodes, weights : arrays of shape (k,), optional
    ax : matplotlib Axes, optional
    scale : {"log", "linear"}
        ``"log"``: the density of log₁₀ σ over σ > 0 (curvature spans decades; non-positive
        nodes are left out and counted in the legend). ``"linear"``: the density of σ.
    width : float, optional
        Kernel width (in log₁₀ units for ``"log"``); default: 1/40 of the nodes' range.
    points : int
        Grid points of the curve.

    Returns
    -------
    dict
        ``curve`` (Line2D), ``rug`` (Line2D of the nodes), ``grid`` and ``density``
        (x in σ units; the density in the axis' variable, integrating to the kept weight),
        ``left_out`` (how many nodes ≤ 0 a log scale left out).
    """
    if (eigenvalues is None) == (nodes is None):
        raise RidgelensError("give either eigenvalues, or nodes and weights")
    if eigenvalues is not None:
        ev = getattr(eigenvalues, "eigenvalues", eigenvalues)
        x = np.asarray(ev, dtype=np.float64).reshape(-1)
        w = np.full(x.size, 1.0 / max(x.size, 1))
    else:
        x = np.asarray(nodes, dtype=np.float64).reshape(-1)
        w = np.ones_like(x) / max(x.size, 1) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != x.shape:
            raise RidgelensError(f"nodes and weights must have the same shape, got {x.shape} and {w.shape}")
    if x.size == 0 or not np.all(np.isfinite(x)) or not np.all(np.isfinite(w)):
        raise RidgelensError("the spectrum must be non-empty and finite")
    if scale not in ("log", "linear"):
        raise RidgelensError(f"scale must be 'log' or 'linear', got {scale!r}")
    ax = get_ax(ax)
    left_out = 0
    if scale == "log":
        keep = x > 0
        left_out = int((~keep).sum())
        if not keep.any():
            raise RidgelensError("scale='log' needs positive eigenvalues; use scale='linear'")
        x, w = x[keep], w[keep]
        u = np.log10(x)
    else:
        u = x
    rng = float(u.max() - u.min())
    if width is None:
        width = rng / 40 if rng > 0 else max(abs(float(u[0])) * 0.05, 0.05)
    ugrid = np.linspace(u.min() - 4 * width, u.max() + 4 * width, points)
    dens = smoothed_density(u, w, ugrid, width)
    xgrid = 10**ugrid if scale == "log" else ugrid
    (curve,) = ax.plot(xgrid, dens, color="C0", lw=1.5,
                       label="density" + (f" ({left_out} σ ≤ 0 left out)" if left_out else ""))
    ax.fill_between(xgrid, dens, color="C0", alpha=0.15)
    (rug,) = ax.plot(10**u if scale == "log" else u, np.zeros_like(u), ls="none", marker="|", ms=10,
                     color="C3", label="nodes / eigenvalues")
    if scale == "log":
        ax.set_xscale("log")
        ax.set_ylabel("density of log₁₀ σ")
    else:
        ax.set_ylabel("density of σ")
    ax.set_xlabel("eigenvalue σ")
    ax.set_title("Spectral density of the curvature")
    ax.legend(fontsize=7, loc="best")
    return {"curve": curve, "rug": rug, "grid": xgrid, "density": dens, "left_out": left_out}
