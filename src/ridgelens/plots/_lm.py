"""Figures of a language model's analysis: prediction error and perplexity against λ, per curvature."""

from __future__ import annotations

import numpy as np

from ridgelens.plots._common import get_ax

_NAMES = {"hessian": "Hessian", "ggn": "Gauss-Newton"}


def plot_lm_error(report: dict, *, ax=None):
    """‖θ̃ − θ*‖/‖θ*‖ against λ for each curvature of an :class:`~ridgelens.pipeline.LMAnalysis` report.

    λ without a prediction (below the Hessian's most negative eigenvalue) are left out. Returns
    the list of Line2D drawn.
    """
    ax = get_ax(ax)
    lam = np.asarray(report["lambdas"], dtype=float)
    lines = []
    for i, (kind, rep) in enumerate(report["curvature"].items()):
        err = np.array([np.nan if e is None else e for e in rep["rel_error"]], dtype=float)
        ok = np.isfinite(err)
        (ln,) = ax.plot(lam[ok], err[ok], marker="o", color=f"C{i}", label=_NAMES[kind])
        lines.append(ln)
    ax.axhline(0.1, color="0.5", ls=":", lw=1, label="10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("‖θ̃ − θ*‖ / ‖θ*‖")
    ax.set_title("Quadratic prediction against retraining from θ̂")
    ax.legend()
    return lines


def plot_lm_perplexity(report: dict, *, ax=None):
    """Validation perplexity of θ̂, θ*(λ) and θ̃(λ) (each curvature) against λ. Returns the Line2D list."""
    ax = get_ax(ax)
    lam = np.asarray(report["lambdas"], dtype=float)
    lines = [ax.axhline(report["val_perplexity_hat"], color="0.3", ls="--", label="θ̂")]
    (ln,) = ax.plot(lam, report["retraining"]["val_perplexity"], marker="s", color="k", label="θ* (retrained)")
    lines.append(ln)
    for i, (kind, rep) in enumerate(report["curvature"].items()):
        p = np.array([np.nan if v is None else v for v in rep["val_perplexity"]], dtype=float)
        ok = np.isfinite(p)
        (ln,) = ax.plot(lam[ok], p[ok], marker="o", color=f"C{i}", label=f"θ̃ ({_NAMES[kind]})")
        lines.append(ln)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("validation perplexity (per byte)")
    ax.set_title("Validation perplexity")
    ax.legend()
    return lines
