"""Whole ridge path for least squares: ridgelens against a loop of scikit-learn Ridge.fit.

ridgelens factors the centred design once (LeastSquares.decomposition_choice says how: the Gram
matrix's eigendecomposition on this well-conditioned design, the SVD otherwise); the same run
also times the SVD route forced, the route every ill-conditioned design takes.

n = 5000, d = 500, 100 λ log-spaced. Prints medians of repeated runs, the time ratios
and the largest coefficient difference relative to the largest coefficient.

    .venv/bin/python benchmarks/bench_linear_path.py [--repeats 7]

Peers, in the same run: a loop of ``Ridge(alpha=n·λ).fit`` (one fit per λ, the
default "auto" solver = Cholesky here), and ``RidgeCV(alphas, gcv_mode="svd")``,
which decomposes once but also computes GCV.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from sklearn.linear_model import Ridge, RidgeCV

from ridgelens import LeastSquares, hessian, ridge_path


def median_times(fns, repeats):
    """Median seconds and last output of each function, run in interleaved rounds (load drift hits all alike)."""
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), o) for t, o in zip(times, outs, strict=True)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--m", type=int, default=100, help="number of λ")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    X = rng.normal(size=(n, d)) @ np.diag(np.geomspace(1.0, 0.05, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    lambdas = np.geomspace(1e-5, 1e1, args.m)

    def ridgelens_path(decomposition="auto"):
        # θ̂ and the path from one factorization of the centred design, chosen once: on this
        # well-conditioned design (cond ≈ 20) "auto" takes its Gram matrix's eigendecomposition.
        obj = LeastSquares(X, y, decomposition=decomposition)
        theta_hat = obj.minimize().theta
        return ridge_path(obj, theta_hat, lambdas).thetas

    def ridgelens_svd_path():
        # The same forced through the SVD of the centred design (what every ill-conditioned design gets).
        return ridgelens_path("svd")

    def ridgelens_gram_path():
        # The same through the operator: H = AᵀA/n from the ZᵀZ θ̂ was solved with (the Gram matrix formed
        # once), eigh of its Schur complement.
        obj = LeastSquares(X, y)
        theta_hat = obj.minimize().theta
        return ridge_path(hessian(obj, theta_hat), theta_hat, lambdas, penalized=obj.penalized).thetas

    def sklearn_loop():
        out = np.empty((lambdas.size, d + 1))
        for i, lam in enumerate(lambdas):
            r = Ridge(alpha=n * lam).fit(X, y)
            out[i] = np.r_[r.coef_, r.intercept_]
        return out

    def sklearn_ridgecv():
        return RidgeCV(alphas=n * lambdas, gcv_mode="svd").fit(X, y)

    (t_rl, th_rl), (t_svd, th_svd), (t_gram, th_gram), (t_loop, th_sk), (t_cv, _) = median_times(
        [ridgelens_path, ridgelens_svd_path, ridgelens_gram_path, sklearn_loop, sklearn_ridgecv], args.repeats)
    diff = np.abs(th_rl - th_sk).max() / np.abs(th_sk).max()
    print(f"least-squares ridge path: n={n}, d={d}, {args.m} λ, median of {args.repeats} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    route = LeastSquares(X, y).decomposition_choice
    print(f"  ridgelens (one decomposition for θ̂ and the path, one broadcast): {t_rl * 1e3:9.1f} ms   [{route}]")
    print(f"  ridgelens forced through the SVD (decomposition='svd'):  {t_svd * 1e3:9.1f} ms"
          f"   (differs from the above by {np.abs(th_svd - th_rl).max() / np.abs(th_rl).max():.1e}; "
          f"loop ratio {t_loop / t_svd:6.1f}x)")
    print(f"  ridgelens through the operator (Gram once, eigh of S):     {t_gram * 1e3:9.1f} ms"
          f"   (differs from the SVD path by {np.abs(th_gram - th_rl).max() / np.abs(th_rl).max():.1e})")
    print(f"  scikit-learn Ridge.fit loop ({args.m} fits):            {t_loop * 1e3:9.1f} ms"
          f"   ratio {t_loop / t_rl:6.1f}x")
    print(f"  scikit-learn RidgeCV(gcv_mode='svd') (GCV, one decomposition): {t_cv * 1e3:6.1f} ms"
          f"   ratio {t_cv / t_rl:6.1f}x")
    print(f"  largest coefficient difference vs the loop: {diff:.2e} of the largest coefficient")


if __name__ == "__main__":
    main()
