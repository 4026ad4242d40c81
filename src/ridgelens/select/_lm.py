"""``method="validation"`` for a language model: held-out loss of θ̃(λ) over the grid, no retraining.

The criterion is the validation tokens' mean cross-entropy (log perplexity) at each
prediction θ̃(λ) of an :class:`~ridgelens.pipeline.LMAnalysis`. The "one refit at the choice"
of the other models is already there: the analysis retrained θ*(λ) at every λ, so the
confirmation compares the choice's held-out loss with θ*'s at the same λ.
"""

from __future__ import annotations

import numpy as np

from ridgelens._validation import check_heldout_objective
from ridgelens.errors import RidgelensError
from ridgelens.select._heldout import heldout_losses
from ridgelens.select._result import Selection

#: The curvature whose predictions choose λ when both were analyzed, and why.
PREFERRED = ("ggn", "the Gauss-Newton prediction exists at every λ; the Hessian's only above its most negative "
                    "eigenvalue")


def select_lm(analysis, val_objective, *, curvature: str | None = None) -> Selection:
    """The λ of ``analysis``'s grid whose θ̃(λ) has the smallest held-out mean token loss.

    Parameters
    ----------
    analysis : LMAnalysis
        From :func:`~ridgelens.pipeline.analyze_lm`.
    val_objective : LMObjective
        The held-out tokens (the one the analysis measured perplexities on).
    curvature : {"hessian", "ggn"}, optional
        Whose θ̃(λ) choose; default the one analyzed, or the Gauss-Newton when both were
        (:data:`PREFERRED`). The other's criterion is in ``diagnostics["criteria"]``.

    Returns
    -------
    Selection
        ``criterion``: held-out mean loss (nats per token; ``inf`` where there is no
        prediction); ``diagnostics``: ``index``, ``at_grid_edge``, ``curvature``, ``why``,
        ``criteria`` (per curvature), ``perplexity`` (``exp criterion``) and ``confirm`` (the
        retrained θ*(λ) at the choice against the prediction).
    """
    if not getattr(analysis, "curvatures", None):
        raise RidgelensError(f"analysis must be analyze_lm's result (an LMAnalysis), got {type(analysis).__name__}")
    n = next(iter(analysis.curvatures.values())).path.thetas.shape[1]
    check_heldout_objective(val_objective, n)
    kinds = list(analysis.curvatures)
    if curvature is None:
        curvature, why = (PREFERRED if PREFERRED[0] in kinds and len(kinds) > 1
                          else (kinds[0], "the only curvature analyzed"))
    elif curvature not in kinds:
        raise RidgelensError(f"curvature {curvature!r} was not analyzed (the analysis has {', '.join(kinds)})")
    else:
        why = "requested"
    lam = np.asarray(analysis.report["lambdas"], dtype=np.float64)
    criteria = {}
    for kind, a in analysis.curvatures.items():
        criteria[kind] = heldout_losses(val_objective, a.path.thetas, np.asarray(a.path.valid, dtype=bool))
    crit = criteria[curvature]
    if not np.isfinite(crit).any():
        raise RidgelensError(f"no λ of the grid has a {curvature} prediction, so none can be chosen; use the "
                             "Gauss-Newton curvature or larger λ")
    i = int(np.argmin(crit))
    a = analysis.curvatures[curvature]
    pred, refit = float(crit[i]), float(val_objective.value(a.refit[i]))
    confirm = {"refit_loss": refit, "predicted_loss": pred, "loss_gap": pred - refit,
               "rel_error": float(a.rel_error[i]), "refit_converged": bool(a.refit_converged[i]),
               "refit_gradient_norm": float(a.refit_gradient_norm[i])}
    diagnostics = {"index": i, "at_grid_edge": i in (0, lam.size - 1), "curvature": curvature, "why": why,
                   "grid": "the analysis's --lambdas", "criteria": {k: c.tolist() for k, c in criteria.items()},
                   "perplexity": np.exp(crit).tolist(), "confirm": confirm,
                   "decomposition": f"{curvature} θ̃(λ) of the LM analysis, no retraining for the choice"}
    return Selection(method="validation", lambda_=float(lam[i]), lambdas=lam, criterion=crit, diagnostics=diagnostics)
