"""Where an LM curvature product's time goes: matrix products against everything else, × one gradient.

On the demo LM (or any ``bench_lm.py`` setting), per contender (the gradient, the reused and
recomputed Hessian, the GGN):

- ``ms``: median CPU time of one call (``time.process_time``; run with one thread);
- ``GFLOP``: the matrix products' floating-point operations (2·m·k·n per ``mm``/``addmm``/``bmm``,
  from the shapes each call dispatches), and their ratio to the gradient's: the floor a
  product cannot go under while its matrix products run as fast as the gradient's;
- ``matmul ms`` / ``other ms``: the dispatched ops' own time, split into matrix products (the
  gradient's fused attention with them) and everything else (timed one op at a time under a ``TorchDispatchMode``, which adds its own small
  cost to each op; the split, not the sum, is the figure), of the median of five calls;
- ``faults``: minor page faults of one call (memory the call took back from the system).

``--allocator-pad`` first tells glibc to keep freed memory (``M_TRIM_THRESHOLD``,
``M_MMAP_THRESHOLD`` 1 GiB, ``M_TOP_PAD`` 256 MiB), for every contender alike: the faults a
product pays because glibc returned the memory of the product before.

Run: ``OMP_NUM_THREADS=1 .venv-bench/bin/python benchmarks/lm_time_budget.py [--allocator-pad]``.
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import statistics
import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bench_lm
from _common import machine_line

MATMULS = {"mm": (0, 1), "addmm": (1, 2), "addmm_": (1, 2), "bmm": (0, 1), "baddbmm": (1, 2)}
CONTENDERS = ("gradient", "rl-hessian-reuse-autograd", "rl-hessian-recompute", "rl-hessian-reuse", "rl-hessian-rop", "rl-ggn")


def flops(name: str, args) -> int:
    """2·(batch)·m·k·n of one matrix product, from its operands' shapes (0 for any other op).

    The gradient's fused CPU attention counts as the math kernel's matrix products: QKᵀ and PV
    forward, four products backward (its own recomputation of QKᵀ not counted).
    """
    if name.startswith("_scaled_dot_product_flash_attention_for_cpu"):
        q, k = (args[1], args[2]) if name.endswith("backward") else (args[0], args[1])
        per = 2 * q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] * q.shape[-1]
        return per * (4 if name.endswith("backward") else 2)
    if name not in MATMULS:
        return 0
    a, b = (args[i].shape for i in MATMULS[name])
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


class OpClock(TorchDispatchMode):
    """Each dispatched op's own time and FLOPs, summed into matrix products and the rest."""

    def __init__(self):
        super().__init__()
        self.seconds, self.flops, self.ops = defaultdict(float), 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        fl = flops(name, args)
        self.seconds["matmul" if fl else "other"] += time.perf_counter() - t0
        self.flops += fl
        self.ops += 1
        return out


def allocator_pad() -> None:
    """Ask glibc to keep freed memory: no trim, no mmap for large blocks, 256 MiB of top pad."""
    libc = ctypes.CDLL("libc.so.6")
    for param, value in ((-1, 1 << 30), (-3, 1 << 30), (-2, 256 << 20)):  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_TOP_PAD
        libc.mallopt(param, value)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--allocator-pad", action="store_true", help="keep freed memory in glibc (see the module docs)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=96)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=32)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.allocator_pad:
        allocator_pad()
    setting = argparse.Namespace(arch="byte", device="cpu", dtype="float64", max_logits=None, vocab=256,
                                 **{k: getattr(args, k) for k in ("layers", "width", "heads", "context", "tokens",
                                                                  "steps", "seed")})
    net, obj = bench_lm.setting(setting)
    v = bench_lm.probe_vector(obj)
    fns = {name: bench_lm.build(name, net, obj) for name in CONTENDERS}
    for fn in fns.values():  # builds the reused graphs, warms every path
        fn(v), fn(v)
    times, faults = defaultdict(list), defaultdict(list)
    for _ in range(args.repeats):  # rounds: one call of each contender per round
        for name, fn in fns.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.process_time()
            fn(v)
            times[name].append(time.process_time() - t0)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    clocks = {}  # per contender, the op clock of its median call (by matmul + other time) of five
    for name, fn in fns.items():
        runs = []
        for _ in range(5):
            with OpClock() as c:
                fn(v)
            runs.append(c)
        clocks[name] = sorted(runs, key=lambda c: c.seconds["matmul"] + c.seconds["other"])[2]
    print(machine_line())
    print(f"{obj.n_params} parameters, {obj.n_tokens} tokens; {args.repeats} rounds; "
          f"allocator pad {'on' if args.allocator_pad else 'off (glibc defaults)'}")
    g_ms, g_fl = statistics.median(times["gradient"]), clocks["gradient"].flops
    g_mm, g_other = clocks["gradient"].seconds["matmul"], clocks["gradient"].seconds["other"]
    print(f"{'contender':22} {'ms':>7} {'×grad':>6} {'GFLOP':>6} {'×grad':>6} {'matmul ms':>9} {'×grad':>6} "
          f"{'other ms':>8} {'×grad':>6} {'ops':>5} {'faults':>6}")
    for name in CONTENDERS:
        ms, c = statistics.median(times[name]), clocks[name]
        mm, other = c.seconds["matmul"], c.seconds["other"]
        print(f"{name:22} {1e3 * ms:7.1f} {ms / g_ms:6.2f} {c.flops / 1e9:6.3f} {c.flops / g_fl:6.2f} "
              f"{1e3 * mm:9.1f} {mm / g_mm:6.2f} {1e3 * other:8.1f} {other / g_other:6.2f} {c.ops:5d} "
              f"{statistics.median(faults[name]):6.0f}")


if __name__ == "__main__":
    main()
