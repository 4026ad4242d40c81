"""Coefficient paths, prediction error and shrinkage factors."""

from __future__ import annotations

import numpy as np

from ridgelens.plots._common import get_ax


def plot_coefficient_paths(analysis, *, ax=None, max_params: int = 12):
    """Coefficient paths against λ: predicted θ̃ as lines, refit θ* as markers.

    Shows the ``max_params`` penalized parameters with the largest |θ̂|.
    Returns ``{"lines": [...], "markers": [...], "indices": array}``.
    """
    ax = get_ax(ax)
    lam = analysis.lambdas
    pen = np.flatnonzero(analysis.path.penalized)
    idx = pen[np.argsort(-np.abs(analysis.theta_hat[pen]))[:max_params]]
    pos = lam > 0
    lines, markers = [], []
    for k, j in enumerate(idx):
        (ln,) = ax.plot(lam[pos], analysis.predicted[pos, j], color=f"C{k % 10}", lw=1.3,
                        label=analysis.param_names[j])
        lines.append(ln)
        if analysis.refit is not None:
            markers.append(ax.scatter(lam[pos], analysis.refit[pos, j], color=f"C{k % 10}", s=14, marker="o",
                                      facecolor="none"))
    ax.set_xscale("log")
    ax.axhline(0, color="0.7", lw=0.6)
    ax.set_xlabel("λ  (penalty (λ/2)‖θ‖², mean loss)")
    ax.set_ylabel("coefficient")
    ax.set_title("Paths: predicted θ̃(λ) (lines), refit θ*(λ) (circles)")
    ax.legend(fontsize=6, ncol=2, loc="best")
    return {"lines": lines, "markers": markers, "indices": idx}


def plot_rel_error(analysis, *, ax=None):
    """‖θ̃ − θ*‖/‖θ*‖ against λ (log–log). Returns the Line2D."""
    ax = get_ax(ax)
    lam, err = analysis.lambdas, analysis.rel_error
    if err is None:
        raise ValueError("the analysis has no refit; run analyze(..., refit=True)")
    ok = (lam > 0) & np.isfinite(err)
    floor = np.finfo(float).eps
    (ln,) = ax.plot(lam[ok], np.maximum(err[ok], floor), marker="o", color="C3")
    if ok.any():
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:  # e.g. every λ below the most negative curvature: say so rather than draw empty log axes
        ax.text(0.5, 0.5, "no λ > 0 has both a valid prediction and a refit", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("λ")
    ax.set_ylabel("‖θ̃ − θ*‖ / ‖θ*‖")
    ax.set_title("How far the quadratic model's prediction is from the refit")
    return ln


def plot_shrinkage(path, index: int = 0, *, ax=None):
    """Shrinkage factors σⱼ/(σⱼ+λ) against σⱼ (log axis) at ``path.lambdas[index]``, with |Qᵀθ̂|ⱼ.

    Returns ``{"factors": Line2D, "coords": BarContainer-like Line2D}``.
    """
    ax = get_ax(ax)
    sigma = path.eigenvalues
    keep = sigma > 0
    (f,) = ax.plot(sigma[keep], path.factors[index, keep], marker=".", color="C0",
                   label=f"σ/(σ+λ), λ = {path.lambdas[index]:g}")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("eigenvalue σⱼ")
    ax.set_ylabel("shrinkage factor")
    ax2 = ax.twinx()
    (c,) = ax2.plot(sigma[keep], np.abs(path.coords[keep]), ls="none", marker="x", color="C1",
                    label="|Qᵀθ̂|ⱼ")
    ax2.set_ylabel("|Qᵀθ̂|ⱼ")
    ax.legend(handles=[f, c], fontsize=7, loc="center left")
    ax.set_title("Flat directions shrink, steep ones survive")
    return {"factors": f, "coords": c}
