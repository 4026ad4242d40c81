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


def second_order_graph():
    """A context in which ``F.gelu`` (exact form) and ``F.layer_norm`` build gradient graphs that are cheap to differentiate again.

    Use it around a gradient graph built with ``create_graph=True`` that is then differentiated
    once more, in reverse (the double-backward Hessian forms). Same values, to rounding.

    - **GELU.** PyTorch differentiates GELU's backward (``gelu_backward``) by recomputing ``erf``
      and ``exp`` of the input at every pass: about 9 ms for one 512 × 384 float64 activation,
      alone on one thread. Here a GELU whose input needs a gradient is ``_Gelu``: building the
      gradient graph computes its slope Φ(x) + xφ(x) and the slope's derivative φ(x)(2 − x²)
      once and keeps both (two more activation-sized tensors per GELU); later passes multiply.
    - **Layer norm.** PyTorch's ``layer_norm_double_backward`` is general and costs about 2 ms per
      512 × 96 float64 activation on one thread. Here the gradient of a layer norm is
      ``_LayerNormGrad``: its forward is PyTorch's fused first-order backward, its backward the
      closed forms (see its docs), from the kept mean and rstd (no tensor more than PyTorch keeps).

    On the demo LM the kept GELU slope took 8% off a reused-graph Hessian product, and the kept
    derivative and the layer norm another 6% (``benchmarks/bench_lm.py``, three alternated runs:
    2.37–2.39× a gradient before, 2.22–2.24× after); a recomputed product gains less
    (3.70–3.88× → 3.60–3.71×: the graph is built each time). A third derivative is not supported: the
    kept derivatives and the closed forms are not differentiated again (``once_differentiable``
    refuses it where the cotangents need a gradient; elsewhere it would be silently incomplete).
    Nor are ``torch.func`` transforms (``jvp``, ``grad``, ``vmap`` of a model whose layer norm or
    GELU needs a gradient): the Functions here have no ``setup_context``. ridgelens enters the
    context only around ``torch.autograd.grad`` with ``create_graph=True``.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    gelu, layer_norm = torch.nn.functional.gelu, torch.nn.functional.layer_norm

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if (func is gelu and len(args) == 1 and kwargs.get("approximate", "none") == "none"
                    and isinstance(args[0], torch.Tensor) and args[0].requires_grad and torch.is_grad_enabled()):
                return _gelu_function().apply(args[0])
            if func is layer_norm and torch.is_grad_enabled():
                call = _layer_norm_call(args, kwargs)
                if call is not None:
                    return _layer_norm_function().apply(*call)
            return func(*args, **kwargs)

    return Mode()


_GELU = []


def _gelu_function():
    """The autograd Functions of :func:`second_order_graph`'s GELU, defined once on first use (torch imported lazily)."""
    if _GELU:
        return _GELU[0]
    import math

    import torch
    from torch.autograd.function import once_differentiable

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
        @once_differentiable  # see second_order_graph: no third derivative
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


def _layer_norm_call(args, kwargs):
    """``(x, weight, bias, shape, eps)`` of an ``F.layer_norm`` call that needs a gradient, else None."""
    import numbers
    import operator

    import torch

    names = ("input", "normalized_shape", "weight", "bias", "eps")
    given = dict(zip(names, args, strict=False))
    if len(args) > len(names) or set(kwargs) - set(names) or set(kwargs) & set(given):
        return None
    given.update(kwargs)
    x, w, b = given.get("input"), given.get("weight"), given.get("bias")
    shape, eps = given.get("normalized_shape"), given.get("eps", 1e-5)
    tensors = [t for t in (x, w, b) if t is not None]
    if not (isinstance(x, torch.Tensor) and all(isinstance(t, torch.Tensor) for t in tensors)
            and any(t.requires_grad for t in tensors) and x.dtype.is_floating_point and shape is not None):
        return None
    # What torch itself takes (a sequence of ints, eps a number); anything else goes to torch, for its own error
    # (an int shape, (7.0,) or eps="1e-3" would otherwise be accepted here and refused everywhere else)
    if not isinstance(shape, (tuple, list, torch.Size)) or not isinstance(eps, numbers.Real):
        return None
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        return None
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        return None  # torch's own error message
    return x, w, b, shape, float(eps)


_LAYER_NORM = []


def _layer_norm_function():
    """The autograd Functions of :func:`second_order_graph`'s layer norm, defined once on first use."""
    if _LAYER_NORM:
        return _LAYER_NORM[0]
    import torch
    from torch.autograd.function import once_differentiable

    def _sum_rows(t, n_rows):
        """``t`` summed over its first ``n_rows`` dims (none: a copy; ``sum(())`` would sum every dim)."""
        return t.sum(tuple(range(n_rows))) if n_rows else t.clone()

    def normalized(x, mean, rstd):
        """x̂ = (x − μ)·rstd from the kept mean and rstd."""
        return (x - mean).mul_(rstd)

    def norm_vjp(z, xh, rstd, dims):
        """Jᵀz for the normalization x ↦ x̂ = (x − μ)·rstd (J is symmetric): rstd·(z − mean z − x̂·mean(z x̂))."""
        return (z - z.mean(dims, keepdim=True)).sub_(xh * (z * xh).mean(dims, keepdim=True)).mul_(rstd)

    class _LayerNormGrad(torch.autograd.Function):
        """Layer norm's gradient (dx, dw, db) from its output cotangent g, with a hand-written derivative.

        PyTorch's own (``layer_norm_double_backward``) is general and costs about 2 ms per 512 × 96
        float64 activation on one thread; this one recomputes x̂ from the kept mean and rstd and
        applies the closed forms, with x̂ = (x − μ)·r, gw = g∘w, a = gw − mean(gw) and cotangents
        (U, Uw, Ub) of (dx, dw, db), per row (means over the normalized dims):

        - ∂/∂g = w∘JᵀU + Uw∘x̂ + Ub,  ∂/∂w = Σ_rows g∘JᵀU,
        - ∂/∂x = r²·(3·m(a x̂)·m(x̂ U)·x̂ − m(a U)·x̂ − m(x̂ U)·a − m(a x̂)·(U − m(U))) + Jᵀ(Uw∘g).
        """

        @staticmethod
        def forward(ctx, g, x, w, mean, rstd, shape, bias):
            dx, dw, _ = torch.ops.aten.native_layer_norm_backward(g, x, list(shape), mean, rstd, w, None,
                                                                  [True, w is not None, False])
            ctx.save_for_backward(g, x, w, mean, rstd)
            ctx.dims = tuple(range(-len(shape), 0))
            db = _sum_rows(g, g.ndim - len(shape)) if bias else None
            ctx.set_materialize_grads(False)  # a cotangent not given is None: its terms are skipped
            return dx, dw, db

        @staticmethod
        @once_differentiable  # see second_order_graph: no third derivative
        def backward(ctx, U, Uw, Ub):
            g, x, w, mean, rstd = ctx.saved_tensors
            dims = ctx.dims
            rows = tuple(range(x.ndim - len(dims)))
            xh = normalized(x, mean, rstd)

            def m(t):
                return t.mean(dims, keepdim=True)

            gw = g if w is None else g * w
            grad_g = torch.zeros_like(g) if U is None else norm_vjp(U, xh, rstd, dims)
            grad_w = None if (w is None or U is None) else _sum_rows(g * grad_g, len(rows))
            if w is not None:
                grad_g = grad_g * w
            if Uw is not None:
                grad_g = grad_g + Uw * xh
            if Ub is not None:
                grad_g = grad_g + Ub
            grad_x = torch.zeros_like(x) if Uw is None else norm_vjp(Uw * g, xh, rstd, dims)
            if U is not None:
                a = gw - m(gw)
                m_ax, m_xu, m_au = m(a * xh), m(xh * U), m(a * U)
                inner = xh * (3 * m_ax * m_xu - m_au) - a * m_xu - (U - m(U)) * m_ax
                grad_x = grad_x + inner * rstd * rstd
            return grad_g, grad_x, grad_w, None, None, None, None

    class _LayerNorm(torch.autograd.Function):
        """``F.layer_norm`` whose gradient, once built with ``create_graph``, is :class:`_LayerNormGrad`."""

        @staticmethod
        def forward(ctx, x, w, b, shape, eps):
            y, mean, rstd = torch.ops.aten.native_layer_norm(x, list(shape), w, b, eps)
            ctx.save_for_backward(x, w, b, mean, rstd)
            ctx.shape = shape
            return y

        @staticmethod
        def backward(ctx, g):
            x, w, b, mean, rstd = ctx.saved_tensors
            if torch.is_grad_enabled():  # building a gradient graph (create_graph=True)
                dx, dw, db = _LayerNormGrad.apply(g, x, w, mean, rstd, ctx.shape, b is not None)
                return dx, dw, db, None, None
            mask = [ctx.needs_input_grad[0], w is not None and ctx.needs_input_grad[1],
                    b is not None and ctx.needs_input_grad[2]]
            dx, dw, db = torch.ops.aten.native_layer_norm_backward(g, x, list(ctx.shape), mean, rstd, w, b, mask)
            return dx, dw, db, None, None

    _LAYER_NORM.append(_LayerNorm)
    return _LayerNorm
