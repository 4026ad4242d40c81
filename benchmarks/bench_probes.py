"""What the start-up probes of TorchObjective cost: the digits MLP of ``ridgelens analyze --model mlp``.

The probes (``ridgelens.objectives._probes``) evaluate the first batch's outputs, loss and gradient
twice (the halves' losses come from the first outputs: two evaluations of one batch). Timed in
interleaved rounds (medians, min–max shown) against what they are a fraction of, on the same objective:

- ``probes``: ``probe_objective(obj)``;
- ``one batch: value + gradient``: the first batch's loss and gradient, bare torch (the unit);
- ``one batch, through the objective``: the same through ``obj.batch_losses``;
- ``one pass: value + gradient``: ``obj.value_and_gradient(θ)`` over all batches (one training step);
- ``construction``: ``TorchObjective(...)`` as a whole (probes included).

Model: digits (1797 × 64, /16), 64 → hidden → tanh → 10, float64, squared loss on one-hot labels,
batches of 512, as the CLI builds it.

    .venv/bin/python benchmarks/bench_probes.py [--hidden 64] [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch
from sklearn.datasets import load_digits

from _common import interleaved_medians, machine_line, spread
from ridgelens.cli._mlp import build_mlp_objective
from ridgelens.objectives._probes import probe_objective
from ridgelens.objectives.torch import TorchObjective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = load_digits(return_X_y=True)
    obj, net, _task = build_mlp_objective(SimpleNamespace(X=X / 16, y=y.astype(float)), hidden=args.hidden,
                                          seed=0, weights=None)
    x0, y0 = next(iter(obj.prepared_batches(0, 1)))

    def one_batch():
        flat = obj.flat_tensor(obj.theta0, requires_grad=True)
        torch.autograd.grad(obj.loss_fn(obj.outputs(flat, x0), y0), flat)

    def one_batch_objective():
        flat = obj.flat_tensor(obj.theta0, requires_grad=True)
        (loss,) = obj.batch_losses(flat, 0, 1)
        torch.autograd.grad(loss, flat)

    fns = {
        "probes": lambda: probe_objective(obj),
        "one batch: value + gradient": one_batch,
        "one batch, through the objective": one_batch_objective,
        "one pass: value + gradient": lambda: obj.value_and_gradient(obj.theta0),
        "construction": lambda: TorchObjective(net, obj.loss_fn, obj.batches),
    }
    res = interleaved_medians(fns, args.repeats)
    print(machine_line())
    print(f"digits MLP 64 → {args.hidden} → 10: {obj.n_params} parameters, {obj.n_samples} samples in "
          f"{obj.n_batches} batches of ≤ 512; medians of {args.repeats} interleaved rounds")
    base = res["one batch: value + gradient"][0]
    for name, (med, times) in res.items():
        print(f"  {name:30s} {med * 1e3:8.2f} ms  ({spread(times)} ms)  = {med / base:5.2f} × one batch")
    p, c = res["probes"][0], res["construction"][0]
    print(f"probes / one pass over the data: {p / res['one pass: value + gradient'][0]:.2f}; "
          f"share of construction: {p / c:.0%}")
    fastest = {name: min(times) for name, (_med, times) in res.items()}  # least disturbed by a busy machine
    print(f"fastest rounds: probes {fastest['probes'] * 1e3:.2f} ms = "
          f"{fastest['probes'] / fastest['one batch: value + gradient']:.2f} × one batch, "
          f"{fastest['probes'] / fastest['one pass: value + gradient']:.2f} × one pass")


if __name__ == "__main__":
    main()
