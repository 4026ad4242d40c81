"""The ``ridgelens`` command line: a thin layer that parses, calls the library and writes files.

Exit codes (see docs/errors.md): 0 done; 2 bad input, with exactly one ``ridgelens: error:``
line on stderr and no output written; 1 an internal error (one line too; the traceback only
with ``RIDGELENS_DEBUG=1``); 130 / 143 interrupted by SIGINT / SIGTERM, no output written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings

from ridgelens.cli._signals import Interrupted, handling
from ridgelens.errors import RidgelensError, RidgelensWarning

DEBUG_ENV = "RIDGELENS_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``ridgelens: error:`` line (then SystemExit(2), as argparse does)."""

    def error(self, message):
        print(f"ridgelens: error: {one_line(message)} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def one_line(text) -> str:
    """``text`` with every line break (as ``str.splitlines`` counts them) turned into a space."""
    return " ".join(str(text).splitlines()).strip()


def _lambdas(text: str) -> list[float]:
    """``--lambdas 1e-3,0.1``: every comma-separated entry a plain number (checked finite and >= 0 later).

    An empty entry (``1,,2``, a trailing comma) and Python's digit separators (``1_0``, which
    ``float`` reads as 10) are refused: each is more likely a slip than a λ.
    """
    pieces = [t.strip() for t in text.split(",")]
    if not any(pieces):
        raise argparse.ArgumentTypeError(f"--lambdas is empty ({text!r}); give comma-separated λ >= 0, "
                                         "e.g. 1e-3,1e-2,0.1")
    from ridgelens.cli._args import plain

    values = []
    for i, t in enumerate(pieces, start=1):
        try:
            values.append(plain(t))
        except ValueError as exc:
            why = "empty, not a number" if not t else f"{t!r}, {exc}"
            raise argparse.ArgumentTypeError(f"entry {i} of {text!r} is {why}; give comma-separated numbers like "
                                             "1e-3,1e-2,0.1") from None
    return values


def directions_arg(text: str):
    """``--directions``, checked by the explore command's own parser (imported only when used: --help stays light)."""
    from ridgelens.cli._explore import directions_arg as parse

    return parse(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = _Parser(prog="ridgelens", description=(
        "What L2 regularization (ridge, weight decay) would do to a model's weights, and why. "
        "Conventions: mean loss, penalty (λ/2)‖θ‖², scikit-learn alpha = n·λ."))
    from ridgelens import __version__
    from ridgelens.cli._args import add_lm_arguments, penalty_pattern, plain_float, plain_int
    from ridgelens.cli._torch import DTYPES, model_arg

    p.add_argument("--version", action="version", version=f"ridgelens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="the seeds' 2-D picture, diabetes (least squares), breast cancer (logistic)")
    d.add_argument("--out", default="ridgelens-demo", help="output folder (default: %(default)s)")
    d.add_argument("--overwrite", action="store_true",
                   help="replace --out if it already holds ridgelens outputs (otherwise a non-empty folder is refused)")
    d.add_argument("--lm", action="store_true", help="instead: train the built-in byte-level language model on the "
                                                     "standard library's sources and analyze it (a few minutes)")
    d.add_argument("--quiet", action="store_true", help="no progress: no bars (drawn on stderr, only on a terminal) and no language-model progress lines")

    a = sub.add_parser("analyze", help="predicted vs refit ridge path for a data set and model")
    a.add_argument("--data",
                   help="diabetes, breast_cancer, digits, csv:PATH, or tensors:PATH (a .npz or .pt file holding "
                        "X and y; the only data a module:factory model takes); required unless --model lm/hf:DIR")
    a.add_argument("--target", help="target column of a CSV file (default: its last column)")
    a.add_argument("--model", required=True, type=model_arg,
                   metavar="{linear,logistic,mlp,lm,hf:DIR,MODULE:FACTORY,FILE.py:FACTORY}",
                   help="mlp: a d→hidden→tanh→out torch MLP, trained here (squared loss, on one-hot labels for "
                        "class targets: integers with at most 50 distinct values, or see --task; see --loss); lm: the built-in byte-level transformer, trained on --text; "
                        "hf:DIR: a local Hugging Face causal-LM checkpoint; MODULE:FACTORY or FILE.py:FACTORY: your "
                        "own torch model, FACTORY() returning an nn.Module (with --weights and --data tensors:PATH)")
    a.add_argument("--lambdas", type=_lambdas, help="comma-separated λ ≥ 0, e.g. 1e-3,1e-2,0.1 (with --select it may "
                                                    "be omitted: 100 λ log-spaced from the spectrum, a torch model then refitted "
                                                    "at the chosen λ only)")
    a.add_argument("--standardize", action="store_true",
                   help="scale features to mean 0, sd 1 (not the target: see --standardize-target)")
    a.add_argument("--standardize-target", action="store_true", default=None,
                   help="--model mlp regression: also scale the target to mean 0, sd 1 (1/n) before training, so "
                        "tanh units do not saturate on a target such as diabetes' (sd 77); θ, the loss and λ are then "
                        "in those units, recorded in results.json as target_standardized (mean, sd)")
    a.add_argument("--stream", action="store_true",
                   help="linear model on a csv: file: read it block by block into the centred XᵀX and Xᵀy, never "
                        "holding X (chosen by itself when the file would not fit in memory; no --select but evidence, "
                        "--features, --standardize)")
    a.add_argument("--no-intercept", action="store_true", help="fit no intercept: θ is the feature weights")
    a.add_argument("--penalize-intercept", action="store_true", help="penalize the intercept too")
    a.add_argument("--positive-class", type=plain_float, help="turn the target into 0/1 labels, 1 where target == this value (e.g. one digit for logistic)")
    a.add_argument("--out", required=True, help="output folder for results.json and figures; written as a "
                                                "whole at the end, or not at all")
    a.add_argument("--overwrite", action="store_true",
                   help="replace --out if it already holds ridgelens outputs (otherwise a non-empty folder is refused)")
    a.add_argument("--hidden", type=plain_int, help="mlp: hidden units (default: 64)")
    a.add_argument("--task", choices=["auto", "regression", "classification"],
                   help="mlp: what the target is (default auto: integers with at most 50 distinct values are classes, "
                        "anything else regression; regression for a count or rating target)")
    a.add_argument("--k", type=plain_int, help="eigenvalues printed (default: 10); torch models: also how many top "
                                         "eigenpairs Lanczos computes when the run is matrix-free (default: 20); "
                                         "linear and logistic: every pair is computed exactly")
    a.add_argument("--shard-basis", action="store_true",
                   help="under torchrun: store the Lanczos/Krylov bases sliced across the ranks (1/N memory each)")
    a.add_argument("--seed", type=plain_int, help="torch models: seed of Lanczos and SLQ, and for mlp of the initial "
                                            "weights (default: 0)")
    a.add_argument("--train-iters", type=plain_int, help="mlp: L-BFGS iterations of training (default: 1000)")
    a.add_argument("--refit-method", choices=["trust-ncg", "lbfgs"],
                   help="torch models: optimizer of each refit and of --polish (default: trust-ncg, Newton-CG with exact HVPs, which "
                        "reaches the refit tolerance where L-BFGS stalls)")
    a.add_argument("--refit-iters", type=plain_int,
                   help="torch models: iterations of each refit and of --polish (default: 200 for trust-ncg, "
                        "500 for lbfgs); --model lm/hf:DIR: of θ*(λ)'s L-BFGS retraining (default 60)")
    a.add_argument("--weights", help="torch models: a state_dict (torch.save, always loaded with weights_only=True) "
                                     "or .safetensors file; θ̂ is these weights as given (mlp: instead of training)")
    a.add_argument("--polish", action="store_true", default=None,
                   help="torch models: minimize further from the weights (--refit-method; for --model lm/hf:DIR "
                        "L-BFGS on the training tokens) before the analysis, and report how far θ̂ moved and how "
                        "the loss changed (default: θ̂ is taken as given)")
    a.add_argument("--checkpoint", help="torch models: folder to checkpoint the long stages into, and resume from")
    a.add_argument("--loss", choices=["mse", "cross-entropy"],
                   help="torch models: mse, the mean of ½‖f(x) − y‖² (one-hot labels for classes), or cross-entropy "
                        "(default: mlp mse, since cross-entropy has no finite minimizer on separable data; "
                        "your own model: cross-entropy for integer targets, else mse)")
    a.add_argument("--unpenalized", action="append", metavar="GLOB",
                   help="torch models: parameters the penalty leaves out, by name pattern (repeatable), e.g. "
                        "'*.bias'; the mlp's names are 0.weight, 0.bias, 2.weight, 2.bias")
    a.add_argument("--refit-tol", type=plain_float, help="torch models: gradient-norm tolerance of the refits and of "
                                                   "--polish (default: 1e-5); --model lm/hf:DIR: of θ*(λ)'s "
                                                   "retraining (default 1e-3)")
    a.add_argument("--device", help="torch models: where the products run, e.g. cpu, cuda, cuda:1 (default: cpu)")
    a.add_argument("--dtype", choices=DTYPES, help="torch models: the precision of the analysis (default: float64)")
    a.add_argument("--batch-size", type=plain_int, help="torch models: samples per batch of each product (default: 512)")
    a.add_argument("--quiet", action="store_true", help="no progress: no bars (drawn on stderr, only on a terminal) and no language-model progress lines")
    a.add_argument("--penalty", action="append", type=penalty_pattern, metavar="PATTERN=FACTOR",
                   help="mlp: penalty factor of the parameters whose name matches PATTERN (repeatable; first match "
                        "wins, others keep 1): the penalty becomes (λ/2)θᵀDθ, e.g. --penalty '*.bias=0' "
                        "--penalty '2.*=0.1'")
    a.add_argument("--penalty-factors", metavar="FILE",
                   help="linear/logistic: one penalty factor per feature (or per parameter, the intercept last), "
                        "numbers separated by commas, spaces or new lines, like glmnet's penalty.factor unscaled")
    a.add_argument("--optimizer", choices=["sgd", "adam", "adamw"],
                   help="mlp: predict this optimizer's weight_decay = λ (sgd, adam: plain L2; adamw: D = diag(√v̂+ε) "
                        "from --optimizer-state; default: the state's own optimizer)")
    a.add_argument("--optimizer-state", metavar="FILE",
                   help="mlp: the torch.optim state_dict (torch.save) that trained --weights (weights_only loading)")
    a.add_argument("--curvature", choices=["auto", "hessian", "ggn"],
                   help="the quadratic model's curvature: the Hessian or the Gauss-Newton matrix "
                        "JᵀH_out J, positive semi-definite for a loss convex in the outputs (equal to H for "
                        "linear and logistic models, which then run with H and say so in results.json's "
                        "choices); auto (the default, as ridgelens.predict): the Hessian for a convex loss, "
                        "else the Gauss-Newton matrix where a 30-step Lanczos probe finds H indefinite, recorded "
                        "in results.json's choices; --model lm/hf:DIR computes both unless hessian or ggn is given")
    a.add_argument("--select", choices=["gcv", "loo", "alo", "evidence", "validation"],
                   help="choose λ on the grid without retraining: gcv, loo (linear), alo (logistic), evidence, "
                        "validation (held-out rows, see --validation-fraction; for --model lm/hf:DIR the "
                        "held-out files, its only method); prints the choice, draws "
                        "selection.png, adds 'selection' to results.json")
    a.add_argument("--features", help="columns of the data the model uses: comma-separated names or 0-based "
                                      "indices (default: every column but the target)")
    a.add_argument("--validation-fraction", type=plain_float,
                   help="--select validation: share of the rows held out at random (default: 0.2)")
    a.add_argument("--report", action="store_true",
                   help="also write report.html: one self-contained page with the figures, tables, conventions, "
                        "premise checks, warnings, the λ choice and the error bounds")

    add_lm_arguments(a)

    e = sub.add_parser("explore", help="an interactive, self-contained HTML page with a λ slider")
    e.add_argument("results", nargs="?", metavar="RESULTS_JSON", help="a results.json written by `ridgelens analyze`")
    e.add_argument("--demo", action="store_true", help="the seeds' 2-D quadratic instead of a results file")
    e.add_argument("--out", required=True, help="the .html file to write")
    e.add_argument("--directions", type=directions_arg, help="eigen-directions of the contour view, 1-based, e.g. 1,7")
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status.

    0 done; 2 bad input (one ``ridgelens: error:`` line, nothing written); 1 internal error;
    130 / 143 interrupted by SIGINT / SIGTERM. A malformed command line raises SystemExit(2)
    after its one error line, as argparse does.
    """
    args = build_parser().parse_args(argv)
    from ridgelens import _progress

    if getattr(args, "quiet", False):
        _progress.set_enabled(False)
    with handling(), warnings.catch_warnings(record=True) as caught, _restoring(_progress):
        warnings.simplefilter("always", RidgelensWarning)
        try:
            _dispatch(args)
        except (Interrupted, KeyboardInterrupt) as exc:
            _flush(caught)
            print(f"ridgelens: interrupted{_checkpoint_note(args)}", file=sys.stderr)
            return exc.exit_code if isinstance(exc, Interrupted) else 130
        except RidgelensError as exc:
            _flush(caught)
            print(f"ridgelens: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # the file system refused something a user can fix
            _flush(caught)
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            where = f"{exc.filename}: " if exc.filename is not None else ""
            print(f"ridgelens: error: {one_line(where + (exc.strerror or str(exc) or type(exc).__name__))}",
                  file=sys.stderr)
            return 2
        except Exception as exc:
            _flush(caught)
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            if _out_of_memory(exc):  # the device's memory, which the user can fix: not a bug
                print(f"ridgelens: error: out of memory ({one_line(exc)[:200]}); lower --batch-size (a torch model) "
                      "or --max-logits (a language model), or run on a device with more memory", file=sys.stderr)
                return 2
            print(f"ridgelens: error: internal error ({type(exc).__name__}: {one_line(exc)[:300]}); "
                  f"rerun with {DEBUG_ENV}=1 for the traceback", file=sys.stderr)
            return 1
        _flush(caught)
    return 0


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's ``OutOfMemoryError`` (CUDA's or another device's), told apart without importing torch."""
    return any(k.__name__ == "OutOfMemoryError" and k.__module__.split(".")[0] == "torch" for k in type(exc).__mro__)


@contextlib.contextmanager
def _restoring(progress):
    """Remove any progress bar still drawn (a stage that raised) and restore the setting, whatever happens."""
    try:
        yield
    finally:
        progress.reset()
        progress.set_enabled(None)


def _dispatch(args) -> None:
    from ridgelens import _progress

    try:
        _run_command(args)
    finally:  # no bar left drawn under the error or summary lines that follow
        _progress.reset()


def _run_command(args) -> None:
    if args.command == "demo":
        from ridgelens.cli._demo import run_demo

        if args.lm:
            from ridgelens.cli._lm import run_lm_demo

            run_lm_demo(args.out, overwrite=args.overwrite, quiet=args.quiet)
            return
        run_demo(args.out, overwrite=args.overwrite)
    elif args.command == "explore":
        from ridgelens.cli._explore import run_explore

        run_explore(args)
    else:
        from ridgelens.cli._analyze import run_analyze

        run_analyze(args)


def _checkpoint_note(args) -> str:
    ck = getattr(args, "checkpoint", None)
    if not ck:
        return ""
    try:
        saved = any(e.is_file() for e in os.scandir(ck))
    except OSError:
        saved = False
    return f"; checkpoint saved in {ck}" if saved else f"; nothing was checkpointed yet in {ck}"


def _flush(caught) -> None:
    """Print ridgelens' warnings and numerical ones (overflow, an ill-conditioned solve).

    A numerical RuntimeWarning from NumPy or SciPy says a number in the output may be wrong,
    so it is never swallowed (once per place in the code, with a count); other libraries'
    deprecation and user warnings are.
    """
    groups: dict = {}
    for w in caught:
        if issubclass(w.category, RidgelensWarning):
            groups.setdefault(str(w.message), []).append(w)
        elif issubclass(w.category, RuntimeWarning):
            groups.setdefault((w.category, w.filename, w.lineno), []).append(w)
    for ws in groups.values():
        more = f" (and {len(ws) - 1} more like it)" if len(ws) > 1 else ""
        print(f"ridgelens: warning: {ws[0].category.__name__}: {one_line(ws[0].message)}{more}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
