"""An optimizer's weight decay, predicted: ``predict`` and ``analyze_weight_decay``.

The prediction is the ridge path with the penalty matrix of the optimizer's fixed point
(:mod:`ridgelens._optim_state`: D = I for SGD and Adam, D = diag(√v̂ + ε) for AdamW with v̂
frozen at the saved state): :func:`predict` computes θ̃(λ) alone, :func:`analyze_weight_decay`
the whole :func:`~ridgelens.pipeline.analyze` (spectrum, df, refits) on the same D. Both resolve
``curvature="auto"`` through :func:`ridgelens._auto.select_solver`
(:func:`~ridgelens.pipeline._curvature.choose_curvature`).
The check, the optimizer itself run from θ̂ with that weight decay, is
:func:`~ridgelens.pipeline._optimizer_refit.optimizer_refit`; the exact fixed point the prediction
approximates (a minimizer of R + (λ/2)θᵀDθ, by Newton-CG) is :func:`optimizer_fixed_point`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from ridgelens._optim_state import WEIGHT_DECAY_TABLE, optimizer_penalty, weight_decay_record
from ridgelens._validation import check_lambda, check_lambdas, check_objective, check_seed
from ridgelens.pipeline._curvature import choose_curvature, product_options


def _weight_decay_conventions(optimizer: str) -> dict:
    return {**weight_decay_record(optimizer), "table": WEIGHT_DECAY_TABLE}


@dataclass(frozen=True)
class WeightDecayPrediction:
    """What ``optimizer``'s ``weight_decay = λ`` is predicted to do to θ̂ (:func:`predict`).

    Attributes
    ----------
    lambdas : ndarray of shape (m,)
    thetas : ndarray of shape (m, n)
        θ̃(λ) = (C + λD)⁻¹(Cθ̂ − g), C the curvature named in ``curvature``; NaN rows where
        C + λD has no minimizer (``valid`` False).
    theta_hat : ndarray of shape (n,)
    valid : ndarray of bool, shape (m,)
    optimizer : str
        The optimizer assumed (``"sgd"``, ``"adam"`` or ``"adamw"``).
    penalty : dict
        D and its source (``PenaltyMatrix.to_dict()``: ``factors``, ``source``, ``detail`` with the
        optimizer, the table row and the regime).
    weight_decay : dict
        The optimizer's row of the fixed-point table, the regime the prediction assumes, and the table.
    curvature : str
        ``"hessian"`` or ``"ggn"``.
    choices : dict
        What every ``"auto"`` resolved to, and why (curvature, path; θ̂'s origin).
    path : RidgePath
        The full path (its eigen view is that of D^{-1/2} C D^{-1/2}, in φ = D^{1/2}θ).
    gradient_used : bool
        Whether the first-order term g = ∇R(θ̂) was kept (θ̂ not stationary).
    """

    lambdas: np.ndarray
    thetas: np.ndarray
    theta_hat: np.ndarray
    valid: np.ndarray
    optimizer: str
    penalty: dict
    weight_decay: dict
    curvature: str
    choices: dict = field(default_factory=dict)
    path: object = None
    gradient_used: bool = False

    def to_dict(self) -> dict:
        """A JSON-ready dict (the path's eigen view left out)."""
        return {"lambdas": self.lambdas, "predicted": self.thetas, "theta_hat": self.theta_hat, "valid": self.valid,
                "optimizer": self.optimizer, "penalty": self.penalty, "weight_decay": self.weight_decay,
                "curvature_kind": self.curvature, "choices": self.choices, "gradient_used": self.gradient_used}


def predict(objective, lambdas, optimizer: str = "adamw", *, optimizer_state=None, theta_hat=None,
            curvature: str = "auto", method: str = "auto", grad_tol: float | None = None, tol: float = 1e-8,
            negative: str = "nan", seed: int = 0, progress: bool | None = None) -> WeightDecayPrediction:
    """Predict what ``optimizer``'s ``weight_decay = λ`` does to θ̂, for every λ in ``lambdas``.

    θ̃(λ) = (C + λD)⁻¹(Cθ̂ − g) with D the penalty matrix of the optimizer's fixed point (D = I for
    ``"sgd"`` and ``"adam"``, diag(√v̂ + ε) from ``optimizer_state`` for ``"adamw"``; see
    ``ridgelens.penalty.WEIGHT_DECAY_TABLE``), one path for every λ. No refit, spectrum or density:
    :func:`analyze_weight_decay` adds those.

    Parameters
    ----------
    objective : TorchObjective (or LMObjective, a Hugging Face model's), or a linear objective
    lambdas : array of shape (m,)
        The optimizer's ``weight_decay`` values (for AdamW, the λ of the path; per-group weight
        decays of the state are factors λ_g / λ_ref).
    optimizer : {"sgd", "adam", "adamw"}
    optimizer_state : dict, optional
        The optimizer's ``state_dict()`` (``ridgelens.penalty.load_optimizer_state`` reads a file);
        needed for ``"adamw"``.
    theta_hat : array, optional
        Default: the model's own weights (minimized for an objective without any).
    curvature : {"auto", "hessian", "ggn"}
        ``"auto"``: see :func:`choose_curvature` (the GGN where H is provably indefinite).
    method : {"auto", "dense", "krylov", "multishift-cg"}
        The path solver (``"auto"``: dense up to ``DENSE_MAX_PARAMS`` parameters, else one
        matrix-free Krylov run for every λ).
    grad_tol, tol, negative, seed, progress
        As for :func:`~ridgelens.pipeline.analyze` (``tol``: the Krylov path's relative residual).

    Examples
    --------
    >>> import torch, ridgelens as rl
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> X = torch.randn(64, 3, dtype=torch.float64); Y = X @ torch.ones(3, 1, dtype=torch.float64)
    >>> obj = rl.TorchObjective(torch.nn.Linear(3, 1).double(), torch.nn.functional.mse_loss, [(X, Y)])
    >>> p = rl.predict(obj, [0.1, 1.0], "sgd", theta_hat=obj.minimize().theta)
    >>> p.thetas.shape, p.optimizer, p.penalty["source"], p.curvature
    ((2, 4), 'sgd', 'optimizer', 'hessian')
    """
    from ridgelens.operators import curvature as build_curvature
    from ridgelens.pipeline._analyze import _theta_hat, first_order_term
    from ridgelens.ridge import ridge_path

    check_objective(objective, "predict()")
    lam = check_lambdas(lambdas)
    seed = check_seed(seed)
    pm = optimizer_penalty(objective, optimizer, optimizer_state)
    theta, _, _, how = _theta_hat(objective, theta_hat, None, None, {})
    gradient, _, _ = first_order_term(objective, theta, grad_tol)
    choice = choose_curvature(objective, theta, curvature, seed=seed)
    C = build_curvature(objective, theta, choice.name, **product_options(objective, choice.name))
    path = ridge_path(C, theta, lam, gradient=gradient, negative=negative, method=method, tol=tol, penalty=pm,
                      progress=progress)
    choices = {"theta_hat": how, "curvature": str(choice), "path": str(path.choice) if path.choice else path.method}
    return WeightDecayPrediction(lambdas=lam, thetas=path.thetas, theta_hat=theta, valid=path.valid,
                                 optimizer=optimizer, penalty=pm.to_dict(),
                                 weight_decay=_weight_decay_conventions(optimizer), curvature=choice.name,
                                 choices=choices, path=path, gradient_used=gradient is not None)


def analyze_weight_decay(objective, lambdas, optimizer: str = "adamw", *, optimizer_state=None,
                         curvature: str = "auto", **options):
    """:func:`predict`'s θ̃(λ) with the whole :func:`~ridgelens.pipeline.analyze` around it.

    ``objective`` is not changed: a shallow copy carries the penalty matrix. ``options`` go to
    :func:`~ridgelens.pipeline.analyze` (``method="auto"``: dense up to ``DENSE_MAX_PARAMS``
    parameters, else matrix-free; an objective's own ``product_options`` are its default
    ``curvature_options``); its refits then minimize ``R + (λ/2)θᵀDθ``, the fixed point the table
    in :mod:`ridgelens._optim_state` gives (for AdamW, with v̂ frozen). ``curvature="auto"`` is
    :func:`choose_curvature` at the weights given (``choices["curvature"]`` says what it became and why). The
    results' conventions carry the optimizer's table row and the regime the prediction assumes.
    """
    from ridgelens.pipeline._analyze import analyze

    check_objective(objective, "analyze_weight_decay()")
    obj = _with_optimizer_penalty(objective, optimizer, optimizer_state)
    choice = None
    if curvature == "auto":  # at the weights given (before any polishing); a convex objective needs none
        start = options.get("theta_hat")
        choice = choose_curvature(objective, getattr(objective, "theta0", None) if start is None else start,
                                  seed=options.get("seed", 0))
        curvature = choice.name
    options.setdefault("curvature_options", product_options(objective, curvature))
    res = analyze(obj, lambdas, curvature=curvature, **options)
    conv = {**res.conventions, "weight_decay": _weight_decay_conventions(optimizer)}
    choices = res.choices if choice is None else {**res.choices, "curvature": str(choice)}
    return replace(res, conventions=conv, choices=choices)


def _with_optimizer_penalty(objective, optimizer: str, optimizer_state):
    """A shallow copy of ``objective`` penalized with the D of ``optimizer``'s fixed point (the caller's is untouched)."""
    obj = copy.copy(objective)
    obj.set_penalty(optimizer_penalty(objective, optimizer, optimizer_state))
    return obj


def optimizer_fixed_point(objective, lam: float, optimizer: str = "adamw", *, optimizer_state=None, x0=None,
                          tol: float | None = None, max_iter: int = 100, **options):
    """The exact fixed point of ``optimizer`` at ``weight_decay = lam``: a minimizer of R + (λ/2)θᵀDθ.

    D is the one :func:`predict` uses (I for ``"sgd"`` and ``"adam"``; diag(√v̂ + ε) from
    ``optimizer_state`` for ``"adamw"``, v̂ frozen), so this is the point the prediction θ̃(λ)
    approximates by a quadratic model of R, found without that model: Newton-CG in a trust region
    with exact Hessian-vector products (``objective.minimize``, ``method="trust-ncg"`` for a torch
    model; ``options`` go to it) from ``x0`` (θ̃(λ) is a good start). For a non-convex R it is the
    minimizer nearest ``x0`` in the method's sense, not necessarily the global one. At most
    ``max_iter`` iterations: the :class:`~ridgelens.objectives.MinimizeResult` says whether
    ‖∇R(θ) + λDθ‖ ≤ ``tol`` was reached (``converged``, ``gradient_norm``, ``message``).
    ``objective`` is not changed. Where R ignores the joint scale of some parameters (a pre-LN
    transformer's residual stream, which feeds only LayerNorms), the decay with v̂ frozen drives them
    towards LayerNorm's ε and the iteration crawls (see ``docs/weight_decay.md``).
    """
    check_objective(objective, "optimizer_fixed_point()")
    lam = check_lambda(lam, "lam")
    obj = _with_optimizer_penalty(objective, optimizer, optimizer_state)
    return obj.minimize(lam, x0=x0, tol=tol, max_iter=max_iter, **options)
