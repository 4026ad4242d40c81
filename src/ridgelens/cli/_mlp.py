"""``ridgelens analyze --model mlp``: a small torch MLP on a data set, trained or loaded."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np

from ridgelens._distributed import shard
from ridgelens._io import atomic_write_bytes
from ridgelens.cli._torch import (
    check_unpenalized,
    half_squared,
    load_error,
    torch_device,
    torch_dtype,
)
from ridgelens.errors import DataError, RidgelensError

BATCH = 512


def is_classification(y: np.ndarray, task: str = "auto") -> bool:
    """Whether ``--task`` (``auto``: integers with at most 50 distinct values are classes) makes ``y`` a class target.

    ``task="classification"`` on a target that is not integers is refused, naming the first such row.
    """
    whole = y == np.round(y)
    if task == "classification" and not whole.all():
        i = int(np.flatnonzero(~whole)[0])
        raise DataError(f"--task classification needs integer class labels; the target holds {float(y[i])!r} at row {i}")
    if task != "auto":
        return task == "classification"
    return bool(whole.all() and np.unique(y).size <= 50)


def standardize_target(ds, task: str = "auto"):
    """``--standardize-target``: ``(ds with y → (y − mean)/sd, {mean, sd, note})``; a class target is refused.

    sd is the 1/n standard deviation, as ``--standardize`` uses for the features.
    """
    if is_classification(ds.y, task):
        raise DataError(f"--standardize-target is for a continuous target; {ds.target_name!r} of {ds.name} holds "
                        f"{np.unique(ds.y).size} integer classes, which --model mlp classifies (--task regression "
                        "treats them as numbers)")
    mean, sd = float(ds.y.mean()), float(ds.y.std())
    if not sd > 0:
        raise DataError(f"--standardize-target: the target {ds.target_name!r} of {ds.name} is constant ({mean:g})")
    print(f"target standardized: y → (y − {mean:.6g})/{sd:.6g}; θ̂, θ̃(λ), θ*(λ), the loss and λ are in those units")
    return replace(ds, y=(ds.y - mean) / sd), {
        "mean": mean, "sd": sd,
        "note": "the MLP was trained, analyzed and refitted on (y − mean)/sd (1/n sd): θ̂, θ̃(λ), θ*(λ), R and λ "
                "are in those units; a prediction in y's units is mean + sd·f(x)"}


def build_mlp_objective(ds, *, hidden: int, seed: int, weights: str | None, loss: str = "mse",
                        unpenalized=(), dtype: str = "float64", device: str = "cpu", batch_size: int = BATCH,
                        like=None, task: str = "auto"):
    """The MLP ``d → hidden → tanh → out`` as a TorchObjective (float64), plus its task name.

    Regression uses the mean of ½(f(x) − y)². Classification uses, by default, the same
    squared loss on one-hot labels (``loss="mse"``): on separable data such as digits the
    mean cross-entropy has no finite minimizer (it keeps falling as the weights grow), so
    θ̂, the point the whole analysis expands around, would not exist. ``loss="cross-entropy"``
    is available; expect ridgelens to report ‖∇R‖ ≈ 0 only because the loss saturates.
    ``weights`` is a saved ``state_dict`` (loaded with ``weights_only=True``).
    ``unpenalized``: name patterns of parameters the penalty leaves out (e.g. ``"*.bias"``).
    ``dtype``, ``device``, ``batch_size``: where and how the products run (``--dtype`` etc.).
    ``like``: the targets that decide the task and the classes (default ``ds.y``), so that a
    held-out share of the rows gets the same outputs as the training share. ``task``:
    ``"auto"`` (:func:`is_classification`), ``"regression"`` or ``"classification"`` (``--task``).
    """
    import torch

    from ridgelens.data._tensors import load_state_dict
    from ridgelens.objectives.torch import TorchObjective

    if hidden < 1:
        raise RidgelensError(f"--hidden must be >= 1, got {hidden}")
    X = torch.tensor(ds.X, dtype=torch.float64)
    ref = ds.y if like is None else np.asarray(like)
    classify = is_classification(ref, task)
    if classify:
        classes = np.unique(ref)
        y_idx = np.searchsorted(classes, ds.y)
        if classes.size < 2:
            raise DataError(f"the target has a single class ({classes[0]:g}); nothing to classify")
        out = int(classes.size)
        if loss == "cross-entropy":
            Y = torch.tensor(y_idx, dtype=torch.long)
            loss_fn = torch.nn.functional.cross_entropy
        elif loss == "mse":
            Y = torch.nn.functional.one_hot(torch.tensor(y_idx), out).to(torch.float64)
            loss_fn = half_squared
        else:
            raise RidgelensError(f"--loss must be 'mse' or 'cross-entropy', got {loss!r}")
    else:
        if loss != "mse":
            raise RidgelensError("--loss cross-entropy needs a class target; this target is continuous")
        Y, out, loss_fn = torch.tensor(ds.y, dtype=torch.float64)[:, None], 1, half_squared
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, out)).double()
    if weights is not None:
        path = Path(weights)
        state = load_state_dict(path)
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"--weights {path} does not fit a {X.shape[1]}→{hidden}→{out} MLP: "
                            f"{load_error(exc)}") from None
    dev, dt = torch_device(device), torch_dtype(dtype)
    net = net.to(device=dev, dtype=dt)
    X, Y = X.to(device=dev, dtype=dt), Y.to(device=dev, dtype=dt if Y.is_floating_point() else Y.dtype)
    batches = [(X[i:i + batch_size], Y[i:i + batch_size]) for i in range(0, len(X), batch_size)]
    batches = shard(batches)  # under torchrun: this rank's share of the batches (all of them otherwise)
    check_unpenalized([n for n, _ in net.named_parameters()], unpenalized)
    return TorchObjective(net, loss_fn, batches, unpenalized=tuple(unpenalized)), net, "classification" if classify else "regression"


def save_state_dict(net, theta, obj, path: Path) -> None:
    """Write θ as the network's ``state_dict`` (loadable with ``weights_only=True``), atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj.state_dict(theta), buf)
    atomic_write_bytes(path, buf.getvalue())
