"""glmnet itself (python-glmnet, the Fortran glmnet) against ridgelens with converted penalty factors.

Fits ``glmnet(alpha = 0, lambda = λ_g, penalty.factor = pf)`` on the diabetes data (response
rescaled so that sd(y) ≠ 1), with and without standardization, and ridgelens' LeastSquares with
``glmnet_to_ridgelens(λ_g, pf, …)``; prints the largest difference relative to the largest
coefficient. glmnet's coordinate descent stops at its own tolerance, so agreement is to that
(about 1e-6 here), not to rounding. Needs the benchmark env (``make bench-env``: python-glmnet).

    .venv-bench/bin/python benchmarks/check_glmnet_penalty.py
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_diabetes

from ridgelens import LeastSquares
from ridgelens.penalty import glmnet_to_ridgelens


def main() -> None:
    """Print one line per (standardize, λ_g)."""
    from glmnet import ElasticNet

    X, y = load_diabetes(return_X_y=True)
    y = 3.0 * y + 10.0
    pf = np.linspace(0.2, 2.0, X.shape[1])
    pf[3] = 0.0
    lam_g = np.array([10.0, 1.0, 0.1, 0.01])
    print("standardize  lambda_glmnet  lambda_ridgelens  max|θ_ridgelens − θ_glmnet| / max|θ_glmnet|")
    for standardize in (True, False):
        fit = ElasticNet(alpha=0, lambda_path=lam_g, standardize=standardize, tol=1e-16, n_splits=0,
                         max_iter=10**6).fit(X, y, relative_penalties=pf)
        lam, d = glmnet_to_ridgelens(lam_g, pf, y=y, X=X, standardize=standardize)
        obj = LeastSquares(X, y)
        obj.set_penalty(d)
        for i, lam_i in enumerate(lam):
            ref = np.append(fit.coef_path_[:, i], fit.intercept_path_[i])
            got = obj.minimize(lam_i).theta
            print(f"{standardize!s:>11}  {lam_g[i]:13g}  {lam_i:16.6g}  {np.abs(got - ref).max() / np.abs(ref).max():.2e}")


if __name__ == "__main__":
    main()
