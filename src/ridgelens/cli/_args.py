"""Argument types and option groups the parser needs at once.

argparse only, so that ``ridgelens --help`` imports no torch, NumPy or matplotlib.
"""

from __future__ import annotations

import argparse

#: The language-model options of ``ridgelens analyze`` and their defaults (None on the command line = not given).
LM_DEFAULTS = {"text": "stdlib", "layers": 2, "width": 96, "heads": 4, "context": 32, "tokens": 512, "steps": 150,
               "seed": 0, "k": 10, "subsamples": 3, "max_logits": None}


def penalty_pattern(text: str) -> tuple[str, float]:
    """``PATTERN=FACTOR`` (argparse type): a name glob and its factor (checked ≥ 0 and finite later)."""
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"--penalty must be PATTERN=FACTOR (e.g. '*.bias=0'), got {text!r}")
    try:
        return pattern, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--penalty {text!r}: the factor {value!r} is not a number") from None


def add_lm_arguments(a) -> None:
    """The language-model options of ``ridgelens analyze`` (defaults in :data:`LM_DEFAULTS`)."""
    a.add_argument("--text", help="lm/hf: a UTF-8 text file, or 'stdlib' (the standard library's own .py "
                                  "sources, split by file; lm's default)")
    a.add_argument("--layers", type=int, help=f"lm: transformer blocks (default {LM_DEFAULTS['layers']})")
    a.add_argument("--width", type=int, help=f"lm: model width (default {LM_DEFAULTS['width']})")
    a.add_argument("--heads", type=int, help=f"lm: attention heads (default {LM_DEFAULTS['heads']})")
    a.add_argument("--context", type=int, help=f"lm/hf: tokens per window (default {LM_DEFAULTS['context']})")
    a.add_argument("--tokens", type=int, help=f"lm/hf: training tokens, the finite set θ̂, θ̃ and θ* are on, in "
                                              "whole windows of --context (rounded up); a --text file must hold them "
                                              f"(default {LM_DEFAULTS['tokens']}, or all a shorter file has)")
    a.add_argument("--steps", type=int, help=f"lm: Adam steps of training (default {LM_DEFAULTS['steps']})")
    a.add_argument("--subsamples", type=int, help="lm/hf: top eigenvalues over this many disjoint subsamples of the "
                                                  f"tokens, as mean ± sd (default {LM_DEFAULTS['subsamples']}; 0: off)")
    a.add_argument("--max-logits", type=int, help="lm/hf: most logits one batch (one recomputed product) holds "
                                                  "(default 2^20)")
    a.add_argument("--save-thetas", action="store_true", default=None,
                   help="lm/hf: also write thetas.pt: θ̂, θ̃(λ) for each curvature and the retrained θ*(λ), as flat "
                        "float64 vectors with the parameter names and shapes that unflatten them (n_params × "
                        "(1 + 3 per λ) numbers)")
    a.add_argument("--polish-iters", type=int, help="lm/hf with --polish: L-BFGS iterations of the polish "
                                                    "(default 200; other torch models: --refit-iters)")
    a.add_argument("--polish-tol", type=float, help="lm/hf with --polish: gradient-norm tolerance of the polish "
                                                    "(default 1e-5; other torch models: --refit-tol)")
