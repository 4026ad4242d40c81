"""A language model's ridge analysis: both curvatures, retraining from θ̂, and perplexity.

:func:`analyze_lm` runs, for the Hessian H and the Gauss–Newton matrix G at θ̂:

1. the premises: ‖∇R(θ̂)‖ and its size relative to a typical single-window gradient
   (root mean square of ‖∇ℓ_w(θ̂)‖ over up to 16 windows), and the most negative eigenvalues
   with their residuals ‖Hq − σq‖;
2. the top-k eigenpairs (Lanczos) and the SLQ density;
3. θ̃(λ) = (C + λI)⁻¹(Cθ̂ − g) on the λ grid (one Krylov run per curvature C); with H a
   prediction exists only for λ above the most negative eigenvalue (``valid``);
4. the truth: θ*(λ) = argmin R(θ) + (λ/2)‖θ‖² on the same tokens, by L-BFGS started at θ̂,
   stopped at a penalized-gradient norm ≤ ``refit_tol`` (or ``refit_iters``); per λ the
   relative error ‖θ̃ − θ*‖/‖θ*‖, the cosine of θ̃ − θ̂ and θ* − θ̂, and the validation
   perplexity of θ̂, θ̃ and θ*;
5. optionally, sampling noise: the top eigenvalues on ``subsamples`` disjoint subsets of
   the training windows, as mean ± standard deviation.

Every parameter is penalized (weight decay on all of θ). Products recompute batch by batch
when the tokens need more than one batch of ``max_logits`` logits
(:meth:`~ridgelens.objectives.lm.LMObjective.product_options`).
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ridgelens._distributed import world
from ridgelens._validation import check_flag, check_heldout_objective, check_lambdas, check_seed
from ridgelens.errors import RidgelensError
from ridgelens.operators import curvature as build_curvature
from ridgelens.pipeline._analyze import Analysis, polish_record
from ridgelens.ridge import ridge_path
from ridgelens.spectra import eigen, spectral_density

#: The error below which the quadratic model is said to hold.
HOLDS_BELOW = 0.10


@dataclass(frozen=True)
class LMSettings:
    """The knobs of :func:`analyze_lm` (product budgets keep a quick run quick)."""

    k: int = 10
    k_negative: int = 3
    eig_tol: float = 1e-3
    eig_matvecs: int = 60
    n_probes: int = 2
    slq_steps: int = 20
    path_tol: float = 1e-4
    path_matvecs: int = 60
    refit_tol: float = 1e-3
    refit_iters: int = 60
    polish_tol: float = 1e-5
    polish_iters: int = 200
    subsamples: int = 0
    k_noise: int = 3
    seed: int = 0


@dataclass(frozen=True)
class LMAnalysis:
    """What :func:`analyze_lm` found; ``to_dict`` is the results.json.

    Attributes
    ----------
    curvatures : dict of str → Analysis
        ``"hessian"`` and/or ``"ggn"``: spectrum, density, path and (retraining) errors.
    report : dict
        Everything else, JSON-ready: premises, negative eigenvalues, perplexities, cosines,
        the validity of each λ, the λ range where the error is below 10%, sampling noise.
    """

    curvatures: dict
    report: dict

    def to_dict(self) -> dict:
        """JSON-ready: the report plus each curvature's Analysis dict (without per-parameter vectors)."""
        heavy = ("theta_hat", "predicted", "refit", "param_names", "penalized", "coords", "factors",
                 "penalized_eigenvectors", "gradient_coords")
        out = dict(self.report)
        out["analyses"] = {c: {k: v for k, v in a.to_dict().items() if k not in heavy}
                           for c, a in self.curvatures.items()}
        return out


def _say(progress, t0, msg):
    if progress:
        print(f"  [{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def typical_gradient_norm(objective, theta, max_windows: int = 16) -> float:
    """Root mean square of the single-window gradient norms ‖∇ℓ_w(θ)‖ over the first ``max_windows`` windows."""
    norms = []
    for i in range(min(max_windows, objective.windows.shape[0])):
        one = objective.on(objective.windows[i:i + 1])
        norms.append(float(np.linalg.norm(one.gradient(theta))))
    return float(np.sqrt(np.mean(np.square(norms))))


def lambda_range_statement(lambdas, rel_error, valid, curvature: str) -> str:
    """A plain sentence: for which λ of the grid the prediction is within 10% of the retrained weights."""
    ok = valid & np.isfinite(rel_error) & (rel_error < HOLDS_BELOW)
    name = "Hessian" if curvature == "hessian" else "Gauss-Newton"
    if not ok.any():
        return f"{name}: the error is at or above 10% (or there is no prediction) at every λ of the grid"
    good = ", ".join(f"{v:g}" for v in lambdas[ok])
    bad = lambdas[~ok]
    tail = "" if bad.size == 0 else f"; not at λ = {', '.join(f'{v:g}' for v in bad)}"
    return f"{name}: ‖θ̃−θ*‖/‖θ*‖ < 10% at λ = {good}{tail}"


def analyze_lm(objective, val_objective, theta_hat, lambdas, *, curvatures=("ggn", "hessian"),
               curvature: str | None = None, settings: LMSettings | None = None,
               polish: bool = False, progress: bool = False) -> LMAnalysis:
    """The ridge analysis of a language model at ``theta_hat`` (see module docs).

    Parameters
    ----------
    objective : LMObjective
        The training tokens: the finite token set both θ̃ and θ* are computed on.
    val_objective : LMObjective
        Validation tokens (other files), for perplexities.
    theta_hat : array of shape (n,)
    lambdas : array of shape (m,)
        Penalties λ > 0 of (λ/2)‖θ‖².
    curvatures : sequence of {"hessian", "ggn"}
        The curvatures to analyze (default both: each costs its own products).
    curvature : {"hessian", "ggn", "both"}, optional
        The same choice as one name, as :func:`~ridgelens.pipeline.analyze` takes it:
        ``"hessian"`` or ``"ggn"`` analyzes that one only (about half the cost of both).
    settings : LMSettings, optional
    polish : bool
        Minimize R further from ``theta_hat`` first (L-BFGS with exact gradients on the same
        tokens, to ‖∇R‖ ≤ ``settings.polish_tol`` or ``settings.polish_iters`` iterations) and
        analyze there; ``report["polish"]`` says how far θ̂ moved and how the training loss (and
        the validation perplexity) changed. Off by default: θ̂ is the model's weights as given.
    progress : bool
        Print each stage with its elapsed time to stderr.
    """
    s = settings or LMSettings()
    check_seed(s.seed, "settings.seed")
    lam = check_lambdas(lambdas)
    if np.any(lam == 0):
        raise RidgelensError(f"lambdas must be positive numbers, got {lambdas!r}")
    if curvature is not None:
        if curvature not in ("hessian", "ggn", "both"):
            raise RidgelensError(f"curvature must be 'hessian', 'ggn' or 'both', got {curvature!r}")
        curvatures = ("ggn", "hessian") if curvature == "both" else (curvature,)
    if not curvatures or any(c not in ("hessian", "ggn") for c in curvatures):
        raise RidgelensError(f"curvatures must be a non-empty subset of ('hessian', 'ggn'), got {curvatures!r}")
    check_heldout_objective(val_objective, objective.n_params)
    if getattr(objective, "returns", "logits") != "logits" and "ggn" in curvatures:
        raise RidgelensError("the model returns only a loss (no logits), so the Gauss-Newton curvature cannot be "
                             "formed; use curvatures=('hessian',)")
    polish = check_flag(polish, "polish")
    # Checked here, not where they are used (the sampling noise comes last): no minutes spent before the refusal
    if s.subsamples > objective.windows.shape[0]:
        raise RidgelensError(f"subsamples={s.subsamples} is more than the {objective.windows.shape[0]} training windows")
    if s.k > objective.n_params:
        raise RidgelensError(f"settings.k={s.k} is more than the model's {objective.n_params} parameters")
    t0 = time.perf_counter()
    theta_hat = np.asarray(theta_hat, dtype=np.float64)
    polished = None
    if polish:
        hat = objective.minimize(x0=theta_hat, method="lbfgs", tol=s.polish_tol, max_iter=s.polish_iters)
        polished = polish_record(objective, theta_hat, hat, "the model's weights as given")
        polished["val_perplexity_before"] = val_objective.perplexity(theta_hat)
        theta_hat = np.asarray(hat.theta, dtype=np.float64)
        state = "converged" if hat.converged else "NOT converged"
        _say(progress, t0, f"polished θ̂: {hat.n_iter} L-BFGS iterations ({state} at tol {s.polish_tol:g}), moved ‖Δθ‖ = {polished['moved']:.3g} "
                           f"({polished['moved_relative']:.3g} of ‖θ‖), loss {polished['loss_before']:.4g} → "
                           f"{polished['loss_after']:.4g}")
    loss_hat, g = objective.value_and_gradient(theta_hat)
    gnorm = float(np.linalg.norm(g))
    typical = typical_gradient_norm(objective, theta_hat)
    _say(progress, t0, f"θ̂: train loss {loss_hat:.4f}, ‖∇R(θ̂)‖ = {gnorm:.3g} = {gnorm / typical:.3g} × a typical "
                       f"single-window gradient ({typical:.3g})")
    ppl = val_objective.perplexity
    report = {
        "n_params": objective.n_params, "n_tokens": objective.n_tokens, "n_val_tokens": val_objective.n_tokens,
        "max_logits": objective.max_logits, "n_batches": objective.n_batches,  # this rank's (rank 0's)
        "n_ranks": world()[1],
        "lambdas": lam.tolist(), "penalty": "(λ/2)‖θ‖² on every parameter", "loss": "mean token cross-entropy (nats)",
        "train_loss_hat": loss_hat, "gradient_norm": gnorm, "typical_gradient_norm": typical,
        "gradient_ratio": gnorm / typical,
        "typical_gradient": "root mean square of ‖∇ℓ_w(θ̂)‖ over single windows w (up to 16)",
        "val_perplexity_hat": ppl(theta_hat), "settings": s.__dict__, "curvatures": list(curvatures),
        "curvature": {}, "polish": polished,
    }
    refits = _retrain(objective, theta_hat, lam, s, progress, t0)
    report["retraining"] = {
        "method": "L-BFGS from θ̂ (scipy L-BFGS-B, exact gradients) on the training tokens",
        "tol": s.refit_tol, "max_iter": s.refit_iters,
        "converged": [r.converged for r in refits], "gradient_norm": [r.gradient_norm for r in refits],
        "n_iter": [r.n_iter for r in refits],
        "val_perplexity": [ppl(r.theta) for r in refits],
    }
    thetas_star = np.stack([r.theta for r in refits])
    results = {}
    for kind in curvatures:
        res, rep = _one_curvature(objective, theta_hat, g, lam, kind, s, thetas_star, refits, ppl, progress, t0)
        results[kind] = res
        report["curvature"][kind] = rep
    if s.subsamples:
        report["sampling_noise"] = _sampling_noise(objective, theta_hat, curvatures, s, progress, t0)
    report["seconds"] = time.perf_counter() - t0
    return LMAnalysis(curvatures=results, report=report)


def _retrain(objective, theta_hat, lam, s, progress, t0):
    out = []
    for v in lam:
        r = objective.minimize(l2=float(v), x0=theta_hat, method="lbfgs", tol=s.refit_tol, max_iter=s.refit_iters)
        out.append(r)
        _say(progress, t0, f"retrained θ*(λ={v:g}): {r.n_iter} L-BFGS iterations, penalized ‖∇‖ = "
                           f"{r.gradient_norm:.3g} ({'converged' if r.converged else 'NOT converged'} at tol "
                           f"{s.refit_tol:g})")
    return out


def _one_curvature(objective, theta_hat, g, lam, kind, s, thetas_star, refits, ppl, progress, t0):
    name = "Hessian" if kind == "hessian" else "Gauss-Newton"
    C = build_curvature(objective, theta_hat, kind, **objective.product_options(kind))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # budgets are reported through the converged flags below
        top = eigen(C, s.k, tol=s.eig_tol, seed=s.seed, method="lanczos", max_matvecs=s.eig_matvecs)
        low = eigen(C, s.k_negative, which="smallest", tol=s.eig_tol, seed=(s.seed + 1) % 2**63, method="lanczos",
                    max_matvecs=s.eig_matvecs)
    _say(progress, t0, f"{name}: top eigenvalues {', '.join(f'{v:.4g}' for v in top.eigenvalues[:5])}; smallest "
                       f"{', '.join(f'{v:.4g}' for v in low.eigenvalues[::-1])} ({C.n_matvecs} products)")
    density = spectral_density(C, n_probes=s.n_probes, m=s.slq_steps, seed=s.seed)
    _say(progress, t0, f"{name}: SLQ density ({s.n_probes} probes × {s.slq_steps} steps)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = ridge_path(C, theta_hat, lam, gradient=g, method="krylov", tol=s.path_tol, low_rank=top,
                          density=density, max_matvecs=s.path_matvecs)
    pred = path.thetas
    valid = np.asarray(path.valid, dtype=bool)
    rel = np.full(lam.size, np.nan)
    cos = np.full(lam.size, np.nan)
    ppl_tilde = [None] * lam.size
    for i in range(lam.size):
        if not valid[i]:
            continue
        d_pred, d_true = pred[i] - theta_hat, thetas_star[i] - theta_hat
        rel[i] = np.linalg.norm(pred[i] - thetas_star[i]) / max(np.linalg.norm(thetas_star[i]), 1e-300)
        cos[i] = float(d_pred @ d_true / max(np.linalg.norm(d_pred) * np.linalg.norm(d_true), 1e-300))
        ppl_tilde[i] = ppl(pred[i])
    smallest = float(min(low.eigenvalues.min(), density.nodes.min()))
    _say(progress, t0, f"{name}: θ̃(λ) for {int(valid.sum())}/{lam.size} λ; error "
                       + ", ".join("—" if not np.isfinite(e) else f"{e:.3g}" for e in rel))
    res = Analysis(objective=type(objective).__name__, n_samples=objective.n_samples, n_params=objective.n_params,
                   param_names=[], lambdas=lam, theta_hat=theta_hat, gradient_norm=float(np.linalg.norm(g)),
                   grad_tol=0.0, spectrum=top, path=path, refit=thetas_star,
                   refit_converged=np.array([r.converged for r in refits]),
                   refit_gradient_norm=np.array([r.gradient_norm for r in refits]), rel_error=rel,
                   theta_hat_converged=False, method="matrix-free", min_eigenvalue=smallest, density=density,
                   n_matvecs=C.n_matvecs, curvature_kind=kind, choices={"path": str(path.choice)})
    rep = {
        "top_eigenvalues": top.eigenvalues.tolist(), "top_residuals": np.asarray(top.residuals).tolist(),
        "top_converged": np.asarray(top.converged).tolist(),
        "most_negative_eigenvalues": low.eigenvalues[::-1].tolist(),
        "most_negative_residuals": np.asarray(low.residuals)[::-1].tolist(),
        "most_negative_converged": np.asarray(low.converged)[::-1].tolist(),
        "residual": "‖Cq − σq‖ for unit q",
        "valid": valid.tolist(),
        "prediction_exists": _prediction_exists(kind, low, density, smallest),
        "rel_error": rel.tolist(), "cosine": cos.tolist(), "val_perplexity": ppl_tilde,
        "path_converged": np.asarray(path.converged).tolist() if path.converged is not None else None,
        "path_warnings": sorted({str(w.message) for w in caught}),
        "holds": lambda_range_statement(lam, rel, valid, kind),
        "n_products": C.n_matvecs, "form": getattr(C, "form", None),
        # what a reuse form held: "r-op" (the built-in LM's hand-written pass) or autograd's "graph"
        "held": getattr(C, "held", None),
    }
    return res, rep


def _prediction_exists(kind: str, low, density, smallest: float) -> str:
    """Which λ have a prediction, and where the bound comes from (the smallest-eigenvalue run or the SLQ nodes)."""
    if kind == "ggn":
        return "for every λ (G is positive semi-definite)"
    if smallest >= 0:
        return "for every λ (no negative eigenvalue found)"
    node, run = float(density.nodes.min()), float(low.eigenvalues.min())
    if node < run:  # a Ritz value lies within the spectrum: H has an eigenvalue ≤ node
        state = "converged" if bool(np.all(low.converged)) else "not converged"
        return (f"only for λ above {-smallest:.4g}: the SLQ density has a Ritz value {node:.4g}, below the smallest "
                f"eigenvalue run's {run:.4g} ({state}), so H has an eigenvalue at or below {node:.4g}")
    return f"only for λ above −(most negative eigenvalue) ≈ {-smallest:.4g}"


def _sampling_noise(objective, theta_hat, curvatures, s, progress, t0):
    """Top eigenvalues on ``s.subsamples`` disjoint subsets of the windows: mean ± standard deviation."""
    W = objective.windows
    parts = [W[i::s.subsamples] for i in range(s.subsamples)]  # none empty: analyze_lm checked the count
    out = {"subsamples": s.subsamples, "windows_each": [int(p.shape[0]) for p in parts],
           "split": "window i goes to subsample i mod subsamples (disjoint)"}
    for kind in curvatures:
        vals = []
        for p in parts:
            sub = objective.on(p)
            C = build_curvature(sub, theta_hat, kind, **sub.product_options(kind))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vals.append(eigen(C, s.k_noise, tol=s.eig_tol, seed=s.seed, method="lanczos",
                                  max_matvecs=s.eig_matvecs).eigenvalues)
        V = np.array(vals)
        out[kind] = {"eigenvalues": V.tolist(), "mean": V.mean(0).tolist(), "std": V.std(0, ddof=1).tolist()}
        _say(progress, t0, f"{kind}: top eigenvalues over {s.subsamples} disjoint subsamples: "
                           + ", ".join(f"{m:.4g} ± {d:.2g}" for m, d in zip(V.mean(0), V.std(0, ddof=1),
                                                                           strict=True)))
    return out
