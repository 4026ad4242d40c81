"""Language-model curvature products: ridgelens against curvlinops on the same model and tokens.

On the built-in byte transformer trained on the standard library (the ``demo --lm`` setting by
default), per contender: one Hessian- or GGN-vector product in ms, in tokens/s and as a multiple
of one gradient; the peak memory of one product against one gradient (each in a fresh child
process, above that process's base; the median of ``--memory-repeats`` children, 3 by default,
since glibc's heap moves one child's peak RSS by several MiB); and the time for the top-20
eigenpairs. Contenders:

- ridgelens ``TorchHessianOperator``: reused across products (``rl-hessian-reuse``: on the byte
  LM the hand-written R-operator's kept pass, on a GPT-2 autograd's graph;
  ``rl-hessian-reuse-autograd``: autograd's graph always), recomputed per product by double
  backward, by forward-over-reverse, and by the byte LM's hand-written R-operator
  (``form="r-op"``, left out for a GPT-2); and ``GGNOperator`` (``rl-ggn``: reused, on the byte
  LM by hand with its forward pass kept; ``rl-ggn-autograd``: autograd's held graph;
  ``rl-ggn-rop``: by hand, recomputed per product, left out for a GPT-2), through
  :class:`ridgelens.objectives.lm.LMObjective`;
- curvlinops ``HessianLinearOperator`` and ``GGNLinearOperator`` (if installed: ``make bench-env``),
  on the same model, flattened to (tokens, vocab) logits, one batch holding every token;
- the gradient itself (plain ``loss.backward()``), the unit of every ratio;
- memory-bounded: the Hessian product recomputed batch by batch with the tokens cut into k
  batches (``rl-hessian-batched``, an :class:`LMObjective` of ``max_logits`` = one k-th of the
  tokens' logits), and the gradient over the same k batches (``gradient-batched``, accumulated
  with ``loss.backward()``). ``--hvp-batches K``; by default the smallest k whose batch gradient
  graph is at most half the full gradient's saved activations (:func:`hvp_batches`).

Every product is checked against ridgelens' reused autograd graph's Hessian (or GGN) on the same
vector, and that one against central differences of gradients.
Peak memory counts what the call needs that was not there before it: for a reused graph, the
graph (built in the call) and the product. Each child trains its model first, so the peak is
restarted after training (:func:`_common.reset_peak_rss`). ``--clock cpu`` times CPU seconds
instead of wall seconds: steadier on a shared, loaded machine (with ``--threads 1``).

``--device cuda`` runs every contender on a GPU (the model trained there with AdamW); memory is
then ``torch.cuda.max_memory_allocated`` above what was allocated before each first call, in
this process. ``--arch gpt2`` replaces the byte LM by a Hugging Face GPT-2 (random init, eager
attention, trained here on the same bytes; ``--vocab`` 50257 by default), and ``--dtype float32``
computes in float32. ``benchmarks/gpu_lm.sh`` is the prepared GPU run: the demo LM and a
GPT-2-small configuration (124M parameters). A contender that fails to build or run is reported
and left out, so one run on a lent machine returns every figure it can.
``--malloc-top-pad MIB`` keeps that much freed memory at glibc's heap top for every contender
(``mallopt(M_TOP_PAD)``; the default 0 leaves glibc's settings): a product that frees its
graph otherwise returns it to the system and faults it back in on the next product.
Run: ``OMP_NUM_THREADS=1 .venv-bench/bin/python benchmarks/bench_lm.py --threads 1``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import numpy as np
import torch

from _common import (
    current_rss_bytes,
    interleaved_medians,
    machine_line,
    mib,
    peak_rss_bytes,
    reset_peak_rss,
    run_child,
    spread,
    sync,
)

CONTENDERS = ("gradient", "rl-hessian-reuse", "rl-hessian-reuse-autograd", "rl-hessian-recompute",
              "rl-hessian-fwd-over-rev", "rl-hessian-rop",
              "rl-ggn", "rl-ggn-autograd", "rl-ggn-rop",
              "cl-hessian", "cl-ggn", "rl-hessian-batched", "gradient-batched")


def have_curvlinops() -> str | None:
    try:
        import curvlinops
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if hasattr(curvlinops, "HessianLinearOperator") else "no HessianLinearOperator"


def logits_of(net, x):
    """The model's logits for token ids ``x``: a ridgelens byte LM's output, a Hugging Face model's ``.logits``."""
    out = net(input_ids=x, use_cache=False) if type(net).__module__.startswith("transformers") else net(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def untrained(args):
    """A fresh model of ``--arch`` from seed ``--seed``: the byte LM, or a Hugging Face GPT-2 (eager attention)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        if args.arch == "byte":
            from ridgelens.lm import ByteTransformer, LMConfig

            return ByteTransformer(LMConfig(layers=args.layers, width=args.width, heads=args.heads,
                                            context=args.context))
        import transformers

        cfg = transformers.GPT2Config(vocab_size=args.vocab, n_positions=max(1024, args.context), n_embd=args.width,
                                      n_layer=args.layers, n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
        cfg._attn_implementation = "eager"  # as load_hf_checkpoint loads a checkpoint: second derivatives exist
        net = transformers.GPT2LMHeadModel(cfg)
        if net.config._attn_implementation != "eager":
            raise SystemExit(f"GPT-2 built with {net.config._attn_implementation!r} attention, not 'eager'")
        return net


def train_on_device(net, windows, args):
    """``net`` trained on ``--device`` for ``--steps`` AdamW steps (float32, warm-up then cosine), in eval mode.

    The byte LM on the CPU is trained by :func:`ridgelens.lm.train_lm` instead (the figures of
    earlier runs); this loop is for a GPU and for the GPT-2 model.
    """
    dev = torch.device(args.device)
    net = net.to(dev).train()
    w_all, n = windows.to(dev), windows.shape[0]
    gen = torch.Generator().manual_seed(args.seed)
    lr = args.lr or (3e-3 if args.arch == "byte" else 6e-4)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    warm, t0, first = max(1, args.steps // 10), time.perf_counter(), None
    for step in range(args.steps):
        scale = (step + 1) / warm if step < warm else 0.1 + 0.45 * (1 + np.cos(np.pi * (step - warm) /
                                                                              max(1, args.steps - warm)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        w = w_all[torch.randint(n, (min(args.train_batch, n),), generator=gen).to(dev)]
        loss = torch.nn.functional.cross_entropy(logits_of(net, w[:, :-1]).flatten(0, 1), w[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    if args.steps:
        print(f"trained {args.steps} AdamW steps of {min(args.train_batch, n)} windows on {dev}: loss "
              f"{first:.3f} → {loss.item():.3f} in {time.perf_counter() - t0:.0f} s", flush=True)
    return net.eval()


def setting(args):
    """The trained model and tokens (deterministic for the seed), as an LMObjective in ``--dtype``.

    One batch holds every token (``max_logits`` = all their logits) unless ``--max-logits`` says
    otherwise. The byte LM on the CPU is trained by ``train_lm`` as ``demo --lm`` trains it.
    """
    from ridgelens.lm import LMConfig, stdlib_split, train_lm
    from ridgelens.objectives.lm import DEFAULT_MAX_LOGITS, LMObjective

    split = stdlib_split(args.context, args.tokens)
    if args.arch == "byte" and args.device == "cpu":
        cfg = LMConfig(layers=args.layers, width=args.width, heads=args.heads, context=args.context)
        net = train_lm(cfg, split.train, steps=args.steps, seed=args.seed)
    else:
        net = train_on_device(untrained(args), split.train, args)
    vocab = 256 if args.arch == "byte" else args.vocab
    every = split.train.shape[0] * args.context * vocab
    dtype = getattr(torch, args.dtype)
    obj = LMObjective(net, split.train, dtype=dtype, max_logits=args.max_logits or max(DEFAULT_MAX_LOGITS, every))
    return net.to(dtype), obj


@functools.cache
def batched(obj, k):
    """The same windows cut into (at most) ``k`` batches: an LMObjective whose batches hold a k-th of the logits.

    Built once per ``(obj, k)``: it is set-up, as ``obj`` is for the other contenders, and a memory
    child builds it before its peak is reset (its probes hold a few parameter vectors).
    """
    from ridgelens.objectives.lm import LMObjective

    per_batch = -(-obj.windows.shape[0] // k)
    return LMObjective(obj.model, obj.windows, max_logits=per_batch * obj.T * obj.vocab, dtype=obj.dtype)


def hvp_batches(net, obj):
    """The fewest batches k for which one batch's gradient graph is ≤ half of the full gradient's activations.

    Both are bytes autograd saves (:func:`ridgelens._autodiff.saved_bytes`): the plain gradient's
    forward over every token, and the first batch's gradient graph (``create_graph=True``) of
    the objective cut into k batches, tried for k = 2, 4, 8, … up to one window per batch.
    """
    from ridgelens._autodiff import saved_bytes, second_order_attention

    x, y = obj.windows[:, :-1].to(obj.device), obj.windows[:, 1:].to(obj.device)
    _, act = saved_bytes(lambda: torch.nn.functional.cross_entropy(logits_of(net, x).flatten(0, 1), y.flatten()))
    k = 1
    while k < obj.windows.shape[0]:
        k = min(2 * k, obj.windows.shape[0])
        sub = batched(obj, k)
        flat = sub.flat_tensor(sub.theta0, requires_grad=True)

        def graph(sub=sub, flat=flat):
            return torch.autograd.grad(next(iter(sub.batch_losses(flat, stop=1))), flat, create_graph=True)

        with second_order_attention():
            _, nbytes = saved_bytes(graph)
        if nbytes <= act / 2:
            break
    return k


class _Flat(torch.nn.Module):
    """The LM with its logits flattened to (tokens, vocab), as curvlinops' cross-entropy expects."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return logits_of(self.net, x).flatten(0, 1)


def build(name, net, obj, k=1):
    """``fn(v)`` for one product (or gradient) of contender ``name``; building is part of the first call.

    ``k``: the number of batches of the memory-bounded contenders (``*-batched``).
    """
    from ridgelens._autodiff import second_order_attention
    from ridgelens.operators import GGNOperator, TorchHessianOperator

    theta = obj.theta0
    if name in ("gradient", "gradient-batched"):
        parts = batched(obj, k).batches if name == "gradient-batched" else [(obj.windows[:, :-1], obj.windows[:, 1:])]
        parts = [(x.to(obj.device), y.to(obj.device)) for x, y in parts]

        def grad(_v):
            net.zero_grad(set_to_none=True)
            for x, y in parts:  # accumulated in .grad: each batch weighs its share of the windows
                w = x.shape[0] / obj.windows.shape[0]
                (w * torch.nn.functional.cross_entropy(logits_of(net, x).flatten(0, 1), y.flatten())).backward()
            return torch.cat([p.grad.flatten() for p in net.parameters()])
        return grad
    if name == "rl-hessian-batched":
        sub = batched(obj, k)
        op = TorchHessianOperator(sub, theta, **sub.product_options("hessian"))
        return lambda v: op @ v
    if name in ("rl-hessian-reuse", "rl-hessian-reuse-autograd"):
        op = TorchHessianOperator(obj, theta, form="reuse", hand_written=name == "rl-hessian-reuse")
        return lambda v: op @ v
    if name in ("rl-hessian-recompute", "rl-hessian-fwd-over-rev", "rl-hessian-rop"):
        form = {"rl-hessian-recompute": "double-backward", "rl-hessian-fwd-over-rev": "fwd-over-rev"}.get(name, "r-op")
        op = TorchHessianOperator(obj, theta, form=form)
        return lambda v: op @ v
    if name in ("rl-ggn", "rl-ggn-autograd", "rl-ggn-rop"):  # by hand where it applies (kept / recomputed), autograd's
        op = GGNOperator(obj, theta, reuse=name != "rl-ggn-rop", hand_written=name != "rl-ggn-autograd")
        if name == "rl-ggn-rop" and op.hand_written_unsupported:
            raise ValueError(f"the hand-written GGN does not apply: {op.hand_written_unsupported}")
        return lambda v: op @ v
    from curvlinops import GGNLinearOperator, HessianLinearOperator

    cls = HessianLinearOperator if name == "cl-hessian" else GGNLinearOperator
    data = [(obj.windows[:, :-1].to(obj.device), obj.windows[:, 1:].flatten().to(obj.device))]
    params = [p for p in net.parameters() if p.requires_grad]
    op = cls(_Flat(net), torch.nn.CrossEntropyLoss(), params, data, progressbar=False, check_deterministic=False)

    def product(v):
        with second_order_attention():
            return op @ v
    return product


def top_pad(mib_):
    """Ask glibc to keep ``mib_`` MiB of freed memory at the heap top (a no-op for 0 or without glibc)."""
    if mib_:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-2, int(mib_) << 20)  # M_TOP_PAD


def probe_vector(obj):
    """The seeded vector every product is applied to, in the objective's dtype, on its device."""
    v = torch.randn(obj.n_params, dtype=obj.dtype, generator=torch.Generator().manual_seed(0))
    return v.to(obj.device)


def host(x):
    """A product (tensor or array) as a flat float64 CPU tensor, for the checks."""
    return (x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).reshape(-1).double()


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def memory_child(args):
    torch.set_num_threads(args.threads)
    top_pad(args.malloc_top_pad)
    net, obj = setting(args)
    v = probe_vector(obj)
    if args.child.endswith("-batched"):
        batched(obj, args.hvp_batches)  # the batched objective is set-up: its probes' peak is not this call's
    reset = reset_peak_rss()  # the training's peak is not this call's
    base = max(current_rss_bytes(), 0)
    build(args.child, net, obj, args.hvp_batches)(v)  # a reused graph is built here: it is memory the product needs
    print(json.dumps({"base": base, "peak": peak_rss_bytes(), "reset": reset}))


def cuda_memory(names, net, obj, k, v) -> dict:
    """Bytes of GPU memory one first call of each contender needs, above what was allocated before it.

    In this process: ``torch.cuda.max_memory_allocated`` is exact, so no child is needed. Each
    contender is built afresh and dropped after its call (a reused graph's build is counted).
    A contender that runs out of memory, or fails, is None.
    """
    import gc

    out = {}
    for c in names:
        fn = None
        try:
            fn = build(c, net, obj, k)
            net.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn(v)
            torch.cuda.synchronize()
            out[c] = torch.cuda.max_memory_allocated() - base
        except Exception as exc:  # out of memory, or a contender that cannot run here: reported, not fatal
            print(f"  {c}: no memory figure: {first_line(exc)}", flush=True)
            out[c] = None
        del fn
        net.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
    return out


def print_memory(mem: dict, args) -> None:
    """Each contender's bytes against the gradient's: a number, or a sorted list of runs (median, min–max)."""
    def med(m):
        return m if not isinstance(m, list) else (m[(len(m) - 1) // 2] + m[len(m) // 2]) / 2

    def spread(m):
        return f"   {m[0] / 2**20:5.1f}–{m[-1] / 2**20:5.1f}" if isinstance(m, list) and len(m) > 1 else ""

    gm = med(mem["gradient"])
    for c, m in mem.items():
        if m is None:
            print(f"  {c:24s} out of memory")
            continue
        print(f"  {c:24s} {mib(med(m))}   {med(m) / max(gm, 1):5.2f} × gradient{spread(m)}")
    if mem.get("gradient-batched") and mem.get("rl-hessian-batched"):
        gb, hb = med(mem["gradient-batched"]), med(mem["rl-hessian-batched"])
        print(f"  rl-hessian-batched against the gradient over the same {args.hvp_batches} batches: "
              f"{hb / max(gb, 1):5.2f} ×")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["byte", "gpt2"], default="byte",
                    help="ridgelens' byte LM, or a Hugging Face GPT-2 (random init, trained here; needs transformers)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=50257, help="GPT-2's vocabulary (the text is bytes, ids < 256)")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.0, help="training's peak learning rate (default: 3e-3 byte, 6e-4 gpt2)")
    ap.add_argument("--train-batch", type=int, default=16, help="windows per training step (GPU / gpt2 training)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--max-logits", type=int, default=0,
                    help="LMObjective's max_logits (default: every token's logits in one batch)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eig-k", type=int, default=20)
    ap.add_argument("--eig-tol", type=float, default=0.0, help="eigenpairs' tolerance (default: 1e-6, float32 1e-4)")
    ap.add_argument("--hvp-batches", type=int, default=0,
                    help="batches of the memory-bounded rows (default 0: chosen by hvp_batches)")
    ap.add_argument("--malloc-top-pad", type=int, default=0, metavar="MIB",
                    help="glibc M_TOP_PAD for every contender, in MiB (default 0: glibc's own)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-repeats", type=int, default=3, metavar="N",
                    help="fresh children per contender for its peak memory (the median is quoted; CPU only)")
    ap.add_argument("--skip-eigen", action="store_true")
    ap.add_argument("--skip-peer-eigen", action="store_true", help="top-k eigenpairs of ridgelens' operators only")
    ap.add_argument("--fixed-order", action="store_true",
                    help="time the contenders in the same order every round (the default shuffles each round, "
                         "seeded: in a fixed order each contender always runs right after the same other one)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time wall seconds, or CPU seconds of this process (steadier on a loaded machine)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_repeats < 1:
        ap.error(f"--memory-repeats must be at least 1, got {args.memory_repeats}")
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device} asked for, but torch.cuda.is_available() is False")
    if cuda and args.clock == "cpu":
        raise SystemExit("--clock cpu times this process's CPU seconds, not the GPU's: use --clock wall on a GPU")
    if args.child:
        memory_child(args)
        return
    torch.set_num_threads(args.threads)
    top_pad(args.malloc_top_pad)
    why_not = have_curvlinops()
    names = [c for c in CONTENDERS if not (c.startswith("cl-") and why_not)]
    print(f"LM curvature products: ridgelens against curvlinops ({args.dtype}, one batch of all tokens unless "
          "--max-logits)")
    print(machine_line(args.device) + (f"; glibc M_TOP_PAD {args.malloc_top_pad} MiB" if args.malloc_top_pad else ""))
    if why_not:
        print(f"note: curvlinops could not be imported ({why_not}); its rows are skipped (make bench-env)")
    net, obj = setting(args)
    kind = "byte transformer" if args.arch == "byte" else "GPT-2 (transformers, eager attention)"
    print(f"model: {kind}, {args.layers} layers, width {args.width}, heads {args.heads}, context {args.context}; "
          f"{obj.n_params} parameters; {obj.n_tokens} tokens of the standard library in {obj.n_batches} batch(es); "
          f"vocab {obj.vocab}", flush=True)
    args.hvp_batches = args.hvp_batches or hvp_batches(net, obj)
    print(f"memory-bounded rows: {args.hvp_batches} batches of at most "
          f"{batched(obj, args.hvp_batches).windows_per_batch} windows", flush=True)
    v = probe_vector(obj)
    mem = None
    if cuda and not args.skip_memory:  # first, while no other contender holds a graph
        got = cuda_memory(names, net, obj, args.hvp_batches, v)
        mem = dict(got)
    fns = {}
    for c in names:
        try:
            fns[c] = build(c, net, obj, args.hvp_batches)
        except Exception as exc:  # a contender that cannot run here is reported, not fatal (a one-shot GPU run)
            print(f"  {c}: could not be built: {first_line(exc)}")
    ref = {"hessian": host(fns["rl-hessian-reuse-autograd"](v)), "ggn": host(fns["rl-ggn-autograd"](v))}
    theta, eps = obj.theta0, (1e-5 if args.dtype == "float64" else 1e-3)
    vn = v.detach().cpu().double().numpy()
    fd = torch.as_tensor((obj.gradient(theta + eps * vn) - obj.gradient(theta - eps * vn)) / (2 * eps))
    print(f"  check rl-hessian-reuse-autograd against central differences of gradients (ε = {eps:g}): max |Δ| / max |fd| = "
          f"{float((ref['hessian'] - fd).abs().max() / fd.abs().max()):.2e}")
    for c in list(fns):
        if c.startswith("gradient"):
            continue
        r = ref["ggn" if "ggn" in c else "hessian"]
        try:
            out = host(fns[c](v))
        except Exception as exc:
            print(f"  {c}: failed: {first_line(exc)}")
            del fns[c]
            continue
        print(f"  check {c:24s} max |Δ| / max |ref| = {float((out - r).abs().max() / r.abs().max()):.2e}")
        if c == "cl-hessian":
            print(f"  check cl-hessian against the same central differences:            max |Δ| / max |fd| = "
                  f"{float((out - fd).abs().max() / fd.abs().max()):.2e}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    med = interleaved_medians({c: (lambda c=c: fns[c](v)) for c in fns}, args.repeats, device=args.device,
                              clock=clock, shuffle=not args.fixed_order)
    g = med["gradient"][0]
    order = "in a fixed order" if args.fixed_order else "each in a seeded shuffled order"
    print(f"\n  {args.clock} time, median of {args.repeats} interleaved rounds {order} (load average now "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  {'contender':24s} {'ms (median)':>12s} {'tokens/s':>10s} {'× gradient':>11s} {'ms min–max':>14s}")
    for c in fns:
        t = med[c][0]
        print(f"  {c:24s} {t * 1e3:12.1f} {obj.n_tokens / t:10.0f} {t / g:11.2f} {spread(med[c][1]):>14s}")
    sys.stdout.flush()
    if not args.skip_memory:
        if mem is None:
            here = os.path.abspath(__file__)
            fwd = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
                "arch", "layers", "width", "heads", "context", "vocab", "tokens", "steps", "lr", "train_batch", "seed",
                "dtype", "max_logits", "threads", "hvp_batches", "malloc_top_pad")]
            runs = {c: [] for c in fns}
            for _ in range(args.memory_repeats):  # rounds over the contenders: glibc's heap makes one child noisy
                for c in fns:
                    runs[c].append(run_child(here, [*fwd, "--child", c]))
            if not all(m["reset"] for r in runs.values() for m in r):
                print("  note: the peak could not be reset after training; memory figures are lower bounds")
            mem = {c: sorted(m["peak"] - m["base"] for m in r) for c, r in runs.items()}
            print(f"\n  peak RSS of one call (a reused graph's build included), above the child's base "
                  f"(model, data loaded, training's peak reset); median of {args.memory_repeats} fresh children:")
        else:
            print("\n  GPU memory of one call (a reused graph's build included), torch.cuda.max_memory_allocated "
                  "above what was allocated before it:")
        print_memory(mem, args)
    if not args.skip_eigen:
        eigenpairs(args, net, obj, clock, why_not)


def eigenpairs(args, net, obj, clock, why_not) -> None:
    """Time for the top ``--eig-k`` eigenpairs of ridgelens' reused Hessian and GGN (and curvlinops')."""
    from ridgelens._autodiff import second_order_attention
    from ridgelens.operators import GGNOperator, TorchHessianOperator
    from ridgelens.spectra import eigen

    tol = args.eig_tol or (1e-6 if args.dtype == "float64" else 1e-4)
    print(f"\n  top-{args.eig_k} eigenpairs, {args.clock} seconds (ridgelens Lanczos, tol {tol:g}; curvlinops: scipy "
          "eigsh on its operator):", flush=True)
    ops = {"rl-hessian-reuse": TorchHessianOperator(obj, obj.theta0, form="reuse"),
           "rl-ggn": GGNOperator(obj, obj.theta0, reuse=True)}
    for c, op in ops.items():
        t0 = clock()
        s = eigen(op, args.eig_k, method="lanczos", tol=tol)
        sync(args.device)
        print(f"  {c:22s} {clock() - t0:8.1f} s   {s.n_matvecs} products   top {s.eigenvalues[0]:.6g}", flush=True)
    del ops
    if why_not or args.skip_peer_eigen:
        return
    from curvlinops import GGNLinearOperator, HessianLinearOperator
    from scipy.sparse.linalg import eigsh

    data = [(obj.windows[:, :-1].to(obj.device), obj.windows[:, 1:].flatten().to(obj.device))]
    params = [p for p in net.parameters() if p.requires_grad]
    for c, cls in (("cl-hessian", HessianLinearOperator), ("cl-ggn", GGNLinearOperator)):
        op = cls(_Flat(net), torch.nn.CrossEntropyLoss(), params, data, progressbar=False,
                 check_deterministic=False).to_scipy()
        t0 = clock()
        with second_order_attention():
            w = eigsh(op, k=args.eig_k, which="LA", tol=tol, return_eigenvectors=False)
        print(f"  {c:22s} {clock() - t0:8.1f} s   top {w.max():.6g}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
