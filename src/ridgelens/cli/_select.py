"""``ridgelens analyze --select``: which methods apply, the held-out split, the choice and its JSON."""

from __future__ import annotations

import numpy as np

from ridgelens._validation import distinct
from ridgelens.data import Dataset
from ridgelens.errors import RidgelensError
from ridgelens.pipeline import refit_at, refit_count
from ridgelens.select import select_lambda, select_on_analysis
from ridgelens.select._predict import spectrum_grid

#: The models each --select method applies to ("torch": --model mlp or MODULE:FACTORY).
MODELS = {"gcv": ("linear",), "loo": ("linear",), "alo": ("logistic",), "evidence": ("linear", "logistic", "torch"),
          "validation": ("linear", "logistic", "torch")}
#: The held-out share of the rows for --select validation when --validation-fraction is not given.
DEFAULT_FRACTION = 0.2


def check_select(args, lam) -> None:
    """Refuse, before any work, a method that does not apply, a grid too short, a bad fraction."""
    frac = getattr(args, "validation_fraction", None)
    if args.select is None:
        if frac is not None:
            raise RidgelensError("--validation-fraction is for --select validation")
        if lam is None:
            raise RidgelensError("--lambdas is required unless --select is given (then the default grid is 100 λ "
                                 "from the spectrum); e.g. --lambdas 1e-3,1e-2,0.1")
        return
    fits = MODELS[args.select]
    kind = args.model if args.model in ("linear", "logistic") else "torch"
    if kind not in fits:
        apply = ", ".join(m for m, models in MODELS.items() if kind in models)
        names = " or ".join("mlp or MODULE:FACTORY" if m == "torch" else m for m in fits)
        raise RidgelensError(f"--select {args.select} applies to --model {names}, not {args.model} "
                             f"(for --model {args.model}: {apply})")
    if lam is not None and np.unique(lam).size < 2:
        raise RidgelensError(f"--select needs at least 2 λ in --lambdas to choose among, got "
                             f"{distinct(lam)}; "
                             "or omit --lambdas for the default grid (100 λ from the spectrum)")
    if frac is not None and args.select != "validation":
        raise RidgelensError("--validation-fraction is for --select validation")
    if args.select == "validation":
        args.validation_fraction = DEFAULT_FRACTION if frac is None else frac
        if not 0 < args.validation_fraction < 1:
            raise RidgelensError(f"--validation-fraction must be in (0, 1), got {args.validation_fraction}")


def split(ds: Dataset, fraction: float, seed: int = 0):
    """``(training Dataset, (X_val, y_val), info)``: a random held-out share of the rows."""
    n = len(ds.y)
    n_val = round(fraction * n)
    if n_val < 1 or n - n_val < 2:
        raise RidgelensError(f"--validation-fraction {fraction} leaves {n_val} held-out and {n - n_val} training "
                             f"rows of {n}; both need rows")
    order = np.random.default_rng(seed).permutation(n)
    val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    train = Dataset(X=ds.X[tr], y=ds.y[tr], feature_names=ds.feature_names, target_name=ds.target_name,
                    name=ds.name, standardized=ds.standardized)
    info = {"fraction": fraction, "n_train": int(tr.size), "n_validation": int(val.size), "seed": seed,
            "rows": "a random permutation of the rows (numpy default_rng(seed)); the analysis uses the training rows"}
    return train, (ds.X[val], ds.y[val]), info


def default_lambdas(obj, curvature: str, **options):
    """The default grid for the analysis, from the spectrum: ``(grid, how)`` (``options`` go to ``analyze``)."""
    grid, how, _ = spectrum_grid(obj, curvature=curvature, **options)
    return grid, how


def torch_validation(args, X_val, y_val, full_y):
    """The held-out rows as an objective of the same torch model and loss (``full_y``: every row's targets)."""
    from ridgelens.cli._mlp import build_mlp_objective
    from ridgelens.cli._torch import build_user_objective, is_user_model

    if is_user_model(args.model):
        return build_user_objective(args, X_val, y_val, like=full_y)[0]
    ds = Dataset(X=X_val, y=y_val, feature_names=[], target_name="y", name="validation rows")
    return build_mlp_objective(ds, hidden=args.hidden, seed=args.seed, weights=None, loss=args.loss,
                               unpenalized=args.unpenalized, dtype=args.dtype, device=args.device,
                               batch_size=args.batch_size, like=full_y, task=args.task)[0]


def refit_options(args) -> dict:
    """The ``objective.minimize`` options of a torch model's refits (--refit-method, --refit-iters)."""
    return {"method": args.refit_method, "max_iter": args.refit_iters}


def choose(args, obj, lam, validation, split_info, res=None, how: str = "given") -> tuple:
    """Run the selection; returns ``(Selection, JSON-ready dict, analysis)`` and prints the choice.

    A torch model (``res`` its analysis) is scored on that analysis' path, with no second one.
    On the default grid (``res`` made without refits) θ*(λ) is refitted at the chosen λ only,
    and the analysis returned holds that one refit; on a given grid it is ``res`` as it came.
    """
    if res is None:
        sel = select_lambda(obj, lam, method=args.select, validation=validation)
        return sel, describe(sel, split_info, sklearn=_sklearn_setting(obj, sel.lambda_)), res
    refit = None
    if res.refit is None:  # the default grid: the one refit at the choice (a given grid was refitted whole)
        def refit(analysis, i):
            nonlocal res
            res = refit_at(obj, analysis, [i], tol=args.refit_tol, refit_options=refit_options(args),
                           checkpoint=args.checkpoint)
            return res
    sel = select_on_analysis(obj, res, args.select, validation=validation, tol=args.refit_tol, grid_how=how,
                             refit=refit)
    out = describe(sel, split_info)  # scikit-learn's alpha or C means nothing for a torch model
    n = refit_count(res)
    out["refits"] = {"count": n, "lambdas": [float(v) for v in res.lambdas[np.isfinite(res.refit).all(axis=1)]],
                     "why": ("every λ of the given --lambdas" if refit is None else
                             f"the chosen λ only: the default grid's other {res.lambdas.size - n} λ are not "
                             "refitted (give --lambdas to refit at each)")}
    print(f"refits θ*(λ): {n}, {out['refits']['why']}")
    return sel, out, res


def _sklearn_setting(obj, lam: float) -> tuple[str, float]:
    """scikit-learn's setting for λ: ``LogisticRegression(C = 1/(Σw·λ))`` for a logistic model, else ``alpha = Σw·λ``."""
    from ridgelens.objectives.linear import Logistic

    weight_sum = getattr(obj, "weight_sum", obj.n_samples)
    if isinstance(obj, Logistic):
        return "C", (float("inf") if lam == 0 else 1.0 / (weight_sum * lam))
    return "alpha", lam * weight_sum


def describe(sel, split_info=None, *, sklearn: tuple[str, float] | None = None, refit: str = "one refit") -> dict:
    """Print the choice of a :class:`~ridgelens.select.Selection` and return its results.json entry.

    ``sklearn``: ``("alpha", value)`` (least squares, ``sklearn_alpha``) or ``("C", value)``
    (logistic, ``sklearn_C``), printed beside λ.
    """
    d = sel.diagnostics
    out = {"method": sel.method, "lambda": sel.lambda_, "lambdas": sel.lambdas, "criterion": sel.criterion,
           "index": d.get("index"), "at_grid_edge": d.get("at_grid_edge"), "grid": d.get("grid")}
    if sklearn is not None:
        out[f"sklearn_{sklearn[0]}"] = sklearn[1]
    for key in ("confirm", "noise_variance", "gamma", "grid_lambda", "fixed_point_iterations", "treatment",
                "mackay_lambda", "polish_iterations", "curvature", "why", "criteria", "perplexity"):
        if key in d:
            out[key] = d[key]
    if split_info is not None:
        out["validation"] = split_info
    i = d.get("index")
    at = [f"criterion {sel.criterion[i]:.6g}"] if i is not None else []
    if sklearn is not None:
        at.insert(0, f"scikit-learn {sklearn[0]} = {sklearn[1]:.6g}")
    if "curvature" in d:
        at.append(f"the {d['curvature']} prediction")
    print(f"selected λ = {sel.lambda_:.6g} by {sel.method} ({', '.join(at)})"
          + ("; at the edge of the grid: widen it" if d.get("at_grid_edge") else ""))
    if "confirm" in d:
        c = d["confirm"]
        print(f"  {refit} at that λ: held-out loss {c['refit_loss']:.6g} (prediction's {c['predicted_loss']:.6g}, "
              f"gap {c['loss_gap']:.3g}; ‖θ̃−θ*‖/‖θ*‖ = {c['rel_error']:.3g})")
    return out
