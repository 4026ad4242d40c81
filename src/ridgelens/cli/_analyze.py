"""``ridgelens analyze``: data set + model → results.json, figures and a summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_json
from ridgelens._validation import check_lambdas
from ridgelens.cli._distributed import launched, run_sharded, session
from ridgelens.cli._output import (
    checked_path,
    new_figure,
    prepare_checkpoint,
    remove_empty,
    save_figure,
    staged_folder,
    table,
)
from ridgelens.data import load_dataset
from ridgelens.errors import RidgelensError
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.pipeline import analyze
from ridgelens.plots import (
    plot_coefficient_paths,
    plot_effective_df,
    plot_model_contours,
    plot_rel_error,
    plot_shrinkage,
    plot_spectral_density,
)

#: Options that only an MLP uses, with their defaults (None on the command line = not given).
MLP_DEFAULTS = {"hidden": 64, "seed": 0, "train_iters": 1000, "refit_method": "trust-ncg", "refit_iters": None,
               "loss": "mse",
                "refit_tol": 1e-5, "weights": None, "checkpoint": None, "unpenalized": ()}


def run_analyze(args) -> None:
    """Validate everything first, compute, then write the outputs atomically."""
    lam = check_lambdas(args.lambdas, "--lambdas")
    if args.no_intercept and args.penalize_intercept:
        raise RidgelensError("--no-intercept and --penalize-intercept contradict each other; choose one")
    if args.model != "mlp":
        given = ["--" + name.replace("_", "-") for name in MLP_DEFAULTS if getattr(args, name) is not None]
        if given:
            raise RidgelensError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --model mlp; "
                                 f"a {args.model} model is solved exactly")
    else:
        if args.no_intercept or args.penalize_intercept:
            raise RidgelensError(f"{'--no-intercept' if args.no_intercept else '--penalize-intercept'} is for the "
                                 "linear and logistic models; an mlp's biases are penalized unless "
                                 "--unpenalized '*.bias' leaves them out")
        for name, default in MLP_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        if args.refit_iters is None:
            args.refit_iters = 200 if args.refit_method == "trust-ncg" else 500
    if args.k is not None and args.k < 1:
        raise RidgelensError(f"--k must be a positive number of eigenvalues, got {args.k}")
    if args.model == "mlp":
        _check_mlp_numbers(args)
    if args.shard_basis and not launched():
        raise RidgelensError("--shard-basis slices the Krylov bases across the ranks of a torchrun launch; "
                             "this run is one process (launch it with torchrun --nproc-per-node N)")
    if launched():
        if args.model != "mlp":
            raise RidgelensError(f"a {args.model} model is solved exactly in one process; torchrun shards the "
                                 "batches of --model mlp only (run this one without torchrun)")
        with session():
            return run_sharded(args, lam, _run)
    created = []
    if args.model == "mlp" and args.checkpoint is not None:
        created = prepare_checkpoint(args.checkpoint, checked_path(args.out, "--out"))
    try:
        # Everything is written into `out`, a staging folder moved into place as --out at the end.
        with staged_folder(args.out, overwrite=args.overwrite) as out:
            written = _run(args, lam, out)
    except BaseException:
        remove_empty(created)  # a checkpoint folder this run made and never wrote into
        raise
    print(f"wrote {args.out}/: {', '.join(written)}")


def _check_mlp_numbers(args) -> None:
    """The MLP's counts and tolerance, checked before any work (naming the option)."""
    for name, low in (("hidden", 1), ("train_iters", 1), ("refit_iters", 1)):
        v = getattr(args, name)
        if v < low:
            raise RidgelensError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {v}")
    if not 0 <= args.seed < 2**63:
        raise RidgelensError(f"--seed must be an integer in [0, 2^63), got {args.seed}")
    if not (np.isfinite(args.refit_tol) and args.refit_tol > 0):
        raise RidgelensError(f"--refit-tol must be a positive number (a gradient-norm tolerance), got {args.refit_tol}")


def _run(args, lam: np.ndarray, out: Path) -> list[str]:
    """Load, compute, print the summary and write every output into ``out``; returns the file names."""
    ds = load_dataset(args.data, target=args.target, standardize=args.standardize,
                      positive_class=args.positive_class)
    extra = {}
    if args.model == "mlp":
        res, extra = _analyze_mlp(args, ds, lam, out)
        obj = None  # the model-plane figure evaluates the true loss on a grid: linear models only
    else:
        cls = LeastSquares if args.model == "linear" else Logistic
        obj = cls(ds.X, ds.y, fit_intercept=not args.no_intercept, penalize_intercept=args.penalize_intercept,
                  feature_names=ds.feature_names)
        res = analyze(obj, lam, curvature=args.curvature)

    print(f"ridgelens analyze: {ds.name}, {args.model} model, n = {res.n_samples} samples, "
          f"{res.n_params} parameters{' (standardized)' if ds.standardized else ''}; "
          f"{res.method} {'Gauss-Newton' if res.curvature_kind == 'ggn' else 'Hessian'} curvature "
          f"({res.n_matvecs} curvature-vector products)")
    schur = res.method == "matrix-free" and res.path.curvature == "schur-complement"
    print(f"premises at θ̂: ‖∇R(θ̂)‖ = {res.gradient_norm:.3g}, smallest eigenvalue of {'S' if schur else 'H'} = "
          f"{res.min_eigenvalue:.4g}"
          + ("  (Ritz estimate)" if res.method == "matrix-free" else ""))
    top = res.spectrum.eigenvalues[: min(args.k or 10, res.spectrum.k)]
    of = "S, H's Schur complement on the penalized block" if schur else "H"
    print(f"largest {top.size} eigenvalues of {of}: " + ", ".join(f"{v:.4g}" for v in top))
    rows = [[lam_i, res.effective_df[i], res.rel_error[i], "yes" if res.refit_converged[i] else "NO"]
            for i, lam_i in enumerate(res.lambdas)]
    print(table(["λ", "df(λ)", "‖θ̃−θ*‖/‖θ*‖", "refit converged"], rows))

    if out is None:  # a rank other than 0 of a data-parallel run: rank 0 writes
        return []
    d = res.to_dict()
    d.update(data=ds.name, model=args.model, standardized=ds.standardized, target=ds.target_name, **extra)
    atomic_write_json(out / "results.json", d)
    return ["results.json", *_figures(res, obj, lam, out)]


def _analyze_mlp(args, ds, lam, out: Path):
    """Train (or load) the MLP, then analyze it; the trained weights are saved as ``out``/model.pt.

    ``out`` is the staging folder; the results name model.pt where it will be, in ``--out``.
    """
    from ridgelens.cli._mlp import build_mlp_objective, save_state_dict

    obj, net, task = build_mlp_objective(ds, hidden=args.hidden, seed=args.seed, weights=args.weights,
                                         loss=args.loss, unpenalized=args.unpenalized)
    if args.weights is None:
        trained = obj.minimize(method="lbfgs", max_iter=args.train_iters, tol=1e-8)
        theta_hat = trained.theta
        print(f"trained the {obj.n_params}-parameter MLP ({task}) with L-BFGS from seed {args.seed}: "
              f"{trained.n_iter} iterations, ‖∇R‖ = {trained.gradient_norm:.3g}")
    else:
        theta_hat = obj.theta0
    res = analyze(obj, lam, theta_hat=theta_hat, k=args.k or 20, seed=args.seed, checkpoint=args.checkpoint,
                  curvature=args.curvature,
                  tol=args.refit_tol, refit_options={"method": args.refit_method, "max_iter": args.refit_iters})
    if args.weights is None and out is not None:
        save_state_dict(net, theta_hat, obj, out / "model.pt")
    return res, {"hidden": args.hidden, "seed": args.seed, "task": task, "loss": args.loss,
                 "unpenalized": list(args.unpenalized), "refit_method": args.refit_method,
                 "refit_iters": args.refit_iters,
                 "weights": args.weights or str(Path(args.out) / "model.pt")}


def _figures(res, obj, lam: np.ndarray, out: Path) -> list[str]:
    """Draw the analysis' figures into ``out``; returns the file names."""
    figs = {}
    if np.any(lam > 0):  # the paths are drawn on a log λ axis: λ = 0 alone has no place on it
        figs["paths.png"] = lambda ax: plot_coefficient_paths(res, ax=ax)
    figs["rel_error.png"] = lambda ax: plot_rel_error(res, ax=ax)
    figs["shrinkage.png"] = lambda ax: plot_shrinkage(res.path, int(np.argsort(lam)[lam.size // 2]), ax=ax)
    if res.method == "dense":
        figs["effective_df.png"] = lambda ax: plot_effective_df(res.path, ax=ax)
        figs["spectral_density.png"] = lambda ax: plot_spectral_density(res.path.eigenvalues, ax=ax)
    else:
        figs["spectral_density.png"] = lambda ax: plot_spectral_density(nodes=res.density.nodes,
                                                                        weights=res.density.weights, ax=ax)
    if obj is not None and res.spectrum.k >= 2 and res.path.valid.any():
        figs["model_contours.png"] = lambda ax: plot_model_contours(obj, res, ax=ax)
    for name, draw in figs.items():
        fig = new_figure()
        draw(fig.add_subplot())
        save_figure(fig, out / name)
    return list(figs)
