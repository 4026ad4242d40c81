"""Argument types and option groups the parser needs at once.

argparse only, so that ``ridgelens --help`` imports no torch, NumPy or matplotlib.
"""

from __future__ import annotations

import argparse

#: The language-model options of ``ridgelens analyze`` and their defaults (None on the command line = not given).
LM_DEFAULTS = {"text": "stdlib", "layers": 2, "width": 96, "heads": 4, "context": 32, "tokens": 512, "steps": 150,
               "seed": 0, "k": 10, "subsamples": 3, "max_logits": None}


def plain(text: str) -> float:
    """``float(text)`` for a plain number, else ValueError saying why.

    Refused where ``float`` says yes: Python's digit separator (``1_0`` reads as 10, more likely a
    slip for ``1,0``) and a nonzero literal that underflows to 0 (``1e-400``: used as 0, silently).
    """
    t = text.strip()
    if not t or "_" in t:
        raise ValueError("not a number")
    try:
        value = float(t)
    except ValueError:
        raise ValueError("not a number") from None
    mantissa = t.lstrip("+-").lower().split("e")[0]
    if value == 0.0 and any(c in "123456789" for c in mantissa):
        raise ValueError("a nonzero number that underflows to 0 in float64")
    return value


def plain_float(text: str) -> float:
    """The argparse type of a plain number (:func:`plain`)."""
    try:
        return plain(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is {exc}") from None


def plain_int(text: str) -> int:
    """The argparse type of an integer written with digits (and a sign) only: ``1_0`` is refused."""
    t = text.strip()
    if not t.lstrip("+-").isascii() or not t.lstrip("+-").isdigit() or t.count("-") + t.count("+") > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(t)


def penalty_pattern(text: str) -> tuple[str, float]:
    """``PATTERN=FACTOR`` (argparse type): a name glob and its factor (checked ≥ 0 and finite later)."""
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"--penalty must be PATTERN=FACTOR (e.g. '*.bias=0'), got {text!r}")
    try:
        return pattern, plain(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--penalty {text!r}: the factor {value!r} is {exc}") from None


def add_lm_arguments(a) -> None:
    """The language-model options of ``ridgelens analyze`` (defaults in :data:`LM_DEFAULTS`)."""
    a.add_argument("--text", help="lm/hf: a UTF-8 text file, or 'stdlib' (the standard library's own .py "
                                  "sources, split by file; lm's default)")
    a.add_argument("--layers", type=plain_int, help=f"lm: transformer blocks (default {LM_DEFAULTS['layers']})")
    a.add_argument("--width", type=plain_int, help=f"lm: model width (default {LM_DEFAULTS['width']})")
    a.add_argument("--heads", type=plain_int, help=f"lm: attention heads (default {LM_DEFAULTS['heads']})")
    a.add_argument("--context", type=plain_int, help=f"lm/hf: tokens per window (default {LM_DEFAULTS['context']})")
    a.add_argument("--tokens", type=plain_int, help=f"lm/hf: training tokens, the finite set θ̂, θ̃ and θ* are on, in "
                                              "whole windows of --context (rounded up); a --text file must hold them "
                                              f"(default {LM_DEFAULTS['tokens']}, or all a shorter file has)")
    a.add_argument("--steps", type=plain_int, help=f"lm: Adam steps of training (default {LM_DEFAULTS['steps']})")
    a.add_argument("--subsamples", type=plain_int, help="lm/hf: top eigenvalues over this many disjoint subsamples of the "
                                                  f"tokens, as mean ± sd (default {LM_DEFAULTS['subsamples']}; 0: off)")
    a.add_argument("--max-logits", type=plain_int, help="lm/hf: most logits one batch (one recomputed product) holds "
                                                  "(default 2^20)")
    a.add_argument("--save-thetas", action="store_true", default=None,
                   help="lm/hf: also write thetas.pt: θ̂, θ̃(λ) for each curvature and the retrained θ*(λ), as flat "
                        "float64 vectors with the parameter names and shapes that unflatten them (n_params × "
                        "(1 + 3 per λ) numbers)")
    a.add_argument("--polish-iters", type=plain_int, help="lm/hf with --polish: L-BFGS iterations of the polish "
                                                    "(default 200; other torch models: --refit-iters)")
    a.add_argument("--polish-tol", type=plain_float, help="lm/hf with --polish: gradient-norm tolerance of the polish "
                                                    "(default 1e-5; other torch models: --refit-tol)")
