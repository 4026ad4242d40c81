"""Autograd helpers shared by the torch objective and the torch operators (no ridgelens imports)."""

from __future__ import annotations

import contextlib


def second_order_attention():
    """A context that routes ``scaled_dot_product_attention`` to its plain math kernel.

    The fused (flash / memory-efficient) kernels have no second derivative and no forward
    AD, so every HVP form would fail on a transformer without this.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3 has only the math path on CPU
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def saved_bytes(fn):
    """``(fn(), bytes)``: the result of ``fn`` and the bytes of the tensors autograd saved while it ran."""
    import torch

    seen = [0]

    def pack(t):
        seen[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, int(seen[0])
