"""``--penalty``, ``--penalty-factors``, ``--optimizer`` and ``--optimizer-state``: the penalty matrix from the command line.

Also ``--curvature``'s default for torch models, ``auto`` (:func:`curvature_choice`).
"""

from __future__ import annotations

import re

import numpy as np

from ridgelens._optim_state import (
    load_optimizer_state,
    optimizer_kind,
    optimizer_penalty,
    weight_decay_record,
)
from ridgelens.cli._args import penalty_pattern, plain  # noqa: F401 (penalty_pattern re-exported)
from ridgelens.data import read_input
from ridgelens.errors import PenaltyError, RidgelensError


def read_penalty_factors(path: str) -> np.ndarray:
    """Numbers separated by commas, spaces or new lines (``#`` starts a comment), one per feature or parameter."""
    blob = read_input(path, "--penalty-factors file")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise PenaltyError(f"--penalty-factors {path} is not a text file (UTF-8)") from None
    tokens = [t for line in text.splitlines() for t in re.split(r"[,\s]+", line.split("#")[0]) if t]
    values = []
    for i, t in enumerate(tokens):
        try:
            values.append(plain(t))
        except ValueError as exc:
            raise PenaltyError(f"--penalty-factors {path}: entry {i} ({t!r}) is {exc}") from None
    if not values:
        raise PenaltyError(f"--penalty-factors {path} holds no numbers")
    return np.array(values)


def apply_linear(args, obj) -> dict:
    """Set ``--penalty-factors`` on a linear objective; returns what results.json records of it."""
    if args.penalty_factors is None:
        return {}
    d = read_penalty_factors(args.penalty_factors)
    n_feat = obj.n_params - (1 if obj.fit_intercept else 0)
    if d.size not in (n_feat, obj.n_params):
        want = f"{n_feat} (one per feature)" + (f" or {obj.n_params} (features, then the intercept)"
                                                 if obj.fit_intercept else "")
        raise PenaltyError(f"--penalty-factors {args.penalty_factors} holds {d.size} factors; this model needs {want}")
    try:
        pm = obj.set_penalty(d)
    except PenaltyError as exc:
        raise PenaltyError(f"--penalty-factors {args.penalty_factors}: {exc}") from None
    return {"penalty_factors_file": args.penalty_factors, "penalty_source": pm.source}


def apply_mlp(args, obj) -> dict:
    """Set ``--penalty`` patterns and the ``--optimizer``'s D on a torch objective; returns the results' record."""
    extra = {}
    base = None
    if args.penalty:
        patterns, said = {}, {}
        given = [(u, 0.0, f"--unpenalized {u!r}") for u in args.unpenalized]
        given += [(p, f, f"--penalty '{p}={f:g}'") for p, f in args.penalty]
        for pattern, factor, words in given:  # first match wins; the same pattern twice must agree
            if pattern in patterns and patterns[pattern] != factor:
                raise PenaltyError(f"{words} contradicts {said[pattern]}: the same pattern with two factors; "
                                   "give it once")
            patterns.setdefault(pattern, factor)
            said.setdefault(pattern, words)
        try:
            base = obj.set_penalty(patterns)
        except PenaltyError as exc:
            raise PenaltyError(f"--penalty: {exc}") from None
        extra["penalty_patterns"] = dict(args.penalty)
    state = None
    if args.optimizer_state is not None:
        if args.weights is None:
            raise RidgelensError("--optimizer-state belongs to the weights it trained: pass them with --weights")
        state = load_optimizer_state(args.optimizer_state, read_input(args.optimizer_state, "--optimizer-state file"))
        if args.optimizer is None:
            args.optimizer = optimizer_kind(state)
    if args.optimizer is not None:
        pm = optimizer_penalty(obj, args.optimizer, state)
        obj.set_penalty(pm if base is None else base.times(pm))
        extra["weight_decay"] = {**weight_decay_record(args.optimizer), "optimizer_state": args.optimizer_state}
    return extra


def curvature_choice(args, objective, theta_hat) -> tuple[str, dict]:
    """``--curvature`` resolved: as given; if not given, ``auto`` (as :func:`ridgelens.predict`).

    The default is chosen by measurement (README, "Which curvature to prefer"): where H is
    indefinite the Gauss–Newton matrix predicted retraining at least as well on the demo LM and
    the digits MLP, and it has a prediction at every λ; where H ⪰ 0 it is the quadratic model's own.

    ``auto`` is the decision :func:`ridgelens.predict` makes, ``select_solver("curvature")``
    through :func:`~ridgelens.pipeline._curvature.choose_curvature`: the Hessian for a convex
    loss; else a short Lanczos probe of H at ``theta_hat`` (the weights given, before any
    polishing), and the Gauss–Newton matrix where it finds a negative Ritz value. Returns the
    curvature's name and, for ``auto``, ``{"curvature": what it became and why}`` for the
    results' ``choices``, else ``{}``. It prints nothing: the caller says the choice
    (:func:`say_curvature`) once the analysis has run, so that bad input stays one line.
    """
    from ridgelens.pipeline._curvature import choose_curvature

    requested = args.curvature or "auto"
    if requested != "auto":
        return requested, {}
    choice = choose_curvature(objective, theta_hat, requested, seed=getattr(args, "seed", None) or 0)
    return choice.name, {"curvature": str(choice), "said": f"curvature (auto): {choice.name}, {choice.reason}"}


def say_curvature(auto: dict) -> dict:
    """Print the line of an ``auto`` choice from :func:`curvature_choice`; its ``choices`` entry, for the results."""
    if not auto:
        return {}
    print(auto["said"])
    return {"curvature": auto["curvature"]}
