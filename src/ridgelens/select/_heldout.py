"""``method="validation"``: the held-out loss of θ̃(λ) over the grid, one refit at the choice."""

from __future__ import annotations

import numpy as np

from ridgelens.errors import DataError
from ridgelens.objectives import Objective
from ridgelens.objectives.linear import _LinearObjective


def validation_objective(objective, validation):
    """The held-out data as an objective of the same kind, checked against the training one.

    ``validation`` is an :class:`Objective` with as many parameters as ``objective`` (any
    model), or, for the linear objectives, a pair ``(X_val, y_val)`` whose ``X_val`` has as
    many columns as the training ``X``.
    """
    if validation is None:
        raise DataError("method='validation' needs held-out data: validation=(X_val, y_val) for a linear "
                        "objective, or validation=an objective of the same model on held-out data")
    if isinstance(validation, Objective):
        if validation.n_params != objective.n_params:
            raise DataError(f"the validation objective has {validation.n_params} parameters but the trained one "
                            f"has {objective.n_params}: it must be the same model on other data")
        return validation
    if not isinstance(objective, _LinearObjective):
        raise DataError("validation=(X, y) is for LeastSquares and Logistic; for a torch model pass "
                        "validation=a TorchObjective of the same model on held-out batches")
    try:
        X_val, y_val = validation
    except (TypeError, ValueError):
        raise DataError(f"validation must be a pair (X_val, y_val) or an objective, got {type(validation).__name__}") from None
    X_val = np.asarray(X_val, dtype=np.float64) if not hasattr(X_val, "shape") else X_val
    width = X_val.shape[1] if getattr(X_val, "ndim", 0) == 2 else None
    if width != objective.X.shape[1]:
        got = f"{width} columns" if width is not None else f"shape {getattr(X_val, 'shape', '?')}"
        raise DataError(f"the validation X has {got} but the training X has {objective.X.shape[1]} columns: "
                        "held-out data must have the same features, in the same order")
    names = objective.param_names[: objective.X.shape[1]]
    return type(objective)(X_val, y_val, fit_intercept=objective.fit_intercept,
                           penalize_intercept=bool(objective.fit_intercept and objective.penalized[-1]),
                           feature_names=names)


def heldout_losses(val, thetas: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The validation objective's mean loss at every θ̃(λ) (``inf`` where the prediction is invalid)."""
    return np.array([val.value(t) if ok else np.inf for t, ok in zip(thetas, valid, strict=True)])


def confirm(objective, val, lam: float, theta_pred: np.ndarray, tol=None, res=None, index=None) -> dict:
    """One refit at the chosen λ: the held-out loss it gives, and the gap to the prediction's.

    When the analysis ``res`` already holds a refit at λ number ``index``, that one is used.
    """
    if res is not None and res.refit is not None and np.isfinite(res.refit[index]).all():
        theta, converged, gnorm = res.refit[index], res.refit_converged[index], res.refit_gradient_norm[index]
    else:
        r = objective.minimize(l2=lam, x0=theta_pred, tol=tol)
        theta, converged, gnorm = r.theta, r.converged, r.gradient_norm
    pred, refit = float(val.value(theta_pred)), float(val.value(theta))
    norm = max(float(np.linalg.norm(theta)), np.finfo(float).tiny)
    return {"refit_loss": refit, "predicted_loss": pred, "loss_gap": pred - refit,
            "rel_error": float(np.linalg.norm(theta_pred - theta)) / norm,
            "refit_converged": bool(converged), "refit_gradient_norm": float(gnorm)}
