"""The generalized Gauss–Newton curvature G = Σ_b w_b J_bᵀ H_out,b J_b, matrix-free.

For a batch b with outputs o = f(θ, x_b) and mean loss L_b(o) = loss_fn(o, y_b), J_b = ∂o/∂θ
and H_out,b = ∂²L_b/∂o². G drops the term of H that carries the second derivatives of the
model, Σ (∂L/∂o)·∂²o/∂θ², so it is positive semi-definite whenever the loss is convex in the
outputs (squared error, cross-entropy, binary cross-entropy with logits). For a GLM with its
canonical link, that dropped term is zero: G = H.

One product with G, per batch: J v (a backward pass through a held "vjp of a vjp" graph),
H_out (J v) (autograd on the loss as a function of the outputs: no model pass), and
Jᵀ(·) (a backward pass). Nothing n × n or n × #outputs is ever formed. With ``reuse`` (the
default when it fits the memory budget) the forward graphs are built once; otherwise each
product rebuilds them batch by batch.

Memory: the "vjp of a vjp" graph g(u) = Jᵀu is built at u = 0, so every cotangent it saves is
zero. Those are kept as their shape alone (:class:`_ZeroCotangents`), u is a broadcast zero,
and of g(u) only its graph's edge is kept, not its n numbers: what is held is about the forward
graph plus the loss's (demo LM: 21 MiB, 36 MiB before; forward graph 15 MiB). No time is
traded for it (the products are the same to the bit), so there is no choice to make.

On ridgelens' built-in byte LM under its token cross-entropy (where the Hessian's hand-written
``"r-op"`` form applies) each product is computed by hand instead, with no autograd graph
(:class:`ridgelens.lm._rop.ByteLMPass` with ``ggn=True``): the R pass forward up to the logits
(J v, each layer's R dropped once the next is made), H_z (J v) = w·p∘(Jv − ⟨p, Jv⟩)/N per token
(w the batch's weight, N its tokens), and the gradient's way back from there. What ``reuse`` holds is the forward pass alone
(:attr:`GGNOperator.held` is ``"r-op"``); ``hand_written=False`` keeps autograd's.

The premise is checked, not assumed: at construction the output Hessian of the first batch
(its first samples, formed densely when small, else probed) must be PSD, and every product
of autograd's checks ⟨Jv, H_out Jv⟩ ≥ 0 on every batch (up to rounding; the hand-written
products' H_z = diag(p) − ppᵀ is a covariance, PSD by construction); a loss that is not convex in the
outputs raises :class:`~ridgelens.errors.RidgelensError` naming the loss.
"""

from __future__ import annotations

import torch
from torch.autograd.graph import get_gradient_edge

from ridgelens import _distributed as dist
from ridgelens._autodiff import saved_bytes, second_order_attention
from ridgelens._validation import check_bytes, check_flag
from ridgelens.errors import RidgelensError
from ridgelens.lm._rop import ByteLMPass
from ridgelens.operators._base import CurvatureOperator
from ridgelens.operators._torch import (
    DEFAULT_MEMORY_BUDGET,
    _grad_batched,
    _r_op_support,
    _sum_products,
    named_blocks,
    r_op_rows,
)

#: The PSD check forms the output Hessian of the first batch's first samples, up to this many outputs.
DENSE_OUTPUT_CHECK = 512


class _ZeroCotangents:
    """Saved-tensor hooks that keep an all-zero tensor as its layout alone, and count what they keep.

    The graph of Jᵀu at u = 0 saves every layer's cotangent (zero: linear in u) beside the
    forward's activations, about as much memory again as the forward graph, for values no
    product reads. Such a tensor is given back as a broadcast zero of its shape (no memory, no
    fill) when a backward unpacks it: backward formulas take broadcast tensors, and the values
    are the same, so the products are the same to the bit.
    """

    def __init__(self):
        self.kept_bytes = 0

    def pack(self, t: torch.Tensor):
        if t.layout == torch.strided and not bool(t.any()):
            return tuple(t.shape), t.dtype, t.device
        self.kept_bytes += t.numel() * t.element_size()
        return t

    @staticmethod
    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        shape, dtype, device = packed
        return torch.zeros((), dtype=dtype, device=device).expand(shape)


def loss_not_from_outputs(objective, theta, x, y, out=None) -> str | None:
    """Why ``objective``'s loss on batch ``(x, y)`` is not ``loss_fn(outputs(θ, x), y)``, or None when it is.

    The Gauss–Newton matrix is built from the outputs and ``loss_fn``; a subclass that overrides
    ``batch_loss`` (to add a term in θ, say) or ``outputs`` (a temperature, a field of the model's
    output) has a loss that G does not see. An objective without ``batch_loss`` (the GGN's
    protocol alone) and ridgelens' own, whose ``batch_loss`` and ``outputs`` are both its own,
    agree by construction; another is compared on the batch. The tolerance scales with the
    outputs' size as well as the loss's: a loss near 0 computed two ways in float32 cancels,
    and its relative difference is not a different loss.
    """
    cls = type(objective)
    own = getattr(cls, "batch_loss", None)
    if own is None or all(getattr(getattr(cls, m, None), "__module__", "").startswith("ridgelens.")
                          for m in ("batch_loss", "outputs")):
        return None
    with torch.no_grad():
        if out is None:
            try:
                out = _floating_outputs(objective.outputs(theta, x))
            except RidgelensError:
                return "its outputs are not one floating tensor"
        from_outputs = float(objective.loss_fn(out, y))
        loss = float(objective.batch_loss(theta, x, y))
        scale = max(abs(loss), abs(from_outputs), float(out.abs().mean()) if out.numel() else 0.0, 1e-300)
    if abs(loss - from_outputs) <= 1e3 * torch.finfo(out.dtype).eps * scale:
        return None
    return (f"{cls.__name__}'s batch_loss gives {loss:.10g} on the first batch where "
            f"loss_fn(outputs) gives {from_outputs:.10g}")


class GGNOperator(CurvatureOperator):
    """The Gauss–Newton matrix ``Σ_b w_b J_bᵀ H_out,b J_b`` of a torch objective at θ.

    Parameters
    ----------
    objective : TorchObjective
        Anything with the torch objective protocol (``flat_tensor``, ``prepared_batches``,
        ``batch_weight``, ``outputs``, ``loss_fn``, ``n_batches``).
    theta : array or tensor of shape (n,)
    reuse : bool, optional
        Hold every batch's forward graph, or by hand its forward pass (faster products, more
        memory). Default: when the first batch's (:attr:`batch_graph_bytes`) times the number of
        batches fits ``memory_budget``.
    memory_budget : int, optional
        Bytes the held graphs may take (default 2 GiB).
    hand_written : bool, default True
        On ridgelens' built-in byte LM with its token cross-entropy (where the Hessian's ``"r-op"``
        form applies), compute each product by hand with no autograd graph: the logits' R pass
        forward, H_z, and the gradient's way back from there (:class:`ridgelens.lm._rop.ByteLMPass`
        with ``ggn=True``); what ``reuse`` holds is then the forward pass alone. False keeps autograd's.
        Where it applies is decided when the operator is built: like a held graph, such products
        do not run hooks registered on the model afterwards.

    Attributes
    ----------
    form : str
        ``"reuse"`` or ``"recompute"``.
    held : str or None
        What ``reuse`` holds per batch: ``"r-op"`` (the hand-written forward pass), ``"graph"``
        (autograd's), or None (recompute).
    hand_written_unsupported : str or None
        Why the products are autograd's (None where they are computed by hand).
    output_min_eigenvalue : float or None
        The smallest eigenvalue of the first batch's output Hessian (dense check), if formed.
    batch_graph_bytes : int
        What ``reuse`` holds per batch, measured on the first: the bytes its graphs save, or by
        hand the bytes of its kept forward pass (:meth:`ByteLMPass.nbytes <ridgelens.lm._rop.ByteLMPass.nbytes>`).
    """

    def __init__(self, objective, theta, *, reuse: bool | None = None, memory_budget: int | None = None,
                 hand_written: bool = True):
        super().__init__(objective.n_params, dtype=objective.dtype, device=objective.device)
        self.objective = objective
        self.theta = objective.flat_tensor(theta)
        if dist.is_distributed():  # the digest copies θ to the host and hashes it: only where ranks compare
            dist.check_same("point θ (digest)", dist.tensor_digest(self.theta))
        budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_bytes(memory_budget, "memory_budget")
        reuse, hand_written = check_flag(reuse, "reuse", none=True), check_flag(hand_written, "hand_written")
        self.loss_name = getattr(objective.loss_fn, "__name__", type(objective.loss_fn).__name__)
        self.output_min_eigenvalue = None
        #: relative size below which a negative curvature of the output Hessian is rounding (float64 ~2e-13, float32 ~1e-4)
        self._psd_tol = 1e3 * torch.finfo(self.dtype).eps
        self._held = None
        self._scale = 0.0
        self.hand_written_unsupported = _r_op_support(objective) if hand_written else "hand_written=False was passed"
        first = next(iter(objective.prepared_batches(0, 1)))
        with second_order_attention():
            dist.agree(lambda: self._check_output_hessian(*first), "check of the output Hessian")
            if self.hand_written_unsupported is None:
                self._build_by_hand(first, reuse, budget)
                return
            zeros = _ZeroCotangents()  # the Jᵀu graph's saved tensors, which saved_bytes does not see
            held0, nbytes = saved_bytes(lambda: self._linearize(*first, zeros))  # measured while built, kept if reused
            self.batch_graph_bytes = nbytes + zeros.kept_bytes
            if reuse is None:
                reuse = self.batch_graph_bytes * objective.n_batches <= budget
            if reuse:
                rest = objective.prepared_batches(1)
                self._held = [held0, *(self._linearize(x, y) for x, y in rest)]
            del held0
        self.form = "reuse" if reuse else "recompute"

    @property
    def held(self) -> str | None:
        """What ``reuse`` holds per batch: ``"r-op"``, ``"graph"`` or None (see the class docs)."""
        return None if self._held is None else "graph" if self.hand_written_unsupported else "r-op"

    def _build_by_hand(self, first, reuse, budget) -> None:
        """The hand-written products: the first batch's forward pass measured, and every batch's kept if reused."""
        obj = self.objective
        params = named_blocks(obj, self.theta)

        def forward(x, y):
            return ByteLMPass(obj.model, params, x, y, weight=obj.batch_weight(y), keep_cotangents=True, ggn=True)

        with torch.no_grad():
            held0 = forward(*first)
            self.batch_graph_bytes = held0.nbytes()
            if reuse is None:
                reuse = self.batch_graph_bytes * obj.n_batches <= budget
            if reuse:
                self._held = [held0, *(forward(x, y) for x, y in obj.prepared_batches(1))]
        self.form = "reuse" if reuse else "recompute"

    def _by_hand(self, rows: torch.Tensor) -> torch.Tensor:
        """Products by the hand-written passes: the held forward passes, or each batch's made afresh per row."""
        obj = self.objective
        if self._held is not None:
            return r_op_rows(obj, rows, lambda _vectors: self._held)
        params = named_blocks(obj, self.theta)

        def passes(vectors):
            for x, y in obj.prepared_batches():
                yield ByteLMPass(obj.model, params, x, y, weight=obj.batch_weight(y), vectors=vectors, ggn=True)
        return r_op_rows(obj, rows, passes)

    def fingerprint(self) -> str | None:
        from ridgelens._checkpoint import digest

        return digest(self.theta, None, "ggn", self.objective.fingerprint())

    # ------------------------------------------------------------------ building blocks
    def _linearize(self, x, y, zeros: _ZeroCotangents | None = None):
        """Per batch: the leaf θ, the outputs o, a dummy u with g(u) = Jᵀu kept differentiable, and ∇_o L.

        Of Jᵀu only its graph's edge is kept (its value, n numbers, is never read), and that graph
        keeps its zero cotangents as layouts (:class:`_ZeroCotangents`).
        """
        obj = self.objective
        flat = self.theta.detach().requires_grad_(True)
        out = _floating_outputs(obj.outputs(flat, x))
        u = out.new_zeros(()).expand(out.shape).requires_grad_(True)  # a broadcast zero: no logits-sized buffer
        zeros = zeros or _ZeroCotangents()
        with torch.autograd.graph.saved_tensors_hooks(zeros.pack, zeros.unpack):
            (jt_u,) = torch.autograd.grad(out, flat, grad_outputs=u, create_graph=True)
        o = out.detach().requires_grad_(True)
        loss = obj.loss_fn(o, y) * obj.batch_weight(y)
        (g_out,) = torch.autograd.grad(loss, o, create_graph=True)
        return flat, out, u, get_gradient_edge(jt_u), o, g_out

    def _check_output_hessian(self, x, y) -> None:
        """Refuse a loss whose output Hessian is indefinite on the first batch's first samples.

        First, refuse an objective whose loss is not ``loss_fn(outputs)`` (:func:`loss_not_from_outputs`).
        """
        obj = self.objective
        with torch.no_grad():
            out = _floating_outputs(obj.outputs(self.theta, x))
            why = loss_not_from_outputs(obj, self.theta, x, y, out)
        if why:
            raise RidgelensError(f"the Gauss-Newton curvature is built from loss_fn(outputs(θ, x), y), but {why}; "
                                 "G would be the curvature of another loss. Use curvature='hessian', or compute "
                                 "the loss in outputs and loss_fn")
        per = out[0].numel() if out.ndim > 1 else 1
        k = max(1, min(len(y), DENSE_OUTPUT_CHECK // max(per, 1)))
        o, t = out[:k].detach(), y[:k]
        if o.numel() > DENSE_OUTPUT_CHECK:
            return  # too large to form: the per-product check below still guards every product
        try:
            Hout = torch.func.hessian(lambda z: obj.loss_fn(z, t))(o).reshape(o.numel(), o.numel())
        except Exception:  # a loss that cannot be sliced or has no second derivative: per-product check only
            return
        Hout = 0.5 * (Hout + Hout.T).to(torch.float64)
        ev = torch.linalg.eigvalsh(Hout)
        lo, hi = float(ev[0]), float(ev[-1])
        self.output_min_eigenvalue = lo
        # Rounding in the loss's dtype (and in forming the Hessian) is not indefiniteness: in float32 a
        # cross-entropy's output Hessian shows eigenvalues near −1e-7·largest that are exactly 0. Its entries
        # are formed from terms of one output's share of a mean loss, 1/numel (probabilities up to 1, squared
        # error's 2): rounding is relative to that, not to the largest eigenvalue, which a confident classifier
        # takes far below it (an MLP that separates iris: −3.4e-19 against a largest 4.9e-15, refused before).
        if lo < -self._psd_tol * max(abs(hi), 1.0 / o.numel()):
            raise RidgelensError(
                f"the Gauss-Newton curvature needs a loss convex in the model's outputs, but {self.loss_name}'s "
                f"Hessian in the outputs has a negative eigenvalue {lo:.3g} (largest {hi:.3g}) on the first "
                "batch; G = JᵀH_out J would not be positive semi-definite. Use curvature='hessian', or a loss "
                "convex in the outputs (mean squared error, cross-entropy, BCE with logits)")

    def _apply(self, held, V, keep: bool, margins: list) -> torch.Tensor:
        flat, out, u, jt_u, o, g_out = held
        JV = _grad_batched(jt_u, u, V, retain_graph=True)  # (b, *out.shape): J v for each row v
        HJV = _grad_batched(g_out, o, JV, retain_graph=True)
        quad = (JV.flatten(1) * HJV.flatten(1)).sum(1)
        scale = (JV.flatten(1).norm(dim=1) * HJV.flatten(1).norm(dim=1))
        # ⟨Jv, H_out Jv⟩ + tol·scale, kept on the device: read once per product (one sync), not once per batch
        margins.append(torch.stack([quad + self._psd_tol * scale, quad]))
        return _grad_batched(out, flat, HJV, retain_graph=keep)

    def _refuse_negative(self, margins: list) -> None:
        """Raise if any batch met ⟨Jv, H_out Jv⟩ < −tol·‖Jv‖‖H_out Jv‖ (one host read for the whole product)."""
        if not margins:
            return
        m = torch.cat(margins, dim=1)  # (2, batches × b)
        if bool((m[0] < 0).any()):
            i = int((m[0] < 0).nonzero()[0, 0])
            raise RidgelensError(
                f"the Gauss-Newton curvature met ⟨Jv, H_out Jv⟩ = {float(m[1, i]):.3g} < 0 for {self.loss_name}: "
                "the loss is not convex in the model's outputs here, so G is not positive semi-definite. "
                "Use curvature='hessian', or a loss convex in the outputs")

    # ------------------------------------------------------------------ the hook
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        rows = V.T.contiguous()
        if self.hand_written_unsupported is None:  # the token cross-entropy's H_z = diag(p) − ppᵀ: a variance, ⪰ 0
            return dist.all_reduce_sum(self._by_hand(rows), "Gauss-Newton product all-reduce").T
        margins = []
        with torch.enable_grad(), second_order_attention():
            if self._held is not None:
                parts = (self._apply(held, rows, keep=True, margins=margins) for held in self._held)
            else:
                parts = (self._apply(self._linearize(x, y), rows, keep=False, margins=margins)
                         for x, y in self.objective.prepared_batches())
            total = _sum_products(parts, V)  # no zero-filled n × b buffer
        self._refuse_negative(margins)
        return dist.all_reduce_sum(total.detach(), "Gauss-Newton product all-reduce").T


def _floating_outputs(out):
    """The model's outputs, refused unless one floating tensor (the GGN linearizes the map θ ↦ outputs)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise RidgelensError(f"the Gauss-Newton curvature needs the model to return one floating tensor of outputs "
                             f"(the loss's input), got {type(out).__name__}; the Hessian (curvature='hessian') "
                             "takes any output the loss takes")
    return out
