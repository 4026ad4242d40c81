r"""``method="evidence"``: MacKay's evidence, closed form for least squares, Laplace otherwise.

**Least squares** (Gaussian noise of precision β·wᵢ, prior N(0, 1/α) on each penalized
coefficient, a flat prior on a free intercept). With κ = α/β (scikit-learn's alpha, so
λ = κ/Σw), the singular values s of the weighted centred design and n_eff the samples with
positive weight less one for a free intercept, the log evidence maximized over β is

    log E(κ) = −(n_eff/2) log(RSS(κ) + κ‖θ_p(κ)‖²) − ½ Σⱼ log(1 + sⱼ²/κ) + (n_eff/2)(log n_eff − 1 − log 2π)

(plus a term in the weights independent of κ). MacKay's fixed point iterates
``γ = Σ sⱼ²/(sⱼ² + κ)`` (= df(λ)), ``α = γ/‖θ_p‖²``, ``β = (n_eff − γ)/RSS``, κ = α/β; it is
a stationary point of log E. With no intercept and no weights this is what scikit-learn's
``BayesianRidge`` iterates (with its Gamma hyper-priors set to 0): ``lambda_/alpha_ = κ``.
BayesianRidge counts n, not n − 1, in β's update when it fits an intercept, so there the two
differ by one degree of freedom (ours integrates the flat intercept out).

**Other objectives** (logistic regression, torch models, streamed least squares): the
Laplace approximation at θ̃(λ), with the curvature H at θ̂ and its penalized block's
eigenvalues σ (the Schur complement when some parameters are free). The prior precision over
the noise precision is fixed by λ; ½ Σⱼ log(λ/(σⱼ + λ)) is the log-det term either way.

- A *Gaussian* loss (the objective's :attr:`~ridgelens.objectives.Objective.gaussian_loss`:
  ``R = c·Σₖrₖ²`` over N residuals, e.g. least squares, ``nn.MSELoss``) leaves the noise
  precision β unknown: taking exp(−nR) as the likelihood would fix it (at 1/(2nc)), so that the
  choice would depend on the target's units. As in the closed form, β is profiled out, with
  ``S(λ) = (R(θ̃) + (λ/2)θ̃ᵀDθ̃)/c`` (= RSS + κθ̃ᵀDθ̃, κ = λ/(2c)) and n_eff = N less the free
  parameters (flat priors, each integrated out):

      log E(λ) ≈ −(n_eff/2) log S(λ) + ½ Σⱼ log(λ/(σⱼ + λ)) + (n_eff/2)(log n_eff − 1 − log 2π)

  For least squares this is the closed form above, term for term.
- Any other loss is taken as the per-sample negative log-likelihood, on the sum scale (α = nλ):

      log E(λ) ≈ −n R(θ̃) − (nλ/2)θ̃ᵀDθ̃ + ½ Σⱼ log(λ/(σⱼ + λ))

Matrix-free, the sum runs over the top-k eigenvalues exactly plus the SLQ density below the
k-th (renormalized) for the other N_p − k, eigenvalues below 0 clipped to 0. The criterion
reported is −log E / n (lower is better).
"""

from __future__ import annotations

import numpy as np

from ridgelens.errors import RidgelensError
from ridgelens.select._criteria import Prepared

_MAX_ITER = 10_000


def _pieces(prep: Prepared, kappa: np.ndarray):
    s2 = prep.svd.s[:, None] ** 2
    g = kappa[None, :] / (s2 + kappa[None, :])
    rss = float(prep.t_perp @ prep.t_perp) + ((g * prep.c[:, None]) ** 2).sum(axis=0)
    coef2 = ((prep.svd.s[:, None] / (s2 + kappa[None, :]) * prep.c[:, None]) ** 2).sum(axis=0)
    gamma = (s2 / (s2 + kappa[None, :])).sum(axis=0)
    return rss, coef2, gamma


def least_squares_evidence(prep: Prepared, grid: np.ndarray):
    """``(criterion per λ, fixed-point λ, iterations, γ = df at it, noise variance 1/β at it)``."""
    W = prep.svd.weight_sum
    n_eff = prep.n - prep.n_free
    kappa = grid * W
    rss, coef2, _ = _pieces(prep, kappa)
    if not np.any(rss + kappa * coef2 > 0):  # log 0: every λ fits exactly, and the noise variance is 0
        raise RidgelensError("the evidence needs targets that the unpenalized part (the intercept) does not fit "
                             "exactly: here every residual and every penalized coefficient is 0 (a constant "
                             "target?), so no λ is more probable than another")
    with np.errstate(divide="ignore"):
        logdet = np.log1p(prep.svd.s[:, None] ** 2 / kappa[None, :]).sum(axis=0)
        log_e = (-0.5 * n_eff * np.log(rss + kappa * coef2) - 0.5 * logdet
                 + 0.5 * n_eff * (np.log(n_eff) - 1.0 - np.log(2 * np.pi)))
    crit = -log_e / prep.n
    # MacKay's fixed point from the grid's best λ.
    i0 = int(np.argmin(crit))
    k = np.array([max(kappa[i0], np.finfo(float).tiny)])
    it = 0
    while it < _MAX_ITER:
        it += 1
        rss_k, coef2_k, gamma = _pieces(prep, k)
        new = (gamma / coef2_k) / ((n_eff - gamma) / rss_k)
        done = abs(new[0] - k[0]) <= 1e-13 * k[0]
        k = new
        if done or not np.isfinite(k[0]) or k[0] <= 0:
            break
    rss_k, _, gamma = _pieces(prep, k)
    return crit, float(k[0] / W), it, float(gamma[0]), float(rss_k[0] / (n_eff - gamma[0]))


def penalty_norm2(objective, theta: np.ndarray) -> float:
    """θᵀDθ: ‖θ_p‖² for the 0/1 mask, or with the factors a penalty matrix set (σ are then D^{-1/2}HD^{-1/2}'s)."""
    return float(theta @ (np.asarray(objective.penalty_factors, dtype=np.float64) * theta))


def _gaussian(objective, mask: np.ndarray):
    """``(GaussianLoss, n_eff)`` for a Gaussian loss, else None."""
    g = getattr(objective, "gaussian_loss", None)
    if g is None:
        return None
    n_eff = g.n_obs - int(np.count_nonzero(~mask))
    if n_eff <= 0:
        raise RidgelensError(f"the evidence needs more residuals ({g.n_obs}) than free parameters "
                             f"({int(np.count_nonzero(~mask))}) to estimate the noise")
    return g, n_eff


def _scaled_rss(objective, g, lam: float, theta: np.ndarray) -> float:
    """``S(λ) = (R(θ) + (λ/2)θᵀDθ)/c`` = RSS + κθᵀDθ."""
    return (objective.value(theta) + 0.5 * lam * penalty_norm2(objective, theta)) / g.scale


def laplace_evidence(objective, grid: np.ndarray, thetas: np.ndarray, valid: np.ndarray, res):
    """``(criterion per λ, treatment)``: −log E/n by the Laplace approximation at θ̃(λ)."""
    n = objective.n_samples
    mask = np.asarray(res.path.penalized, dtype=bool)
    gauss = _gaussian(objective, mask)
    sigma = np.clip(np.asarray(res.path.eigenvalues, dtype=np.float64), 0.0, None)
    n_p = int(mask.sum())
    rest_nodes = rest_w = None
    if res.density is not None and sigma.size < n_p:
        k_min = float(sigma.min()) if sigma.size else np.inf
        below = res.density.nodes < k_min * (1 - 1e-6)  # a node at the k-th eigenvalue itself is not "the rest"
        rest_nodes = np.clip(res.density.nodes[below], 0.0, None)
        rest_w = res.density.weights[below]
        rest_w = rest_w / rest_w.sum() * (n_p - sigma.size) if rest_w.sum() > 0 else rest_w
        treatment = (f"log det: the top {sigma.size} eigenvalues exactly, the other {n_p - sigma.size} from the "
                     "SLQ density below the k-th eigenvalue (renormalized), negative nodes clipped to 0")
    else:
        treatment = f"log det: all {sigma.size} eigenvalues of the penalized block, exactly"
    if gauss is None:
        treatment += ("; likelihood: the loss taken as the per-sample negative log-likelihood, exp(−n·R(θ)) "
                      "(the objective declares no Gaussian loss)")
    else:
        g, n_eff = gauss
        treatment += (f"; likelihood: Gaussian (the objective's gaussian_loss: R = {g.scale:.6g}·Σr² over "
                      f"{g.n_obs} residuals), its noise precision profiled out with n_eff = {n_eff} "
                      f"({g.n_obs} residuals less {g.n_obs - n_eff} free parameters)")
    crit = np.full(grid.size, np.inf)
    for i, (lam, theta) in enumerate(zip(grid, thetas, strict=True)):
        if not valid[i] or lam <= 0:
            continue
        logdet = float(np.log(lam / (sigma + lam)).sum())
        if rest_nodes is not None:
            logdet += float(rest_w @ np.log(lam / (rest_nodes + lam)))
        if gauss is None:
            log_e = -n * objective.value(theta) - 0.5 * n * lam * penalty_norm2(objective, theta) + 0.5 * logdet
        else:
            with np.errstate(divide="ignore"):
                log_e = (-0.5 * n_eff * np.log(_scaled_rss(objective, g, lam, theta)) + 0.5 * logdet
                         + 0.5 * n_eff * (np.log(n_eff) - 1.0 - np.log(2 * np.pi)))
        crit[i] = -log_e / n
    return crit, treatment


def laplace_diagnostics(objective, lam: float, theta: np.ndarray, df: float, mask: np.ndarray) -> dict:
    """At the chosen λ: one MacKay update of λ from γ = df(λ) and, for a Gaussian loss, the noise variance.

    Per-sample likelihood: α = γ/θᵀDθ, λ = α/n. Gaussian: also β = (n_eff − γ)/RSS, λ = 2c·α/β;
    the noise variance reported is the profiled one, S(λ)/n_eff.
    """
    norm2 = penalty_norm2(objective, theta)
    gauss = _gaussian(objective, np.asarray(mask, dtype=bool))
    if gauss is None:
        return {"mackay_lambda": float(df / (objective.n_samples * norm2))}
    g, n_eff = gauss
    rss = objective.value(theta) / g.scale
    return {"mackay_lambda": float(2 * g.scale * (df / norm2) * rss / (n_eff - df)),
            "noise_variance": float(_scaled_rss(objective, g, lam, theta) / n_eff)}
