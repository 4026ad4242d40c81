"""Autograd helpers shared by the torch objective and the torch operators (no ridgelens imports)."""

from __future__ import annotations

import contextlib
import functools
import math
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


def second_order_graph(gradient_values: bool = True):
    """A context in which ``F.gelu``, ``F.layer_norm`` and ``F.cross_entropy`` build gradient graphs cheap to differentiate again.

    Use it around a gradient graph built with ``create_graph=True`` that is then differentiated
    once more, in reverse (the double-backward Hessian forms). Same values, to rounding.

    - **GELU.** PyTorch differentiates GELU's backward (``gelu_backward``) by recomputing ``erf``
      and ``exp`` of the input at every pass: about 9 ms for one 512 × 384 float64 activation,
      alone on one thread. Here a GELU (exact, or ``approximate='tanh'`` as Hugging Face's
      ``gelu_pytorch_tanh``) whose input needs a gradient is ``_Gelu``: building the gradient graph
      makes its gradient one node (``_GeluGrad``) that keeps the slope (Φ(x) + xφ(x) for the exact
      GELU) and g∘GELU''(x), and lets the input x go; later passes multiply once per cotangent.
      (PyTorch's pieces would keep x, g, the slope and its derivative.)
    - **Layer norm.** PyTorch's ``layer_norm_double_backward`` is general and costs about 2 ms per
      512 × 96 float64 activation on one thread. Here the gradient of a layer norm is
      ``_LayerNormGrad``: its forward is PyTorch's fused first-order backward, its backward the
      closed forms written mostly with that same fused kernel (see its docs), from the kept mean
      and rstd (no tensor more than PyTorch keeps).
    - **Cross-entropy** (plain calls: (N, C) logits, class indices, no class weights or label
      smoothing, "mean" or "sum"; others are PyTorch's). Its gradient in the logits is one node
      (``_CrossEntropyGrad``) that keeps the softmax p and applies the softmax Hessian,
      p∘(U − ⟨p, U⟩), in three passes; PyTorch's log-softmax and NLL pieces keep the cotangent and
      the log-probabilities and spend more.
    - **Attention** (plain ``F.scaled_dot_product_attention`` calls: no mask, no dropout, no
      grouped-query heads; others are PyTorch's). PyTorch's math kernel, the one with second
      derivatives, scales Q and K apart and adds a causal mask it builds: a dozen nodes. Here the
      scale and the mask are one ``baddbmm``, then softmax and ``bmm``.

    On the demo LM (``benchmarks/bench_lm.py``) the kept GELU slope and the closed-form layer norm
    took a reused-graph Hessian product from 2.37–2.39× a gradient to 2.22–2.24× (alternated
    runs); the one-node GELU and cross-entropy and the fused layer-norm kernel then took it from
    2.12× to 2.02× and a recomputed one from 3.58× to 3.47× (paired in one process, 41 rounds:
    new/old 0.941 and 0.961), and the reused graph from 39.2 to 32 MiB. With the linear layers'
    skipped weight gradients too (``gradient_values=False``, below), a recomputed product went from
    3.59× to 3.16× on the demo LM and from 3.34× to 2.74× on a 10.9M-parameter LM (paired against
    the code before all four).

    A third derivative is not supported: the kept derivatives and the closed forms are not
    differentiated again (``once_differentiable`` refuses it where the cotangents need a
    gradient; elsewhere it would be silently incomplete). Nor is a second gradient graph built
    through one GELU forward (its input is gone: it raises). Nor are ``torch.func`` transforms
    (``jvp``, ``grad``, ``vmap`` of a model whose layer norm, GELU or cross-entropy needs a
    gradient): the Functions here have no ``setup_context``. ridgelens enters the
    context only around ``torch.autograd.grad`` with ``create_graph=True``.

    ``gradient_values=False`` is for a caller that differentiates the gradient again and never
    reads it (the Hessian operator, which holds only its graph's edge). Then a linear layer
    (``F.linear`` with a weight that needs a gradient, or the ``torch.addmm(bias, x, W)`` of Hugging
    Face's ``Conv1D``) gets one gradient node (``_LinearGrad``)
    that does not compute the weight's gradient gyᵀx at all (zeros of the weight's shape stand in):
    the gradient's *graph* is exact, its value is not. Only for a weight that is a parameter (an
    autograd leaf or a view of one): a weight computed from parameters (W₀ + BA, g·v/‖v‖) has a
    second derivative that the weight gradient's value multiplies, so its layer stays PyTorch's.
    It saves one of the three matrix products per linear layer of every gradient graph built: a recomputed demo-LM product 0.943× the time
    (paired in one process, 41 rounds). A reused graph held against per-parameter leaves is built
    the same way: its products then add each weight's gradient-graph piece straight into their
    output (:func:`direct_weight_gradients`). One held against the flat θ (an objective whose
    losses take θ as one tensor) keeps PyTorch's own linear nodes (``gradient_values=True``):
    through ``_LinearGrad`` its products were 0.8% slower, within noise.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    F = torch.nn.functional
    names = {F.gelu: "gelu", F.layer_norm: "layer_norm", F.cross_entropy: "cross_entropy",
             F.scaled_dot_product_attention: "attention"}
    if not gradient_values:
        names[F.linear], names[torch.addmm] = "linear", "addmm"

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = names.get(func)
            if name is not None and torch.is_grad_enabled():
                parse, functions = _INTERCEPTED[name]
                call = parse(args, kwargs)
                if call is not None:
                    return functions().apply(*call)
            return func(*args, **kwargs)

    return Mode()


def _gelu_call(args, kwargs):
    """``(x, approximate)`` of an ``F.gelu`` call (exact or ``approximate='tanh'``) whose input needs a gradient, else None."""
    import torch

    given = _bind(("input", "approximate"), args, kwargs)
    if given is None or given.get("approximate", "none") not in ("none", "tanh"):
        return None
    x = given.get("input")
    return (x, given.get("approximate", "none")) if isinstance(x, torch.Tensor) and x.requires_grad else None


@functools.cache
def _gelu_function():
    """The autograd Functions of :func:`second_order_graph`'s GELU, defined once on first use (torch imported lazily)."""
    import math

    import torch
    from torch.autograd.function import once_differentiable

    inv_sqrt_2pi, inv_sqrt_2 = 1 / math.sqrt(2 * math.pi), 1 / math.sqrt(2)
    k, c = math.sqrt(2 / math.pi), 0.044715  # the tanh form: GELU(x) ≈ x(1 + tanh(k(x + c x³)))/2

    def exact(g, x):
        """GELU'(x) = Φ(x) + xφ(x) and g∘GELU''(x) = g∘φ(x)(2 − x²)."""
        # Four new activation-sized tensors (three kept), the rest in place: on a CPU each new one
        # is often fresh pages from the system, and faulting them in costs as much as the pass.
        x2 = x.square()
        e = x2.mul(-0.5).exp_()  # exp(−x²/2) = φ(x)·√(2π)
        slope = x.mul(inv_sqrt_2).erf_().add_(1).mul_(0.5).addcmul_(x, e, value=inv_sqrt_2pi)
        return slope, e.mul_(x2.sub_(2).mul_(g)).mul_(-inv_sqrt_2pi)

    def tanh_form(g, x):
        """GELU'(x) = ((1 + t) + x s a)/2 and g∘GELU''(x) = g∘s(a + 3kc x² − x t a²), tanh form.

        t = tanh(u), u = k(x + c x³), a = u' = k(1 + 3c x²), s = 1 − t².
        """
        x2 = x.square()
        a = x2.mul(3 * c).add_(1).mul_(k)
        t = x2.mul(c).add_(1).mul_(x).mul_(k).tanh_()
        s = t.square().neg_().add_(1)
        xa = x * a
        slope = t.add(1).addcmul_(xa, s).mul_(0.5)
        xa.mul_(a).mul_(t)  # x t a²
        return slope, x2.mul_(3 * k * c).add_(a).sub_(xa).mul_(s).mul_(g)

    class _GeluGrad(torch.autograd.Function):
        """``(g∘GELU'(x), GELU'(x))``: GELU's gradient as one node, and its slope (not differentiable).

        The node keeps the slope GELU'(x) and g∘GELU''(x) (exact or tanh form). Its derivatives
        are ∂/∂g = U∘slope and ∂/∂x = U∘(g∘GELU''(x)): one multiplication each, from two kept
        tensors. Built from PyTorch's pieces (g times a slope node) the same gradient keeps g, the
        slope and GELU'' (three activation-sized tensors) and spends three multiplications per
        pass on them.
        """

        @staticmethod
        def forward(ctx, g, x, approximate):
            slope, g_curvature = (tanh_form if approximate == "tanh" else exact)(g, x)
            ctx.mark_non_differentiable(slope)
            ctx.save_for_backward(slope, g_curvature)
            ctx.set_materialize_grads(False)  # the slope gets no cotangent: no activation-sized zeros for it
            return g * slope, slope

        @staticmethod
        @once_differentiable  # see second_order_graph: no third derivative
        def backward(ctx, U, _):
            if U is None:
                return None, None, None
            slope, g_curvature = ctx.saved_tensors
            return U * slope, U * g_curvature, None

    class _Gelu(torch.autograd.Function):
        """``F.gelu`` whose backward, once built with ``create_graph``, is :class:`_GeluGrad` and keeps only its slope.

        x is held on ``ctx`` (not saved for backward) so that building the gradient graph can let
        it go: afterwards every pass needs only the slope, and x is an activation-sized tensor.
        A second gradient graph built through the same GELU (``create_graph`` twice over one
        forward) therefore cannot be built: it raises.
        """

        @staticmethod
        def forward(ctx, x, approximate):
            ctx.x, ctx.slope, ctx.approximate = x, None, approximate  # an input: no reference cycle
            return torch.nn.functional.gelu(x, approximate=approximate)

        @staticmethod
        def backward(ctx, g):
            if torch.is_grad_enabled():  # building a gradient graph (create_graph=True)
                if ctx.x is None:
                    raise RuntimeError("second_order_graph: a second gradient graph (create_graph=True) through "
                                       "the same GELU forward is not supported; run the forward again")
                out, ctx.slope = _GeluGrad.apply(g, ctx.x, ctx.approximate)
                ctx.x = None
                return out, None
            if ctx.slope is None:  # a plain first-order backward
                return torch.ops.aten.gelu_backward(g, ctx.x, approximate=ctx.approximate), None
            return g * ctx.slope, None

    return _Gelu


def _bind(names, args, kwargs):
    """The call's arguments by name (``names`` in the function's order), or None if they do not bind."""
    given = dict(zip(names, args, strict=False))
    if len(args) > len(names) or set(kwargs) - set(names) or set(kwargs) & set(given):
        return None
    return given | kwargs


def _layer_norm_call(args, kwargs):
    """``(x, weight, bias, shape, eps)`` of an ``F.layer_norm`` call that needs a gradient, else None."""
    import numbers
    import operator

    import torch

    names = ("input", "normalized_shape", "weight", "bias", "eps")
    given = _bind(names, args, kwargs)
    if given is None:
        return None
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


@functools.cache
def _layer_norm_function():
    """The autograd Functions of :func:`second_order_graph`'s layer norm, defined once on first use."""
    import torch
    from torch.autograd.function import once_differentiable

    def _sum_rows(t, n_rows):
        """``t`` summed over its first ``n_rows`` dims (none: a copy; ``sum(())`` would sum every dim)."""
        return t.sum(tuple(range(n_rows))) if n_rows else t.clone()

    def normalized(x, mean, rstd):
        """x̂ = (x − μ)·rstd from the kept mean and rstd."""
        return (x - mean).mul_(rstd)

    def row_mean(a, b, k):
        """m(a∘b): the mean of a∘b over the last ``k`` dims, kept as size-1 dims (one fused dot per row)."""
        if k == 1:
            return torch.linalg.vecdot(a, b).unsqueeze(-1).div_(a.shape[-1])
        return (a * b).mean(tuple(range(-k, 0)), keepdim=True)

    class _LayerNormGrad(torch.autograd.Function):
        """Layer norm's gradient (dx, dw, db) from its output cotangent g, with a hand-written derivative.

        PyTorch's own (``layer_norm_double_backward``) is general and costs about 2 ms per 512 × 96
        float64 activation on one thread. This one is mostly PyTorch's fused first-order kernel.
        With x̂ = (x − μ)·r, N(z) = r·(z − m(z) − x̂·m(z x̂)) the normalization's vector-Jacobian
        product (it is symmetric: ``native_layer_norm_backward`` without a weight), gw = g∘w,
        dx = N(gw) and cotangents (U, Uw, Ub) of (dx, dw, db), per row (means m over the
        normalized dims):

        - ∂/∂g = w∘N(U) + Uw∘x̂ + Ub,  ∂/∂w = Σ_rows g∘N(U),
        - ∂/∂x = −r·(m(U dx)·x̂ + m(gw x̂)·N(U) + m(U x̂)·dx) + N(Uw∘g).

        The first term of ∂/∂x is ⟨U, d(dx)⟩'s gradient: dr = −r²·m(x̂ δ), dx̂ = N(δ), and
        d(dx)[δ] = −r·m(x̂ δ)·dx − r·m(gw x̂)·N(δ) − r·x̂·m(gw N(δ)). dx is recomputed (one fused
        kernel) rather than kept: no tensor more than PyTorch keeps.
        """

        @staticmethod
        def forward(ctx, g, x, w, mean, rstd, shape, bias):
            dx, dw, _ = torch.ops.aten.native_layer_norm_backward(g, x, list(shape), mean, rstd, w, None,
                                                                  [True, w is not None, False])
            ctx.save_for_backward(g, x, w, mean, rstd)
            ctx.shape = list(shape)
            db = _sum_rows(g, g.ndim - len(shape)) if bias else None
            ctx.set_materialize_grads(False)  # a cotangent not given is None: its terms are skipped
            return dx, dw, db

        @staticmethod
        @once_differentiable  # see second_order_graph: no third derivative
        def backward(ctx, U, Uw, Ub):
            g, x, w, mean, rstd = ctx.saved_tensors
            shape, k = ctx.shape, len(ctx.shape)
            n_rows = x.ndim - k
            xh = normalized(x, mean, rstd)

            def N(z, weight=None):
                return torch.ops.aten.native_layer_norm_backward(z, x, shape, mean, rstd, weight, None,
                                                                 [True, False, False])[0]

            grad_g = grad_x = grad_w = None
            if U is not None:
                NU = N(U)
                dx = N(g, w)
                c = row_mean(g if w is None else g * w, xh, k)
                grad_x = (xh * row_mean(U, dx, k)).addcmul_(NU, c).addcmul_(dx, row_mean(U, xh, k)).mul_(-rstd)
                grad_w = None if w is None else _sum_rows(g * NU, n_rows)
                grad_g = NU if w is None else NU.mul_(w)
            if Uw is not None:
                grad_g = Uw * xh if grad_g is None else grad_g.addcmul_(Uw, xh)
                grad_x = N(Uw * g) if grad_x is None else grad_x.add_(N(Uw * g))
            if Ub is not None:
                grad_g = Ub.expand_as(g).clone() if grad_g is None else grad_g.add_(Ub)
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

    return _LayerNorm


def _cross_entropy_call(args, kwargs):
    """``(logits, target, ignore_index, mean)`` of a plain ``F.cross_entropy`` call that needs a gradient, else None.

    Plain: (N, C) logits, N class indices, no class weights, no label smoothing, a "mean" or "sum"
    reduction, and none of the deprecated arguments. Any other call is PyTorch's own.
    """
    import torch

    names = ("input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing")
    given = _bind(names, args, kwargs)
    if given is None:
        return None
    z, t = given.get("input"), given.get("target")
    ignore, reduction = given.get("ignore_index", -100), given.get("reduction", "mean")
    if not (isinstance(z, torch.Tensor) and isinstance(t, torch.Tensor) and z.requires_grad
            and z.dtype.is_floating_point and z.ndim == 2 and t.ndim == 1 and t.dtype == torch.long
            and t.shape[0] == z.shape[0] and t.device == z.device):
        return None
    if (any(given.get(k) is not None for k in ("weight", "size_average", "reduce"))
            or given.get("label_smoothing", 0.0) != 0.0 or reduction not in ("mean", "sum")
            or type(ignore) is not int):
        return None
    return z, t, ignore, reduction == "mean"


@functools.cache
def _cross_entropy_function():
    """The autograd Functions of :func:`second_order_graph`'s cross-entropy, defined once on first use."""
    import torch
    from torch.autograd.function import once_differentiable

    class _CrossEntropyGrad(torch.autograd.Function):
        """The cross-entropy's gradient in the logits, dz = c·m∘(p − e_t), as one node that keeps p.

        p = softmax(z) per row, e_t the target's one-hot row, m the rows not ignored, c = g / (rows
        counted) for "mean" (g for "sum"), g the loss's cotangent. Its derivatives, with the row
        dots s = ⟨p, U⟩: ∂/∂z = c·m∘p∘(U − s) (the softmax's Hessian applied to U) and
        ∂/∂g = Σ_rows m·(s − U[t]) / count. PyTorch's log-softmax and NLL pieces keep the
        cotangent and the log-probabilities (two logits-sized tensors) and spend more passes on them.
        """

        @staticmethod
        def forward(ctx, g, z, logp, target, keep, scale):
            p = logp.exp()
            rows = keep.unsqueeze(-1) * scale  # c·m per row: (N, 1)
            dz = p * (g * rows)
            dz.scatter_add_(1, target.clamp(min=0).unsqueeze(-1), -(g * rows))
            ctx.save_for_backward(p, target, rows, g)
            return dz

        @staticmethod
        @once_differentiable  # see second_order_graph: no third derivative
        def backward(ctx, U):
            p, target, rows, g = ctx.saved_tensors
            s = torch.linalg.vecdot(p, U).unsqueeze(-1)
            grad_z = (U - s).mul_(p).mul_(g * rows) if ctx.needs_input_grad[1] else None
            grad_g = None
            if ctx.needs_input_grad[0]:
                grad_g = ((s - U.gather(1, target.clamp(min=0).unsqueeze(-1))) * rows).sum().reshape(g.shape)
            return grad_g, grad_z, None, None, None, None

    class _CrossEntropy(torch.autograd.Function):
        """``F.cross_entropy`` (plain calls) whose gradient, built with ``create_graph``, is :class:`_CrossEntropyGrad`."""

        @staticmethod
        def forward(ctx, z, target, ignore_index, mean):
            logp = torch.log_softmax(z, dim=-1)
            loss = torch.nn.functional.nll_loss(logp, target, ignore_index=ignore_index,
                                                reduction="mean" if mean else "sum")
            keep = (target != ignore_index).to(z.dtype)
            scale = 1 / keep.sum() if mean else torch.ones((), dtype=z.dtype, device=z.device)
            ctx.save_for_backward(z, logp, target, keep, scale)  # z: the input, kept only until the backward
            return loss

        @staticmethod
        def backward(ctx, g):
            z, logp, target, keep, scale = ctx.saved_tensors
            return _CrossEntropyGrad.apply(g, z, logp, target, keep, scale), None, None, None

    return _CrossEntropy


#: (data_ptr, shape, stride) of a weight → the tensor its second-order weight piece is added into; filled only
#: inside :func:`direct_weight_gradients`. A plain dict, not thread-local: a GPU backward runs its nodes on
#: autograd's device thread, which must see the entries the calling thread made.
_DIRECT_WEIGHT_GRADIENTS: dict = {}


@contextlib.contextmanager
def direct_weight_gradients(leaves):
    """Within: a linear layer's weight piece of a double backward goes straight into its leaf's preset ``.grad``.

    A weight gets two pieces in the double backward of :func:`second_order_graph`'s linear layer:
    gyᵀUx from the gradient graph (early) and ȳᵀx from the forward (late, the graph's deepest
    node). Autograd holds the first in its input buffer until the second arrives: at 10.9M
    parameters, one weight-sized piece per layer waiting at once, 83 MiB in all on top of the
    product. Here :class:`_LinearGrad` adds its piece into the leaf's ``.grad`` (``addmm_``, no
    piece allocated) and passes none on; the forward's piece then goes in through autograd's own
    in-place accumulation. For 2-D leaves whose ``.grad`` is preset with the leaf's layout (the
    views of a product's output, as the recomputed product sets them), and for their transposes
    (a ``Conv1D``'s ``addmm`` weight). Same sum, in another order: equal to rounding.
    """
    entries = {}
    for leaf in leaves:
        g = leaf.grad
        if g is None or leaf.ndim != 2 or not leaf.numel() or g.shape != leaf.shape or g.stride() != leaf.stride():
            continue
        entries[(leaf.data_ptr(), tuple(leaf.shape), leaf.stride())] = g
        entries[(leaf.data_ptr(), tuple(leaf.shape[::-1]), leaf.stride()[::-1])] = g.t()  # the same for 1 × 1
    taken = entries.keys() & _DIRECT_WEIGHT_GRADIENTS.keys()
    if taken:  # another product (another thread) holds these weights: its pieces must not land in this one
        raise RuntimeError(f"direct_weight_gradients: {len(taken)} weights already take another product's pieces; "
                           "products through the same parameter leaves must run one at a time")
    _DIRECT_WEIGHT_GRADIENTS.update(entries)
    try:
        yield
    finally:
        for key in entries:
            _DIRECT_WEIGHT_GRADIENTS.pop(key, None)


def _views_a_leaf(w) -> bool:
    """Whether ``w`` is an autograd leaf or a view of one (a parameter, or a view of the flat θ): linear in θ.

    Only then is the weight gradient's value never needed: for a weight computed from the parameters
    in any other way (a merged LoRA update W₀ + BA, weight normalization g·v/‖v‖), the second
    derivative of that computation is weighted by the weight gradient, and zeros in its place
    would silently drop it.
    """
    return w.grad_fn is None or (w._is_view() and w._base.grad_fn is None)


def _linear_call(args, kwargs):
    """``(x, weight, bias)`` of an ``F.linear`` call whose weight is a parameter needing a gradient, else None.

    A parameter: a leaf or a view of one (:func:`_views_a_leaf`); any other call is PyTorch's own.
    """
    import torch

    names = ("input", "weight", "bias")
    given = _bind(names, args, kwargs)
    if given is None:
        return None
    x, w, b = given.get("input"), given.get("weight"), given.get("bias")
    if not (isinstance(x, torch.Tensor) and isinstance(w, torch.Tensor) and w.requires_grad and w.ndim == 2
            and x.ndim >= 1 and x.shape[-1] == w.shape[1] and x.dtype == w.dtype and x.device == w.device
            and x.dtype.is_floating_point and _views_a_leaf(w) and w.numel() and x.numel()):
        return None  # (an empty weight or input: PyTorch's own, whose nodes take empty shapes)
    if b is not None and not (isinstance(b, torch.Tensor) and b.shape == (w.shape[0],) and b.dtype == w.dtype
                              and b.device == w.device):
        return None
    return x, w, b


def _addmm_call(args, kwargs):
    """``(x, Wᵀ, bias)`` of a ``torch.addmm(bias, x, W)`` call that is a linear layer, else None (PyTorch's own).

    Hugging Face's ``Conv1D`` (GPT-2's attention and MLP) is such a call: y = bias + x W, that is
    ``F.linear(x, Wᵀ, bias)``. Only the plain form: 2-D x and W, a 1-D bias, β = α = 1, no ``out``.
    """
    import torch

    if len(args) > 3:  # the deprecated addmm(beta, input, alpha, mat1, mat2)
        return None
    given = _bind(("input", "mat1", "mat2", "beta", "alpha", "out"), args, kwargs)
    if given is None or given.get("out") is not None or given.get("beta", 1) != 1 or given.get("alpha", 1) != 1:
        return None
    b, x, w = given.get("input"), given.get("mat1"), given.get("mat2")
    if not (isinstance(w, torch.Tensor) and w.requires_grad and w.ndim == 2 and isinstance(x, torch.Tensor)
            and x.ndim == 2 and isinstance(b, torch.Tensor) and b.ndim == 1):
        return None
    return _linear_call((x, w.t(), b), {})


@functools.cache
def _linear_function():
    """The autograd Functions of :func:`second_order_graph`'s linear layer (``gradient_values=False``), defined once."""
    import torch
    from torch.autograd.function import once_differentiable

    class _LinearGrad(torch.autograd.Function):
        """The graph of a linear layer's gradient (gx, gW, gb) = (gy W, gyᵀx, Σ gy) from its output cotangent gy.

        gx and gb are computed; gW is not (zeros of W's shape stand in: see
        :func:`second_order_graph`'s ``gradient_values``). Its derivatives, for cotangents
        (Ux, UW, Ub): ∂/∂gy = Ux Wᵀ + x UWᵀ + Ub, ∂/∂x = gy UW, ∂/∂W = gyᵀ Ux (rows of every
        leading dim flattened): the four matrix products PyTorch's own nodes spend.
        """

        @staticmethod
        def forward(ctx, gy, x, w, has_bias, need_x):
            gy2 = gy.reshape(-1, gy.shape[-1])
            gx = (gy2 @ w).view(x.shape) if need_x else None
            gw = w.new_zeros(()).expand(w.shape)  # not computed: never read
            gb = gy2.sum(0) if has_bias else None
            ctx.save_for_backward(gy, x, w)
            ctx.set_materialize_grads(False)
            return gx, gw, gb

        @staticmethod
        @once_differentiable  # see second_order_graph: no third derivative
        def backward(ctx, Ux, Uw, Ub):
            gy, x, w = ctx.saved_tensors
            gy2, x2 = gy.reshape(-1, gy.shape[-1]), x.reshape(-1, x.shape[-1])
            grad_gy = grad_x = grad_w = None
            if Ux is not None:
                Ux2 = Ux.reshape(-1, Ux.shape[-1])
                grad_gy = Ux2 @ w.T
                if ctx.needs_input_grad[2]:
                    into = _DIRECT_WEIGHT_GRADIENTS.get((w.data_ptr(), tuple(w.shape), w.stride()))
                    if into is None:
                        grad_w = gy2.T @ Ux2
                    else:  # see direct_weight_gradients: no weight-sized piece waits in autograd's buffer
                        into.addmm_(gy2.T, Ux2)
            if Uw is not None:
                grad_gy = x2 @ Uw.T if grad_gy is None else grad_gy.addmm_(x2, Uw.T)
                grad_x = (gy2 @ Uw).view(x.shape) if ctx.needs_input_grad[1] else None
            if Ub is not None:
                grad_gy = Ub.expand(gy2.shape).clone() if grad_gy is None else grad_gy.add_(Ub)
            return (None if grad_gy is None else grad_gy.view(gy.shape)), grad_x, grad_w, None, None

    class _Linear(torch.autograd.Function):
        """``F.linear`` whose gradient, built with ``create_graph``, is :class:`_LinearGrad` (its weight part not computed)."""

        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            ctx.has_bias = b is not None
            return torch.nn.functional.linear(x, w, b)

        @staticmethod
        def backward(ctx, gy):
            x, w = ctx.saved_tensors
            if torch.is_grad_enabled():  # building a gradient graph (create_graph=True)
                return _LinearGrad.apply(gy, x, w, ctx.has_bias, ctx.needs_input_grad[0])
            gy2 = gy.reshape(-1, gy.shape[-1])
            gx = (gy2 @ w).view(x.shape) if ctx.needs_input_grad[0] else None
            gw = gy2.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
            gb = gy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
            return gx, gw, gb

    return _Linear


def _attention_call(args, kwargs):
    """``(q, k, v, is_causal, scale)`` of a plain ``F.scaled_dot_product_attention`` call that needs a gradient, else None.

    Plain: query, key and value of ≥ 3 dims with the same leading dims (no broadcasting, no
    grouped-query heads), not empty, all float32 or all float64 on one device, no ``attn_mask``,
    ``dropout_p`` 0, and a bool ``is_causal``. Any other call is PyTorch's own.
    """
    import numbers

    import torch

    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    given = _bind(names, args, kwargs)
    if given is None:
        return None
    q, k, v = given.get("query"), given.get("key"), given.get("value")
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or not any(t.requires_grad for t in (q, k, v)):
        return None
    is_causal, scale = given.get("is_causal", False), given.get("scale")
    if (given.get("attn_mask") is not None or given.get("dropout_p", 0.0) != 0.0 or given.get("enable_gqa", False)
            or type(is_causal) is not bool or not (scale is None or isinstance(scale, numbers.Real))):
        return None
    if not (q.ndim == k.ndim == v.ndim >= 3 and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
            and q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2] and q.dtype in (torch.float32, torch.float64)
            and q.dtype == k.dtype == v.dtype and q.device == k.device == v.device and q.numel() and k.numel()):
        return None  # half precision (PyTorch's kernel works in float32 there) and empty inputs: PyTorch's own
    return q, k, v, is_causal, 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


@functools.cache
def _attention_function():
    """:func:`second_order_graph`'s attention: softmax(s·QKᵀ + causal mask)V in three differentiable ops."""
    import torch

    class _Attention:
        """Scaled dot-product attention as ``baddbmm`` (scale and causal mask), softmax and ``bmm``.

        PyTorch's math kernel scales Q and K apart, builds and adds the causal mask, then multiplies
        (a dozen autograd nodes, each a pass in every backward). Here the scale and the mask are one
        ``baddbmm``, then softmax and ``bmm``: the same values to rounding, and a recomputed demo-LM
        Hessian product 0.95× the time (paired in one process, 31 rounds).
        """

        @staticmethod
        def apply(q, k, v, is_causal, scale):
            lead, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
            q3, k3, v3 = q.reshape(-1, L, E), k.reshape(-1, S, E), v.reshape(-1, S, Ev)
            if is_causal:  # PyTorch's causal mask: query i sees keys j ≤ i (top-left aligned)
                start = torch.full((L, S), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
                beta = 1
            else:
                start, beta = q3.new_zeros(()).expand(1, 1, 1), 0
            s = torch.baddbmm(start, q3, k3.transpose(1, 2), beta=beta, alpha=scale)
            return torch.bmm(torch.softmax(s, dim=-1), v3).reshape(*lead, L, Ev)

    return _Attention


#: What :func:`second_order_graph` intercepts: name → (argument parser, the Functions' factory)
_INTERCEPTED = {"gelu": (_gelu_call, _gelu_function), "layer_norm": (_layer_norm_call, _layer_norm_function),
                "attention": (_attention_call, _attention_function),
                "cross_entropy": (_cross_entropy_call, _cross_entropy_function),
                "linear": (_linear_call, _linear_function), "addmm": (_addmm_call, _linear_function)}
