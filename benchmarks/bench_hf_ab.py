"""A Hugging Face GPT-2's Hessian products with and without what ridgelens does for its layers, paired in one process.

"Before" is the GPT-2 as transformers builds it (``gelu_new``, the Python tanh GELU) with
``torch.addmm`` (its ``Conv1D`` layers) left to PyTorch inside ``second_order_graph``; "after"
is a copy passed through :func:`ridgelens.lm.fuse_tanh_gelu` (PyTorch's fused tanh GELU, whose
gradient ``second_order_graph`` makes one node) with the ``Conv1D`` layers' weight gradients
skipped in recomputed products. Both load the model as ``--model hf:DIR`` does (eager attention,
eval mode, float64), random weights (the timing does not depend on them), random byte tokens.
Prints how far apart the two products are, the median time of each form as a multiple of the
original model's gradient (and of the fused model's), and the median over rounds of after/before.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hf_ab.py --rounds 21
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

import ridgelens._autodiff as ad
from _common import first_outputs, max_rel_gap, paired_ratio, paired_rounds
from ridgelens.lm import fuse_tanh_gelu
from ridgelens.objectives.lm import LMObjective
from ridgelens.operators import TorchHessianOperator


def main():
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("layers", 2), ("width", 96), ("heads", 4), ("context", 32), ("tokens", 512),
                          ("rounds", 21)):
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=args.context, n_embd=args.width, n_layer=args.layers,
                                  n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = "eager"  # as load_hf_checkpoint loads a checkpoint
    torch.manual_seed(0)
    original = transformers.GPT2LMHeadModel(cfg).eval()
    fused = copy.deepcopy(original)
    fuse_tanh_gelu(fused)
    w = torch.randint(0, 256, (args.tokens // args.context, args.context + 1),
                      generator=torch.Generator().manual_seed(0))
    objs = {"before": LMObjective(original, w, dtype=torch.float64), "after": LMObjective(fused, w, dtype=torch.float64)}
    v = torch.randn(objs["before"].n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    addmm, off = ad._INTERCEPTED["addmm"], (lambda args, kwargs: None, None)

    def use(which):
        ad._INTERCEPTED["addmm"] = addmm if which == "after" else off

    fns = {}
    for which, obj in objs.items():
        use(which)

        net64 = copy.deepcopy(obj.model).double()  # float64, as the products

        def gradient(_v, net=net64):
            net.zero_grad(set_to_none=True)
            logits = net(input_ids=w[:, :-1]).logits
            torch.nn.functional.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten()).backward()

        fns["gradient", which] = gradient
        for form, name in (("recompute", "double-backward"), ("reuse", "reuse")):
            op = TorchHessianOperator(obj, obj.theta0, form=name)
            fns[form, which] = lambda v, op=op: op @ v
    out = first_outputs(fns, v, before=lambda key: use(key[1]))
    print(f"GPT-2: {args.layers} layers, width {args.width}; {objs['before'].n_params} parameters; "
          f"{objs['before'].n_tokens} tokens")
    for form in ("recompute", "reuse"):
        print(f"  {form}: max |after − before| / max |before| = {max_rel_gap(out[form, 'after'], out[form, 'before']):.1e}")
    times = paired_rounds(fns, v, args.rounds, before=lambda key: use(key[1]))
    med = {k: statistics.median(t) for k, t in times.items()}
    g, gf = med["gradient", "before"], med["gradient", "after"]
    print(f"  CPU time, {args.rounds} rounds; gradient {g * 1e3:.1f} ms (the fused model's {gf * 1e3:.1f} ms)")
    for form in ("recompute", "reuse"):
        ratio = paired_ratio(times, (form, "after"), (form, "before"))
        print(f"  {form:9s}: before {med[form, 'before'] / g:.2f}× a gradient, after {med[form, 'after'] / g:.2f}× "
              f"({med[form, 'after'] / gf:.2f}× the fused model's); median paired after/before {ratio:.3f}")


if __name__ == "__main__":
    main()
