"""Cheap checks, run once when a torch objective is built, that R is what the analysis assumes.

The quadratic model needs R to be a fixed function of θ (every pass over the data gives the
same value and the same products) and a *mean* loss (so that λ means what the conventions
say). Neither can be seen by scanning modules: ``F.dropout(x, training=self.training)``
inside ``forward``, a shuffling ``DataLoader`` that drops its last partial batch, a
nondeterministic kernel or ``MSELoss(reduction='sum')`` all look like any other objective.
So they are measured, on the first batch only:

- the data: a ``DataLoader`` whose passes see different samples (a random order with
  ``drop_last=True`` and a partial last batch, or a sampler that draws with replacement);
- randomness and the reduction, together: the loss and gradient of the batch, then of its two
  halves (two evaluations of one batch in all). A deterministic mean-reduced loss gives the
  halves' sample-weighted mean back to rounding, a sum-reduced one their sum; anything else
  is evaluated once more on the whole batch, where a random objective does not repeat itself
  (dropout inside ``forward``, nondeterministic kernels).

The caller's random-number state is restored afterwards.
"""

from __future__ import annotations

import math

import torch

from ridgelens.errors import DataError, LossReductionError, RandomObjectiveError, RidgelensError


def probe_objective(obj) -> dict:
    """Run the three checks on ``obj`` (a TorchObjective) at its θ₀; raise on a failure.

    Two evaluations of batch 0 (loss and gradient): the whole batch, then its two halves. A
    deterministic mean-reduced loss gives back the whole batch's loss and gradient as the halves'
    sample-weighted mean (to rounding); a sum-reduced one as their sum. When neither holds (a
    random objective, or a loss that couples its samples), a third evaluation of the whole batch
    tells which: a random objective does not repeat itself.

    Returns what was measured (``{"value", "evaluations", "reduction": "mean" | "undecided"}``).
    """
    _check_sampler(obj.batches)
    x, y = next(iter(obj.prepared_batches(0, 1)))
    flat = obj.flat_tensor(obj.theta0)
    eps = torch.finfo(obj.dtype).eps if obj.dtype.is_floating_point else 2.0**-52
    devices = [obj.device] if obj.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the user's random stream is left as it was
        try:
            v1, g1 = _value_and_grad(obj, flat, x, y)
        except RidgelensError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(f"the model and loss_fn fail on batch 0 (inputs {_describe(x)}, targets "
                            f"{_describe(y)}): {first}") from None
        if not (math.isfinite(v1) and bool(torch.isfinite(g1).all())):
            return {"value": v1, "evaluations": 1, "reduction": "undecided"}  # the data checks say where
        halves = _halves(obj, flat, x, y)
        if halves is not None:
            (va, ga), (vb, gb), h, n = halves
            scale_v, scale_g = max(abs(v1), abs(va) + abs(vb)), max(float(g1.norm()), float(ga.norm() + gb.norm()))

            def close(v, g):  # the halves are summed in another order: equal to a few roundings
                return abs(v1 - v) <= 1e3 * eps * scale_v and float((g1 - g).norm()) <= 1e3 * eps * scale_g

            if close((h * va + (n - h) * vb) / n, (h * ga + (n - h) * gb) / n):
                return {"value": v1, "evaluations": 2, "reduction": "mean"}
            if close(va + vb, ga + gb):
                raise LossReductionError(
                    f"loss_fn looks sum-reduced: on batch 0 ({n} rows) it gave {v1:.6g}, the sum of its halves' "
                    f"losses ({va:.6g} + {vb:.6g}), not their weighted mean ({(h * va + (n - h) * vb) / n:.6g}), and "
                    "so did the gradients. R must be the mean loss over the samples (a sum would scale R, H and "
                    "every λ by the batch size): use reduction='mean' (e.g. nn.MSELoss()), or divide the loss "
                    "by len(targets)")
        v2, g2 = _value_and_grad(obj, flat, x, y)
        dv, dg = abs(v1 - v2), float((g1 - g2).norm())
        scale_g = max(float(g1.norm()), float(g2.norm()))
        if not (dv <= 64 * eps * max(abs(v1), abs(v2)) and dg <= 64 * eps * scale_g):
            raise RandomObjectiveError(_random_message(obj, v1, v2, dg, scale_g))
    return {"value": v1, "evaluations": 2 if halves is None else 3, "reduction": "undecided"}


def _value_and_grad(obj, flat, x, y):
    flat = flat.detach().clone().requires_grad_(True)
    loss = obj.loss_fn(obj.outputs(flat, x), y)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise LossReductionError(f"loss_fn must return the batch's mean loss as a scalar tensor; on batch 0 it "
                                 f"returned {shape} (reduction='none'?): use reduction='mean'")
    (g,) = torch.autograd.grad(loss, flat, allow_unused=True)
    return float(loss.detach()), (torch.zeros_like(flat) if g is None else g).detach()


def _halves(obj, flat, x, y):
    """Loss and gradient of each half of the batch, or None when it cannot be halved."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or len(y) < 2 or len(x) != len(y):
        return None
    n, h = len(y), len(y) // 2
    return _value_and_grad(obj, flat, x[:h], y[:h]), _value_and_grad(obj, flat, x[h:], y[h:]), h, n


def _describe(t) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" if isinstance(t, torch.Tensor) else type(t).__name__


def check_batch(k: int, x, y) -> None:
    """Refuse NaN or infinite values in batch ``k``, naming the batch, the row and the column."""
    for what, t in (("inputs", x), ("targets", y)):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not t.is_meta:
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                where = [int(i) for i in bad.nonzero()[0]]
                row, col = where[0], where[1:] if len(where) > 1 else None
                value = float(t[tuple(where)])
                raise DataError(f"batch {k} has a non-finite value ({value}) in its {what} at row {row}"
                                + (f", column {col[0] if len(col) == 1 else tuple(col)}" if col else "")
                                + f" ({int(bad.sum())} in all); remove or impute them first")


def _random_message(obj, v1, v2, dg, scale_g) -> str:
    training = [name or type(obj.model).__name__ for name, m in obj.model.named_modules() if m.training]
    if training:
        why = ("the model is in train mode and its forward pass is random (F.dropout(x, training=self.training) "
               "or another random op inside forward, which no module scan can see); call model.eval() yourself, "
               "or pass eval_mode=True to analyze a private eval-mode copy")
    else:
        why = ("the model is in eval mode, so its forward pass draws random numbers itself (torch.rand, "
               "F.dropout(..., training=True)) or runs nondeterministic kernels (call "
               "torch.use_deterministic_algorithms(True))")
    return (f"the objective is random: the same batch (batch 0) at the same θ gave the loss {v1:.17g} and then "
            f"{v2:.17g} (gradients {dg:.3g} apart, against a norm of {scale_g:.3g}). The quadratic model needs "
            f"one fixed R(θ), and ridgelens never averages noise silently: {why}")


def _check_sampler(batches) -> None:
    """Refuse a DataLoader whose passes see different samples (not only another order)."""
    from torch.utils.data import DataLoader, IterableDataset, SequentialSampler

    if not isinstance(batches, DataLoader) or isinstance(batches.dataset, IterableDataset):
        return
    bs = batches.batch_sampler
    sampler = bs.sampler if bs is not None and hasattr(bs, "sampler") else batches.sampler
    if isinstance(sampler, SequentialSampler):
        return
    if getattr(sampler, "replacement", False) or type(sampler).__name__ == "WeightedRandomSampler":
        raise RandomObjectiveError(
            f"the DataLoader draws its samples with replacement ({type(sampler).__name__}), so every pass over "
            "the data is another sample and R(θ) changes from one evaluation to the next; use a fixed order "
            "(shuffle=False) or a sampler without replacement")
    size = getattr(batches, "batch_size", None)
    if batches.drop_last and size and len(batches.dataset) % size:
        raise RandomObjectiveError(
            f"the DataLoader shuffles ({type(sampler).__name__}) and drops its last partial batch "
            f"(drop_last=True, {len(batches.dataset)} samples in batches of {size}), so each pass leaves out "
            f"another {len(batches.dataset) % size} samples and R(θ) changes from one evaluation to the next; "
            "use drop_last=False (a shuffled order alone is fine) or shuffle=False")
