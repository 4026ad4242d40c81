"""The Hessian of a torch model's mean loss, matrix-free, on the model's device.

Forms of the Hessian-vector product (Pearlmutter's R-operator):

- ``"reuse"``: build the gradient's graph once for the whole data set
  (``autograd.grad(..., create_graph=True)``) and differentiate it again for each v
  (one backward pass per HVP). Fastest, but holds every batch's graph in memory.
- ``"double-backward"``: rebuild that graph batch by batch for every v.
- ``"fwd-over-rev"``: ``torch.func.jvp`` of the gradient, batch by batch; often
  the best on GPUs.
- ``"partial-reuse"``: reuse the graphs of as many batches as fit in ``memory_budget``
  and recompute the others (by :attr:`TorchHessianOperator.recompute_form`).

``form="auto"`` takes ``"reuse"`` when the whole graph fits in ``memory_budget`` bytes
(measured with saved-tensor hooks on the first batch), else ``"partial-reuse"`` when at
least one batch's graph fits and the batches come in the same order on every pass (not a
shuffling DataLoader), else the faster on the first batch of the two recompute
forms. The choice is recorded in :attr:`TorchHessianOperator.form`, and how many batches
are reused in :attr:`~TorchHessianOperator.reused_batches`.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch.func import functional_call, grad, jvp

from ridgelens.errors import RidgelensError
from ridgelens.operators._base import CurvatureOperator

FORMS = ("auto", "reuse", "partial-reuse", "double-backward", "fwd-over-rev")
RECOMPUTE_FORMS = ("double-backward", "fwd-over-rev")


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
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes for a reused graph (2 GiB)


def _fixed_order(batches) -> bool:
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


class TorchHessianOperator(CurvatureOperator):
    """∇²R(θ) of a :class:`~ridgelens.objectives.torch.TorchObjective`, applied matrix-free.

    ``matvec_tensor`` takes and returns 1-D tensors on the model's device and dtype;
    ``matvec`` is the NumPy view of the same product.

    Attributes
    ----------
    form : str
        The HVP form in use (see module docs).
    graph_bytes : int
        Estimated bytes of the whole data set's gradient graph.
    batch_graph_bytes : int
        Measured bytes of the first batch's gradient graph.
    reused_batches : int
        How many batches' graphs are held (all for "reuse", none for a recompute form).
    recompute_form : str or None
        How the batches not reused are recomputed (None for "reuse").
    memory_budget : int
        Bytes the reused graph may take.
    """

    def __init__(self, objective, theta, *, form: str = "auto", memory_budget: int | None = None):
        if form not in FORMS:
            raise RidgelensError(f"form must be one of {FORMS}, got {form!r}")
        super().__init__(objective.n_params)
        self.objective = objective
        self.device, self.torch_dtype = objective.device, objective.dtype
        self.theta = objective._to_tensor(objective._check(theta))
        self.memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        if self.memory_budget < 0:
            raise RidgelensError(f"memory_budget must be ≥ 0 bytes, got {memory_budget}")
        self._graph = None
        self.form_timings = {}
        n_b = objective.n_batches
        with second_order_attention():
            self.batch_graph_bytes = self._estimate_batch_graph_bytes()
            self.graph_bytes = self.batch_graph_bytes * n_b
            fits = min(n_b, self.memory_budget // max(self.batch_graph_bytes, 1))
            if fits < n_b and not _fixed_order(objective.batches):
                # Reused graphs hold the first pass's batches 0 … fits − 1; with a shuffling loader the
                # recomputed batches of a later pass would overlap them and miss others: a wrong H.
                if form == "partial-reuse":
                    raise RidgelensError(
                        "form='partial-reuse' needs the batches in the same order on every pass, but the "
                        "DataLoader draws them in a random order (shuffle=True or a random sampler); use "
                        "shuffle=False, or form='reuse' (the whole graph) or a recompute form")
                fits = 0
            if form == "auto":
                form = "reuse" if fits >= n_b else ("partial-reuse" if fits >= 1 else self._fastest_recompute())
            self.recompute_form = None
            if form == "partial-reuse":
                if fits >= n_b:
                    form = "reuse"  # nothing left to recompute
                else:
                    self.recompute_form = self._fastest_recompute()
                    if fits < 1:  # not even one batch's graph fits: recompute them all
                        form = self.recompute_form
            elif form in RECOMPUTE_FORMS:
                self.recompute_form = form
            self.reused_batches = n_b if form == "reuse" else (fits if form == "partial-reuse" else 0)
            if self.reused_batches:
                self._build_graph(self.reused_batches)
        self.form = form

    # ----------------------------------------------------------- measurement
    def _estimate_batch_graph_bytes(self) -> int:
        seen = {"bytes": 0}

        def pack(t):
            seen["bytes"] += t.numel() * t.element_size()
            return t

        flat = self.theta.detach().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = next(iter(self.objective.batch_losses(flat)))
            torch.autograd.grad(loss, flat, create_graph=True)
        return int(seen["bytes"])

    def _fastest_recompute(self) -> str:
        v = torch.randn(self.n, dtype=self.torch_dtype, device=self.device)
        times = {}
        for form in RECOMPUTE_FORMS:
            fn = getattr(self, f"_hvp_{form.replace('-', '_')}")
            fn(v, stop=1)  # warm-up
            t0 = time.perf_counter()
            fn(v, stop=1)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times[form] = time.perf_counter() - t0
        self.form_timings = times
        return min(times, key=times.get)

    # ------------------------------------------------------------------ forms
    def _build_graph(self, stop: int) -> None:
        """Hold the gradient graph of batches 0 … stop − 1 (summed)."""
        flat = self.theta.detach().requires_grad_(True)
        g = None
        for loss in self.objective.batch_losses(flat, stop=stop):
            (gb,) = torch.autograd.grad(loss, flat, create_graph=True)
            g = gb if g is None else g + gb
        self._graph = (flat, g)

    def _hvp_reuse(self, v):
        flat, g = self._graph
        (hv,) = torch.autograd.grad(g, flat, grad_outputs=v, retain_graph=True)
        return hv

    def _hvp_partial_reuse(self, v):
        hv = self._hvp_reuse(v)
        rest = getattr(self, f"_hvp_{self.recompute_form.replace('-', '_')}")(v, start=self.reused_batches)
        # Add into ``rest`` (a fresh buffer): autograd may hand back ``v`` itself as ``hv`` (a graph that
        # passes its grad_outputs through, e.g. an addition), and v is the caller's vector.
        return rest.add_(hv)

    def _hvp_double_backward(self, v, start: int = 0, stop: int | None = None):
        flat = self.theta.detach().requires_grad_(True)
        out = torch.zeros_like(flat)
        for loss in self.objective.batch_losses(flat, start, stop):
            (g,) = torch.autograd.grad(loss, flat, create_graph=True)
            (hv,) = torch.autograd.grad(g, flat, grad_outputs=v)
            out += hv
        return out

    def _hvp_fwd_over_rev(self, v, start: int = 0, stop: int | None = None):
        obj = self.objective
        out = torch.zeros_like(self.theta)
        for x, y in obj.prepared_batches(start, stop):
            w = len(y) / obj.n_samples

            def loss_of(flat, x=x, y=y):
                return obj.loss_fn(functional_call(obj.model, obj._params(flat), (x,)), y)

            _, hv = jvp(grad(loss_of), (self.theta,), (v,))
            out += w * hv
        return out

    # ------------------------------------------------------------------ public
    def matvec_tensor(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a 1-D tensor on the model's device; counts in ``n_matvecs``."""
        if v.shape != (self.n,):
            raise RidgelensError(f"matvec expects a vector of shape ({self.n},), got {tuple(v.shape)}")
        self.n_matvecs += 1
        v = v.to(device=self.device, dtype=self.torch_dtype)
        with torch.enable_grad(), second_order_attention():
            return getattr(self, f"_hvp_{self.form.replace('-', '_')}")(v).detach()

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        self.n_matvecs -= 1  # matvec already counted it
        t = torch.as_tensor(v, device=self.device).to(self.torch_dtype)
        return self.matvec_tensor(t).to(torch.float64).cpu().numpy()

    def release(self) -> None:
        """Drop the reused graph (frees its memory); later products recompute per batch."""
        self._graph = None
        if self.form in ("reuse", "partial-reuse"):
            self.form = self.recompute_form or "double-backward"
            self.recompute_form = self.form
            self.reused_batches = 0
