"""``ridgelens analyze``: data set + model → results.json, figures and a summary table."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_json
from ridgelens._progress import stage
from ridgelens._validation import check_lambdas, check_seed
from ridgelens.cli._columns import original_scale, pick_features
from ridgelens.cli._distributed import launched, run_sharded, session
from ridgelens.cli._notes import singular_note
from ridgelens.cli._output import (
    checked_path,
    new_figure,
    prepare_checkpoint,
    remove_empty,
    save_figure,
    staged_folder,
    table,
)
from ridgelens.cli._penalty import apply_linear, apply_mlp, curvature_choice, say_curvature
from ridgelens.cli._report import recorded_warnings, write_report
from ridgelens.cli._select import (
    check_select,
    choose,
    default_lambdas,
    refit_options,
    split,
    torch_validation,
)
from ridgelens.cli._stream import streamed_objective
from ridgelens.cli._torch import check_refit_tol, is_user_model
from ridgelens.data import load_dataset
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives import LeastSquares, Logistic
from ridgelens.pipeline import analyze
from ridgelens.pipeline._display import HEADERS
from ridgelens.pipeline._display import rows as summary_rows
from ridgelens.plots import (
    plot_coefficient_paths,
    plot_effective_df,
    plot_model_contours,
    plot_rel_error,
    plot_selection,
    plot_shrinkage,
    plot_spectral_density,
)
from ridgelens.report._loss import loss_plane_if_drawable
from ridgelens.report._plane import display_eigenvalues

#: Options that only the built-in MLP uses, with their defaults (None on the command line = not given).
MLP_DEFAULTS = {"hidden": 64, "train_iters": 1000, "penalty": (), "optimizer": None, "optimizer_state": None,
                "standardize_target": False, "task": "auto"}
#: Options of every torch model (the MLP and a user's MODULE:FACTORY), with their defaults.
#: The torch models' options a language model takes too (its refits and polish are L-BFGS).
LM_TORCH_OPTIONS = ("seed", "polish", "refit_iters", "refit_tol")
TORCH_DEFAULTS = {"seed": 0, "refit_method": "trust-ncg", "refit_iters": None, "loss": None, "refit_tol": 1e-5,
                  "weights": None, "checkpoint": None, "unpenalized": (), "device": "cpu", "dtype": "float64",
                  "batch_size": 512, "polish": False}


def run_analyze(args) -> None:
    """Validate everything first, compute, then write the outputs atomically."""
    from ridgelens.cli._lm import is_lm, refuse_lm_options, run_lm_analyze

    if is_lm(args.model):
        chosen = [opt for opt, v in (("--features", args.features),
                                     ("--validation-fraction", args.validation_fraction)) if v]
        if chosen:
            raise RidgelensError(f"{', '.join(chosen)} {'is' if len(chosen) == 1 else 'are'} not for --model "
                                 "lm/hf:DIR (its validation tokens are the held-out files of --text)")
        if args.lambdas is None:
            raise RidgelensError("--model lm/hf:DIR needs --lambdas, e.g. --lambdas 1e-2,0.1,1")
        given = ["--" + n.replace("_", "-") for n in {**MLP_DEFAULTS, **TORCH_DEFAULTS}
                 if n not in LM_TORCH_OPTIONS and getattr(args, n) is not None]
        if given or args.no_intercept or args.penalize_intercept or args.standardize:
            raise RidgelensError("--model lm/hf:DIR takes --text, --context, --tokens, --seed, --k, --subsamples, "
                                 "--max-logits, --curvature, --select validation, "
                                 "--polish, --polish-iters, --polish-tol, --refit-iters, --refit-tol, --save-thetas, --report "
                                 "(and --model lm --layers, --width, --heads, --steps); not "
                                 + ", ".join(given or ["the tabular options"]))
        run_lm_analyze(args)
        return
    refuse_lm_options(args)
    if args.data is None:
        raise RidgelensError(f"--data is required for --model {args.model}")
    lam = check_lambdas(args.lambdas, "--lambdas") if args.lambdas is not None else None
    check_select(args, lam)
    if args.no_intercept and args.penalize_intercept:
        raise RidgelensError("--no-intercept and --penalize-intercept contradict each other; choose one")
    torch_model = args.model == "mlp" or is_user_model(args.model)
    for names, what in ((MLP_DEFAULTS, "--model mlp"), (TORCH_DEFAULTS, "torch models (--model mlp or MODULE:FACTORY)")):
        if (names is MLP_DEFAULTS and args.model == "mlp") or (names is TORCH_DEFAULTS and torch_model):
            continue
        given = ["--" + name.replace("_", "-") for name in names if getattr(args, name) is not None]
        if given:
            raise RidgelensError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for {what}; "
                                 f"{'a' if args.model in ('linear', 'logistic') else 'your'} {args.model} model "
                                 f"{'is solved exactly' if args.model in ('linear', 'logistic') else 'is not trained here'}")
    if torch_model:
        if args.no_intercept or args.penalize_intercept:
            raise RidgelensError(f"{'--no-intercept' if args.no_intercept else '--penalize-intercept'} is for the "
                                 "linear and logistic models; a torch model's biases are penalized unless "
                                 "--unpenalized '*.bias' leaves them out")
        for name, default in {**(MLP_DEFAULTS if args.model == "mlp" else {}), **TORCH_DEFAULTS}.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        if args.model == "mlp" and args.loss is None:
            args.loss = "mse"
        if args.refit_iters is None:
            args.refit_iters = 200 if args.refit_method == "trust-ncg" else 500
    if args.model == "mlp" and args.penalty_factors is not None:
        raise RidgelensError("--penalty-factors is for the linear and logistic models; an mlp takes --penalty "
                             "PATTERN=FACTOR by parameter name")
    if args.k is not None and args.k < 1:
        raise RidgelensError(f"--k must be a positive number of eigenvalues, got {args.k}")
    if torch_model:
        _check_mlp_numbers(args)
    if args.shard_basis and not launched():
        raise RidgelensError("--shard-basis slices the Krylov bases across the ranks of a torchrun launch; "
                             "this run is one process (launch it with torchrun --nproc-per-node N)")
    if launched():
        if args.model != "mlp":
            raise RidgelensError(f"a {args.model} model is solved exactly in one process; torchrun shards the "
                                 "batches of --model mlp only (run this one without torchrun)")
        if args.select is not None:
            raise RidgelensError("--select runs in one process (run it without torchrun)")
        with session():
            return run_sharded(args, lam, _run)
    created = []
    if torch_model and args.checkpoint is not None:
        created = prepare_checkpoint(args.checkpoint, checked_path(args.out, "--out"))
    try:
        # Everything is written into `out`, a staging folder moved into place as --out at the end.
        with staged_folder(args.out, overwrite=args.overwrite) as out:
            written = _run(args, lam, out)
    except BaseException:
        remove_empty(created)  # a checkpoint folder this run made and never wrote into
        raise
    print(f"wrote {args.out}/: {', '.join(written)}")


def _refuse_constant_features(ds, *, fit_intercept: bool) -> None:
    """Every feature constant (zero, without an intercept): the weights change nothing, nothing to shrink.

    Said here, naming the data, rather than by the first figure ('df(λ) needs at least one positive
    eigenvalue').
    """
    flat = np.ptp(ds.X, axis=0) == 0 if fit_intercept else ~ds.X.any(axis=0)
    if flat.all():
        what = "constant" if fit_intercept else "zero"
        raise DataError(f"every feature of {ds.name} is {what} ({', '.join(ds.feature_names[:5])}"
                        f"{', …' if len(ds.feature_names) > 5 else ''}): the loss does not depend on the weights, so "
                        "there is nothing for the penalty to shrink")


def _check_mlp_numbers(args) -> None:
    """The MLP's counts and tolerance, checked before any work (naming the option)."""
    for name, low in (("hidden", 1), ("train_iters", 1), ("refit_iters", 1), ("batch_size", 1)):
        v = getattr(args, name, None)
        if v is None:  # an mlp-only option of a user's model
            continue
        if v < low:
            raise RidgelensError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {v}")
    check_seed(args.seed, "--seed")
    check_refit_tol(args.refit_tol)


def _run(args, lam: np.ndarray | None, out: Path) -> list[str]:
    """Load, compute, print the summary and write every output into ``out``; returns the file names."""
    with recorded_warnings() as caught:
        return _run_recorded(args, lam, out, caught)


def _run_recorded(args, lam, out: Path, caught) -> list[str]:
    streamed = streamed_objective(args)  # --stream (or too large for memory): no X, only its moments
    if streamed is not None:
        ds, obj = streamed
    elif is_user_model(args.model):
        from ridgelens.cli._torch import load_user_data

        ds = load_user_data(args)
    else:
        ds = load_dataset(args.data, target=args.target, standardize=args.standardize,
                          positive_class=args.positive_class)
    ds = pick_features(ds, args.features)
    scaled_y = None
    if args.model == "mlp" and args.standardize_target:  # before the split: one scale for every row
        from ridgelens.cli._mlp import standardize_target

        ds, scaled_y = standardize_target(ds, args.task)
    extra = {}
    validation = split_info = torch_obj = None
    full_y = ds.y  # a torch model's classes come from every row, held out or not
    if args.select == "validation":
        ds, validation, split_info = split(ds, args.validation_fraction)
    if is_user_model(args.model):
        res, extra, torch_obj = _analyze_user(args, ds, lam, full_y)
    elif args.model == "mlp":
        res, extra, torch_obj = _analyze_mlp(args, ds, lam, out, full_y)
        extra["target_standardized"] = scaled_y
    if torch_obj is not None:
        obj = None  # the model-plane figure evaluates the true loss on a grid: linear models only
        if validation is not None:
            validation = torch_validation(args, *validation, full_y)
    else:
        cls = LeastSquares if args.model == "linear" else Logistic
        if streamed is None:
            _refuse_constant_features(ds, fit_intercept=not args.no_intercept)
            obj = cls(ds.X, ds.y, fit_intercept=not args.no_intercept, penalize_intercept=args.penalize_intercept,
                      feature_names=ds.feature_names)
        extra = apply_linear(args, obj)
        curvature, auto = curvature_choice(args, obj, None)  # convex: the Hessian, no probe
        if lam is None:
            lam, extra["grid"] = default_lambdas(obj, curvature)
        res = analyze(obj, lam, curvature=curvature)
        res = replace(res, choices={**res.choices, **say_curvature(auto)})
        res = replace(res, loss_plane=loss_plane_if_drawable(obj, res))  # the page's true loss: 626 evaluations

    print(f"ridgelens analyze: {ds.name}, {args.model} model, n = {res.n_samples} samples, "
          f"{res.n_params} parameters{' (standardized)' if ds.standardized else ''}; "
          f"{res.method} {'Gauss-Newton' if res.curvature_kind == 'ggn' else 'Hessian'} curvature "
          f"({res.n_matvecs} curvature-vector products)")
    if args.curvature == "ggn" and res.curvature_kind == "hessian":  # a canonical-link GLM: G = H exactly
        print(f"note: {res.choices['curvature']}")
    schur = res.method == "matrix-free" and res.path.curvature == "schur-complement"
    C = "G" if res.curvature_kind == "ggn" else "H"  # the curvature the analysis ran on: the Gauss-Newton G, or H
    print(f"premises at θ̂: ‖∇R(θ̂)‖ = {res.gradient_norm:.3g}, smallest eigenvalue of {'S' if schur else C} = "
          f"{res.min_eigenvalue:.4g}"
          + ("  (Ritz estimate)" if res.method == "matrix-free" else ""))
    note = singular_note(res)
    if note:
        print(note)
    top = res.spectrum.eigenvalues[: min(args.k or 10, res.spectrum.k)]
    of = f"S, {C}'s Schur complement on the penalized block" if schur else C
    if res.penalty is not None:
        of = f"D^{{-1/2}}{C}D^{{-1/2}}" + (" (its Schur complement on the penalized block)" if schur else "")
        print(f"penalty (λ/2)θᵀDθ from {res.penalty['source']}: {res.penalty['n_zero']} factors 0, the others in "
              f"[{res.penalty['min_positive']:.3g}, {res.penalty['max']:.3g}]")
    print(f"largest {top.size} eigenvalues of {of}: " + ", ".join(f"{v:.4g}" for v in top))
    selection = None
    if args.select is not None and torch_obj is not None:  # before the table: it may add the one refit
        selection, extra["selection"], res = choose(args, torch_obj, lam, validation, split_info, res=res,
                                                    how=extra.get("grid", "given"))
    said = io.StringIO()
    if args.select is not None and torch_obj is None:  # before the table, said after it: a refusal is one line
        with contextlib.redirect_stdout(said):
            selection, extra["selection"], _ = choose(args, obj, lam, validation, split_info)
    if res.refit is not None:  # a λ without a prediction (below −σ_min of an indefinite H) says so, not nan
        print(table(HEADERS, summary_rows(res)))
    print(said.getvalue(), end="")

    if out is None:  # a rank other than 0 of a data-parallel run: rank 0 writes
        return []
    d = res.to_dict()
    if ds.standardized and obj is not None:
        extra["original_scale"] = original_scale(args, res)
    d.update(data=ds.name, model=args.model, standardized=ds.standardized, target=ds.target_name, **extra)
    atomic_write_json(out / "results.json", d)
    written = ["results.json", *_figures(res, obj, res.lambdas, out)]
    if selection is not None:
        fig = new_figure()
        plot_selection(selection, ax=fig.add_subplot())
        save_figure(fig, out / "selection.png")
        written.append("selection.png")
    if args.report:
        written.append(write_report(out, d, caught))
    if (out / "model.pt").exists():  # the MLP's trained (or polished) weights, saved before the analysis
        written.append("model.pt")
    return written


def _analyze_mlp(args, ds, lam, out: Path, full_y=None):
    """Train (or load) the MLP, then analyze it; the trained weights are saved as ``out``/model.pt.

    ``out`` is the staging folder; the results name model.pt where it will be, in ``--out``.
    ``full_y``: the targets that decide the task and classes (every row; default ``ds.y``).
    Returns ``(analysis, results.json extras, objective)``.
    """
    from ridgelens.cli._mlp import build_mlp_objective, save_state_dict

    obj, net, task = build_mlp_objective(ds, hidden=args.hidden, seed=args.seed, weights=args.weights,
                                         loss=args.loss, unpenalized=args.unpenalized, dtype=args.dtype,
                                         device=args.device, batch_size=args.batch_size, like=full_y,
                                         task=args.task)
    penalty_extra = apply_mlp(args, obj)
    if args.weights is None:  # θ̂ is the minimizer this training finds (--polish continues it with --refit-method)
        with stage("training the MLP (L-BFGS)"):
            trained = obj.minimize(method="lbfgs", max_iter=args.train_iters, tol=1e-8)
        theta_hat = trained.theta
        print(f"trained the {obj.n_params}-parameter MLP ({task}) with L-BFGS from seed {args.seed}: "
              f"{trained.n_iter} iterations, ‖∇R‖ = {trained.gradient_norm:.3g}")
    else:
        theta_hat = obj.theta0
    res, how = _analyze_torch(args, obj, lam, theta_hat)
    if out is not None:  # None on the ranks other than 0 of a data-parallel run: rank 0 writes
        save_state_dict(net, res.theta_hat, obj, out / "model.pt")
    return res, {"hidden": args.hidden, "seed": args.seed, "task": task, "loss": args.loss,
                 "unpenalized": list(args.unpenalized), "refit_method": args.refit_method,
                 "refit_iters": args.refit_iters, "device": args.device, "dtype": args.dtype,
                 "batch_size": args.batch_size, "weights_given": args.weights,
                 "weights": str(Path(args.out) / "model.pt"), **penalty_extra, **how}, obj


def _analyze_user(args, ds, lam, full_y=None):
    """A user's MODULE:FACTORY model on tensors data: θ̂ is its weights as given (or polished with --polish)."""
    from ridgelens.cli._torch import build_user_objective

    obj, loss = build_user_objective(args, ds.X, ds.y, like=full_y)
    res, how = _analyze_torch(args, obj, lam, None)
    return res, {"model_factory": args.model, "seed": args.seed, "loss": loss, "unpenalized": list(args.unpenalized),
                 "refit_method": args.refit_method, "refit_iters": args.refit_iters, "device": args.device,
                 "dtype": args.dtype, "batch_size": args.batch_size, "weights": args.weights, **how}, obj


def _analyze_torch(args, obj, lam, theta_hat):
    """The analysis of a torch model, with the θ̂ it was given (or polished, and then said how far it moved).

    Returns ``(analysis, {"grid": how} for the default grid (lam None), else {})``.
    """
    # --polish with auto: analyze probes H at the polished θ̂ it analyzes (the weights given are not that point)
    at_polished = bool(args.polish) and (args.curvature or "auto") == "auto"
    curvature, auto = ("auto", {}) if at_polished and lam is not None else \
        curvature_choice(args, obj, obj.theta0 if theta_hat is None else theta_hat)
    how = {}
    refit = lam is not None  # the default grid: the one refit at the chosen λ, after --select (cli/_select.py)
    if lam is None:  # --select without --lambdas: the default grid, from the spectrum at θ̂ as given
        lam, how["grid"] = default_lambdas(obj, curvature, theta_hat=theta_hat, k=args.k or 20, seed=args.seed)
    res = analyze(obj, lam, theta_hat=theta_hat, k=args.k or 20, seed=args.seed, checkpoint=args.checkpoint,
                  curvature="auto" if at_polished else curvature, polish=bool(args.polish), refit=refit,
                  tol=args.refit_tol, refit_options=refit_options(args))
    if at_polished:
        say_curvature(auto)  # the choice the default grid was drawn with (none when --lambdas were given)
        print(f"curvature (auto, at the polished θ̂): {res.choices['curvature']}")
    else:
        res = replace(res, choices={**res.choices, **say_curvature(auto)})
    res = replace(res, loss_plane=loss_plane_if_drawable(obj, res))  # the page's true loss: 626 evaluations
    p = res.polish
    if p is not None:
        print(f"polished θ̂ ({p['method']}, {p['n_iter']} iterations{'' if p['converged'] else ', NOT converged'}): "
              f"moved ‖Δθ‖ = {p['moved']:.3g} ({p['moved_relative']:.3g} of ‖θ‖); loss {p['loss_before']:.6g} → "
              f"{p['loss_after']:.6g}; ‖∇R‖ {p['gradient_norm_before']:.3g} → {p['gradient_norm_after']:.3g}")
    elif args.weights is not None or is_user_model(args.model):
        print(f"θ̂ is the model's weights as given{f' ({args.weights})' if args.weights else ''}, "
              "not re-minimized (--polish would)")
    return res, how


def _figures(res, obj, lam: np.ndarray, out: Path) -> list[str]:
    """Draw the analysis' figures into ``out``; returns the file names."""
    figs = {}
    if np.any(lam > 0):  # the paths are drawn on a log λ axis: λ = 0 alone has no place on it
        figs["paths.png"] = lambda ax: plot_coefficient_paths(res, ax=ax)
    figs["rel_error.png"] = lambda ax: plot_rel_error(res, ax=ax)
    figs["shrinkage.png"] = lambda ax: plot_shrinkage(res.path, int(np.argsort(lam)[lam.size // 2]), ax=ax,
                                                      density=res.density)
    if res.method == "dense":
        figs["effective_df.png"] = lambda ax: plot_effective_df(res.path, ax=ax)
        figs["spectral_density.png"] = lambda ax: plot_spectral_density(res.path.eigenvalues, ax=ax)
    else:
        figs["spectral_density.png"] = lambda ax: plot_spectral_density(nodes=res.density.nodes,
                                                                        weights=res.density.weights, ax=ax)
    if (obj is not None and res.spectrum.k >= 2 and res.path.valid.any()
            and (res.spectrum.complete or res.path.penalized.all())  # else the intercept's response is unknown
            and np.count_nonzero(display_eigenvalues(res.path.eigenvalues, res.path.rank_tol)[0] > 0) >= 2):
        # (a plane needs two curved directions: one feature and an unpenalized intercept has one)
        figs["model_contours.png"] = lambda ax: plot_model_contours(obj, res, ax=ax)
    for name, draw in figs.items():
        fig = new_figure(*({"model_contours.png": (8.0, 5.8)}.get(name, ())))  # its legend sits outside
        draw(fig.add_subplot())
        save_figure(fig, out / name)
    return list(figs)
