"""``ridgelens demo --lm`` and ``ridgelens analyze --model lm|hf:DIR``: language models end to end."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from ridgelens._io import atomic_write_bytes, atomic_write_json
from ridgelens._validation import check_lambdas, check_seed, distinct
from ridgelens.cli._args import LM_DEFAULTS
from ridgelens.cli._distributed import launched, run_sharded, session
from ridgelens.cli._output import new_figure, save_figure, staged_folder, table
from ridgelens.cli._report import recorded_warnings, write_report
from ridgelens.cli._select import MODELS as SELECT_MODELS
from ridgelens.cli._select import describe
from ridgelens.cli._torch import check_refit_tol
from ridgelens.errors import RidgelensError

#: Options only a language model takes (``analyze --model lm`` or ``hf:DIR``).
LM_OPTIONS = ("text", "layers", "width", "heads", "context", "tokens", "steps", "subsamples", "max_logits",
              "polish_iters", "polish_tol", "save_thetas")
#: Defaults of ``analyze --model lm`` (the built-in byte transformer on the standard library).
#: The quick demo: 276k parameters, 512 training tokens, three λ (about 4.5 min of wall time on a busy 2-core machine).
DEMO = dict(LM_DEFAULTS)
DEMO_LAMBDAS = [1e-2, 1e-1, 1.0]


def is_lm(model: str) -> bool:
    """Whether ``--model`` names a language model (``lm`` or ``hf:DIR``)."""
    return model == "lm" or model.startswith("hf:")


def refuse_lm_options(args) -> None:
    """A non-LM model given an LM-only option: one clear error."""
    given = ["--" + n.replace("_", "-") for n in LM_OPTIONS if getattr(args, n, None) is not None]
    if given:
        polish = any(g.startswith("--polish-") for g in given)
        raise RidgelensError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --model lm or hf:DIR"
                             + ("; for other torch models --refit-iters and --refit-tol set --polish's budget"
                                if polish else ""))


def _say(msg: str, args) -> None:
    """A progress line (stderr), unless --quiet."""
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


def run_lm_demo(out, *, overwrite: bool = False, quiet: bool = False) -> dict:
    """The quick LM demo: train the built-in LM on the standard library, analyze it, write ``out``."""
    from types import SimpleNamespace

    args = SimpleNamespace(model="lm", out=out, overwrite=overwrite, lambdas=DEMO_LAMBDAS, data=None, quiet=quiet,
                           **DEMO)
    return run_lm_analyze(args, title="ridgelens demo --lm")


def _settle(args) -> None:
    args.tokens_given = getattr(args, "tokens", None) is not None  # a --text file must then hold them all
    for name, default in LM_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, default)
    if getattr(args, "data", None) is not None:
        raise RidgelensError("--data is for tabular models; a language model reads --text PATH (or stdlib)")
    for name in ("layers", "width", "heads", "context", "tokens", "k"):
        if getattr(args, name) < 1:
            raise RidgelensError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.tokens < args.context:
        raise RidgelensError(f"--tokens {args.tokens} is fewer than one window of --context {args.context} tokens")
    if args.max_logits is not None and args.max_logits < 1:
        raise RidgelensError(f"--max-logits must be a positive integer, got {args.max_logits}")
    if args.steps < 0:
        raise RidgelensError(f"--steps must be >= 0, got {args.steps}")
    if getattr(args, "refit_iters", None) is not None and args.refit_iters < 1:
        raise RidgelensError(f"--refit-iters must be a positive integer, got {args.refit_iters}")
    if getattr(args, "refit_tol", None) is not None:
        check_refit_tol(args.refit_tol)
    polish_given = [f"--{n.replace('_', '-')}" for n in ("polish_iters", "polish_tol") if getattr(args, n, None) is not None]
    if polish_given and not getattr(args, "polish", False):
        raise RidgelensError(f"{', '.join(polish_given)} {'sets' if len(polish_given) == 1 else 'set'} the budget "
                             "of --polish: add --polish (without it θ̂ is the weights as trained or loaded)")
    if getattr(args, "polish_iters", None) is not None and args.polish_iters < 1:
        raise RidgelensError(f"--polish-iters must be a positive integer, got {args.polish_iters}")
    if getattr(args, "polish_tol", None) is not None:
        check_refit_tol(args.polish_tol, "--polish-tol")
    if args.subsamples == 1 or args.subsamples < 0:
        raise RidgelensError(f"--subsamples must be 0 (off) or >= 2 disjoint subsamples, got {args.subsamples}")
    check_seed(args.seed, "--seed")


def run_lm_analyze(args, *, title: str = "ridgelens analyze") -> dict:
    """Validate, build the objective (train the built-in LM or load the checkpoint), analyze, write."""
    lam = check_lambdas(args.lambdas, "--lambdas")
    if np.any(lam <= 0):
        raise RidgelensError("--lambdas for a language model must be > 0 (λ = 0 is θ̂ itself)")
    if args.model.startswith("hf:"):  # a checkpoint brings its own architecture and weights
        given = [f"--{n}" for n in ("layers", "width", "heads", "steps") if getattr(args, n, None) is not None]
        if given:
            raise RidgelensError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --model lm (the built-in "
                                 "LM, trained here); an hf:DIR checkpoint has its own architecture and weights")
    _settle(args)
    select = getattr(args, "select", None)
    if select is not None and select != "validation":
        raise RidgelensError(f"--select {select} applies to --model {' or '.join(SELECT_MODELS[select])}, not a "
                             "language model (for --model lm/hf:DIR: validation, on the held-out files)")
    if select is not None and np.unique(lam).size < 2:
        raise RidgelensError(f"--select needs at least 2 λ in --lambdas to choose among, got "
                             f"{distinct(lam)}")
    if launched():  # torchrun: every rank trains/loads and analyzes its shard of the windows; rank 0 writes
        box = {}

        def run(args, lam, out):
            with recorded_warnings() as caught:
                box["report"] = report = _run(args, lam, out, title, caught)
            return _written(args, report)

        with session():
            run_sharded(args, lam, run)
        return box["report"]
    with staged_folder(args.out, overwrite=args.overwrite) as out, recorded_warnings() as caught:
        report = _run(args, lam, out, title, caught)
    print(f"wrote {args.out}/: {', '.join(_written(args, report))}")
    return report


def _saves_weights(args) -> bool:
    """Whether the run writes the analyzed θ̂ as model.pt: the built-in LM always, a checkpoint when polished."""
    return args.model == "lm" or bool(getattr(args, "polish", False))


def _written(args, report: dict) -> list[str]:
    return ["results.json", *report["figures"], *(["model.pt"] if _saves_weights(args) else []),
            *(["thetas.pt"] if getattr(args, "save_thetas", False) else []),
            *(["report.html"] if getattr(args, "report", False) else [])]


def thetas_file(obj, res) -> dict:
    """What ``--save-thetas`` writes: θ̂, θ̃(λ) per curvature and θ*(λ) as flat tensors, and how to unflatten them.

    ``params`` lists ``(name, shape)`` in the order of the flat vectors (tied parameters once);
    ``valid[kind][i]`` says whether θ̃ exists at λ_i for that curvature (with the Hessian, only λ
    above its most negative eigenvalue: NaN rows otherwise).
    """
    import torch

    first = next(iter(res.curvatures.values()))
    names = obj.state_dict(first.theta_hat)
    return {"lambdas": torch.from_numpy(np.asarray(first.lambdas, dtype=np.float64)),
            "params": [(name, tuple(t.shape)) for name, t in names.items()],
            "theta_hat": torch.from_numpy(np.asarray(first.theta_hat, dtype=np.float64)),
            "predicted": {kind: torch.from_numpy(np.asarray(a.path.thetas, dtype=np.float64))
                          for kind, a in res.curvatures.items()},
            "valid": {kind: torch.from_numpy(np.asarray(a.path.valid, dtype=bool)) for kind, a in res.curvatures.items()},
            "retrained": torch.from_numpy(np.asarray(first.refit, dtype=np.float64))}


def _check_sizes(args, split, n_params: int) -> None:
    """--subsamples and --k against the windows and parameters they need, before any training or analysis."""
    windows = split.train.shape[0]
    if args.subsamples > windows:
        raise RidgelensError(f"--subsamples {args.subsamples} is more than the {windows} training windows "
                             f"(--tokens {args.tokens} in windows of --context {args.context}); lower --subsamples "
                             "or give more --tokens")
    if args.k > n_params:
        raise RidgelensError(f"--k {args.k} is more than the model's {n_params} parameters")


def _check_max_logits(max_logits: int, context: int, vocab: int) -> None:
    if context * vocab > max_logits:
        raise RidgelensError(f"--max-logits {max_logits} is less than one window's logits ({context} tokens × vocab "
                             f"{vocab} = {context * vocab}); raise --max-logits or lower --context")


def _run(args, lam, out: Path | None, title: str, caught) -> dict:
    import torch

    from ridgelens.objectives.lm import DEFAULT_MAX_LOGITS, LMObjective, model_context
    from ridgelens.pipeline import analyze_lm

    t0 = time.perf_counter()
    max_logits = args.max_logits or DEFAULT_MAX_LOGITS
    if args.model == "lm":
        from ridgelens.lm import ByteTransformer, LMConfig, file_split, stdlib_split, train_lm

        cfg = LMConfig(layers=args.layers, width=args.width, heads=args.heads, context=args.context)
        _check_max_logits(max_logits, args.context, cfg.vocab)  # before training, not after it
        split = (stdlib_split(args.context, args.tokens) if args.text == "stdlib"
                 else file_split(args.text, args.context, args.tokens, require=args.tokens_given))
        _check_sizes(args, split, sum(p.numel() for p in ByteTransformer(cfg).parameters()))  # before training
        _say(f"{title}: byte-level transformer ({args.layers} layers, width {args.width}, {args.heads} heads, "
             f"context {args.context}) on {split.train.shape[0] * args.context} tokens of {split.source} "
             f"({len(split.train_files)} training files, {len(split.val_files)} validation files); "
             f"training {args.steps} Adam steps from seed {args.seed}", args)
        net = train_lm(cfg, split.train, steps=args.steps, seed=args.seed, progress=not getattr(args, "quiet", False))
        model_info = {"kind": "built-in byte transformer", **cfg.to_dict(), "steps": args.steps, "seed": args.seed}
    else:
        from ridgelens.lm import fuse_tanh_gelu, load_hf_checkpoint

        net, tokenize, how = load_hf_checkpoint(args.model[3:])
        fused = fuse_tanh_gelu(net)  # the same function, its second derivative far cheaper
        from ridgelens.lm import file_split

        if args.text == "stdlib":
            raise RidgelensError("--model hf:DIR needs --text PATH (a UTF-8 text file)")
        ctx = args.context
        vocab = getattr(getattr(net, "config", None), "vocab_size", None)
        if isinstance(vocab, int):
            _check_max_logits(max_logits, ctx, vocab)
        limit = model_context(net)
        if limit is not None and ctx > limit:
            raise RidgelensError(f"--context {ctx} is larger than the model's context of {limit} tokens")
        split = file_split(args.text, ctx, args.tokens, tokenize=tokenize, require=args.tokens_given)
        _check_sizes(args, split, sum(p.numel() for p in net.parameters() if p.requires_grad))
        _say(f"{title}: Hugging Face checkpoint {args.model[3:]} ({how}) on {split.train.shape[0] * ctx} tokens "
             f"of {split.source}", args)
        model_info = {"kind": "hugging face causal LM", "dir": args.model[3:], "tokenizer": how, "context": ctx}
        if fused:
            model_info["activation"] = (f"gelu_new computed by PyTorch's fused tanh GELU in {fused} module(s): the "
                                        "same function, to rounding (ridgelens.lm.fuse_tanh_gelu)")
    # Under torchrun every rank holds the same model (the same seed trains the same weights;
    # TorchObjective checks a digest of them on every rank) and keeps every N-th batch of windows.
    obj = LMObjective(net, split.train, max_logits=max_logits, dtype=torch.float64, shard=launched())
    val = obj.on(split.val)
    ranks = f" on rank 0 of {os.environ['WORLD_SIZE']}" if launched() else ""
    _say(f"  {obj.n_params} parameters; {obj.n_tokens} training tokens in {obj.n_batches} batch(es){ranks} of at "
         f"most {obj.max_logits} logits; {val.n_tokens} validation tokens", args)
    curv = ("ggn", "hessian") if obj.returns == "logits" else ("hessian",)
    if getattr(args, "curvature", None) not in (None, "auto"):  # one curvature only (half the cost); auto: both
        if args.curvature == "ggn" and obj.returns != "logits":
            raise RidgelensError("--curvature ggn needs the model's logits, and this model returns only a loss; "
                                 "use --curvature hessian")
        curv = (args.curvature,)
    res = analyze_lm(obj, val, obj.theta0, lam, curvatures=curv,
                     settings=_settings(args),
                     polish=bool(getattr(args, "polish", False)), progress=not getattr(args, "quiet", False))
    report = res.to_dict()
    report.update(model=model_info, text=split.source, train_files=split.train_files, val_files=split.val_files)
    sel = None
    if getattr(args, "select", None) is not None:  # before the summary: a refusal is then the only line
        from ridgelens.select import select_lm

        sel = select_lm(res, val)
        report["selection"] = describe(sel, refit="the retrained θ*")
    _print_summary(report)
    report["figures"] = _figures(res, report, out, sel)
    report["total_seconds"] = time.perf_counter() - t0
    if out is None:  # a rank other than 0 under torchrun: rank 0 writes
        return report
    atomic_write_json(out / "results.json", report)
    if getattr(args, "report", False):
        from ridgelens.report import lm_report

        write_report(out, report, caught, render=lm_report)
    # The weights analyzed: the built-in LM's θ̂ as trained (or polished); a checkpoint's only when --polish moved
    # them (its own folder holds them otherwise). A state_dict of the parameters; tied ones once, under one name.
    if _saves_weights(args):
        buf = io.BytesIO()
        torch.save(obj.state_dict(next(iter(res.curvatures.values())).theta_hat), buf)
        atomic_write_bytes(out / "model.pt", buf.getvalue())
    if getattr(args, "save_thetas", False):
        buf = io.BytesIO()
        torch.save(thetas_file(obj, res), buf)
        atomic_write_bytes(out / "thetas.pt", buf.getvalue())
    _say(f"  done in {report['total_seconds']:.0f} s", args)
    return report


def _settings(args):
    """LMSettings from the options: --refit-iters/--refit-tol set θ*(λ)'s L-BFGS budget, --polish-iters/--polish-tol θ̂'s."""
    from ridgelens.pipeline import LMSettings

    given = {name: getattr(args, name, None) for name in ("refit_iters", "refit_tol", "polish_iters", "polish_tol")}
    return LMSettings(k=args.k, subsamples=args.subsamples, seed=args.seed,
                      **{name: value for name, value in given.items() if value is not None})


def _print_summary(r: dict) -> None:
    tokenizer = r.get("model", {}).get("tokenizer")
    if tokenizer:  # said here too: --quiet drops the stderr line that says it first
        print(f"tokens of {r['text']}: {tokenizer}")
    p = r.get("polish")
    if p:
        print(f"polished θ̂ (L-BFGS, {p['n_iter']} iterations{'' if p['converged'] else ', NOT converged'}): moved "
              f"‖Δθ‖ = {p['moved']:.3g} ({p['moved_relative']:.3g} of ‖θ‖); training loss {p['loss_before']:.4g} → "
              f"{p['loss_after']:.4g}; validation perplexity {p['val_perplexity_before']:.4g} → "
              f"{r['val_perplexity_hat']:.4g}")
    print(f"θ̂: ‖∇R‖ = {r['gradient_norm']:.3g} ({r['gradient_ratio']:.3g} × a typical single-window gradient), "
          f"validation perplexity {r['val_perplexity_hat']:.4g}")
    for kind, c in r["curvature"].items():
        name = "Hessian" if kind == "hessian" else "Gauss-Newton"
        neg = ", ".join(f"{v:.4g} (residual {q:.2g}{'' if ok else ', not converged'})" for v, q, ok in
                        zip(c["most_negative_eigenvalues"], c["most_negative_residuals"],
                            c["most_negative_converged"], strict=True))
        low = "most negative" if any(v < 0 for v in c["most_negative_eigenvalues"]) else "smallest"
        print(f"{name}: top eigenvalues {', '.join(f'{v:.4g}' for v in c['top_eigenvalues'][:5])}; "
              f"{low} {neg}; a prediction exists {c['prediction_exists']}")
    rows = []
    for i, lam in enumerate(r["lambdas"]):
        row = [lam]
        for c in r["curvature"].values():
            row += ["—" if not np.isfinite(c["rel_error"][i]) else c["rel_error"][i],
                    "—" if not np.isfinite(c["cosine"][i]) else c["cosine"][i],
                    "—" if c["val_perplexity"][i] is None else c["val_perplexity"][i]]
        row += [r["retraining"]["val_perplexity"][i], "yes" if r["retraining"]["converged"][i] else "NO"]
        rows.append(row)
    heads = ["λ"]
    for kind in r["curvature"]:
        s = "H" if kind == "hessian" else "G"
        heads += [f"err({s})", f"cos({s})", f"ppl θ̃({s})"]
    heads += ["ppl θ*", "θ* converged"]
    print(table(heads, rows))
    for c in r["curvature"].values():
        print(c["holds"])
    noise = r.get("sampling_noise")
    if noise:
        for kind in r["curvature"]:
            print(f"top eigenvalues of the {kind} over {noise['subsamples']} disjoint subsamples: "
                  + ", ".join(f"{m:.4g} ± {d:.2g}" for m, d in zip(noise[kind]["mean"], noise[kind]["std"],
                                                                   strict=True)))


def _figures(res, report: dict, out: Path | None, selection=None) -> list[str]:
    """Draw the figures into ``out`` (only name them when ``out`` is None); returns the file names."""
    from ridgelens.plots import (
        plot_lm_error,
        plot_lm_perplexity,
        plot_selection,
        plot_spectral_density,
    )

    figs = {"rel_error.png": lambda ax: plot_lm_error(report, ax=ax),
            "perplexity.png": lambda ax: plot_lm_perplexity(report, ax=ax)}
    if selection is not None:
        figs["selection.png"] = lambda ax: plot_selection(selection, ax=ax)
    for kind, a in res.curvatures.items():
        figs[f"spectral_density_{kind}.png"] = (
            # the Hessian's negative eigenvalues are the point: a log axis would leave them out
            lambda ax, a=a, k=kind: plot_spectral_density(nodes=a.density.nodes, weights=a.density.weights, ax=ax,
                                                          scale="linear" if k == "hessian" else "log"))
    for name, draw in figs.items() if out is not None else ():
        fig = new_figure()
        draw(fig.add_subplot())
        save_figure(fig, out / name)
    return list(figs)
