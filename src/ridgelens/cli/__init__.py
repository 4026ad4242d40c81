"""The ``ridgelens`` command line: a thin layer that parses, calls the library and writes files."""

from __future__ import annotations

import argparse
import sys
import warnings

from ridgelens.errors import RidgelensError, RidgelensWarning


def _lambdas(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lambdas must be comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(prog="ridgelens", description=(
        "What L2 regularization (ridge, weight decay) would do to a model's weights, and why. "
        "Conventions: mean loss, penalty (λ/2)‖θ‖², scikit-learn alpha = n·λ."))
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="the seeds' 2-D picture, diabetes (least squares), breast cancer (logistic)")
    d.add_argument("--out", default="ridgelens-demo", help="output folder (default: %(default)s)")

    a = sub.add_parser("analyze", help="predicted vs refit ridge path for a data set and model")
    a.add_argument("--data", required=True, help="diabetes, breast_cancer, digits, or csv:PATH")
    a.add_argument("--target", help="target column of a CSV file (default: its last column)")
    a.add_argument("--model", required=True, choices=["linear", "logistic", "mlp"],
                   help="mlp: a d→hidden→tanh→out torch MLP (cross-entropy for class targets)")
    a.add_argument("--lambdas", required=True, type=_lambdas, help="comma-separated λ ≥ 0, e.g. 1e-3,1e-2,0.1")
    a.add_argument("--standardize", action="store_true", help="scale features to mean 0, sd 1")
    a.add_argument("--no-intercept", action="store_true", help="fit no intercept: θ is the feature weights")
    a.add_argument("--penalize-intercept", action="store_true", help="penalize the intercept too")
    a.add_argument("--positive-class", type=float, help="logistic: y = 1 where target == this value")
    a.add_argument("--out", required=True, help="output folder for results.json and figures")
    a.add_argument("--hidden", type=int, help="mlp: hidden units (default: 64)")
    a.add_argument("--k", type=int, help="eigenvalues reported; mlp: top eigenpairs by Lanczos (default: 20; "
                                         "linear and logistic: every pair is computed exactly, 10 are printed)")
    a.add_argument("--seed", type=int, help="mlp: seed of the initial weights and of Lanczos (default: 0)")
    a.add_argument("--train-iters", type=int, help="mlp: L-BFGS iterations of training (default: 1000)")
    a.add_argument("--refit-method", choices=["trust-ncg", "lbfgs"],
                   help="mlp: optimizer of each refit (default: trust-ncg, Newton-CG with exact HVPs, which "
                        "reaches the refit tolerance where L-BFGS stalls)")
    a.add_argument("--refit-iters", type=int,
                   help="mlp: iterations of each refit (default: 200 for trust-ncg, 500 for lbfgs)")
    a.add_argument("--weights", help="mlp: a saved state_dict to analyze instead of training (weights_only)")
    a.add_argument("--checkpoint", help="mlp: folder to checkpoint the long stages into, and resume from")
    a.add_argument("--loss", choices=["mse", "cross-entropy"],
                   help="mlp classification loss (default: mse; cross-entropy has no finite "
                        "minimizer on separable data)")
    a.add_argument("--unpenalized", action="append", metavar="GLOB",
                   help="mlp: parameters the penalty leaves out, by name pattern (repeatable), e.g. '*.bias'; "
                        "the names are 0.weight, 0.bias, 2.weight, 2.bias")
    a.add_argument("--refit-tol", type=float, help="mlp: gradient-norm tolerance of the refits (default: 1e-5)")
    a.add_argument("--curvature", choices=["hessian", "ggn"], default="hessian",
                   help="the quadratic model's curvature: the Hessian (default) or the Gauss-Newton matrix "
                        "JᵀH_out J, positive semi-definite for a loss convex in the outputs (equal to H for "
                        "linear and logistic models)")

    from ridgelens.cli._explore import directions_arg

    e = sub.add_parser("explore", help="an interactive, self-contained HTML page with a λ slider")
    e.add_argument("results", nargs="?", metavar="RESULTS_JSON", help="a results.json written by `ridgelens analyze`")
    e.add_argument("--demo", action="store_true", help="the seeds' 2-D quadratic instead of a results file")
    e.add_argument("--out", required=True, help="the .html file to write")
    e.add_argument("--directions", type=directions_arg, help="eigen-directions of the contour view, 1-based, e.g. 1,7")
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RidgelensWarning)
        try:
            if args.command == "demo":
                from ridgelens.cli._demo import run_demo

                run_demo(args.out)
            elif args.command == "explore":
                from ridgelens.cli._explore import run_explore

                run_explore(args)
            else:
                from ridgelens.cli._analyze import run_analyze

                run_analyze(args)
        except RidgelensError as exc:
            _flush(caught)
            print(f"ridgelens: error: {exc}", file=sys.stderr)
            return 2
        _flush(caught)
    return 0


def _flush(caught) -> None:
    seen = set()
    for w in caught:
        if issubclass(w.category, RidgelensWarning) and str(w.message) not in seen:
            seen.add(str(w.message))
            print(f"ridgelens: warning: {w.category.__name__}: {w.message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
