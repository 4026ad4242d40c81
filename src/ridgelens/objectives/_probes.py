"""Cheap checks, run once when a torch objective is built, that R is what the analysis assumes.

The quadratic model needs R to be a fixed function of θ (every pass over the data gives the
same value and the same products) and a *mean* loss (so that λ means what the conventions
say). Neither can be seen by scanning modules: ``F.dropout(x, training=self.training)``
inside ``forward``, a shuffling ``DataLoader`` that drops its last partial batch, a
nondeterministic kernel or ``MSELoss(reduction='sum')`` all look like any other objective.
So they are measured, on the first batch only:

- the data: a ``DataLoader`` whose passes see different samples (a random order with
  ``drop_last=True`` and a partial last batch, a sampler that draws with replacement, or a
  ``RandomSampler`` of fewer or more samples than the data);
- the reduction: the first batch's outputs, computed once, give the loss of the batch and of
  its two halves (``loss_fn`` on slices of the same outputs: no more model evaluations; outputs
  that are not one tensor, a dict or a tuple, cannot be sliced, so the model runs on the halves
  of the inputs, without gradient). A mean-reduced loss gives back the halves' sample-weighted
  mean to rounding, a sum-reduced one their sum (refused); a loss that couples its samples gives
  neither (left undecided), nor does a batch of one sample;
- randomness: the batch is evaluated a second time (outputs, loss and gradient), and a random
  objective does not repeat itself (dropout inside ``forward``, nondeterministic kernels, a
  random ``loss_fn``, noise in the backward pass).

Two evaluations of one batch (value and gradient) in all, whatever the outcome (and, for
outputs that are not one tensor, one forward pass over its two halves).
The caller's random-number state is restored afterwards.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ridgelens.errors import DataError, LossReductionError, RandomObjectiveError, RidgelensError


def probe_objective(obj) -> dict:
    """Run the three checks on ``obj`` (a TorchObjective) at its θ₀; raise on a failure.

    Two evaluations of batch 0 (outputs, loss and gradient). The first one's outputs also give the
    loss of each half of the batch: a deterministic mean-reduced loss gives the whole batch's loss
    back as the halves' sample-weighted mean (to rounding), a sum-reduced one as their sum. The
    second evaluation must repeat the first: a random objective does not.

    Returns what was measured (``{"value", "evaluations", "reduction": "mean" | "undecided"}``).
    """
    _check_sampler(obj.batches)
    x, y = next(iter(obj.prepared_batches(0, 1)))
    # θ₀'s own memory where its dtype and device allow (nothing here writes into it): at 10.9M float64
    # parameters each copy is 83 MiB of the objective's start-up peak.
    own = isinstance(obj.theta0, np.ndarray) and obj.theta0.flags.writeable  # torch warns on a read-only array
    flat = torch.as_tensor(obj.theta0, device=obj.device).to(obj.dtype) if own else obj.flat_tensor(obj.theta0)
    eps = torch.finfo(obj.dtype).eps if obj.dtype.is_floating_point else 2.0**-52
    devices = [obj.device] if obj.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the user's random stream is left as it was
        try:
            with warnings.catch_warnings():  # torch's own "target size … broadcasting" warning, as an error
                warnings.filterwarnings("error", message=_BROADCAST_WARNING, category=UserWarning)
                out1, v1, g1 = _evaluate(obj, flat, x, y)
        except RidgelensError:
            raise
        except UserWarning as w:
            if not str(w).startswith(_BROADCAST_WARNING):  # another warning the caller's filters made an error
                raise
            raise DataError(_broadcast_message(obj, flat, x, y)) from None
        except torch.OutOfMemoryError:  # the device's memory, not the data: said as torch says it
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
            raise batch_failure(0, x, y, exc) from None
        if not (math.isfinite(v1) and all(bool(torch.isfinite(p).all()) for p in g1)):
            return {"value": v1, "evaluations": 1, "reduction": "undecided"}  # the data checks say where
        reduction = _reduction(obj, flat, x, out1, v1, y, eps)
        out2, v2, g2 = _evaluate(obj, flat, x, y)
        dv, dg = abs(v1 - v2), _norm(a - b for a, b in zip(g1, g2, strict=True))
        scale_g = max(_norm(g1), _norm(g2))
        same_out = _same_outputs(out1, out2, eps)
        if not (same_out and dv <= 64 * eps * max(abs(v1), abs(v2)) and dg <= 64 * eps * scale_g):
            raise RandomObjectiveError(_random_message(obj, v1, v2, dg, scale_g))
    return {"value": v1, "evaluations": 2, "reduction": reduction}


#: The start of the warning torch's elementwise losses (MSE, L1, Huber, smooth L1) give for targets shaped
#: other than the outputs: they broadcast, (n, 1) outputs against (n,) targets into an (n, n) loss.
_BROADCAST_WARNING = "Using a target size"


def _broadcast_message(obj, flat, x, y) -> str:
    with torch.no_grad():
        out = obj.outputs(flat, x)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    return (f"loss_fn broadcasts the model's outputs of shape {got} against targets of shape {tuple(y.shape)} on "
            "batch 0 (torch warns of it), so every output is compared with every target, not each with its own; "
            f"give the targets the outputs' shape {got} (e.g. y.reshape(-1, 1) for (n, 1) outputs), or reshape the outputs in the model")


def _evaluate(obj, flat, x, y):
    """The batch's outputs (detached), loss and gradient (a list of pieces): one evaluation.

    The gradient comes per parameter where the objective takes :meth:`parameter_views`: a flat one
    would be built from the pieces, two parameter vectors at once (166 MiB at 10.9M float64).
    """
    views = getattr(obj, "takes_parameter_views", False)
    # New leaves on θ's memory (autograd only reads them): per parameter, or one flat θ
    leaves = obj.parameter_views(flat, leaves=True) if views else [flat.detach().requires_grad_(True)]
    out = obj.outputs(leaves if views else leaves[0], x)
    loss = obj.loss_fn(out, y)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise LossReductionError(f"loss_fn must return the batch's mean loss as a scalar tensor; on batch 0 it "
                                 f"returned {shape} (reduction='none'?): use reduction='mean'")
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    out = out.detach() if isinstance(out, torch.Tensor) else out
    grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(leaves, grads, strict=True)]
    return out, float(loss.detach()), grads


def _norm(pieces) -> float:
    return math.sqrt(sum(float(p.square().sum()) for p in pieces))


def _reduction(obj, flat, x, out, v1: float, y, eps: float) -> str:
    """``"mean"``, or ``"undecided"`` (a loss that couples its samples, or a batch that cannot be halved).

    A sum-reduced loss is refused. ``loss_fn`` runs on the two halves of the same outputs: no model
    evaluation. Outputs that are not one tensor (a dict, a tuple, a ``ModelOutput``) cannot be cut,
    so the model runs on the two halves of the inputs instead (one forward pass in all, no gradient).
    """
    if not isinstance(y, torch.Tensor) or len(y) < 2:
        return "undecided"
    n, h = len(y), len(y) // 2
    try:  # any failure on a half batch (a model that takes only whole batches): undecided, not an error
        with torch.no_grad():
            if isinstance(out, torch.Tensor) and len(out) == n:
                halves = out[:h], out[h:]
            elif isinstance(x, torch.Tensor) and len(x) == n:
                halves = obj.outputs(flat, x[:h]), obj.outputs(flat, x[h:])
            else:
                return "undecided"
            va, vb = float(obj.loss_fn(halves[0], y[:h])), float(obj.loss_fn(halves[1], y[h:]))
    except Exception:
        return "undecided"
    scale = max(abs(v1), abs(va) + abs(vb))
    mean = (h * va + (n - h) * vb) / n
    if abs(v1 - mean) <= 1e3 * eps * scale:  # the halves are summed in another order: equal to a few roundings
        return "mean"
    if abs(v1 - (va + vb)) <= 1e3 * eps * scale:
        raise LossReductionError(
            f"loss_fn looks sum-reduced: on batch 0 ({n} rows) it gave {v1:.6g}, the sum of its halves' "
            f"losses ({va:.6g} + {vb:.6g}), not their weighted mean ({mean:.6g}). R must be the mean loss over "
            "the samples (a sum would scale R, H and every λ by the batch size): use reduction='mean' "
            "(e.g. nn.MSELoss()), or divide the loss by len(targets)")
    return "undecided"


def _same_outputs(a, b, eps: float) -> bool:
    """Two evaluations' outputs agree to rounding (outputs that are not one tensor: left to the loss and gradient)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return True
    if not a.is_floating_point() or a.numel() == 0:
        return bool(torch.equal(a, b))
    scale = float(torch.maximum(a.abs().max(), b.abs().max()))
    return float((a - b).abs().max()) <= 64 * eps * scale


def _describe(t) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" if isinstance(t, torch.Tensor) else type(t).__name__


def check_batch(k: int, x, y) -> None:
    """Refuse batch ``k`` unless its inputs and targets are tensors with finite values (naming row and column)."""
    for what, t in (("inputs", x), ("targets", y)):
        if not isinstance(t, torch.Tensor):
            kind = f"{type(t).__module__}.{type(t).__name__}".removeprefix("builtins.")
            hint = " (torch.from_numpy(...) makes one)" if kind.startswith("numpy.") else ""
            raise DataError(f"batch {k}'s {what} are a {kind}: a torch objective takes each batch as an (inputs, "
                            f"targets) pair of tensors{hint}")
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


def batch_failure(k: int, x, y, exc: Exception) -> DataError:
    """The DataError for the model or ``loss_fn`` failing on batch ``k``: the batch, its shapes, the first line."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DataError(f"the model and loss_fn fail on batch {k} (inputs {_describe(x)}, targets {_describe(y)}): "
                     f"{first}")


def random_sampler(batches):
    """The sampler of a map-style ``DataLoader`` that draws its samples in a random order, else None."""
    from torch.utils.data import DataLoader, IterableDataset, SequentialSampler

    if not isinstance(batches, DataLoader) or isinstance(batches.dataset, IterableDataset):
        return None
    bs = batches.batch_sampler
    sampler = bs.sampler if bs is not None and hasattr(bs, "sampler") else batches.sampler
    return None if isinstance(sampler, SequentialSampler) else sampler


def _check_sampler(batches) -> None:
    """Refuse a DataLoader whose passes see different samples (not only another order)."""
    from torch.utils.data import RandomSampler

    sampler = random_sampler(batches)
    if sampler is None:
        return
    if getattr(sampler, "replacement", False) or type(sampler).__name__ == "WeightedRandomSampler":
        raise RandomObjectiveError(
            f"the DataLoader draws its samples with replacement ({type(sampler).__name__}), so every pass over "
            "the data is another sample and R(θ) changes from one evaluation to the next; use a fixed order "
            "(shuffle=False) or a sampler without replacement")
    if isinstance(sampler, RandomSampler) and sampler.num_samples != len(sampler.data_source):
        raise RandomObjectiveError(
            f"the DataLoader's RandomSampler draws {sampler.num_samples} of the {len(sampler.data_source)} samples "
            "on each pass (num_samples), so every pass sees other samples and R(θ) changes from one evaluation "
            "to the next; use a fixed subset (a Subset of the data, or SubsetRandomSampler) or shuffle=False")
    n = len(sampler) if hasattr(sampler, "__len__") else len(batches.dataset)  # the samples of one pass
    size = getattr(batches, "batch_size", None)
    if batches.drop_last and size and n % size:
        raise RandomObjectiveError(
            f"the DataLoader shuffles ({type(sampler).__name__}) and drops its last partial batch "
            f"(drop_last=True, {n} samples a pass in batches of {size}), so each pass leaves out "
            f"another {n % size} samples and R(θ) changes from one evaluation to the next; "
            "use drop_last=False (a shuffled order alone is fine) or shuffle=False")
