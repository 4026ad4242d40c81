"""How time and peak memory grow for the top-20 Hessian eigenpairs as the model grows.

MLPs 64-w-w-10 (tanh) with w chosen to give about 10⁵, 10⁶ and 10⁷ parameters, on a
few synthetic samples (256 by default, one batch; float32), untrained (the eigenproblem
does not need a minimizer). Each size runs in a fresh interpreter, so its peak RSS
(VmHWM) is its own; the size's figures are

- wall time of ``hessian(obj, θ)`` (form="auto", graph build included) plus
  ``eigen(op, 20, method="lanczos", tol=--tol, max_matvecs=budget)``, HVPs, pairs converged;
- peak RSS, split into the process before the objective (interpreter, torch, model,
  data), what ``TorchObjective`` adds, and what the operator and Lanczos add on top,
  the last against an estimate of what a matrix-free eigensolver must hold: the reused
  gradient graph (ridgelens' own estimate) and the Lanczos basis (ncv + 1 vectors, whose
  first k rows become the Ritz vectors returned).

Each size gets the same Lanczos budget of 400 HVPs (``--budget``; a size that runs out
reports how many pairs converged). All three sizes take about 5 minutes on 2 cores;
the samples are few (256) so that the 10⁷ model's HVP stays near half a second.

    .venv-bench/bin/python benchmarks/bench_scale.py [--sizes 1e5,1e6,1e7] [--samples 256]
        [--stages eigen,density,path]   # the other stages of a matrix-free analyze too
        [--ncv N] [--dtype float64]     # another Lanczos basis size; float64 as a reference
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import ridgelens as rl
from _common import (
    batches_of,
    current_rss_bytes,
    machine_line,
    mib,
    mlp,
    n_params,
    peak_rss_bytes,
    run_child,
    teacher_data,
)
from ridgelens.spectra._lanczos import default_ncv

D_IN, D_OUT = 64, 10
#: Lanczos HVP budget (the 10⁷ model's HVP plus orthogonalization take about half a second)
BUDGET = 400


def width_for(target: float) -> int:
    """Width w of 64-w-w-10 whose parameter count is closest to ``target``."""
    # D_IN·w + w + w² + w + 10·w + 10 = target
    b = D_IN + D_OUT + 2
    return max(1, round((-b + math.sqrt(b * b + 4 * (target - D_OUT))) / 2))


def child(args) -> None:
    size = float(args.child)
    w = width_for(size)
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    model = mlp((D_IN, w, w, D_OUT)).eval().to(dtype)
    X, y = teacher_data(args.samples, D_IN, seed=args.seed)
    X = X.to(dtype)
    batches = batches_of(X, y, args.batch)
    base0 = peak_rss_bytes()  # interpreter + torch + model + data
    obj = rl.TorchObjective(model, F.cross_entropy, batches)
    base = current_rss_bytes()  # + the objective
    budget = args.budget or BUDGET
    t0 = time.perf_counter()
    op = rl.hessian(obj, obj.theta0)
    t_op = time.perf_counter() - t0
    if args.stage != "eigen":
        stage_child(args, obj, op, base0, base, t0)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.ConvergenceWarning)
        spec = rl.eigen(op, args.k, method="lanczos", tol=args.tol, max_matvecs=budget, seed=args.seed,
                        ncv=args.ncv, progress=False)
    t_all = time.perf_counter() - t0
    n = n_params(model)
    item = torch.finfo(obj.dtype).bits // 8
    ncv = default_ncv(n, args.k, item) if args.ncv is None else args.ncv
    print(json.dumps({
        "size": size, "width": w, "n": n, "samples": args.samples, "form": op.form,
        "hvps": spec.n_matvecs, "converged": int(spec.converged.sum()), "budget": budget,
        "time": t_all, "time_op": t_op, "sigma_max": float(spec.eigenvalues[0]),
        "max_res": float(spec.residuals.max() / abs(spec.eigenvalues[0])),
        "base0": base0, "base": base, "peak": peak_rss_bytes(),
        "model_bytes": n * item, "data_bytes": X.numel() * X.element_size() + y.numel() * y.element_size(),
        "graph_bytes": op.batch_graph_bytes * op.reused_batches,
        "basis_bytes": (ncv + 1) * n * item,
        "theta_bytes": n * (8 + item + 1), "ncv": ncv, "item": item,
    }))


def stage_child(args, obj, op, base0, base, t0) -> None:
    """The other stages of a matrix-free analyze at this size: SLQ density, or the Krylov λ path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.RidgelensWarning)
        if args.stage == "density":
            before = current_rss_bytes()
            d = rl.spectral_density(op, n_probes=args.probes, m=args.slq_steps, seed=args.seed,
                                    reorth=args.reorth)
            extra = {"hvps": d.n_matvecs, "what": f"reorth {d.reorth}, df(0.01) = {d.effective_df([0.01])[0]:,.0f}"}
        else:
            before = current_rss_bytes()
            p = rl.ridge_path(op, obj.theta0, [1.0, 10.0], method="krylov", tol=1e-12, max_matvecs=args.path_steps)
            # the start vector's product is counted: the basis holds n_matvecs − 1 vectors (one per Ritz value)
            extra = {"hvps": p.n_matvecs, "what": f"{p.ritz_values.size}-vector basis, 2 λ (result 2 float64 rows)"}
    n, item = obj.n_params, torch.finfo(obj.dtype).bits // 8
    print(json.dumps({"n": n, "stage": args.stage, "time": time.perf_counter() - t0, "base0": base0, "base": base,
                      "before": before, "peak": peak_rss_bytes(), "item": item, **extra}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7", help="comma-separated parameter counts")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--budget", type=int, default=None, help=f"Lanczos HVP budget (default {BUDGET})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default="eigen",
                    help="comma-separated: eigen (top-k pairs, the table above), density (SLQ), path (Krylov λ path)")
    ap.add_argument("--probes", type=int, default=1, help="density: SLQ probes")
    ap.add_argument("--slq-steps", type=int, default=60, help="density: Lanczos steps per probe")
    ap.add_argument("--reorth", default="auto", choices=["auto", "full", "none"], help="density: reorthogonalization")
    ap.add_argument("--path-steps", type=int, default=40, help="path: Krylov steps (tol 1e-12, so it runs them all)")
    ap.add_argument("--ncv", type=int, help="eigen: Lanczos basis size (default: ridgelens' own rule)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--stage", default="eigen", help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(f"top-{args.k} Hessian eigenpairs (ridgelens Lanczos, tol {args.tol:g}) as the model grows; "
          f"MLP {D_IN}-w-w-{D_OUT} tanh, {args.samples} samples, batch {args.batch}, {args.dtype}")
    print(machine_line())
    fwd = ["--samples", str(args.samples), "--batch", str(args.batch), "--k", str(args.k), "--tol", str(args.tol),
           "--seed", str(args.seed), "--dtype", args.dtype] + (["--budget", str(args.budget)] if args.budget else []) \
        + (["--ncv", str(args.ncv)] if args.ncv else [])
    stages = [st.strip() for st in args.stages.split(",")]
    if not set(stages) <= {"eigen", "density", "path"}:
        raise SystemExit(f"--stages takes eigen, density, path; got {args.stages!r}")
    other = [st for st in stages if st != "eigen"]
    if other:
        fwd_other = [*fwd, "--probes", str(args.probes), "--slq-steps", str(args.slq_steps), "--reorth", args.reorth,
                     "--path-steps", str(args.path_steps)]
        print(f"\n  other stages of a matrix-free analyze (density: {args.probes} probe(s) × {args.slq_steps} steps; "
              f"path: {args.path_steps} steps); 'above' = peak − RSS just before the stage, in MiB and in "
              "parameter vectors of the model's dtype")
        for s in args.sizes.split(","):
            for st in other:
                r = run_child(os.path.abspath(__file__), [*fwd_other, "--stage", st, "--child", str(float(s))])
                above = r["peak"] - r["before"]
                print(f"  {r['n']:>11,} {st:8s} {r['hvps']:>4d} HVPs {r['time']:7.1f} s   above {above / 2**20:7.0f} MiB "
                      f"= {above / (r['n'] * r['item']):5.1f} vectors   ({r['what']})", flush=True)
        if "eigen" not in stages:
            return
    rows = []
    for s in args.sizes.split(","):
        r = run_child(os.path.abspath(__file__), [*fwd, "--child", str(float(s))])
        rows.append(r)
        print(f"  {r['n']:>10,} parameters (w={r['width']}): {r['hvps']} HVPs (budget {r['budget']}), "
              f"{r['converged']}/{args.k} converged, {r['time']:.1f} s, peak RSS {mib(r['peak']).strip()}", flush=True)

    print(f"\n  {'parameters':>11s} {'HVPs':>5s} {'conv':>5s} {'wall s':>7s} {'s/HVP':>6s} {'peak RSS':>9s} "
          f"{'model+data':>10s} {'objective':>10s} {'eigensolver':>11s} {'estimate':>9s} {'ratio':>6s} {'vectors':>8s}")
    for r in rows:
        est = r["graph_bytes"] + r["basis_bytes"]
        solver = r["peak"] - r["base"]
        vecs = (r["peak"] - r["base0"]) / (r["n"] * r["item"])
        print(f"  {r['n']:>11,} {r['hvps']:>5d} {r['converged']:>2d}/{args.k:<2d} {r['time']:7.1f} "
              f"{r['time'] / r['hvps']:6.2f} {r['peak'] / 2**20:7.0f}Mi {r['base0'] / 2**20:8.0f}Mi "
              f"{(r['base'] - r['base0']) / 2**20:8.0f}Mi {solver / 2**20:9.0f}Mi {est / 2**20:7.0f}Mi "
              f"{solver / est:6.2f} {vecs:8.1f}")
    print("\n  model+data = the process before the objective (interpreter and torch included);")
    print("  objective = what TorchObjective adds (expected: θ copies, float64 + float32, and the penalty mask, "
          "n·13 bytes: " + ", ".join(mib(r["theta_bytes"]).strip() for r in rows) + ");")
    print("  eigensolver = peak − (model+data+objective): operator and Lanczos; estimate = reused graph "
          "(ridgelens' estimate) + basis (ncv+1 vectors; the k Ritz vectors are its first rows);")
    print(f"  vectors = (peak − model+data) in parameter vectors of the model's dtype; the goal is model + data + "
          f"(k + a few) vectors, k = {args.k}; the basis is ncv + 1 vectors, ncv = "
          + ", ".join(str(r["ncv"]) for r in rows) + " (max(2k+1, k+20), shrunk toward k+10 above 1 GiB)")
    for r in rows:
        print(f"  {r['n']:>11,}: model {mib(r['model_bytes']).strip()}, data {mib(r['data_bytes']).strip()}, "
              f"graph {mib(r['graph_bytes']).strip()} ({r['form']}), basis {mib(r['basis_bytes']).strip()}; largest residual {r['max_res']:.1e}·σ_max, "
              f"operator built in {r['time_op']:.1f} s")
    if len(rows) > 1:
        n = np.array([r["n"] for r in rows], dtype=float)
        t = np.array([r["time"] / r["hvps"] for r in rows])
        m = np.array([r["peak"] - r["base0"] for r in rows], dtype=float)
        print(f"  growth per decade of parameters: time per HVP ×{np.exp(np.polyfit(np.log10(n), np.log(t), 1)[0]):.1f}, "
              f"memory above model+data ×{np.exp(np.polyfit(np.log10(n), np.log(m), 1)[0]):.1f}")


if __name__ == "__main__":
    main()
