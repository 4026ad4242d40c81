"""An optimizer's weight decay, checked by running it: ``optimizer_refit``.

``torch.optim`` itself (SGD, Adam, AdamW) from θ̂ with ``weight_decay = λ``, minibatch as people
train, on the objective's own per-batch loss; θ* is the average of the last iterates. This is
what :func:`~ridgelens.pipeline._weight_decay.predict`'s θ̃(λ) is checked against.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ridgelens._optim_state import OPTIMIZERS
from ridgelens._validation import check_lambda, check_seed
from ridgelens.errors import OptimizerStateError, RidgelensError

#: Learning-rate schedules of :func:`optimizer_refit`.
SCHEDULES = ("constant", "cosine")


def _make(optimizer: str, groups, lam: float, lr: float, momentum: float, betas, eps):
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=lam)
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=betas, eps=eps, weight_decay=lam)


def optimizer_refit(objective, theta_hat, lam: float, optimizer: str = "adamw", *, optimizer_state=None,
                    lr: float = 1e-3, batch_size: int = 64, epochs: int = 100, average_last: float = 0.5,
                    momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8, seed: int = 0,
                    schedule: str = "constant") -> dict:
    """Run ``torch.optim`` itself from θ̂ with ``weight_decay = lam`` and return where it settles.

    Minibatches of ``batch_size`` samples drawn without replacement each epoch (seeded); each
    step's loss is the objective's own per-batch loss (``objective.batch_loss``, the one its
    curvature products are built from), so any :class:`~ridgelens.TorchObjective`,
    :class:`~ridgelens.objectives.lm.LMObjective` or Hugging Face model (an output object, or a
    loss only) is refit as it is analyzed; the caller's model is not changed. Parameters the
    objective leaves unpenalized get weight decay 0 (their own group). With ``optimizer_state``
    (AdamW/Adam), the optimizer resumes from it (moments and step), so v̂ starts where the
    prediction froze it. θ* is the average of the iterates over the last ``average_last`` share
    of the steps. ``schedule``: ``"constant"`` learning rate, or ``"cosine"`` (annealed from
    ``lr`` to 0 over the run, so that the iterates settle rather than hover at the noise level).

    Returns ``{"theta": θ*, "final_loss": R(θ*), "steps": …, "seconds": …, "state": the optimizer's
    state_dict at the end, "epoch_loss": the mean minibatch loss of each epoch}``. With ``lam = 0``
    this is also how to get a state "trained at θ̂" for the AdamW prediction.
    """
    import time

    if optimizer not in OPTIMIZERS:
        raise OptimizerStateError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (0 < average_last <= 1) or epochs < 1 or batch_size < 1 or not lr > 0:
        raise RidgelensError("optimizer_refit needs lr > 0, epochs >= 1, batch_size >= 1 and 0 < average_last <= 1")
    if schedule not in SCHEDULES:
        raise RidgelensError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    seed = check_seed(seed)
    lam = check_lambda(lam, "lam")
    names, sizes = objective.param_blocks()
    shapes = dict(objective.model.named_parameters())
    flat = objective.flat_tensor(theta_hat)
    leaves = [c.view(shapes[n].shape).clone().requires_grad_(True)
              for n, c in zip(names, torch.split(flat, sizes), strict=True)]
    pen = np.asarray(objective.penalized, dtype=bool)
    ends = np.cumsum([0, *sizes])
    free = {n for n, a, b in zip(names, ends[:-1], ends[1:], strict=True) if not pen[a:b].any()}
    by_name = dict(zip(names, leaves, strict=True))
    if optimizer_state is not None and all("param_names" in g for g in optimizer_state.get("param_groups", [])):
        layout = [list(g["param_names"]) for g in optimizer_state["param_groups"]]  # the state's own groups
    elif optimizer_state is not None:
        layout = [names]
    else:
        layout = [[n for n in names if n not in free], [n for n in names if n in free]]
    layout = [group for group in layout if group]
    try:
        groups = [{"params": [by_name[n] for n in group], "param_names": group} for group in layout]
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
    total = epochs * -(-n // batch_size)
    anneal = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if schedule == "cosine" else None
    start_avg = total - max(1, round(average_last * total))
    avg, k, step, epoch_loss = torch.zeros_like(flat), 0, 0, []
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(X.device)
        running = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = objective.batch_loss(torch.cat([p.reshape(-1) for p in leaves]), X[idx], Y[idx])
            loss.backward()
            opt.step()
            if anneal is not None:
                anneal.step()
            running += float(loss.detach()) * len(idx) / n
            step += 1
            if step > start_avg:
                with torch.no_grad():
                    avg += torch.cat([p.detach().reshape(-1) for p in leaves])
                k += 1
        epoch_loss.append(running)
    seconds = time.perf_counter() - t0
    theta = (avg / k).to(device="cpu", dtype=torch.float64).numpy()
    return {"theta": theta, "final_loss": objective.value(theta), "steps": step, "seconds": seconds,
            "state": copy.deepcopy(opt.state_dict()), "epoch_loss": epoch_loss}
