"""Choosing λ: ridgelens' select_lambda against scikit-learn's RidgeCV(gcv_mode="svd").

n = 5000, d = 500, 100 λ log-spaced. Both decompose the centred design once and then score
every λ by exact leave-one-out; RidgeCV (an SVD) loops over the λ in Python, ridgelens
(this design has condition number < 1e3, so the eigendecomposition of its Gram matrix,
``ridgelens.objectives._gram``) scores the whole grid in two matrix products. Prints medians of repeated runs (timed in
rounds, one call of each per round), the ratio, and whether the same λ was chosen.

    .venv/bin/python benchmarks/bench_select.py [--repeats 5] [--n 5000] [--d 500] [--m 100] [--threads 1]
                                                [--part ls|alo|all] [--alo-m 6]

``--part alo``: logistic regression on breast_cancer (10 standardized features, n = 569):
approximate leave-one-out (``select_lambda(method="alo")``) against exact leave-one-out by n
refits per λ with scikit-learn's ``LogisticRegression`` (``C = 1/(n·λ)``: the penalty nλ on
the sum of the n − 1 remaining losses, as ALO assumes), on ``--alo-m`` λ: the time of each,
the gap of the criterion (mean left-out log-loss) and of the left-out margins, and whether
the same λ wins.

On a machine other jobs share, ``--threads 1`` (BLAS threads, via threadpoolctl) gives
steadier numbers: a multi-threaded BLAS that has to wait for busy cores can run many times
slower than one thread. Every timed call starts from a fresh ``LeastSquares`` (nothing cached). The split of
ridgelens' time (the decomposition, then the criterion on it) is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import sklearn
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_info, threadpool_limits

from ridgelens.objectives import LeastSquares
from ridgelens.select import _criteria, select_lambda


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--m", type=int, default=100, help="number of λ")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as configured)")
    ap.add_argument("--part", choices=["ls", "alo", "all"], default="all")
    ap.add_argument("--alo-m", type=int, default=6, help="number of λ of the ALO comparison")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3 (the medians need them)")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        if args.part in ("ls", "all"):
            run(args)
        if args.part in ("alo", "all"):
            run_alo(args)


def run_alo(args):
    """Logistic ALO against exact leave-one-out refits (scikit-learn), same λ grid."""
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ridgelens.objectives import Logistic
    from ridgelens.select._alo import log_loss

    X, y = load_breast_cancer(return_X_y=True)
    X, y = StandardScaler().fit_transform(X)[:, :10], y.astype(np.float64)
    n = len(y)
    grid = np.geomspace(1e-3, 1.0, args.alo_m)
    t_alo, sel = timed(lambda: select_lambda(Logistic(X, y), grid, method="alo"))
    exact = np.empty((grid.size, n))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, lam in enumerate(grid):
            for i in range(n):
                keep = np.arange(n) != i
                m = LogisticRegression(C=1.0 / (n * lam), tol=1e-10, max_iter=10_000).fit(X[keep], y[keep])
                exact[j, i] = X[i] @ m.coef_[0] + m.intercept_[0]
    t_exact = time.perf_counter() - t0
    crit = np.array([log_loss(y, z) for z in exact])
    rel = np.abs(sel.criterion - crit) / crit
    margin = np.abs(sel.diagnostics["alo_margins"] - exact).max(axis=1)
    print(f"\nlogistic ALO vs exact leave-one-out: breast_cancer, n = {n}, 10 standardized features, "
          f"{grid.size} λ in [{grid[0]:g}, {grid[-1]:g}]; load average {os.getloadavg()[0]:.1f}")
    print(f"  ridgelens alo  {t_alo:8.3f} s   (Newton steps from θ̃ per λ: {[int(v) for v in sel.diagnostics['polish_iterations']]})")
    print(f"  exact LOO      {t_exact:8.3f} s   ({n}×{grid.size} scikit-learn LogisticRegression refits)"
          f"   exact/alo = {t_exact / t_alo:.0f}×")
    for j, lam in enumerate(grid):
        print(f"  λ = {lam:9.3g}: criterion alo {sel.criterion[j]:.6f}, exact {crit[j]:.6f}, relative gap "
              f"{rel[j]:.2e}; max margin gap {margin[j]:.3g} (max |margin| {np.abs(exact[j]).max():.3g})")
    print(f"same λ as exact leave-one-out: {sel.lambda_ == grid[int(np.argmin(crit))]} "
          f"(alo {sel.lambda_:.4g}, exact {grid[int(np.argmin(crit))]:.4g})")


def run(args):
    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    X = rng.normal(size=(n, d)) @ np.diag(np.geomspace(1.0, 0.05, d)) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + 3.0 * rng.normal(size=n)
    lambdas = np.geomspace(1e-5, 1e1, args.m)

    contenders = {
        "ridgelens loo": lambda: select_lambda(LeastSquares(X, y), lambdas, method="loo").lambda_,
        "ridgelens gcv": lambda: select_lambda(LeastSquares(X, y), lambdas, method="gcv").lambda_,
        "RidgeCV svd": lambda: RidgeCV(alphas=n * lambdas, gcv_mode="svd").fit(X, y).alpha_ / n,
    }
    times = {k: [] for k in contenders}
    chosen = {}
    for k, fn in contenders.items():  # warm-up
        chosen[k] = fn()
    for _ in range(args.repeats):
        for k, fn in contenders.items():
            times[k].append(timed(fn)[0])
    # Where ridgelens' time goes: the decomposition select_lambda uses (the Gram route when the
    # design is well-conditioned, else the SVD), then the criterion over the grid on it.
    split_svd, split_loo = [], []
    route = select_lambda(LeastSquares(X, y), lambdas, method="loo").diagnostics["decomposition"]
    for _ in range(args.repeats):
        split_svd.append(timed(lambda: LeastSquares(X, y).design_svd().U)[0])  # U formed, as the criteria need it
        prep = _criteria.Prepared(LeastSquares(X, y).design_svd())
        split_loo.append(timed(lambda p=prep: _criteria.loo(p, lambdas, LeastSquares(X, y)))[0])

    print(f"n = {n}, d = {d}, {lambdas.size} λ in [{lambdas[0]:g}, {lambdas[-1]:g}]; "
          f"{args.repeats} repeats; {os.cpu_count()} cores, numpy {np.__version__}, "
          f"scikit-learn {sklearn.__version__}, BLAS threads "
          f"{', '.join(str(p['num_threads']) for p in threadpool_info() if p['user_api'] == 'blas')}; "
          f"load average {os.getloadavg()[0]:.1f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["RidgeCV svd"]
    for k, v in times.items():
        print(f"  {k:14s} median {med[k] * 1e3:8.1f} ms  (min–max {min(v) * 1e3:.0f}–{max(v) * 1e3:.0f})"
              f"  RidgeCV/this = {ref / med[k]:5.1f}×   λ = {chosen[k]:.6g}")
    print(f"  ridgelens loo split: decomposition ({route}) {statistics.median(split_svd) * 1e3:.1f} ms, "
          f"criterion over the grid {statistics.median(split_loo) * 1e3:.1f} ms")
    same = chosen["ridgelens loo"] == chosen["RidgeCV svd"]
    print(f"same λ as RidgeCV (leave-one-out): {same}")


if __name__ == "__main__":
    main()
