"""A 50-λ ridge path, matrix-free: one ridgelens Krylov run against conjugate gradients.

θ̃(λ) = (H + λI)⁻¹ H θ̂ for 50 log-spaced λ, H the Hessian of a trained MLP (mean
cross-entropy, float64, HVPs with graph reuse), all to the same relative residual
tolerance ``‖b − (H + λI)x‖ ≤ tol·‖b‖`` with b = Hθ̂:

- ridgelens ``ridge_path(op, θ̂, λs, method="krylov", tol=tol)``: one Lanczos run on b
  shared by every λ (Krylov spaces are shift-invariant);
- ridgelens ``method="multishift-cg"``: multi-shift CG, one HVP per step for every λ and no
  basis (2·#λ + 3 vectors), but no reorthogonalization;
- scipy ``cg`` (rtol=tol, atol=0) on a counting ``LinearOperator`` ``v ↦ Hv + λv``, once
  per λ (b computed once and shared);
- scipy ``cg`` once, at the smallest λ only (the hardest system of the path).

HVPs are counted on the operator itself (b's HVP included for every contender). Wall
times are medians over repeats, with NumPy's BLAS limited to one thread (threadpoolctl)
for every contender: on a 2-core machine OpenBLAS's worker threads, woken by any BLAS
call between two HVPs (CG's dot products, the path's small eigh), spin and fight
torch's threads, and make the next HVP several times slower. The path is also timed once
at the default BLAS threads to show that effect (``--blas-default`` runs everything so). Then each path's true residuals are checked with extra
HVPs (not counted), and the largest difference between the Krylov path and the per-λ
CG solutions is printed, ‖x_path − x_cg‖/‖x_cg‖ maximised over λ.

Data: scikit-learn's bundled digits (1797 samples, 64 standardized features). Models
(``--models``, both by default), each trained with a few epochs of seeded Adam:

- ``mlp``: MLP 64-256-128-10 tanh (50,826 parameters), non-convex;
- ``features``: a frozen random tanh layer of 2048 features and a trained linear
  softmax head (20,490 parameters): convex, so H ⪰ 0 and the grid can reach far
  smaller λ, where the systems are ill-conditioned.

The λ grid runs from ``--lam-lo``·σ_max to ``--lam-hi``·σ_max; where H has a negative
eigenvalue σ_min, the grid starts above 2|σ_min| so that every shifted system is
positive definite (CG needs that, and the quadratic model has no minimizer below
|σ_min|) — both σ are printed.

    .venv-bench/bin/python benchmarks/bench_path.py [--repeats 3] [--models mlp,features]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, cg
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import ridgelens as rl
from _common import machine_line, mlp, n_params, trained_objective


def cg_solve(op, b, lam, tol, maxiter):
    """CG on (H + λI)x = b; returns (x, HVPs spent, converged)."""
    before = op.n_matvecs
    A = LinearOperator(op.shape, matvec=lambda v: op.matvec(np.ravel(v)) + lam * np.ravel(v), dtype=np.float64)
    x, info = cg(A, b, rtol=tol, atol=0.0, maxiter=maxiter)
    return x, op.n_matvecs - before, info == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,features")
    ap.add_argument("--hidden", default="256,128", help="hidden widths of the MLP")
    ap.add_argument("--features", type=int, default=2048, help="random features of the convex model")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--m", type=int, default=50, help="number of λ")
    ap.add_argument("--lam-lo", type=float, default=1e-4, help="smallest λ as a fraction of σ_max")
    ap.add_argument("--lam-hi", type=float, default=1.0, help="largest λ as a fraction of σ_max")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-default", action="store_true",
                    help="leave NumPy's BLAS at its default threads (default: 1 thread, see above)")
    args = ap.parse_args()
    print(f"{args.m}-λ ridge path, matrix-free: ridgelens Krylov path vs scipy CG per λ and CG at the smallest λ")
    print(machine_line())

    digits = load_digits()
    Xn = (digits.data - digits.data.mean(0)) / (digits.data.std(0) + 1e-8)
    X = torch.as_tensor(Xn, dtype=torch.float32)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    for name in args.models.split(","):
        bench_model(name.strip(), X, y, args)


def build_model(name, d, args):
    torch.manual_seed(args.seed)
    if name == "mlp":
        sizes = (d, *[int(h) for h in args.hidden.split(",")], 10)
        return mlp(sizes), f"MLP {'-'.join(map(str, sizes))} tanh"
    if name == "features":
        model = mlp((d, args.features, 10))
        model[0].weight.data.mul_(2.0)
        model[0].requires_grad_(False)
        return model, f"frozen random tanh features {d}-{args.features} + linear softmax head (convex)"
    raise SystemExit(f"unknown model {name!r}")


def bench_model(name, X, y, args):
    model, desc = build_model(name, X.shape[1], args)
    obj, theta, t_train = trained_objective(model, X, y, train_batch=64, batch=args.batch, epochs=args.epochs,
                                            seed=args.seed)
    model = obj.model
    f, g = obj.value_and_gradient(theta)
    op = rl.hessian(obj, theta)
    n = op.n
    print(f"\nmodel: {desc} ({n_params(model):,} parameters) on digits "
          f"({len(y)} samples), batch {args.batch}, float64, HVP form {op.form}")
    print(f"training: {args.epochs} epochs of Adam in {t_train:.1f} s; loss {f:.4f}, ‖∇R‖ = {np.linalg.norm(g):.1e}")

    limit = None if args.blas_default else threadpool_limits(limits=1, user_api="blas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rl.ConvergenceWarning)
        top = rl.eigen(op, 1, method="lanczos", tol=1e-6, progress=False)
        bottom = rl.eigen(op, 1, which="smallest", method="lanczos", tol=1e-3, max_matvecs=600, progress=False)
    smax, smin = float(top.eigenvalues[0]), float(bottom.eigenvalues[0])
    lo = args.lam_lo * smax
    note = ""
    if smin < 0 and lo <= 2 * abs(smin):
        lo, note = 2 * abs(smin), " (raised to 2|σ_min| so that H + λI is positive definite for every λ)"
    lambdas = np.geomspace(lo, args.lam_hi * smax, args.m)
    print(f"spectrum: σ_max = {smax:.4g}, σ_min ≈ {smin:.3g} (smallest-end Lanczos, converged "
          f"{bool(bottom.converged.all())}); λ from {lambdas[0]:.3g} to {lambdas[-1]:.3g}{note}; tol {args.tol:g}")

    op.n_matvecs = 0
    b = op.matvec(theta)  # the right-hand side Hθ̂, shared by the CG runs (1 HVP each)
    maxiter = 20 * n

    def krylov():
        before = op.n_matvecs
        with warnings.catch_warnings():  # σ_min < 0 is known and printed above; every λ here exceeds it
            warnings.simplefilter("ignore", rl.NegativeCurvatureWarning)
            path = rl.ridge_path(op, theta, lambdas, method="krylov", tol=args.tol, progress=False)
        assert path.n_matvecs == op.n_matvecs - before
        return path

    def multishift():
        before = op.n_matvecs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rl.NegativeCurvatureWarning)
            path = rl.ridge_path(op, theta, lambdas, method="multishift-cg", tol=args.tol, progress=False,
                                 max_matvecs=maxiter)
        assert path.n_matvecs == op.n_matvecs - before
        return path

    def cg_each():
        xs, hv, ok = [], 1, []
        for lam in lambdas:
            x, k, c = cg_solve(op, b, lam, args.tol, maxiter)
            xs.append(x)
            hv += k
            ok.append(c)
        return np.array(xs), hv, np.array(ok)

    def cg_smallest():
        x, k, c = cg_solve(op, b, lambdas[0], args.tol, maxiter)
        return x, 1 + k, c

    times = {"krylov": [], "multishift": [], "cg_each": [], "cg_smallest": []}
    if limit is not None:
        limit.restore_original_limits()
    t0 = time.perf_counter()
    krylov()
    t_default_blas = time.perf_counter() - t0
    limit = None if args.blas_default else threadpool_limits(limits=1, user_api="blas")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        path = krylov()
        times["krylov"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ms = multishift()
        times["multishift"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        x_cg, hv_cg, ok_cg = cg_each()
        times["cg_each"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, hv_cg1, ok_cg1 = cg_smallest()
        times["cg_smallest"].append(time.perf_counter() - t0)
    med = {k: float(np.median(t)) for k, t in times.items()}
    hv_path = path.n_matvecs

    # true residuals (extra HVPs, not counted above)
    def true_res(X):
        return np.array([np.linalg.norm(b - op.matvec(x) - lam * x) / np.linalg.norm(b)
                         for x, lam in zip(X, lambdas, strict=True)])

    r_path, r_cg, r_ms = true_res(path.thetas), true_res(x_cg), true_res(ms.thetas)
    diff = max(np.linalg.norm(xp - xc) / np.linalg.norm(xc) for xp, xc in zip(path.thetas, x_cg, strict=True))

    blas = "default threads" if args.blas_default else "1 thread"
    print(f"\nHVP counts (b = Hθ̂ included) and wall time, median of {args.repeats}, NumPy BLAS {blas}")
    print(f"  {'':44s} {'HVPs':>7s} {'wall s':>8s} {'all converged':>14s}")
    print(f"  {'ridgelens Krylov path (one run, all λ)':44s} {hv_path:7d} {med['krylov']:8.2f} "
          f"{bool(path.converged.all())!s:>14s}")
    print(f"  {'ridgelens multi-shift CG path (all λ)':44s} {ms.n_matvecs:7d} {med['multishift']:8.2f} "
          f"{bool(ms.converged.all())!s:>14s}")
    print(f"  {'scipy cg, one run per λ':44s} {hv_cg:7d} {med['cg_each']:8.2f} {bool(ok_cg.all())!s:>14s}")
    print(f"  {'scipy cg, smallest λ only':44s} {hv_cg1:7d} {med['cg_smallest']:8.2f} {bool(ok_cg1)!s:>14s}")
    print(f"  {'ridgelens Krylov path, NumPy BLAS default threads':44s} {hv_path:7d} {t_default_blas:8.2f} "
          "(one run)")
    print(f"  Krylov basis: {path.residuals.size} λ from a {hv_path - 1}-vector basis "
          f"({(hv_path - 1) * n * 8 / 2**20:.1f} MiB, O(m·n)); largest reported residual {path.residuals.max():.1e}")
    print(f"  multi-shift CG: {2 * lambdas.size + 3} vectors ({(2 * lambdas.size + 3) * n * 8 / 2**20:.1f} MiB, "
          "O(#λ·n))")
    print(f"  true relative residuals ‖b − (H+λI)x‖/‖b‖, max over λ: Krylov path {r_path.max():.1e}, "
          f"multi-shift CG {r_ms.max():.1e}, per-λ CG {r_cg.max():.1e}")
    print(f"  max over λ of ‖x_path − x_cg‖/‖x_cg‖: {diff:.1e}")
    r1, r2 = hv_path / hv_cg1, hv_cg / hv_path
    print(f"goals of issue 3 ({name}):")
    print(f"  at most 1.2× the HVPs of a single CG at the smallest λ: {r1:.2f}× → {'met' if r1 <= 1.2 else 'NOT met'}")
    print(f"  at least 20× fewer HVPs than one CG per λ: {r2:.1f}× fewer → {'met' if r2 >= 20 else 'NOT met'}")
    print(f"  (wall time: per-λ CG ÷ path {med['cg_each'] / med['krylov']:.1f}×, "
          f"single CG ÷ path {med['cg_smallest'] / med['krylov']:.2f}×)")


if __name__ == "__main__":
    main()
