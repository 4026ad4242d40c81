"""An optimizer's weight decay, predicted (``analyze_weight_decay``) and checked by running it (``optimizer_refit``).

The prediction is :func:`~ridgelens.pipeline.analyze` with the penalty matrix of the
optimizer's fixed point (:mod:`ridgelens._optim_state`: D = I for SGD and Adam, D = diag(√v̂ + ε)
for AdamW with v̂ frozen at the saved state). The check runs the optimizer itself from θ̂ with
that weight decay, minibatch as people train, and averages the last iterates.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from ridgelens._optim_state import OPTIMIZERS, REGIME, WEIGHT_DECAY_TABLE, optimizer_penalty
from ridgelens.errors import OptimizerStateError, RidgelensError


def analyze_weight_decay(objective, lambdas, optimizer: str = "adamw", *, optimizer_state=None, **options):
    """Predict what ``optimizer``'s ``weight_decay = λ`` does to θ̂, for every λ in ``lambdas``.

    ``objective`` is not changed: a shallow copy carries the penalty matrix. ``options`` go to
    :func:`~ridgelens.pipeline.analyze`; its refits then minimize ``R + (λ/2)θᵀDθ``, the fixed
    point the table in :mod:`ridgelens._optim_state` gives (for AdamW, with v̂ frozen). The
    results' conventions carry that table's row and the regime the prediction assumes.
    """
    from ridgelens.pipeline._analyze import analyze

    obj = copy.copy(objective)
    obj.set_penalty(optimizer_penalty(objective, optimizer, optimizer_state))
    res = analyze(obj, lambdas, **options)
    conv = dict(res.conventions)
    conv["weight_decay"] = {"optimizer": optimizer, **WEIGHT_DECAY_TABLE[optimizer],
                            "regime": REGIME if optimizer == "adamw" else "any (the L2 fixed point)",
                            "table": WEIGHT_DECAY_TABLE}
    return replace(res, conventions=conv)


def _make(optimizer: str, groups, lam: float, lr: float, momentum: float, betas, eps):
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=lam)
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=betas, eps=eps, weight_decay=lam)


def optimizer_refit(objective, theta_hat, lam: float, optimizer: str = "adamw", *, optimizer_state=None,
                    lr: float = 1e-3, batch_size: int = 64, epochs: int = 100, average_last: float = 0.5,
                    momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8, seed: int = 0) -> dict:
    """Run ``torch.optim`` itself from θ̂ with ``weight_decay = lam`` and return where it settles.

    Minibatches of ``batch_size`` drawn without replacement each epoch (seeded), the mean loss of
    the objective's ``loss_fn``; parameters the objective leaves unpenalized get weight decay 0
    (their own group). With ``optimizer_state`` (AdamW/Adam), the optimizer resumes from it
    (moments and step), so v̂ starts where the prediction froze it. θ* is the average of the
    iterates over the last ``average_last`` share of the steps.

    Returns ``{"theta": θ*, "final_loss": R(θ*), "steps": …, "seconds": …, "state": the optimizer's
    state_dict at the end, "epoch_loss": the mean minibatch loss of each epoch}``. With ``lam = 0``
    this is also how to get a state "trained at θ̂" for the AdamW prediction.
    """
    import time

    if optimizer not in OPTIMIZERS:
        raise OptimizerStateError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (0 < average_last <= 1) or epochs < 1 or batch_size < 1 or not lr > 0:
        raise RidgelensError("optimizer_refit needs lr > 0, epochs >= 1, batch_size >= 1 and 0 < average_last <= 1")
    model = copy.deepcopy(objective.model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    flat = torch.as_tensor(np.asarray(theta_hat, dtype=np.float64))
    with torch.no_grad():
        for (_, p), chunk in zip(named, torch.split(flat, [p.numel() for _, p in named]), strict=True):
            p.copy_(chunk.view_as(p))
    pen = np.asarray(objective.penalized, dtype=bool)
    sizes = np.cumsum([0] + [p.numel() for _, p in named])
    free = {n for (n, _), a, b in zip(named, sizes[:-1], sizes[1:], strict=True) if not pen[a:b].any()}
    by_name = dict(named)
    if optimizer_state is not None and all("param_names" in g for g in optimizer_state.get("param_groups", [])):
        layout = [list(g["param_names"]) for g in optimizer_state["param_groups"]]  # the state's own groups
    elif optimizer_state is not None:
        layout = [[n for n, _ in named]]
    else:
        layout = [[n for n, _ in named if n not in free], [n for n, _ in named if n in free]]
    layout = [names for names in layout if names]
    try:
        groups = [{"params": [by_name[n] for n in names], "param_names": names} for names in layout]
    except KeyError as exc:
        raise OptimizerStateError(f"the optimizer state names parameter {exc.args[0]!r}, which the model "
                                  "does not have: the state of another model") from None
    opt = _make(optimizer, groups, lam, lr, momentum, betas, eps)
    saved_wd = [0.0] * len(groups)
    if optimizer_state is not None:
        saved_wd = [float(g.get("weight_decay", 0.0)) for g in optimizer_state["param_groups"]]
        try:  # a deep copy: torch loads same-dtype tensors without copying, and stepping would change the caller's
            opt.load_state_dict(copy.deepcopy(optimizer_state))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise OptimizerStateError(f"the optimizer state does not fit this model's {optimizer}: {exc}") from None
    ref = max(saved_wd)
    for g, wd in zip(opt.param_groups, saved_wd, strict=True):  # this run's lr; λ times the group's ratio
        g["lr"] = lr
        g["weight_decay"] = 0.0 if set(g["param_names"]) <= free else lam * (wd / ref if ref > 0 else 1.0)
    xs, ys = zip(*objective.prepared_batches(), strict=True)
    X, Y = torch.cat(xs), torch.cat(ys)
    n = len(Y)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    start_avg = total - max(1, round(average_last * total))
    avg, k, step, epoch_loss = torch.zeros_like(flat), 0, 0, []
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = objective.loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(idx) / n
            step += 1
            if step > start_avg:
                with torch.no_grad():
                    avg += torch.cat([p.detach().reshape(-1) for _, p in named]).to(avg.dtype)
                k += 1
        epoch_loss.append(running)
    seconds = time.perf_counter() - t0
    theta = (avg / k).numpy()
    return {"theta": theta, "final_loss": objective.value(theta), "steps": step, "seconds": seconds,
            "state": copy.deepcopy(opt.state_dict()), "epoch_loss": epoch_loss}
