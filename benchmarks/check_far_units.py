"""One column in far units: the exact paths' error against solves in that column's own units, and their cost.

Per model, one column of a real data set is multiplied by 10^p. The reference solves the same
problem in the column's own units, where it is well conditioned at every p:

- least squares (in memory, and streamed from its moments): (ZᵀZ/n + λD⁻²)φ = Zᵀy_c/n with
  Z = X_c D⁻¹, w = D⁻¹φ; diabetes, column 2; the predicted θ̃(λ) and the refit θ*(λ);
- logistic: θ̃ = D⁻¹(H_s + λD⁻¹PD⁻¹)⁻¹H_sφ̂ with H_s, φ̂ the unscaled problem's Hessian and
  minimizer; standardized breast cancer, 5 columns, column 2.

Printed: the largest relative error ‖·−ref‖/‖ref‖ over λ = 1e-3, 0.1, 10. Then the cost of the
column-scaled route: ``analyze(refit=False)`` with 100 λ on a random 5000 × 300 design whose
columns span 1e12, against the same design in unit columns (the SVD route), median of 5 runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_far_units.py
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler

import ridgelens as rl
from ridgelens.objectives.streamed import StreamedLeastSquares

LAMBDAS = [1e-3, 0.1, 10.0]
POWERS = [-40, -20, -15, -8, 8, 15, 20]


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def least_squares(power: int, streamed: bool) -> tuple[float, float]:
    X, y = load_diabetes(return_X_y=True)
    n, scale = len(y), np.ones(X.shape[1])
    scale[2] = 10.0 ** power
    Xs = X * scale
    obj = StreamedLeastSquares.from_arrays(Xs, y) if streamed else rl.LeastSquares(Xs, y)
    res = rl.analyze(obj, LAMBDAS)
    Z = X - X.mean(axis=0)
    pred = refit = 0.0
    for k, lam in enumerate(LAMBDAS):
        w = np.linalg.solve(Z.T @ Z / n + lam * np.diag(scale ** -2.0), Z.T @ (y - y.mean()) / n) / scale
        ref = np.r_[w, y.mean() - Xs.mean(axis=0) @ w]
        pred, refit = max(pred, rel(res.predicted[k], ref)), max(refit, rel(res.refit[k], ref))
    return pred, refit


def logistic(power: int) -> float:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:, :5]
    base = rl.Logistic(X, y)
    phi = base.minimize().theta
    Hs = base.hessian_dense(phi)
    D = np.ones(6)
    D[2] = 10.0 ** power
    pen = np.r_[np.ones(5), 0.0]
    res = rl.analyze(rl.Logistic(X * D[:5], y), LAMBDAS, refit=False)
    return max(rel(res.predicted[k], np.linalg.solve(Hs + lam * np.diag(pen / D ** 2), Hs @ phi) / D)
               for k, lam in enumerate(LAMBDAS))


def cost() -> None:
    rng = np.random.default_rng(0)
    n, d = 5000, 300
    X = rng.normal(size=(n, d))
    y = X[:, 2:] @ rng.normal(size=d - 2) + rng.normal(size=n)
    spread = np.r_[1e-6, 1e6, np.ones(d - 2)]
    lams = np.geomspace(1e-4, 10, 100)
    for name, design in (("columns 1e12 apart (QR per λ)", X * spread), ("unit columns (SVD)", X)):
        times = []
        for _ in range(5):
            obj = rl.LeastSquares(design, y)
            obj.minimize()
            t0 = time.process_time()
            rl.analyze(obj, lams, refit=False)
            times.append(time.process_time() - t0)
        print(f"  {name:32s} analyze(refit=False), 100 λ: median {statistics.median(times):.2f} s (CPU)")


def main() -> None:
    warnings.simplefilter("ignore")
    print("largest ‖·−ref‖/‖ref‖ over λ = 1e-3, 0.1, 10, one column in units 10^p")
    print(f"{'p':>5} {'LS θ̃':>9} {'LS θ*':>9} {'streamed θ̃':>11} {'streamed θ*':>11} {'logistic θ̃':>11}")
    for p in POWERS:
        lp, lr = least_squares(p, streamed=False)
        sp, sr = least_squares(p, streamed=True)
        print(f"{p:5d} {lp:9.1e} {lr:9.1e} {sp:11.1e} {sr:11.1e} {logistic(p):11.1e}")
    print("cost of the column-scaled route, n = 5000, d = 300:")
    cost()


if __name__ == "__main__":
    main()
