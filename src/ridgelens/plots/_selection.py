"""The λ-selection criterion over the grid, with the choice marked."""

from __future__ import annotations

import numpy as np

from ridgelens.plots._common import get_ax

#: What each method's criterion is, for the y axis.
CRITERION_LABELS = {
    "gcv": "GCV: mean squared residual / (1 − tr A/n)²",
    "loo": "mean squared leave-one-out error",
    "alo": "approximate leave-one-out log-loss",
    "evidence": "−log evidence / n",
    "validation": "held-out mean loss of θ̃(λ)",
}


def plot_selection(selection, *, ax=None):
    """The criterion against λ (log λ axis), the chosen λ as a vertical line and a star.

    ``selection`` is a :class:`ridgelens.select.Selection` or its dict (``method``,
    ``lambda``, ``lambdas``, ``criterion``). Returns ``{"line": Line2D, "choice": Line2D}``.
    """
    ax = get_ax(ax)
    if isinstance(selection, dict):
        method, lam_star = selection["method"], float(selection["lambda"])
        lam, crit = np.asarray(selection["lambdas"], float), np.asarray(selection["criterion"], float)
    else:
        method, lam_star, lam, crit = selection.method, selection.lambda_, selection.lambdas, selection.criterion
    ok = (lam > 0) & np.isfinite(crit)
    order = np.argsort(lam[ok])
    (line,) = ax.plot(lam[ok][order], crit[ok][order], color="C0", lw=1.4, marker=".", ms=3)
    ax.axvline(lam_star, color="C3", lw=1.0, ls="--")
    at = float(np.interp(lam_star, lam[ok][order], crit[ok][order])) if ok.any() else np.nan
    (choice,) = ax.plot([lam_star], [at], marker="*", ms=14, color="C3", ls="none", label=f"chosen λ = {lam_star:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("λ  (penalty (λ/2)‖θ‖², mean loss)")
    ax.set_ylabel(CRITERION_LABELS.get(method, method))
    ax.set_title(f"Choosing λ by {method}")
    ax.legend(loc="best", fontsize=8)
    return {"line": line, "choice": choice}
