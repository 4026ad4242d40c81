"""Autograd helpers shared by the torch objective and the torch operators (no ridgelens imports)."""

from __future__ import annotations

import contextlib
import threading
from typing import ClassVar


def second_order_attention():
    """A context that routes ``scaled_dot_product_attention`` to its plain math kernel.

    The fused (flash / memory-efficient) kernels have no second derivative and no forward
    AD, so every HVP form would fail on a transformer without this. It is entered around every
    curvature product, so it sets torch's backend flags directly (what ``sdpa_kernel`` does,
    in about 3 µs instead of about 30: a tenth of the bare product on the README's 37-parameter
    net), falling back to ``sdpa_kernel`` where torch names its flags otherwise.
    """
    flags = _sdp_flags()
    if flags is None:
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
        except ImportError:  # torch < 2.3 has only the math path on CPU
            return contextlib.nullcontext()
        return sdpa_kernel(SDPBackend.MATH)
    return _MathAttention(flags)


_SDP_FLAGS = []


def _sdp_flags():
    """``[(get, set, is_math)]`` for each of torch's attention-backend flags, or None if they cannot be found."""
    if not _SDP_FLAGS:
        import torch

        try:
            from torch.nn.attention import _backend_names

            flags = [(getattr(torch._C, f"_get_{name}_sdp_enabled"), getattr(torch._C, f"_set_sdp_use_{name}"),
                      name == "math") for name in _backend_names]
        except (ImportError, AttributeError):
            flags = None
        _SDP_FLAGS.append(flags if flags and any(m for _, _, m in flags) else None)
    return _SDP_FLAGS[0]


class _MathAttention:
    """Only the math attention kernel inside; every flag as it was after (:func:`second_order_attention`).

    The flags are process-wide, so the contexts open at once (nested, or in threads, exited in any
    order) share one saved state: the first to enter saves it, the last to exit restores it. Each
    saving its own would let a thread's exit switch the fused kernels back on under another's
    products, and the last exit leave only the math kernel on for good.
    """

    __slots__ = ("flags",)
    _lock: ClassVar = threading.Lock()
    _open: ClassVar[list] = [0, None]  # contexts open now, and the flags the first of them found

    def __init__(self, flags):
        self.flags = flags

    def __enter__(self):
        with self._lock:
            if self._open[0] == 0:
                self._open[1] = [get() for get, _, _ in self.flags]
            self._open[0] += 1
            for _, put, is_math in self.flags:
                put(is_math)
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._open[0] -= 1
            if self._open[0] == 0:
                for (_, put, _), was in zip(self.flags, self._open[1], strict=True):
                    put(was)
        return False


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


def cached_gelu():
    """A context in which ``F.gelu`` (exact form) builds a gradient graph that is cheap to differentiate again.

    PyTorch differentiates GELU's backward (``gelu_backward``) by recomputing ``erf`` and ``exp``
    of the input at every pass: about 9 ms for one 512 × 384 float64 activation, alone on one
    thread. On the demo LM this context takes 8% off a reused-graph Hessian product and 2% off
    a recomputed one (``benchmarks/bench_lm.py``). Inside this context, a GELU whose input needs
    a gradient is ``_Gelu`` instead: building the gradient graph computes its slope
    Φ(x) + xφ(x) and the slope's derivative φ(x)(2 − x²) once and keeps both; later passes
    multiply by them. Same values (to rounding); two more activation-sized tensors per GELU
    in the graph (the slope and its derivative). A third derivative is not supported (autograd refuses it),
    and forward-mode AD (``torch.func.jvp``) is not supported: use it only around gradient
    graphs that are differentiated once more, in reverse (the double-backward Hessian forms).
    """
    import torch
    from torch.overrides import TorchFunctionMode

    gelu = torch.nn.functional.gelu

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if (func is gelu and len(args) == 1 and kwargs.get("approximate", "none") == "none"
                    and isinstance(args[0], torch.Tensor) and args[0].requires_grad and torch.is_grad_enabled()):
                return _gelu_function().apply(args[0])
            return func(*args, **kwargs)

    return Mode()


_GELU = []


def _gelu_function():
    """The autograd Functions of :func:`cached_gelu`, defined once on first use (torch imported lazily)."""
    if _GELU:
        return _GELU[0]
    import math

    import torch

    inv_sqrt_2pi, inv_sqrt_2 = 1 / math.sqrt(2 * math.pi), 1 / math.sqrt(2)

    def pdf(x):
        return torch.exp(-0.5 * x * x).mul_(inv_sqrt_2pi)

    class _GeluSlope(torch.autograd.Function):
        """GELU's slope Φ(x) + xφ(x), and its derivative φ(x)(2 − x²), both computed once, when the graph is built.

        Keeping the derivative (one activation-sized tensor) makes each later pass one multiplication
        instead of eight operations from x: 2–4% off a reused-graph product on the demo LM (paired in
        one process, 41 rounds, three runs).
        """

        @staticmethod
        def forward(ctx, x):
            p = pdf(x)
            slope = torch.erf(x * inv_sqrt_2).add_(1).mul_(0.5).addcmul_(x, p)
            ctx.save_for_backward(p.mul_(torch.addcmul(torch.full_like(x, 2.0), x, x, value=-1)))
            return slope

        @staticmethod
        def backward(ctx, g):
            (curvature,) = ctx.saved_tensors
            return g * curvature

    class _Gelu(torch.autograd.Function):
        """``F.gelu`` whose backward, once built with ``create_graph``, keeps its slope for later passes."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            ctx.slope = None
            return torch.nn.functional.gelu(x)

        @staticmethod
        def backward(ctx, g):
            if torch.is_grad_enabled():  # building a gradient graph (create_graph=True)
                (x,) = ctx.saved_tensors
                slope = _GeluSlope.apply(x)
                ctx.slope = slope.detach()
                return g * slope
            if ctx.slope is None:  # a plain first-order backward
                (x,) = ctx.saved_tensors
                return torch.ops.aten.gelu_backward(g, x)
            return g * ctx.slope

    _GELU.append(_Gelu)
    return _Gelu
