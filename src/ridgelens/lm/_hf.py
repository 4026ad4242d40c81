"""Local Hugging Face causal-LM checkpoints, loaded offline (never downloaded).

A checkpoint is a folder with ``config.json`` and weights (``save_pretrained``). The text is
tokenized by the folder's own tokenizer when it has one (loaded offline), else as bytes when
the model's vocabulary has at least 256 entries, else refused. ``transformers`` is the
optional extra ``ridgelens[hf]``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch

from ridgelens.errors import DataError, RidgelensError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


@contextlib.contextmanager
def _offline():
    """Hub access off and transformers quiet while loading; everything restored afterwards.

    ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``; log lines and progress bars off (ridgelens says
    what went wrong in one line).
    """
    from transformers.utils import logging as hf_logging

    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _first_line(exc: BaseException) -> str:
    """The gist of a loader's exception on one line: its first line, and the next when the first ends in ':'."""
    text = str(exc).strip()
    if "Weights only load failed" in text:  # torch's text goes on to suggest weights_only=False: never
        return ("a weights file holds pickled objects that torch.load(weights_only=True) refuses; they are never "
                "executed (save the weights with save_pretrained's safetensors)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    gist = lines[0] if not lines[0].endswith(":") or len(lines) < 2 else f"{lines[0]} {lines[1]}"
    return gist if len(gist) <= 300 else gist[:299] + "…"


def load_hf_checkpoint(directory):
    """``(model, tokenize, how)`` for a local causal-LM checkpoint folder.

    ``model`` is in eval mode with the plain ("eager") attention, whose second derivatives
    exist; ``tokenize`` maps UTF-8 bytes to a 1-D LongTensor of token ids; ``how`` says which
    tokenization was used. A missing folder, a folder without ``config.json``, weights of
    another shape, or a vocabulary too small for bytes without a tokenizer raise
    :class:`DataError` naming the folder.
    """
    path = Path(directory)
    if not path.is_dir():
        raise DataError(f"checkpoint folder {path} does not exist or is not a folder")
    if not (path / "config.json").is_file():
        raise DataError(f"checkpoint folder {path} has no config.json (save the model with save_pretrained)")
    try:
        import transformers
    except ImportError:
        raise RidgelensError("--model hf:DIR needs the transformers package: pip install 'ridgelens[hf]'") from None
    with _offline():
        try:
            model, info = transformers.AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, attn_implementation="eager", output_loading_info=True)
        except Exception as exc:  # transformers raises many kinds (OSError, RuntimeError, ValueError)
            why = ("weights of another shape than config.json says" if "mismatched_sizes" in str(exc)
                   else _first_line(exc))
            raise DataError(f"checkpoint folder {path} cannot be loaded as a causal LM: {why}") from None
        # transformers re-initializes weights of another shape (or missing ones) with only a log line: refuse.
        bad = [f"{k[0]} (checkpoint {tuple(k[1])}, config {tuple(k[2])})" if isinstance(k, tuple) and len(k) == 3
               else str(k) for k in info.get("mismatched_keys", [])]
        if bad:
            raise DataError(f"checkpoint folder {path} cannot be loaded as a causal LM: weights of another shape than "
                            f"config.json says: {', '.join(bad[:2])}{', ...' if len(bad) > 2 else ''}")
        extra = sorted(str(k) for k in info.get("unexpected_keys", []))
        if extra:  # transformers drops them with a log line: weights the model does not have are not its weights
            raise DataError(f"checkpoint folder {path} cannot be loaded as a causal LM: weights the model does not "
                            f"have: {', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}")
        missing = list(info.get("missing_keys", []))
        if missing:
            raise DataError(f"checkpoint folder {path} cannot be loaded as a causal LM: weights missing for "
                            f"{', '.join(sorted(missing)[:3])}{', ...' if len(missing) > 3 else ''}")
        model.eval()
        tok_files = [f for f in _TOKENIZER_FILES if (path / f).is_file()]
        if tok_files:
            try:
                tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            except Exception as exc:
                named = ""
                try:
                    cls = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
                    named = f" (tokenizer_config.json names tokenizer_class {cls!r})" if cls else ""
                except (OSError, ValueError, AttributeError):
                    pass
                raise DataError(f"the tokenizer in {path} cannot be loaded{named}: {_first_line(exc)}") from None

            def tokenize(data: bytes) -> torch.Tensor:
                return torch.tensor(tok(data.decode("utf-8"))["input_ids"], dtype=torch.long)

            return model, tokenize, f"the checkpoint's tokenizer ({type(tok).__name__})"
    vocab = getattr(model.config, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 256:
        raise DataError(f"checkpoint folder {path} has no tokenizer and a vocabulary of {vocab} entries, fewer than "
                        "the 256 byte values: save its tokenizer into the folder (tokenizer.save_pretrained)")

    def tokenize_bytes(data: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.long)

    return model, tokenize_bytes, f"bytes (no tokenizer in the folder; vocabulary {vocab} ≥ 256)"


class _TanhGelu(torch.nn.Module):
    """``F.gelu(x, approximate="tanh")``: x(1 + tanh(√(2/π)(x + 0.044715x³)))/2 in PyTorch's fused kernel."""

    def forward(self, x):
        return torch.nn.functional.gelu(x, approximate="tanh")


def fuse_tanh_gelu(model) -> int:
    """Replace transformers' ``NewGELUActivation`` modules (``gelu_new``: GPT-2's) by PyTorch's fused tanh GELU.

    Both compute x(1 + tanh(√(2/π)(x + 0.044715x³)))/2 (the same constants; values differ by
    rounding). The Python form is a dozen elementwise operations whose second derivatives PyTorch
    builds piece by piece; ``F.gelu(approximate="tanh")`` is one, whose gradient
    :func:`ridgelens._autodiff.second_order_graph` makes one node. With the ``Conv1D`` layers'
    skipped weight gradients, a 2-layer GPT-2's recomputed Hessian product went from 3.58× the
    (float64) gradient to 2.64× and a reused one from 2.01× to 1.61×; at 10.8M parameters from
    4.00× to 2.96× and from 2.18× to 1.99× (``benchmarks/bench_hf_ab.py``, paired in one process:
    0.739, 0.796, 0.686, 0.921). Returns how many modules were replaced
    (0 without transformers). ``FastGELUActivation`` (``gelu_fast``) is left alone: its constant
    0.7978845608 is √(2/π) cut at 10 digits, a different function at 1e-12.
    """
    try:
        from transformers.activations import NewGELUActivation
    except ImportError:
        return 0
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, name, _TanhGelu())
                n += 1
    return n
