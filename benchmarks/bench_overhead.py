"""What the operator layer costs: a ridgelens Hessian product against the bare torch it wraps.

Two models, each timed in interleaved rounds (medians, min–max shown) on the same vector:

- ``tiny``: the README's torch example, diabetes (442 × 10, standardized), Linear(10, 3)–tanh–
  Linear(3, 1), float64, batches of 256 (37 parameters). Here a product is a fraction of a
  millisecond, so any Python overhead shows.
- ``mlp``: LeNet-300-100 (266,610 parameters), float32, 4096 synthetic samples, batch 512.

Contenders:

- ``ridgelens matvec``: ``TorchHessianOperator.matvec`` (form "reuse") on a tensor;
- ``bare reuse``: the same held gradient graph, ``torch.autograd.grad(g, θ, v, retain_graph=True)``
  called directly — the floor the operator adds to;
- ``bare double backward``: the gradient graph rebuilt per batch for every vector;
- ``bare torch.func``: ``vjp(grad(loss))`` per batch (reverse-over-reverse);
- ``ridgelens matmat / b``: one batched product of b = 16 vectors (one traversal of the held
  graph, vmap over grad_outputs), per vector; and ``bare reuse × 16 / 16`` for the same
  vectors one by one.

The goal (issue 8): ridgelens matvec within 1.3× the bare reuse form on both models.

    .venv/bin/python benchmarks/bench_overhead.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vjp

import ridgelens as rl
from _common import MLP_SIZES, batches_of, interleaved_medians, machine_line, mlp, teacher_data


def _half_squared(o, t):
    return 0.5 * ((o - t) ** 2).sum(dim=-1).mean()


def tiny():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor(X / X.std(0), dtype=torch.float64)
    y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float64)[:, None]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    return net, [(X[i:i + 256], y[i:i + 256]) for i in range(0, len(X), 256)], _half_squared, "README net, 37 params"


def lenet():
    torch.manual_seed(0)
    net = mlp(MLP_SIZES).eval()
    X, y = teacher_data(4096, MLP_SIZES[0], seed=0)
    return net, batches_of(X, y, 512), F.cross_entropy, "LeNet-300-100 MLP, 266,610 params, 4096 samples"


def bench(build, repeats: int, b: int = 16, shuffle: bool = True) -> float:
    net, batches, loss_fn, desc = build()
    obj = rl.TorchObjective(net, loss_fn, batches)
    op = rl.hessian(obj, obj.theta0, form="reuse")
    n = sum(len(y) for _, y in batches)
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]
    theta = obj.flat_tensor(obj.theta0)

    def params(flat):
        return {k: c.view(s) for k, c, s in zip(names, torch.split(flat, sizes), shapes, strict=True)}

    def loss_of(flat, x, y):
        return loss_fn(functional_call(net, params(flat), (x,)), y) * (len(y) / n)

    flat = theta.detach().requires_grad_(True)
    g = sum(torch.autograd.grad(loss_of(flat, x, y), flat, create_graph=True)[0] for x, y in batches)

    def bare_reuse(v):
        return torch.autograd.grad(g, flat, grad_outputs=v, retain_graph=True)[0]

    def bare_double_backward(v):
        f = theta.detach().requires_grad_(True)
        out = torch.zeros_like(f)
        for x, y in batches:
            (gb,) = torch.autograd.grad(loss_of(f, x, y), f, create_graph=True)
            out += torch.autograd.grad(gb, f, grad_outputs=v)[0]
        return out

    def bare_func(v):
        out = torch.zeros_like(theta)
        for x, y in batches:
            _, pull = vjp(grad(lambda t, x=x, y=y: loss_of(t, x, y)), theta)
            out += pull(v)[0]
        return out

    gen = torch.Generator().manual_seed(1)
    v = torch.randn(obj.n_params, generator=gen, dtype=torch.float64).to(obj.dtype)
    V = torch.randn(obj.n_params, b, generator=gen, dtype=torch.float64).to(obj.dtype)
    fns = {
        "ridgelens matvec (reuse)": lambda: op.matvec(v),
        "bare reuse (autograd.grad on the held graph)": lambda: bare_reuse(v),
        "bare double backward": lambda: bare_double_backward(v),
        "bare torch.func vjp-over-grad": lambda: bare_func(v),
        f"ridgelens matmat of {b}": lambda: op.matmat(V),
        f"bare reuse × {b}, one by one": lambda: [bare_reuse(V[:, j]) for j in range(b)],
    }
    res = interleaved_medians(fns, repeats, shuffle=shuffle)
    ref = bare_reuse(v)
    err = float((op.matvec(v) - ref).norm() / ref.norm())
    errm = float((op.matmat(V) - torch.stack([bare_reuse(V[:, j]) for j in range(b)], 1)).norm()
                 / op.matmat(V).norm())
    base = res["bare reuse (autograd.grad on the held graph)"][0]
    print(f"\n{desc}, {obj.dtype}; medians over {repeats} interleaved rounds"
          f"{', in a shuffled order each round' if shuffle else ', in a fixed order'}")
    print(f"  {'':48s} {'median':>10s} {'min–max µs':>16s} {'÷ bare reuse':>13s}")
    for k, (t, ts) in res.items():
        per = t / b if k.startswith(("ridgelens matmat", "bare reuse ×")) else t
        label = k + (" (per vector)" if per is not t else "")
        lo, hi = min(ts) * 1e6, max(ts) * 1e6
        print(f"  {label:48s} {per * 1e3:8.3f}ms {lo:7.0f}–{hi:<8.0f} {per / base:12.2f}x")
    print(f"  agreement with the bare reuse form: matvec {err:.1e}, matmat {errm:.1e}")
    return res["ridgelens matvec (reuse)"][0] / base


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a busy machine)")
    ap.add_argument("--models", default="tiny,mlp")
    ap.add_argument("--fixed-order", action="store_true",
                    help="time the contenders in the same order every round (the default shuffles each round: in a "
                         "fixed order the first contender always runs right after the heaviest ones)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("ridgelens Hessian product against the bare torch it wraps")
    print(machine_line("cpu") + f"; torch threads {args.threads}")
    goals = []
    for name in args.models.split(","):
        ratio = bench({"tiny": tiny, "mlp": lenet}[name.strip()], args.repeats, shuffle=not args.fixed_order)
        goals.append(f"{name}: ridgelens matvec {ratio:.2f}× the bare reuse form (goal ≤ 1.3×): "
                     f"{'met' if ratio <= 1.3 else 'NOT met'}")
    print("\ngoals of issue 8:")
    for g in goals:
        print("  " + g)


if __name__ == "__main__":
    main()
