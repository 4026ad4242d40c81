"""A/B of ``second_order_graph`` against another version of ``ridgelens/_autodiff.py``, paired in one process.

On this 2-core machine a process's speed drifts by ±20% from one run to the next, so runs of
``bench_lm.py`` alternated with an older checkout tell changes of a few per cent poorly. Here
both versions run in one process, on one model and one vector, their products interleaved in
a shuffled order each round: the old ``_autodiff`` is loaded from a file, and its GELU and layer
norm Functions (and the absence of any interception it does not have: cross-entropy, linear)
are swapped into ``_autodiff._INTERCEPTED`` before each of its calls. The rest of ridgelens (the operator, the objective)
is the installed one for both. Prints how far apart the two products are, each form's median
time as a multiple of one gradient, and the median over rounds of new/old.

    git show a13489c:src/ridgelens/_autodiff.py > /tmp/old_autodiff.py
    OMP_NUM_THREADS=1 .venv-bench/bin/python benchmarks/bench_lm_ab.py /tmp/old_autodiff.py --rounds 41
    (10.9M: ... --layers 6 --width 384 --heads 6 --context 64 --tokens 128 --steps 10 --rounds 15)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys

import torch

import bench_lm
import ridgelens._autodiff as new
from _common import first_outputs, max_rel_gap, paired_ratio, paired_rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old", help="path of the other _autodiff.py")
    for name, default in (("layers", 2), ("width", 96), ("heads", 4), ("context", 32), ("tokens", 512),
                          ("steps", 150), ("seed", 0), ("rounds", 21)):
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("old_autodiff", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    net, obj = bench_lm.setting(args)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mine = dict(new._INTERCEPTED)  # name → (argument parser, Functions' factory)
    theirs = {}
    for name, (parse, _) in mine.items():  # the old Functions (and parser) where it has them; else intercept nothing
        factory = getattr(old, f"_{name}_function", None)
        theirs[name] = (getattr(old, f"_{name}_call", parse), factory) if factory else (lambda args, kwargs: None, None)
    if not hasattr(old, "_gelu_call") and "gelu" in theirs:  # before 2ddc4bf: exact GELU only, ``apply(x)``
        theirs["gelu"] = (lambda args, kwargs: (c[:1] if (c := mine["gelu"][0](args, kwargs)) and c[1] == "none"
                                                else None), theirs["gelu"][1])

    def use(which):
        new._INTERCEPTED.update(mine if which == "new" else theirs)

    fns = {}
    for which in ("old", "new"):
        use(which)  # a reused graph is built here, with this version's Functions
        fns["reuse", which] = bench_lm.build("rl-hessian-reuse-autograd", net, obj)
        fns["recompute", which] = bench_lm.build("rl-hessian-recompute", net, obj)
    fns["gradient", "new"] = bench_lm.build("gradient", net, obj)
    out = first_outputs(fns, v, before=lambda key: use(key[1]))
    print(f"model: {args.layers} layers, width {args.width}; {obj.n_params} parameters; {obj.n_tokens} tokens")
    for form in ("reuse", "recompute"):
        print(f"  {form}: max |new − old| / max |old| = {max_rel_gap(out[form, 'new'], out[form, 'old']):.2e}")
    times = paired_rounds(fns, v, args.rounds, before=lambda key: use(key[1]))
    g = statistics.median(times["gradient", "new"])
    print(f"  CPU time, {args.rounds} rounds; gradient {g * 1e3:.1f} ms")
    for form in ("reuse", "recompute"):
        ratio = paired_ratio(times, (form, "new"), (form, "old"))
        print(f"  {form:9s}: new {statistics.median(times[form, 'new']) / g:.3f}× a gradient, old "
              f"{statistics.median(times[form, 'old']) / g:.3f}×; median paired new/old {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
