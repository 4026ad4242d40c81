"""Figures of a language model's analysis: prediction error and perplexity against λ, per curvature."""

from __future__ import annotations

import numpy as np

from ridgelens.plots._common import get_ax

_NAMES = {"hessian": "Hessian", "ggn": "Gauss-Newton"}
#: Per curvature drawn (in the report's order): marker, its area (points²) and layer. Each later one is
#: smaller and on top, so that two predictions at the same point (the demo's λ = 1) both show.
_MARKERS = (("o", 42, 5), ("D", 16, 6), ("^", 12, 7))


def plot_lm_error(report: dict, *, ax=None):
    """‖θ̃ − θ*‖/‖θ*‖ against λ for each curvature of an :class:`~ridgelens.pipeline.LMAnalysis` report.

    λ without a prediction (below the Hessian's most negative eigenvalue) are marked × along the
    bottom in the curvature's colour, not dropped; errors against a retraining that did not reach
    its tolerance are open markers. Returns the list of Line2D drawn.
    """
    ax = get_ax(ax)
    lam = np.asarray(report["lambdas"], dtype=float)
    conv = _retrained(report)
    lines = []
    for i, (kind, rep) in enumerate(report["curvature"].items()):
        err = np.array([np.nan if e is None else e for e in rep["rel_error"]], dtype=float)
        ok = np.isfinite(err)
        m, size, z = _MARKERS[i % len(_MARKERS)]
        (ln,) = ax.plot(lam[ok], err[ok], color=f"C{i}", marker=m, markersize=np.sqrt(size), markevery=[],
                        label=_NAMES[kind])  # the marker for the legend; the points are the scatters below
        ax.scatter(lam[ok & conv], err[ok & conv], marker=m, color=f"C{i}", s=size, zorder=z)
        ax.scatter(lam[ok & ~conv], err[ok & ~conv], marker=m, facecolor="white", edgecolor=f"C{i}", s=size,
                   zorder=z)
        if (~ok).any():
            ax.scatter(lam[~ok], np.full(int((~ok).sum()), 0.03 + 0.04 * i), marker="x", color=f"C{i}", s=40,
                       clip_on=False, transform=ax.get_xaxis_transform(), zorder=6,
                       label=f"{_NAMES[kind]}: no prediction")
        lines.append(ln)
    if (~conv).any():
        ax.scatter([], [], facecolor="white", edgecolor="0.3", s=36, label="retraining not converged")
    ax.axhline(0.1, color="0.5", ls=":", lw=1, label="10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("‖θ̃ − θ*‖ / ‖θ*‖")
    ax.set_title("Quadratic prediction against retraining from θ̂")
    ax.legend(fontsize=8)
    return lines


def _retrained(report: dict) -> np.ndarray:
    """Per λ: did the retraining reach its tolerance (True where the report does not say)."""
    conv = report.get("retraining", {}).get("converged")
    n = len(report["lambdas"])
    return np.ones(n, dtype=bool) if conv is None else np.asarray(conv, dtype=bool)


def plot_lm_perplexity(report: dict, *, ax=None):
    """Validation perplexity of θ̂, θ*(λ) and θ̃(λ) (each curvature) against λ. Returns the Line2D list.

    θ* that did not reach the retraining's tolerance are open squares.
    """
    ax = get_ax(ax)
    lam = np.asarray(report["lambdas"], dtype=float)
    lines = [ax.axhline(report["val_perplexity_hat"], color="0.3", ls="--", label="θ̂")]
    ppl, conv = np.asarray(report["retraining"]["val_perplexity"], dtype=float), _retrained(report)
    (ln,) = ax.plot(lam, ppl, color="k", label="θ* (retrained)")
    ax.scatter(lam[conv], ppl[conv], marker="s", color="k", s=30, zorder=5)
    ax.scatter(lam[~conv], ppl[~conv], marker="s", facecolor="white", edgecolor="k", s=34, zorder=5,
               label="θ* not converged" if (~conv).any() else None)
    lines.append(ln)
    for i, (kind, rep) in enumerate(report["curvature"].items()):
        p = np.array([np.nan if v is None else v for v in rep["val_perplexity"]], dtype=float)
        ok = np.isfinite(p)
        m, size, z = _MARKERS[i % len(_MARKERS)]
        (ln,) = ax.plot(lam[ok], p[ok], marker=m, markersize=np.sqrt(size), color=f"C{i}", zorder=z,
                        label=f"θ̃ ({_NAMES[kind]})")
        lines.append(ln)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("validation perplexity (per byte)")
    ax.set_title("Validation perplexity")
    ax.legend()
    return lines
