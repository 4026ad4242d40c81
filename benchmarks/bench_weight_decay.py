"""What an optimizer's weight_decay does, predicted and then checked by running the optimizer itself.

Model: the CLI's digits MLP (scikit-learn's bundled digits, standardized, 64 → ``--hidden`` → tanh →
10, half squared error on one-hot labels, float64), θ̂ by L-BFGS as ``ridgelens analyze`` finds it.

1. **Checked against the real optimizer.** A "trained" AdamW state is made at θ̂: ``--warm-epochs``
   of AdamW with weight decay 0 from θ̂ (minibatch ``--batch-size``, lr ``--lr``); its exp_avg_sq
   gives D = diag(√v̂ + ε). Then, for each λ, ``torch.optim.AdamW`` (resuming that state), ``Adam``
   (its own warmed state) and ``SGD`` (momentum 0.9, lr ``--lr-sgd``) run from θ̂ with
   ``weight_decay = λ`` for ``--epochs`` epochs of shuffled minibatches, and θ* is the average of
   the iterates over the last half of the steps. Per λ it prints ``‖θ̃ − θ*‖ / ‖θ* − θ̂‖`` (error
   relative to how far the optimizer moved) for the AdamW-aware prediction (H + λD)⁻¹(Hθ̂ − g) and the
   plain L2 one (H + λI)⁻¹(Hθ̂ − g), and for the exact fixed point (AdamW: the minimizer of
   R + (λ/2)θᵀDθ, v̂ frozen; SGD and Adam: of R + (λ/2)‖θ‖²; by Newton-CG), which separates the
   quadratic model's error from the frozen-v̂ assumption's (and, for Adam, says whether the run settled). The noise floor is the same run with λ = 0: ``‖θ*₀ − θ̂‖ / ‖θ* − θ̂‖``.
   ``settle`` is the relative change of the mean minibatch loss between the last two quarters of
   the run (small: settled; with ``--schedule cosine`` the loss also falls because the learning
   rate anneals, so there the ``exact FP`` column is the settling check). AdamW's λ grid defaults to the L2 grid divided by the median of D,
   so that both move the weights by comparable amounts.
2. **Cost of a weighted path.** On the same model, matrix-free (HVPs with graph reuse), the
   one-run Krylov path on D^{-1/2} H D^{-1/2} (weighted) against the one on H (unweighted), each at
   λ = σ_max·(1e-4, 1e-3, 1e-2, 1e-1) of its own operator, tol 1e-8: HVPs and median time.
3. **Prediction against retraining.** The weighted matrix-free path for every AdamW λ against
   one AdamW run to the settled loss (the first epoch whose mean minibatch loss is within 1% of
   the last quarter's mean), median over λ.

``--part lm`` runs part 1 for AdamW on a byte-level language model instead (the built-in
:class:`~ridgelens.lm.ByteTransformer`; by default smaller than the 276k-parameter demo so that it
runs in minutes on two shared cores: ``--lm-layers``, ``--lm-width``, ``--lm-heads``,
``--lm-context``, ``--lm-tokens`` of the standard library's sources; ``--lm-demo`` takes exactly
``ridgelens demo --lm``'s model and data, :data:`ridgelens.cli._args.LM_DEFAULTS`; ``--lm-theta demo`` also its
θ̂, trained by ``train_lm`` and not polished), see :func:`lm_part`: per λ the exact frozen-v̂ fixed point (capped
trust-ncg, ``--lm-newton``), the Gauss–Newton and Hessian predictions against it, and (unless ``--lm-no-runs``)
AdamW itself. On the demo LM the fixed point is degenerate: the residual stream's scale is a symmetry of the loss
(LayerNorm), so with v̂ frozen the decay drives it towards LayerNorm's ε and 30 Newton iterations stop far from
it (penalized gradient 0.8–81× ‖λDθ‖); the tables and what they show are in ``docs/weight_decay.md``.

    .venv/bin/python benchmarks/bench_weight_decay.py --threads 1 [--hidden 16] [--epochs 60]
    .venv/bin/python benchmarks/bench_weight_decay.py --threads 1 --part lm
    .venv/bin/python benchmarks/bench_weight_decay.py --threads 1 --part lm --lm-demo   # the demo's 276k LM
    .venv/bin/python benchmarks/bench_weight_decay.py --threads 1 --part lm --lm-demo --batch-size 4 \
        --lm-lambdas 3,10,30 --lm-newton 30 --lm-no-runs --lm-theta demo   # fixed point only, demo --lm's θ̂
    .venv/bin/python benchmarks/bench_weight_decay.py --threads 1 --optimizers adam --schedule cosine \
        --epochs 300 --lr 0.03        # Adam settled: cosine-annealed lr, iterate averaging
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

import ridgelens as rl
from ridgelens.cli._mlp import build_mlp_objective
from ridgelens.data import load_dataset
from ridgelens.penalty import optimizer_penalty
from ridgelens.pipeline import optimizer_refit
from ridgelens.pipeline._optimizer_refit import SCHEDULES


def settle(epoch_loss) -> float:
    """Relative change of the mean loss between the last two quarters of the epochs."""
    q = max(1, len(epoch_loss) // 4)
    a, b = np.mean(epoch_loss[-2 * q:-q]), np.mean(epoch_loss[-q:])
    return float(abs(b - a) / b)


def time_to_settle(run) -> float:
    """Seconds until the epoch's mean loss first comes within 1% of the last quarter's mean."""
    loss = np.asarray(run["epoch_loss"])
    target = loss[-max(1, len(loss) // 4):].mean()
    first = int(np.argmax(np.abs(loss - target) <= 0.01 * target))
    return run["seconds"] * (first + 1) / len(loss)


#: The parameters of a pre-LN ByteTransformer whose joint scale the loss ignores (the residual stream feeds only
#: LayerNorms): token and position embeddings and each block's output projections (weights and biases).
RESIDUAL_STREAM = ("tok.*", "pos.*", "blocks.*.proj.*", "blocks.*.out.*")


def lm_theta_hat(args, split):
    """θ̂ and its objective: the bench's recipe (AdamW + L-BFGS polish) or ``demo --lm``'s (``train_lm``, unpolished)."""
    from ridgelens.lm import ByteTransformer, LMConfig, train_lm
    from ridgelens.objectives.lm import LMObjective

    cfg = LMConfig(layers=args.lm_layers, width=args.lm_width, heads=args.lm_heads, context=args.lm_context)
    if args.lm_theta == "demo":  # exactly as the CLI: float32 training, a float64 objective on its weights
        from ridgelens.cli._args import LM_DEFAULTS

        obj = LMObjective(train_lm(cfg, split.train, steps=LM_DEFAULTS["steps"], seed=args.seed), split.train,
                          dtype=torch.float64)
        return obj, obj.theta0, f"demo --lm's train_lm ({LM_DEFAULTS['steps']} Adam steps, not polished)"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = ByteTransformer(cfg).double()
    obj = LMObjective(net, split.train, dtype=torch.float64)
    kw = {"lr": args.lr, "batch_size": args.batch_size, "seed": args.seed}
    pre = optimizer_refit(obj, obj.theta0, 0.0, "adamw", epochs=max(1, args.lm_steps * args.batch_size
                          // split.train.shape[0]), average_last=1e-9, **kw)["theta"]
    theta = obj.minimize(method="lbfgs", x0=pre, max_iter=args.lm_lbfgs, tol=1e-8).theta  # as for the MLP: θ̂ stationary
    return obj, theta, f"AdamW (wd 0, {args.lm_steps} steps) + {args.lm_lbfgs} L-BFGS iterations"


def lm_part(args) -> None:
    """AdamW's weight decay on a byte-level LM: predictions against the exact frozen-v̂ fixed point and AdamW itself.

    θ̂ (``--lm-theta``): ``bench``: ``--lm-steps`` AdamW steps (weight decay 0, lr ``--lr``, minibatches of
    ``--batch-size`` windows) from the LM's seeded initialization, float64, polished by L-BFGS to a stationary
    point (``--lm-lbfgs`` iterations, as for the MLP); ``demo``: exactly as ``ridgelens demo --lm`` trains it
    (``train_lm``, 150 Adam steps, float32, not polished: ‖∇R(θ̂)‖ is not small). Then ``--warm-epochs`` of AdamW
    (wd 0) from θ̂ make the state whose exp_avg_sq gives D = diag(√v̂ + ε). Predictions, one Krylov path each
    with the first-order term θ̃ = (C + λD)⁻¹(Cθ̂ − g): C = the Gauss–Newton matrix G (PSD) and the Hessian H
    ("none" at λ where H + λD is not positive definite: the path's ``valid``, or λ below minus the smallest
    eigenvalue of D^-1/2 H D^-1/2 that a Lanczos run of at most ``--lm-probe`` products finds); plain L2 (λI) with G, at the same
    λ and at λ·median(D) (the L2 strength that best matches AdamW's average decay, the fair baseline).

    **The exact fixed point** θ_FP: the minimizer of R + (λ/2)θᵀDθ with this D (v̂ frozen), by trust-region
    Newton-CG from the AdamW-aware θ̃ (:func:`ridgelens.pipeline.optimizer_fixed_point`), at most ``--lm-newton``
    iterations: the table gives its penalized gradient norm ‖∇R + λDθ‖ (relative to ‖λDθ‖) and whether it reached
    tol (``conv``). Errors ``‖θ̃ − θ_FP‖ / ‖θ_FP − θ̂‖`` are the quadratic model's own error, free of optimizer
    noise. ``‖θ_s‖``: the norm of the :data:`RESIDUAL_STREAM` parameters, whose joint scale R ignores (checked
    at θ̂ and printed): with v̂ frozen the decay shrinks them until LayerNorm's ε matters, so θ_FP has them near 0;
    ``ΔF s/10`` is the change of R + (λ/2)θᵀDθ when θ_s of the Newton iterate is divided by 10 (negative: the
    minimizer lies further down that valley than where the capped iteration stopped).

    Unless ``--lm-no-runs``: for each λ AdamW resumes that state from θ̂ for ``--lm-epochs`` epochs of shuffled
    minibatches and θ* is the average of the iterates over the last ``--average-last`` share. Errors
    ``‖θ̃ − θ*‖ / ‖θ* − θ̂‖``, and ``FP``: ``‖θ* − θ_FP‖ / ‖θ* − θ̂‖`` (the frozen-v̂ assumption plus optimizer
    noise). ``noise``: the λ = 0 run's
    drift ``‖θ*₀ − θ̂‖ / ‖θ* − θ̂‖``; ``seed``: ``‖θ*(seed 1) − θ*‖ / ‖θ* − θ̂‖``, the spread
    of the averaged iterates themselves (``seed_s``: of their residual streams, relative to ‖θ*_s‖). ``stat``: how far θ* is from AdamW's fixed point with v̂
    frozen at the run's end, ``‖∇R(θ*) + λD*θ*‖ / ‖λD*θ*‖`` with D* = √v̂ + ε of the final state
    (0 at an exact fixed point; for an averaged iterate it is not small even when seeds agree —
    0.5–0.8 at a settled λ on the demo LM — so compare it across runs, do not read it as a pass/fail).
    ``seen`` columns restrict the errors to parameters
    with D > 2ε: embedding rows of bytes absent from the training windows get no gradient, so
    v̂ = 0 there, both predictions put them at 0, and AdamW only decays them by (1 − lr·λ) per step.
    """
    import fnmatch

    from ridgelens.lm import stdlib_split
    from ridgelens.pipeline import optimizer_fixed_point

    t0 = time.perf_counter()
    split = stdlib_split(args.lm_context, args.lm_tokens)
    obj, theta, how = lm_theta_hat(args, split)
    kw = {"lr": args.lr, "batch_size": args.batch_size, "seed": args.seed}
    warm = optimizer_refit(obj, theta, 0.0, "adamw", epochs=args.warm_epochs, **kw)
    state = warm["state"]
    g = obj.gradient(theta)
    D = optimizer_penalty(obj, "adamw", state).factors
    seen = D > 2 * 1e-8
    names, sizes = obj.param_blocks()
    stream = np.repeat([any(fnmatch.fnmatch(n, p) for p in RESIDUAL_STREAM) for n in names], sizes)
    print(f"byte LM ({args.lm_layers} layer(s), width {args.lm_width}, {args.lm_heads} heads, context {args.lm_context}): "
          f"{obj.n_params} parameters, "
          f"{obj.n_tokens} training tokens of the standard library; θ̂ by {how} in "
          f"{time.perf_counter() - t0:.1f} s: loss {obj.value(theta):.3f}, ‖∇R(θ̂)‖ = {np.linalg.norm(g):.2e}")
    half = np.where(stream, 0.5, 1.0) * theta
    print(f"residual stream θ_s ({stream.sum()} parameters, {', '.join(RESIDUAL_STREAM)}): ‖θ̂_s‖ = "
          f"{np.linalg.norm(theta[stream]):.3g} of ‖θ̂‖ = {np.linalg.norm(theta):.3g}; R(θ̂ with θ_s halved) − R(θ̂) = "
          f"{obj.value(half) - obj.value(theta):.1e}")
    print(f"D = √v̂ + ε: median {np.median(D):.3g} ({np.median(D[seen]):.3g} over the {seen.sum()} parameters "
          f"with D > 2ε), range [{D.min():.3g}, {D.max():.3g}]")
    lam = np.array([float(v) for v in args.lm_lambdas.split(",")])
    path = dict(tol=1e-8, method="krylov", gradient=g)
    G = rl.ggn(obj, theta, **obj.product_options("ggn"))
    pred_aw = rl.ridge_path(G, theta, lam, penalty=D, **path).thetas
    pred_l2 = rl.ridge_path(G, theta, lam, **path).thetas
    pred_l2m = rl.ridge_path(G, theta, lam * np.median(D[seen]), **path).thetas
    H = rl.hessian(obj, theta, **obj.product_options("hessian"))
    hess = rl.ridge_path(H, theta, lam, penalty=D, **path)
    products = f"G: {G.n_matvecs} products, H: {H.n_matvecs}"
    # The path knows the Ritz values of its own Krylov space; a Lanczos run for the smallest eigenvalue of
    # D^-1/2 H D^-1/2 bounds it from above (a Ritz value), so λ ≤ −that is proven indefinite too.
    low = rl.eigen(H.sandwich(D ** -0.5), 1, which="smallest", tol=1e-6, max_matvecs=args.lm_probe)
    hess_ok = hess.valid & (lam + low.eigenvalues[0] > 0)
    hess_thetas = np.where(hess_ok[:, None], hess.thetas, np.nan)
    print(f"predictions (Krylov; {products}): {time.perf_counter() - t0:.1f} s so far; "
          f"‖θ̃‖ AdamW-aware G {', '.join(f'{v:.3g}' for v in np.linalg.norm(pred_aw, axis=1))}, "
          f"H {', '.join(f'{v:.3g}' if ok else 'none' for v, ok in zip(np.linalg.norm(hess.thetas, axis=1), hess_ok, strict=True))}"
          f", plain L2 {', '.join(f'{v:.3g}' for v in np.linalg.norm(pred_l2, axis=1))}; smallest eigenvalue of "
          f"D^-1/2 H D^-1/2: {hess.ritz_values.min():.3g} (the H path's Ritz values), {low.eigenvalues[0]:.3g} "
          f"(Lanczos, {low.n_matvecs} products, residual {low.residuals[0]:.2g}{'' if low.converged[0] else ', not converged'})")

    def rel(p, ref, base):  # ‖p − ref‖ / ‖ref − base‖ over all parameters, "none" where there is no prediction
        return "none" if not np.all(np.isfinite(p)) else f"{np.linalg.norm(p - ref) / np.linalg.norm(ref - base):.3f}"

    hvps = [0]
    own_hvp = obj.hvp

    def counted(t, v):
        hvps[0] += 1
        return own_hvp(t, v)

    obj.hvp = counted  # the fixed point's Newton-CG goes through this: count its Hessian products
    print(f"\nexact frozen-v̂ fixed point θ_FP (trust-ncg from the AdamW-aware θ̃, at most {args.lm_newton} "
          "iterations); errors are ‖θ̃ − θ_FP‖ / ‖θ_FP − θ̂‖")
    print(f"{'λ':>7} {'‖θ_FP‖':>8} {'‖θ_FP−θ̂‖':>10} {'‖θ_s‖':>7} {'ΔF s/10':>8} {'iter':>5} {'HVPs':>5} {'s':>5} {'‖∇‖':>8} "
          f"{'‖∇‖/‖λDθ‖':>10} {'conv':>4} {'aware G':>8} {'aware H':>8} {'L2 same λ':>9} {'L2 λ·med D':>10}")
    fixed = []
    for i, lm in enumerate(lam):
        t1, hvps[0] = time.perf_counter(), 0
        fp = optimizer_fixed_point(obj, lm, "adamw", optimizer_state=state, x0=pred_aw[i], max_iter=args.lm_newton)
        fixed.append(fp.theta)
        pull = np.linalg.norm(lm * D * fp.theta)

        def penalized(t, lm=lm):
            return obj.value(t) + 0.5 * lm * float(D @ (t * t))

        drop = penalized(np.where(stream, 0.1, 1.0) * fp.theta) - penalized(fp.theta)  # < 0: θ_s still shrinks
        print(f"{lm:7.3g} {np.linalg.norm(fp.theta):8.3g} {np.linalg.norm(fp.theta - theta):10.3g} "
              f"{np.linalg.norm(fp.theta[stream]):7.3g} {drop:8.1e} {fp.n_iter:5d} {hvps[0]:5d} {time.perf_counter() - t1:5.0f} "
              f"{fp.gradient_norm:8.1e} {fp.gradient_norm / pull:10.1e} {'yes' if fp.converged else 'NO':>4} "
              + " ".join(f"{rel(p[i], fp.theta, theta):>{w}}" for p, w in
                         ((pred_aw, 8), (hess_thetas, 8), (pred_l2, 9), (pred_l2m, 10))))
    obj.hvp = own_hvp
    if args.lm_no_runs:
        print(f"total {time.perf_counter() - t0:.0f} s (AdamW runs skipped: --lm-no-runs)")
        return
    ekw = dict(kw, epochs=args.lm_epochs, schedule=args.schedule, average_last=args.average_last)
    base = optimizer_refit(obj, theta, 0.0, "adamw", optimizer_state=state, **ekw)["theta"]
    print(f"\nAdamW from θ̂, {args.lm_epochs} epochs ({args.schedule} lr, θ* the mean of the last "
          f"{args.average_last:.0%}); errors are ‖θ̃ − θ*‖ / ‖θ* − θ̂‖ (all parameters | seen)")
    print(f"{'λ':>7} {'‖θ*‖':>7} {'‖θ*_s‖':>7} {'‖θ*−θ̂‖':>9} {'noise':>6} {'seed':>6} {'seed_s':>6} {'settle':>8} {'stat':>7} "
          f"{'FP':>6} {'aware':>13} {'L2 same λ':>13} {'L2 λ·med D':>13}")
    for i, lm in enumerate(lam):
        run = optimizer_refit(obj, theta, lm, "adamw", optimizer_state=state, **ekw)
        ts = run["theta"]
        other = optimizer_refit(obj, theta, lm, "adamw", optimizer_state=state, **dict(ekw, seed=args.seed + 1))
        d = ts - theta
        pull = lm * optimizer_penalty(obj, "adamw", run["state"]).factors * ts  # the decay, v̂ frozen at the run's end
        stat = np.linalg.norm(obj.gradient(ts) + pull) / np.linalg.norm(pull)

        def err(p, m=None, ts=ts, d=d):
            m = slice(None) if m is None else m
            return np.linalg.norm((p - ts)[m]) / np.linalg.norm(d[m])

        cols = " ".join(f"{err(p):6.3f}|{err(p, seen):6.3f}" for p in (pred_aw[i], pred_l2[i], pred_l2m[i]))
        print(f"{lm:7.3g} {np.linalg.norm(ts):7.3g} {np.linalg.norm(ts[stream]):7.3g} {np.linalg.norm(d):9.3g} "
              f"{np.linalg.norm(base - theta) / np.linalg.norm(d):6.3f} "
              f"{np.linalg.norm(other['theta'] - ts) / np.linalg.norm(d):6.3f} "
              f"{np.linalg.norm((other['theta'] - ts)[stream]) / np.linalg.norm(ts[stream]):6.3f} {settle(run['epoch_loss']):8.1e} "
              f"{stat:7.3f} {err(fixed[i]):6.3f} {cols}")
    print(f"total {time.perf_counter() - t0:.0f} s")


def main() -> None:
    """Run the three parts and print their tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--lambdas", default="3e-3,1e-2,3e-2", help="L2 (SGD, Adam) weight decays")
    ap.add_argument("--adamw-lambdas", default="auto", help="AdamW weight decays (auto: L2 grid / median D)")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--warm-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam and AdamW learning rate")
    ap.add_argument("--lr-sgd", type=float, default=0.05)
    ap.add_argument("--optimizers", default="adamw,adam,sgd", help="which optimizers to run in part 1")
    ap.add_argument("--schedule", choices=SCHEDULES, default="constant",
                    help="learning rate of the runs from θ̂ (cosine: annealed to 0, so the iterates settle)")
    ap.add_argument("--average-last", type=float, default=0.5, help="share of the steps whose iterates θ* averages")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", choices=("mlp", "lm"), default="mlp", help="the digits MLP (parts 1-3) or the byte LM")
    ap.add_argument("--lm-layers", type=int, default=1)
    ap.add_argument("--lm-width", type=int, default=16)
    ap.add_argument("--lm-heads", type=int, default=2)
    ap.add_argument("--lm-context", type=int, default=16)
    ap.add_argument("--lm-tokens", type=int, default=512)
    ap.add_argument("--lm-steps", type=int, default=400, help="AdamW steps that make θ̂ and its state")
    ap.add_argument("--lm-epochs", type=int, default=150, help="epochs of each AdamW run from θ̂")
    ap.add_argument("--lm-lambdas", default="1,3,10", help="AdamW weight decays on the LM")
    ap.add_argument("--lm-lbfgs", type=int, default=150, help="L-BFGS iterations that polish θ̂")
    ap.add_argument("--lm-theta", choices=("bench", "demo"), default="bench",
                    help="θ̂ of the LM: the bench's AdamW + L-BFGS, or exactly as `ridgelens demo --lm` trains it")
    ap.add_argument("--lm-newton", type=int, default=20, help="trust-ncg iterations of the exact fixed point")
    ap.add_argument("--lm-probe", type=int, default=200, help="products of the Lanczos run for D^-1/2 H D^-1/2's smallest eigenvalue")
    ap.add_argument("--lm-no-runs", action="store_true", help="the exact fixed point and predictions only, no AdamW runs")
    ap.add_argument("--lm-demo", action="store_true",
                    help="the LM of `ridgelens demo --lm` (layers, width, heads, context, tokens of LM_DEFAULTS)")
    args = ap.parse_args()
    if args.lm_demo:
        from ridgelens.cli._args import LM_DEFAULTS

        for name in ("layers", "width", "heads", "context", "tokens"):
            setattr(args, f"lm_{name}", LM_DEFAULTS[name])
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", rl.RidgelensWarning)
    import os

    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at start")
    if args.part == "lm":
        lm_part(args)
        return

    t_start = time.perf_counter()
    ds = load_dataset("digits", standardize=True)
    obj, _, _ = build_mlp_objective(ds, hidden=args.hidden, seed=args.seed, weights=None)
    t0 = time.perf_counter()
    hat = obj.minimize(method="lbfgs", max_iter=2000, tol=1e-8)
    theta = hat.theta
    g = obj.gradient(theta)
    print(f"digits MLP 64→{args.hidden}→10: {obj.n_params} parameters, θ̂ by L-BFGS in {time.perf_counter() - t0:.1f} s, "
          f"‖∇R(θ̂)‖ = {np.linalg.norm(g):.2e}, ‖θ̂‖ = {np.linalg.norm(theta):.3g}")
    grad = g if np.linalg.norm(g) > 1e-6 else None

    kw = {"lr": args.lr, "batch_size": args.batch_size, "seed": args.seed}
    states = {o: optimizer_refit(obj, theta, 0.0, o, epochs=args.warm_epochs, **kw)["state"] for o in ("adamw", "adam")}
    D = optimizer_penalty(obj, "adamw", states["adamw"]).factors
    print(f"AdamW D = √v̂ + ε after {args.warm_epochs} warm epochs at θ̂: median {np.median(D):.3g}, "
          f"range [{D.min():.3g}, {D.max():.3g}]")
    lam_l2 = np.array([float(v) for v in args.lambdas.split(",")])
    lam_aw = (np.array([float(f"{v:.1g}") for v in lam_l2 / np.median(D)]) if args.adamw_lambdas == "auto"
              else np.array([float(v) for v in args.adamw_lambdas.split(",")]))

    t0 = time.perf_counter()
    H = rl.DenseOperator(rl.hessian(obj, theta).to_dense())
    t_dense = time.perf_counter() - t0
    pred_l2_at = {tuple(lam): rl.ridge_path(H, theta, lam, gradient=grad).thetas for lam in (lam_l2, lam_aw)}
    pred_aw = rl.ridge_path(H, theta, lam_aw, gradient=grad, penalty=D).thetas
    wobj = rl.TorchObjective(obj.model, obj.loss_fn, obj.batches, penalty=D)
    fixed = {"adamw": [wobj.minimize(lam, x0=pred_aw[i], max_iter=30).theta for i, lam in enumerate(lam_aw)]}
    if {"adam", "sgd"} & set(args.optimizers.split(",")):  # their fixed point: the minimizer of R + (λ/2)‖θ‖²
        fixed["adam"] = fixed["sgd"] = [obj.minimize(lam, x0=pred_l2_at[tuple(lam_l2)][i], max_iter=30).theta
                                        for i, lam in enumerate(lam_l2)]

    print("\n1. the real optimizer from θ̂, minibatch; errors are ‖θ̃ − θ*‖ / ‖θ* − θ̂‖")
    print(f"{'optimizer':>9} {'λ':>9} {'‖θ*−θ̂‖':>9} {'noise':>7} {'settle':>8} {'aware':>8} {'plain L2':>9} "
          f"{'exact FP':>9}")
    retrain = []
    for opt, lams in (("adamw", lam_aw), ("adam", lam_l2), ("sgd", lam_l2)):
        if opt not in args.optimizers.split(","):
            continue
        okw = dict(kw, lr=args.lr_sgd) if opt == "sgd" else kw
        state = states.get(opt)
        rkw = dict(okw, optimizer_state=state, epochs=args.epochs, schedule=args.schedule,
                   average_last=args.average_last)
        base = optimizer_refit(obj, theta, 0.0, opt, **rkw)["theta"]
        for i, lam in enumerate(lams):
            run = optimizer_refit(obj, theta, lam, opt, **rkw)
            ts = run["theta"]
            shift = np.linalg.norm(ts - theta)
            l2 = pred_l2_at[tuple(lams)][i]
            aware = pred_aw[i] if opt == "adamw" else l2
            fp = f"{np.linalg.norm(fixed[opt][i] - ts) / shift:9.3f}"
            print(f"{opt:>9} {lam:9.3g} {shift:9.3g} {np.linalg.norm(base - theta) / shift:7.3f} "
                  f"{settle(run['epoch_loss']):8.1e} {np.linalg.norm(aware - ts) / shift:8.3f} "
                  f"{np.linalg.norm(l2 - ts) / shift:9.3f} {fp}")
            if opt == "adamw":
                retrain.append(run)

    print(f"part 1: {time.perf_counter() - t_start:.0f} s")
    print("\n2. cost of a path, matrix-free (Krylov, tol 1e-8), λ = σ_max·(1e-4, 1e-3, 1e-2, 1e-1)")
    op = rl.hessian(obj, theta)
    sig = {"unweighted": float(np.linalg.eigvalsh(H.to_dense().numpy())[-1])}
    s = 1 / np.sqrt(D)
    sig["weighted"] = float(np.linalg.eigvalsh(s[:, None] * H.to_dense().numpy() * s[None, :])[-1])
    rel = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    costs = {}
    for name, pen in (("unweighted", None), ("weighted", D)):
        times, hvps = [], None
        for _ in range(args.repeats):
            before = op.n_matvecs
            t0 = time.perf_counter()
            path = rl.ridge_path(op, theta, sig[name] * rel, gradient=grad, method="krylov", tol=1e-8, penalty=pen)
            times.append(time.perf_counter() - t0)
            hvps = op.n_matvecs - before
        costs[name] = (statistics.median(times), hvps)
        print(f"{name:>11}: σ_max {sig[name]:.3g}, smallest Ritz value {path.ritz_values.min():.3g}, {hvps} HVPs, "
              f"{statistics.median(times) * 1e3:.0f} ms (median of {args.repeats}); λ with a minimizer "
              f"{int(path.valid.sum())}/{path.valid.size}, converged {int(np.sum(path.converged))}/{path.valid.size}")
    print(f"weighted / unweighted: {costs['weighted'][1] / costs['unweighted'][1]:.2f}× HVPs, "
          f"{costs['weighted'][0] / costs['unweighted'][0]:.2f}× time")

    if not retrain:
        return
    print("\n3. prediction against retraining (AdamW)")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        rl.ridge_path(op, theta, lam_aw, gradient=grad, method="krylov", tol=1e-8, penalty=D)
        times.append(time.perf_counter() - t0)
    t_pred = statistics.median(times)
    t_settle = statistics.median(time_to_settle(r) for r in retrain)
    t_run = statistics.median(r["seconds"] for r in retrain)
    print(f"prediction, every one of {lam_aw.size} λ (matrix-free path): {t_pred:.2f} s (dense H formed once: {t_dense:.2f} s)")
    print(f"one AdamW run to the settled loss: {t_settle:.2f} s (whole {args.epochs}-epoch run {t_run:.2f} s), "
          f"median over λ; ratio {t_settle / t_pred:.1f}× per λ, {lam_aw.size * t_settle / t_pred:.1f}× for the path")


if __name__ == "__main__":
    main()
