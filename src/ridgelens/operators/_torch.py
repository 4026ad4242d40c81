"""The Hessian of a torch model's mean loss, matrix-free, on the model's device.

Forms of the Hessian-vector product (Pearlmutter's R-operator):

- ``"reuse"``: build the gradient's graph once for the whole data set
  (``autograd.grad(..., create_graph=True)``) and differentiate it again for each v
  (one backward pass per HVP). Fastest, but holds every batch's graph in memory. For the
  built-in byte LM what is held is instead the hand-written R-operator's v-free pass (its
  activations and cotangents; under half of autograd's graph, 23.4 against 50.5 MiB for the
  demo LM's batch), and each product runs only the R passes
  (:attr:`TorchHessianOperator.held` says which; ``hand_written=False`` keeps autograd's).
- ``"double-backward"``: rebuild that graph batch by batch for every v.
- ``"fwd-over-rev"``: ``torch.func.jvp`` of the gradient, batch by batch; often
  the best on GPUs.
- ``"r-op"``: the R-operator written out by hand, batch by batch, with no autograd graph
  (:mod:`ridgelens.lm._rop`): only for ridgelens' own byte-level LM
  (:class:`~ridgelens.lm.ByteTransformer`) under its token cross-entropy. There it is the
  fastest recompute form and holds the least memory.
- ``"partial-reuse"``: reuse the graphs of as many batches as fit in ``memory_budget``
  and recompute the others (by :attr:`TorchHessianOperator.recompute_form`).
- ``"recompute"``: hold no graph and time nothing: ``"r-op"`` where it applies, else
  ``"double-backward"`` (what :meth:`~ridgelens.objectives.lm.LMObjective.product_options`
  asks for when the tokens make several batches).

``form="auto"`` takes ``"reuse"`` when the whole graph fits in ``memory_budget`` bytes
(measured with saved-tensor hooks on the first batch; not measured, and so not built, when
a recompute form is asked for or the budget is 0), else ``"partial-reuse"`` when at
least one batch's graph fits and the batches come in the same order on every pass (not a
shuffling DataLoader), else the faster on the first batch of the two recompute
forms that run on the model (resolved by :func:`ridgelens._auto.select_solver`). The choice is recorded in
:attr:`TorchHessianOperator.form`, and how many batches are reused in
:attr:`~TorchHessianOperator.reused_batches`.

``matmat`` of b vectors is one batched product where the form allows it: the reused graph
(and each recomputed batch's graph) is differentiated once for all b vectors
(``autograd.grad(..., is_grads_batched=True)``, vmap over ``grad_outputs``), so a block of
vectors costs less than b products. Only the public protocol of the objective is used
(see :class:`~ridgelens.objectives.torch.TorchObjective`).
"""

from __future__ import annotations

import threading
import time

import torch
from torch.autograd.graph import get_gradient_edge
from torch.func import grad, jvp

from ridgelens import _distributed as dist
from ridgelens._auto import select_solver
from ridgelens._autodiff import (
    direct_weight_gradients,
    saved_bytes,
    second_order_attention,
    second_order_graph,
)
from ridgelens._validation import check_bytes, check_flag
from ridgelens.errors import RidgelensError
from ridgelens.lm._rop import ByteLMPass, byte_lm_support
from ridgelens.objectives.lm import LMObjective, token_cross_entropy
from ridgelens.operators._base import CurvatureOperator

FORMS = ("auto", "reuse", "partial-reuse", "double-backward", "fwd-over-rev", "r-op", "recompute")
RECOMPUTE_FORMS = ("double-backward", "fwd-over-rev", "r-op")
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes for a reused graph (2 GiB)


def fixed_order(batches) -> bool:
    """Whether ``batches`` yields its batches in the same order on every pass.

    False for a DataLoader over a map-style dataset whose batches are not drawn by a
    sequential sampler (``shuffle=True``, a random or weighted sampler); True otherwise.
    """
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler

    if not isinstance(batches, DataLoader) or isinstance(batches.dataset, IterableDataset):
        return True
    bs = batches.batch_sampler
    if bs is None:  # batch_size=None: one sample per step, drawn by .sampler
        return isinstance(batches.sampler, SequentialSampler)
    return isinstance(bs, BatchSampler) and isinstance(bs.sampler, SequentialSampler)


def _sum_products(parts, V: torch.Tensor) -> torch.Tensor | None:
    """The sum of the per-batch products ``parts``, added into the first (no zero-filled buffer); None if none.

    Never added into ``V``: autograd may hand back the vector it was given as a product.
    """
    total = None
    for part in parts:
        if total is None:
            total = part.clone() if part.data_ptr() == V.data_ptr() else part
        else:
            total += part
    return total


def _edges_of(loss, leaves) -> list:
    """``[(edge, i)]``: the gradient graph of ``loss`` (``create_graph``) as the edge of each parameter i's gradient.

    Only the graph is differentiated: the values go, the edges stay. A gradient that does not
    depend on θ (None, or without a graph) has zero Hessian rows, and by symmetry zero columns.
    """
    grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    return [(get_gradient_edge(g), i) for i, g in enumerate(grads) if g is not None and g.requires_grad]


def _grad_batched(out, inp, V, retain_graph):
    """``(∂out/∂inp)ᵀ`` applied to each row of V: one batched backward (vmap), or a loop where vmap fails.

    Zeros where ``out`` has a graph that does not reach ``inp`` (a gradient that depends on the
    data only: a loss linear in θ).
    """
    def one(v, retain):  # (∂out/∂inp)ᵀv, zeros where the graph does not reach inp
        (g,) = torch.autograd.grad(out, inp, grad_outputs=v, retain_graph=retain, allow_unused=True)
        return torch.zeros_like(inp) if g is None else g

    if V.shape[0] == 1:
        return one(V[0], retain_graph)[None]
    try:
        (g,) = torch.autograd.grad(out, inp, grad_outputs=V, retain_graph=True, is_grads_batched=True,
                                   allow_unused=True)
        return inp.new_zeros((V.shape[0], *inp.shape)) if g is None else g
    except RuntimeError:  # an op without a batching rule: one backward per vector
        return torch.stack([one(v, True) for v in V])


def _r_op_support(objective) -> str | None:
    """None where the ``"r-op"`` form computes this objective's products; else why it does not."""
    if type(objective) is not LMObjective and isinstance(objective, LMObjective):
        return (f"it computes an LMObjective's own logits and loss, and {type(objective).__name__} is a subclass, "
                "whose methods it would not run")
    if not (isinstance(objective, LMObjective) and objective.takes_parameter_views
            and objective.loss_fn is token_cross_entropy and objective.returns == "logits"):
        return "it is written for an LMObjective's own token cross-entropy on a model's logits"
    return byte_lm_support(objective.model, objective.param_blocks()[0], objective.dtype)


def named_blocks(objective, flat) -> dict:
    """The objective's parameter names mapped to views of the flat vector ``flat``."""
    return dict(zip(objective.param_blocks()[0], objective.parameter_views(flat), strict=True))


def r_op_rows(objective, V, passes):
    """Each row of V through the hand-written passes ``passes(vectors)`` yields, summed into one output row."""
    out = torch.zeros_like(V)
    with torch.no_grad():
        for row, v in zip(out, V, strict=True):
            vectors, pieces = named_blocks(objective, v), named_blocks(objective, row)
            for p in passes(vectors):
                p.product(vectors, pieces)
    return out


class TorchHessianOperator(CurvatureOperator):
    """∇²R(θ) of a torch objective, applied matrix-free on the model's device and dtype.

    Built from the objective's public protocol alone (``flat_tensor``, ``prepared_batches``,
    ``batch_weight``, ``outputs``, ``loss_fn``, ``batch_losses``, ``n_batches``).

    Parameters
    ----------
    objective, theta
        The torch objective and the point θ.
    form : str, default "auto"
        One of :data:`FORMS` (see module docs).
    memory_budget : int, optional
        Bytes a reused graph may take (default :data:`DEFAULT_MEMORY_BUDGET`).
    hand_written : bool, default True
        Whether the byte LM's hand-written R-operator may be used where it applies (form
        ``"r-op"``, and what the reuse forms hold); False keeps every product autograd's (a
        cross-check, or the autograd graph's own figures).

    Attributes
    ----------
    form : str
        The HVP form in use (see module docs).
    held : str or None
        What a reuse form holds per batch: ``"r-op"`` (the byte LM's hand-written pass: its
        activations and cotangents), ``"graph"`` (autograd's gradient graph), None if nothing.
    r_op_unsupported : str or None
        Why the hand-written R-operator does not apply here (None: it does).
    graph_bytes : int or None
        Estimated bytes of the whole data set's gradient graph (None: not measured).
    batch_graph_bytes : int or None
        Measured bytes of the first batch's gradient graph; None where no graph may be held (a
        recompute form asked for, or ``form="auto"`` with a memory budget of 0), so none is built.
    reused_batches : int
        How many batches' graphs are held (all for "reuse", none for a recompute form).
    recompute_form : str or None
        How the batches not reused are recomputed (None for "reuse").
    memory_budget : int
        Bytes the reused graph may take.
    choice : Choice
        The resolved form and why (from :func:`ridgelens._auto.select_solver`).
    """

    def __init__(self, objective, theta, *, form: str = "auto", memory_budget: int | None = None,
                 hand_written: bool = True):
        if form not in FORMS:
            raise RidgelensError(f"form must be one of {FORMS}, got {form!r}")
        super().__init__(objective.n_params, dtype=objective.dtype, device=objective.device)
        self.objective = objective
        self.r_op_unsupported = _r_op_support(objective) if hand_written else "hand_written=False was passed"
        if form == "r-op" and self.r_op_unsupported:
            raise RidgelensError(f"form='r-op' does not apply here: {self.r_op_unsupported}; use form='auto'")
        self.theta = objective.flat_tensor(theta)
        if dist.is_distributed():  # the digest copies θ to the host and hashes it: only where ranks compare
            dist.check_same("point θ (digest)", dist.tensor_digest(self.theta))
        self.memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else check_bytes(memory_budget,
                                                                                             "memory_budget")
        hand_written = check_flag(hand_written, "hand_written")
        self._graph = None
        self._lock = threading.Lock()
        self.form_timings, self.form_errors = {}, {}
        n_b = objective.n_batches
        fixed = fixed_order(objective.batches)
        with second_order_attention():
            # A graph is measured (built once) only where one may be held: at the demo LM's size the
            # measurement alone is most of a recompute form's peak memory.
            may_hold = form in ("reuse", "partial-reuse") or (form == "auto" and self.memory_budget > 0)
            self.batch_graph_bytes = self._estimate_batch_graph_bytes() if may_hold else None
            self.graph_bytes = None if self.batch_graph_bytes is None else self.batch_graph_bytes * n_b
            if not (may_hold and self.batch_graph_bytes <= self.memory_budget and (fixed or n_b == 1)):
                # No batch graph will be reused (free the measured one before timing the recompute forms),
                # or the batches come in another order on the next pass (a reused graph is built in one pass).
                self._first = None
            self.choice = select_solver("hvp_form", requested=form, n_batches=n_b,
                                        batch_graph_bytes=self.batch_graph_bytes, memory_budget=self.memory_budget,
                                        fixed_order=fixed, fastest_recompute=self._fastest_recompute,
                                        r_op_applies=self.r_op_unsupported is None)
            form = self.choice.name
            fits = self.choice.facts["fits"]
            self.recompute_form = self.choice.facts.get("recompute_form")
            self.reused_batches = n_b if form == "reuse" else (fits if form == "partial-reuse" else 0)
            if self.reused_batches:
                self._build_graph(self.reused_batches)
        self._first = None
        self.form = form

    @property
    def held(self) -> str | None:
        """What a reuse form holds per batch: ``"r-op"``, ``"graph"`` or None (see the class docs)."""
        return None if self._graph is None else "r-op" if self._graph[0] == "r-op" else "graph"

    def fingerprint(self) -> str | None:
        from ridgelens._checkpoint import digest

        return digest(self.theta, None, "hessian", self.objective.fingerprint())

    @property
    def _takes_leaves(self) -> bool:
        """Whether the objective computes its losses from per-parameter leaves (its own batch_loss and outputs)."""
        return bool(getattr(self.objective, "takes_parameter_views", False))

    # ----------------------------------------------------------- measurement
    def _estimate_batch_graph_bytes(self) -> int:
        """Measure the first batch's gradient graph, and keep it (``_first``) for a reused graph to start from.

        Building it once more instead would cost a forward and a backward pass and, measured on
        the demo LM, hold 40% more memory (the freed first graph's pages are not all reused).
        """
        if self.r_op_unsupported is None:  # the byte LM: its hand-written pass is what a reuse form holds
            first = self._r_op_pass(0, 1)
            self._first = ("r-op", first)
            return sum(p.nbytes() for p in first)
        if self._takes_leaves:
            leaves = self.objective.parameter_views(self.theta, leaves=True)
            edges, nbytes = saved_bytes(lambda: self._leaf_graph(leaves, 0, 1))
            self._first = (leaves, edges)
            return nbytes
        flat = self.theta.detach().requires_grad_(True)

        def first_gradient_graph():
            loss = next(iter(self.objective.batch_losses(flat, stop=1)))
            return torch.autograd.grad(loss, flat, create_graph=True, allow_unused=True)[0]

        with second_order_graph():  # kept for a reused graph: PyTorch's linear nodes (see second_order_graph)
            g, nbytes = saved_bytes(first_gradient_graph)
        self._first = (flat, g)
        return nbytes

    def _fastest_recompute(self) -> str:
        V = torch.randn(1, self.n, dtype=self.dtype, device=self.device)
        times = {}
        for form in RECOMPUTE_FORMS:
            fn = getattr(self, f"_hvp_{form.replace('-', '_')}")
            try:
                fn(V, stop=1)  # warm-up
            except RuntimeError as exc:  # e.g. torch.func cannot run forward-over-reverse through this loss
                self.form_errors[form] = str(exc).splitlines()[0]
                continue
            if self.device.type == "cuda":  # the warm-up's queued kernels are not this form's time
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            fn(V, stop=1)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times[form] = time.perf_counter() - t0
        self.form_timings = times
        return min(times, key=times.get) if times else None

    # ------------------------------------------------------------------ forms (V: (b, n) rows)
    def _build_graph(self, stop: int) -> None:
        """Hold the gradient graph of batches 0 … stop − 1 (summed), from the measured batch 0's when it was kept.

        Against per-parameter leaves where the objective takes them (:meth:`_into_leaves`): the
        graph is the edges of every batch's per-parameter gradients, and a product adds into
        views of its output. Else against the flat θ, summed into one gradient's edge. At 10.9M
        float64 parameters (128 tokens) the leaves took the live peak of building the graph and
        one product from 166.0 to 129.0 MiB, one product 0.94× the time and a block of four 0.70×
        (a loop of single products: autograd's batched backward was the slower); on the demo LM
        0.97–1.02× and 0.88–0.90× (paired against the flat θ, 7 and 25 rounds).
        """
        if self.r_op_unsupported is None:
            kept, start = (self._first[1], 1) if self._first is not None else ([], 0)
            self._graph = ("r-op", kept + self._r_op_pass(start, stop))
            return
        if self._takes_leaves:
            if self._first is not None:
                (leaves, edges), start = self._first, 1
            else:
                leaves, edges, start = self.objective.parameter_views(self.theta, leaves=True), [], 0
            self._graph = (leaves, edges + self._leaf_graph(leaves, start, stop))
            return
        if self._first is not None:
            (flat, g), start = self._first, 1
        else:
            g, start = None, 0
            flat = self.theta.detach().requires_grad_(True)
        with second_order_graph():
            for loss in self.objective.batch_losses(flat, start=start, stop=stop):
                (gb,) = torch.autograd.grad(loss, flat, create_graph=True, allow_unused=True)
                g = gb if g is None else g if gb is None else g + gb
        # Only the gradient's graph is differentiated; its value (n numbers: 83 MiB at 10.9M float64
        # parameters) is never read again, so only its edge is held. None: no curvature at all.
        self._graph = (flat, self._edge(g))

    def _leaf_graph(self, leaves, start: int, stop: int | None) -> list:
        """The gradient graph of batches start … stop − 1 against ``leaves``: every batch's ``(edge, i)`` pairs."""
        with second_order_graph(gradient_values=False):
            return [pair for loss in self.objective.batch_losses(leaves, start=start, stop=stop)
                    for pair in _edges_of(loss, leaves)]

    @staticmethod
    def _edge(g):
        """The edge of a gradient's graph; None for a gradient that does not depend on θ (a loss linear in θ, or without θ)."""
        return get_gradient_edge(g) if g is not None and g.requires_grad else None

    @staticmethod
    def _gradient_edge(loss, flat):
        """The edge of ∇loss's graph (built with ``create_graph``), the gradient's value freed before the product."""
        (g,) = torch.autograd.grad(loss, flat, create_graph=True, allow_unused=True)
        return TorchHessianOperator._edge(g)

    def _hvp_reuse(self, V):
        params, graph = self._graph
        if params == "r-op":  # the byte LM's kept passes (see _build_graph)
            return r_op_rows(self.objective, V, lambda _vectors: graph)
        if isinstance(params, list):  # per-parameter leaves: one vector at a time into its output's views
            if V.shape[0] == 1:
                return self._into_leaves(params, [graph], V, retain_graph=True)
            return torch.cat([self._into_leaves(params, [graph], v[None], retain_graph=True) for v in V])
        return torch.zeros_like(V) if graph is None else _grad_batched(graph, params, V, retain_graph=True)

    def _hvp_partial_reuse(self, V):
        hv = self._hvp_reuse(V)
        rest = getattr(self, f"_hvp_{self.recompute_form.replace('-', '_')}")(V, start=self.reused_batches)
        # Add into ``rest`` (a fresh buffer): autograd may hand back V itself (a graph that passes its
        # grad_outputs through, e.g. an addition), and V is the caller's.
        return rest.add_(hv)

    def _hvp_double_backward(self, V, start: int = 0, stop: int | None = None):
        if V.shape[0] == 1 and self._takes_leaves:
            return self._hvp_double_backward_views(V, start, stop)
        flat = self.theta.detach().requires_grad_(True)
        # The gradient is never read, only differentiated: its weight entries need not be computed.
        # No zero buffer first: at 10.9M parameters one is 83 MiB of the product's peak.
        with second_order_graph(gradient_values=False):
            edges = (self._gradient_edge(loss, flat) for loss in self.objective.batch_losses(flat, start, stop))
            out = _sum_products((_grad_batched(e, flat, V, retain_graph=False) for e in edges if e is not None), V)
        return torch.zeros_like(V) if out is None else out

    def _hvp_double_backward_views(self, V, start, stop):
        """One product by double backward through per-parameter leaves, summed in place into its output.

        Differentiating with respect to the flat θ builds a flat gradient in every batch's graph
        and a flat product per batch, then their sum: three parameter-sized vectors at once, on top
        of the graph (250 MiB at 10.9M float64 parameters). Here each parameter is a leaf viewing θ's
        storage; the product's pieces are added, one parameter at a time, into views of the
        output (autograd accumulates a leaf's ``.grad`` in place), so one vector is held. A linear
        weight's piece from the gradient graph goes in directly (:func:`direct_weight_gradients`)
        instead of waiting in autograd's buffer for the forward's piece: at 10.9M parameters the
        product's live peak went from 250.7 to 168.3 MiB, and its time 0.92× (paired, 9 rounds).
        """
        leaves = self.objective.parameter_views(self.theta, leaves=True)
        with second_order_graph(gradient_values=False):  # each batch's graph is freed after its backward
            return self._into_leaves(leaves, (_edges_of(loss, leaves) for loss in
                                              self.objective.batch_losses(leaves, start, stop)), V, retain_graph=False)

    def _into_leaves(self, leaves, graphs, V, retain_graph: bool):
        """One product (V of one row): each graph's edges differentiated with V's pieces, summed into a new output.

        Each leaf's ``.grad`` is preset to its view of the output, so autograd adds every piece in
        place; linear weights' gradient-graph pieces go in directly (:func:`direct_weight_gradients`).
        ``graphs``: lists of ``(edge, i)`` (:func:`_edges_of`), one per batch, or a generator of them.
        """
        views = self.objective.parameter_views
        out = torch.zeros_like(V)
        for leaf, piece in zip(leaves, views(out[0]), strict=True):
            leaf.grad = piece
        cotangents = views(V[0])
        try:
            with direct_weight_gradients(leaves):
                for edges in graphs:
                    if edges:
                        torch.autograd.backward([e for e, _ in edges], grad_tensors=[cotangents[i] for _, i in edges],
                                                inputs=leaves, retain_graph=retain_graph)
        finally:
            for leaf in leaves:  # a reused graph's leaves take the next product's output
                leaf.grad = None
        return out

    def _hvp_fwd_over_rev(self, V, start: int = 0, stop: int | None = None):
        obj = self.objective
        out = [None] * V.shape[0]
        for x, y in obj.prepared_batches(start, stop):
            w = obj.batch_weight(y)

            def loss_of(flat, x=x, y=y):  # the objective's own batch loss (a subclass's term included), as batch_losses
                return obj.batch_loss(flat, x, y)

            for i in range(V.shape[0]):
                _, hv = jvp(grad(loss_of), (self.theta,), (V[i].clone(),))
                out[i] = w * hv if out[i] is None else out[i] + w * hv
        return torch.stack([torch.zeros_like(V[0]) if o is None else o for o in out])

    def _hvp_r_op(self, V, start: int = 0, stop: int | None = None):
        """Products by the hand-written R-operator of the byte LM (:class:`ridgelens.lm._rop.ByteLMPass`), batch by batch."""
        if self.r_op_unsupported:
            raise NotImplementedError(self.r_op_unsupported)
        obj = self.objective
        params = named_blocks(self.objective, self.theta)

        def passes(vectors):
            for x, y in obj.prepared_batches(start, stop):
                yield ByteLMPass(obj.model, params, x, y, weight=obj.batch_weight(y), vectors=vectors)
        return r_op_rows(self.objective, V, passes)

    def _r_op_pass(self, start: int, stop: int | None) -> list:
        """The kept passes (v-free activations and cotangents) of batches start … stop − 1, for reuse."""
        obj, params = self.objective, named_blocks(self.objective, self.theta)
        with torch.no_grad():
            return [ByteLMPass(obj.model, params, x, y, weight=obj.batch_weight(y), keep_cotangents=True)
                    for x, y in obj.prepared_batches(start, stop)]

    # ------------------------------------------------------------------ the hook
    def _rows(self, V: torch.Tensor) -> torch.Tensor:
        try:
            # One product at a time per operator: a reused graph's leaves carry each product's output as
            # their .grad, so two threads' products at once would add into each other's.
            with self._lock, torch.enable_grad(), second_order_attention():
                hv = getattr(self, f"_hvp_{self.form.replace('-', '_')}")(V).detach()
            # This rank's batches, then one all-reduce (a no-op without a process group); never V in place.
            return dist.all_reduce_sum(hv.clone() if hv.data_ptr() == V.data_ptr() else hv, "Hessian product all-reduce")
        except RuntimeError as exc:
            if isinstance(exc, torch.OutOfMemoryError) or (
                    self.form != "fwd-over-rev" and self.recompute_form != "fwd-over-rev"):
                raise  # out of memory is the device's, whatever the form
            raise RidgelensError(f"the HVP form 'fwd-over-rev' (torch.func jvp of grad) failed on this model and "
                                 f"loss: {str(exc).splitlines()[0]}; use form='double-backward'") from None

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._rows(V.T.contiguous()).T

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._rows(v[None])[0]

    def matvec_tensor(self, v: torch.Tensor) -> torch.Tensor:
        """Deprecated spelling of :meth:`matvec` on a tensor."""
        return self.matvec(v)

    def release(self) -> None:
        """Drop the reused graph (frees its memory); later products recompute per batch."""
        self._graph = None
        if self.form in ("reuse", "partial-reuse"):
            self.form = self.recompute_form or ("r-op" if self.r_op_unsupported is None else "double-backward")
            self.recompute_form = self.form
            self.reused_batches = 0
