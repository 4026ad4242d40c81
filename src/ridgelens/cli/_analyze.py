"""``ridgelens analyze``: data set + model → results.json, figures and a summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_json
from ridgelens._validation import check_lambdas
from ridgelens.cli._output import new_figure, save_figure, table
from ridgelens.data import load_dataset
from ridgelens.errors import RidgelensError
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.plots import plot_coefficient_paths, plot_rel_error, plot_shrinkage
from ridgelens.ridge import analyze


def run_analyze(args) -> None:
    """Validate everything first, compute, then write the outputs atomically."""
    lam = check_lambdas(args.lambdas, "--lambdas")
    if args.no_intercept and args.penalize_intercept:
        raise RidgelensError("--no-intercept and --penalize-intercept contradict each other; choose one")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RidgelensError(f"--out {out} exists and is not a folder")
    ds = load_dataset(args.data, target=args.target, standardize=args.standardize,
                      positive_class=args.positive_class)
    cls = LeastSquares if args.model == "linear" else Logistic
    obj = cls(ds.X, ds.y, fit_intercept=not args.no_intercept, penalize_intercept=args.penalize_intercept,
              feature_names=ds.feature_names)
    res = analyze(obj, lam)

    print(f"ridgelens analyze: {ds.name}, {args.model} model, n = {res.n_samples} samples, "
          f"{res.n_params} parameters{' (standardized)' if ds.standardized else ''}")
    print(f"premises at θ̂: ‖∇R(θ̂)‖ = {res.gradient_norm:.3g}, smallest eigenvalue of H = {res.min_eigenvalue:.4g}")
    rows = [[lam_i, res.effective_df[i], res.rel_error[i], "yes" if res.refit_converged[i] else "NO"]
            for i, lam_i in enumerate(res.lambdas)]
    print(table(["λ", "df(λ)", "‖θ̃−θ*‖/‖θ*‖", "refit converged"], rows))

    d = res.to_dict()
    d.update(data=ds.name, model=args.model, standardized=ds.standardized, target=ds.target_name)
    atomic_write_json(out / "results.json", d)
    fig = new_figure()
    plot_coefficient_paths(res, ax=fig.add_subplot())
    save_figure(fig, out / "paths.png")
    fig = new_figure()
    plot_rel_error(res, ax=fig.add_subplot())
    save_figure(fig, out / "rel_error.png")
    fig = new_figure()
    plot_shrinkage(res.path, int(np.argsort(lam)[lam.size // 2]), ax=fig.add_subplot())  # the median λ
    save_figure(fig, out / "shrinkage.png")
    print(f"wrote {out / 'results.json'}, paths.png, rel_error.png, shrinkage.png")
