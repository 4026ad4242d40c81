"""The result of :func:`ridgelens.select.select_lambda`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Selection:
    """The λ a criterion picks on a grid, with the criterion's whole curve.

    Attributes
    ----------
    method : str
        ``"gcv"`` (generalized cross-validation) or ``"loo"`` (exact leave-one-out).
    lambda_ : float
        The λ of ``lambdas`` with the smallest criterion (the first of ties), in the
        convention of the objective: penalty ``(λ/2)‖θ_p‖²`` on the mean loss, i.e.
        scikit-learn's ``alpha = λ·Σw`` (``n·λ`` without weights).
    lambdas : ndarray of shape (n_lambdas,)
        The grid, in the order it was given (the default grid is descending).
    criterion : ndarray of shape (n_lambdas,)
        The criterion at each λ, in squared units of y: ``gcv`` the weighted mean squared
        residual over ``(1 − tr(A)/n)²``, ``loo`` the weighted mean of the squared
        leave-one-out errors. ``inf`` where it is undefined (a leverage of 1 at λ = 0).
    loo_errors : ndarray of shape (n_lambdas, n_samples) or None
        ``loo``: each sample's leave-one-out error ``yᵢ − ŷ₍₋ᵢ₎(λ)``, in units of y.
    diagnostics : dict
        ``index`` (of ``lambda_`` in ``lambdas``), ``at_grid_edge`` (the minimum is the
        first or last λ of the grid: widen it), ``effective_df`` (``tr(A) `` of the penalized
        block at each λ), ``sklearn_alpha`` (``λ·Σw`` at ``lambda_``), ``weight_sum``,
        ``n_samples`` (with positive weight), ``rank``, ``condition_number`` (of the
        design), ``grid`` (how the grid was made) and ``decomposition``.
    """

    method: str
    lambda_: float
    lambdas: np.ndarray
    criterion: np.ndarray
    loo_errors: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)
