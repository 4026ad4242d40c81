r"""What an optimizer's ``weight_decay`` does at its fixed point, and D from a saved ``torch.optim`` state.

=============================  ===================================================  ==============================
optimizer (torch.optim)        update with ``weight_decay = λ`` (g a minibatch           fixed point (E[g] = ∇R(θ))
                               gradient of the mean loss)
=============================  ===================================================  ==============================
SGD                            θ ← θ − lr·(g + λθ)                                   ∇R + λθ = 0: D = I (plain L2)
SGD, momentum μ (± Nesterov)   b ← μb + (1−τ)(g + λθ);  θ ← θ − lr·b                 ∇R + λθ = 0: D = I (plain L2)
Adam (L2 in the gradient)      g ← g + λθ, then Adam's step                          ∇R + λθ = 0: D = I (plain L2)
AdamW (decoupled)              θ ← (1 − lr·λ)θ;  θ ← θ − lr·m̂/(√v̂ + ε),             ∇R + λ·(√v̂ + ε)∘θ = 0:
                               m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)                          D = diag(√v̂ + ε), v̂ frozen
=============================  ===================================================  ==============================

AdamW, exactly as ``torch.optim.AdamW`` (``Adam(decoupled_weight_decay=True)``) steps: the
decay multiplies θ by ``1 − lr·λ`` before the Adam step, so a fixed point θ with m̂ = ∇R(θ) has
``lr·λ·θ = −lr·∇R(θ)/(√v̂ + ε)``: the learning rate cancels, and both bias corrections are
inside (m̂ → ∇R, and v̂ = ``exp_avg_sq / (1 − β₂^step)`` from the saved state). With amsgrad,
``max_exp_avg_sq`` takes v's place. That fixed point minimizes ``R(θ) + (λ/2)θᵀDθ`` only while
v̂ is held fixed; ridgelens predicts ``θ̃ = (H + λD)⁻¹(Hθ̂ − g)`` with the v̂ of the state, i.e. it
assumes the **minibatch regime** in which v̂ is dominated by gradient noise and stays put
while θ moves. With full batches v̂ → ∇R(θ)² → 0 at a stationary point, D is no longer fixed,
and AdamW is known to converge instead to a KKT point of the loss constrained to
``‖θ‖∞ ≤ 1/λ`` (Xie & Li, ICML 2024): the prediction does not cover that regime.

Per-group ``weight_decay`` (``param_groups``) makes the factors ``λ_g / λ_ref``, ``λ_ref`` the
largest group λ (the λ of the path); a state trained with every group at 0 gives factor 1.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ridgelens._penalty import PenaltyMatrix, check_factors
from ridgelens.errors import OptimizerStateError

OPTIMIZERS = ("sgd", "adam", "adamw")

#: The table above, one row per optimizer, as written into results.json.
WEIGHT_DECAY_TABLE = {
    "sgd": {"update": "θ ← θ − lr·(g + λθ) (momentum μ: b ← μb + (1−dampening)(g + λθ), θ ← θ − lr·b)",
            "fixed_point": "∇R(θ) + λθ = 0", "D": "I (plain L2)"},
    "adam": {"update": "g ← g + λθ, then θ ← θ − lr·m̂/(√v̂ + ε)", "fixed_point": "∇R(θ) + λθ = 0",
             "D": "I (plain L2)"},
    "adamw": {"update": "θ ← (1 − lr·λ)θ, then θ ← θ − lr·m̂/(√v̂ + ε); m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)",
              "fixed_point": "∇R(θ) + λ·(√v̂ + ε)∘θ = 0 with v̂ held fixed (lr cancels)",
              "D": "diag(√v̂ + ε), v̂ = exp_avg_sq/(1 − β₂^step) of the saved state (max_exp_avg_sq with amsgrad)"},
}

REGIME = ("minibatch: v̂ held fixed at the saved state's value (gradient noise dominates it); with full "
          "batches AdamW approaches a point of the loss constrained to ‖θ‖∞ ≤ 1/λ instead (Xie & Li, ICML 2024), "
          "which this prediction does not model")


def weight_decay_record(optimizer: str) -> dict:
    """What results record of the optimizer assumed: its table row and the regime the prediction assumes."""
    return {"optimizer": optimizer, **WEIGHT_DECAY_TABLE[optimizer],
            "regime": REGIME if optimizer == "adamw" else "any (the L2 fixed point)"}


def load_optimizer_state(path, blob: bytes | None = None) -> dict:
    """A ``torch.optim`` ``state_dict`` saved with ``torch.save``, loaded with ``weights_only=True``.

    ``blob``: the file's bytes when already read (``path`` then only names it in messages).
    """
    import torch

    p = Path(path)
    if blob is None:
        try:
            blob = p.read_bytes()
        except OSError as exc:
            raise OptimizerStateError(f"optimizer state {p}: {exc.strerror or exc}") from None
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception:  # torch suggests weights_only=False, which is never done here
        raise OptimizerStateError(f"optimizer state {p} is not a state_dict saved with torch.save "
                                  "(it cannot be loaded with weights_only=True)") from None
    if not (isinstance(state, dict) and "state" in state and "param_groups" in state):
        raise OptimizerStateError(f"optimizer state {p} is not an optimizer's state_dict (no 'state' and "
                                  "'param_groups'; a model's state_dict?)")
    return state


def optimizer_kind(state: dict) -> str:
    """"sgd", "adam" or "adamw" from a state_dict's ``param_groups`` (OptimizerStateError if mixed or unknown)."""
    _check_layout(state)
    kinds = {_kind(g) for g in state["param_groups"]}
    if len(kinds) != 1 or "unknown" in kinds:
        raise OptimizerStateError(f"the optimizer state is not one of {OPTIMIZERS} (its groups look like "
                                  f"{', '.join(sorted(kinds)) or 'nothing'})")
    return kinds.pop()


def _kind(group: dict) -> str:
    if "betas" in group:
        return "adamw" if group.get("decoupled_weight_decay", False) else "adam"
    if "momentum" in group:
        return "sgd"
    return "unknown"


def _check_layout(state: dict) -> None:
    """Refuse a ``state`` not laid out as ``Optimizer.state_dict()``.

    That is: a dict of per-parameter dicts, and a non-empty list of param groups, each a dict with a list
    of ``params`` (and ``param_names``, if any, as long).
    """
    groups = state["param_groups"]
    bad = (not isinstance(state["state"], dict) or not all(isinstance(v, dict) for v in state["state"].values())
           or not isinstance(groups, list) or not groups)
    for g in groups if not bad else ():
        names = g.get("param_names") if isinstance(g, dict) else None
        bad = bad or not isinstance(g, dict) or not isinstance(g.get("params"), list) or (
            names is not None and (not isinstance(names, list) or len(names) != len(g["params"])))
    if bad:
        raise OptimizerStateError("optimizer_state is not laid out as an optimizer's state_dict(): 'state' must map "
                                  "parameter ids to dicts, 'param_groups' be a non-empty list of dicts with a list "
                                  "of 'params' (and as many 'param_names')")


def _setting(group: dict, key: str, default=None, upper: float = np.inf) -> float:
    """A param group's number (``betas``: β₂), finite, >= 0 and below ``upper``; else OptimizerStateError."""
    raw = group.get(key, default)
    try:
        v = float(raw[1] if key == "betas" else raw)
    except (TypeError, ValueError, IndexError, KeyError):
        v = np.nan
    if not 0 <= v < upper:
        raise OptimizerStateError(f"the optimizer state's param group has {key} = {raw!r}: it must be a finite "
                                  f"number >= 0{f' and < {upper:g}' if np.isfinite(upper) else ''}")
    return v


def _params_in_order(objective, state: dict):
    """The state's parameter ids, with their group, matched to the objective's parameter tensors."""
    names, sizes = objective.param_blocks()
    shapes = dict(objective.model.named_parameters())
    entries = []  # (id, group) in the optimizer's order
    for group in state["param_groups"]:
        gnames = group.get("param_names")
        for j, pid in enumerate(group["params"]):
            entries.append((pid, group, None if gnames is None else gnames[j]))
    if len(entries) != len(names):
        raise OptimizerStateError(f"the optimizer state holds {len(entries)} parameters but the model has "
                                  f"{len(names)} ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): "
                                  "the state of another model")
    if all(e[2] is not None for e in entries):  # saved with named parameters: match by name
        by_name = {e[2]: e for e in entries}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise OptimizerStateError(f"the optimizer state has no entry for {', '.join(missing[:5])}; it names "
                                      f"{', '.join(list(by_name)[:8])}: the state of another model")
        entries = [by_name[n] for n in names]
    else:
        _check_order(names, shapes, entries, state)
    return names, sizes, shapes, entries


def _check_order(names, shapes, entries, state: dict) -> None:
    """Refuse a state matched by position whose factors could land on the wrong parameters.

    Without ``param_names`` the k-th entry (in param-group order) is taken for the k-th parameter of
    ``named_parameters()``. Two groups (weights with decay, biases without: the usual recipe) list
    them in another order. The moments (``exp_avg``, ``momentum_buffer``, …) have their parameter's
    shape, so a moment of another shape refuses the state. Among parameters of one shape, order
    matters only if the groups give them different decays: that cannot be checked, so it is refused.
    """
    fix = ("build the optimizer from model.named_parameters() (its state_dict() then names them) or list its "
           "param groups in model.named_parameters() order")
    checked = 0
    for k, ((pid, _, _), name) in enumerate(zip(entries, names, strict=True)):
        moments = [(key, t) for key, t in (state["state"].get(pid) or {}).items()
                   if key in _MOMENTS and hasattr(t, "shape")]
        for key, t in moments:
            if tuple(t.shape) != tuple(shapes[name].shape):
                raise OptimizerStateError(
                    f"the optimizer state's {key} of entry {k} (in param-group order) has shape {tuple(t.shape)}, "
                    f"but parameter {k} of the model, {name}, has shape {tuple(shapes[name].shape)}: the state "
                    f"lists its parameters in another order (param groups?) or belongs to another model; {fix}")
        checked += bool(moments)
    by_shape = {}
    for (_, group, _), name in zip(entries, names, strict=True):
        by_shape.setdefault(tuple(shapes[name].shape), set()).add(_setting(group, "weight_decay", 0.0))
    decays = set().union(*by_shape.values())
    if checked == len(entries):  # only a swap among parameters of one shape went unseen: harmless at one decay
        mixed = next((shape for shape, d in by_shape.items() if len(d) > 1), None)
        ambiguous, which = mixed is not None, f" among parameters of shape {mixed}"
    else:  # some entry unchecked: any two groups of different decays may be swapped
        ambiguous, which = len(decays) > 1, ""
    if ambiguous:
        raise OptimizerStateError(f"the optimizer's param groups have different weight_decay {sorted(decays)}{which} "
                                  "and its state names no parameter, so which parameter is in which group cannot be "
                                  f"told; {fix}")


#: Per-parameter state of torch's optimizers that has its parameter's shape.
_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "sum", "square_avg", "acc_delta",
            "grad_avg", "ax", "prev")


def optimizer_penalty(objective, optimizer: str, state: dict | None = None) -> PenaltyMatrix:
    """D of the fixed point of ``optimizer``'s weight decay (see the module table).

    Parameters
    ----------
    objective : TorchObjective
        The model the state belongs to (its ``named_parameters()`` order, unless the state names them).
    optimizer : {"sgd", "adam", "adamw"}
    state : dict, optional
        The optimizer's ``state_dict()`` (:func:`load_optimizer_state` reads a file). Needed for
        "adamw" (its ``exp_avg_sq``); for "sgd"/"adam" it gives the per-group ``weight_decay``
        ratios only.

    Returns the factors (times the objective's 0/1 mask, so ``unpenalized`` parameters stay free)
    with ``detail`` saying the optimizer, the regime and the table row.
    """
    if optimizer not in OPTIMIZERS:
        raise OptimizerStateError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n = objective.n_params
    detail = {"optimizer": optimizer, **WEIGHT_DECAY_TABLE[optimizer]}
    if state is None:
        if optimizer == "adamw":
            raise OptimizerStateError("optimizer='adamw' needs the optimizer's state (its exp_avg_sq): D = "
                                      "diag(√v̂ + ε) comes from it; pass optimizer_state (CLI --optimizer-state)")
        return PenaltyMatrix(check_factors(np.asarray(objective.penalized, dtype=np.float64), n), "optimizer",
                             detail)
    if not (isinstance(state, dict) and "state" in state and "param_groups" in state):
        raise OptimizerStateError("optimizer_state must be an optimizer's state_dict() ('state' and 'param_groups')")
    _check_layout(state)
    kinds = {_kind(g) for g in state["param_groups"]}
    if kinds != {optimizer}:
        got = ", ".join(sorted(kinds))
        hint = (" (Adam with weight_decay adds λθ to the gradient: its fixed point is plain L2, optimizer='adam')"
                if optimizer == "adamw" and kinds == {"adam"} else "")
        raise OptimizerStateError(f"the optimizer state is of {got}, not {optimizer}{hint}")
    if not hasattr(objective, "model"):
        raise OptimizerStateError(f"an optimizer state belongs to a torch model's parameters; "
                                  f"{type(objective).__name__} has none (optimizer='sgd' or 'adam' needs no state)")
    names, sizes, shapes, entries = _params_in_order(objective, state)
    wds = [_setting(g, "weight_decay", 0.0) for _, g, _ in entries]
    ref = max(wds)
    group_factor = [w / ref if ref > 0 else 1.0 for w in wds]
    blocks = []
    for (pid, group, _), name, size, gf in zip(entries, names, sizes, group_factor, strict=True):
        want = tuple(shapes[name].shape)
        if optimizer != "adamw":
            blocks.append(np.full(size, gf))
            continue
        st = state["state"].get(pid)
        key = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
        if st is None or key not in st:
            raise OptimizerStateError(f"the optimizer state has no {key} for {name} (entry {pid}): was the "
                                      "optimizer ever stepped? AdamW's D = diag(√v̂ + ε) needs it")
        v = st[key]
        if not hasattr(v, "detach"):  # a torch tensor
            raise OptimizerStateError(f"the optimizer state's {key} for {name} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != want:
            raise OptimizerStateError(f"the optimizer state's {key} for {name} has shape {tuple(v.shape)} but "
                                      f"the model's {name} has shape {want}: the state of another model")
        try:
            step = float(st.get("step", 0))
        except (TypeError, ValueError):
            step = np.nan
        if not step > 0:
            raise OptimizerStateError(f"the optimizer state of {name} has step {step:g}: nothing accumulated")
        beta2, eps = _setting(group, "betas", upper=1.0), _setting(group, "eps")
        vhat = v.detach().double().cpu().numpy().ravel() / (1.0 - beta2 ** step)
        if not (np.all(np.isfinite(vhat)) and np.all(vhat >= 0)):
            j = int(np.flatnonzero(~(np.isfinite(vhat) & (vhat >= 0)))[0])
            raise OptimizerStateError(f"the optimizer state's {key} for {name} has {float(v.flatten()[j])} at flat "
                                      f"index {j}: second moments must be finite and >= 0 (a diverged run?)")
        blocks.append(gf * (np.sqrt(vhat) + eps))
    d = np.concatenate(blocks) * np.asarray(objective.penalized, dtype=np.float64)
    detail.update(weight_decays=sorted(set(wds)), reference_weight_decay=ref,
                  regime=REGIME if optimizer == "adamw" else "any (the fixed point is the L2 one)")
    return PenaltyMatrix(check_factors(d, n, f"{optimizer} penalty factors"), "optimizer-state", detail)
