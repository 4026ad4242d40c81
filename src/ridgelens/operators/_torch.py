"""The Hessian of a torch model's mean loss, matrix-free, on the model's device.

Forms of the Hessian-vector product (Pearlmutter's R-operator):

- ``"reuse"``: build the gradient's graph once for the whole data set
  (``autograd.grad(..., create_graph=True)``) and differentiate it again for each v
  (one backward pass per HVP). Fastest, but holds every batch's graph in memory.
- ``"double-backward"``: rebuild that graph batch by batch for every v.
- ``"fwd-over-rev"``: ``torch.func.jvp`` of the gradient, batch by batch; often
  the best on GPUs.

``form="auto"`` takes ``"reuse"`` when the graph fits in ``memory_budget`` bytes
(measured with saved-tensor hooks on the first batch), else whichever of the other two
the first batch times faster. The choice is recorded in :attr:`TorchHessianOperator.form`.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch.func import functional_call, grad, jvp

from ridgelens.errors import RidgelensError
from ridgelens.operators._base import CurvatureOperator

FORMS = ("auto", "reuse", "double-backward", "fwd-over-rev")


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
    memory_budget : int
    """

    def __init__(self, objective, theta, *, form: str = "auto", memory_budget: int | None = None):
        if form not in FORMS:
            raise RidgelensError(f"form must be one of {FORMS}, got {form!r}")
        super().__init__(objective.n_params)
        self.objective = objective
        self.device, self.torch_dtype = objective.device, objective.dtype
        self.theta = objective._to_tensor(objective._check(theta))
        self.memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        self._graph = None
        with second_order_attention():
            self.graph_bytes = self._estimate_graph_bytes()
            if form == "auto":
                form = "reuse" if self.graph_bytes <= self.memory_budget else self._fastest_recompute()
            if form == "reuse":
                self._build_graph()
        self.form = form

    # ----------------------------------------------------------- measurement
    def _estimate_graph_bytes(self) -> int:
        seen = {"bytes": 0}

        def pack(t):
            seen["bytes"] += t.numel() * t.element_size()
            return t

        flat = self.theta.detach().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = next(iter(self.objective.batch_losses(flat)))
            torch.autograd.grad(loss, flat, create_graph=True)
        return int(seen["bytes"] * self.objective.n_batches)

    def _fastest_recompute(self) -> str:
        v = torch.randn(self.n, dtype=self.torch_dtype, device=self.device)
        times = {}
        for form in ("double-backward", "fwd-over-rev"):
            fn = getattr(self, f"_hvp_{form.replace('-', '_')}")
            fn(v, first_only=True)  # warm-up
            t0 = time.perf_counter()
            fn(v, first_only=True)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times[form] = time.perf_counter() - t0
        self.form_timings = times
        return min(times, key=times.get)

    # ------------------------------------------------------------------ forms
    def _build_graph(self) -> None:
        flat = self.theta.detach().requires_grad_(True)
        g = None
        for loss in self.objective.batch_losses(flat):
            (gb,) = torch.autograd.grad(loss, flat, create_graph=True)
            g = gb if g is None else g + gb
        self._graph = (flat, g)

    def _hvp_reuse(self, v):
        flat, g = self._graph
        (hv,) = torch.autograd.grad(g, flat, grad_outputs=v, retain_graph=True)
        return hv

    def _hvp_double_backward(self, v, first_only: bool = False):
        flat = self.theta.detach().requires_grad_(True)
        out = torch.zeros_like(flat)
        for loss in self.objective.batch_losses(flat):
            (g,) = torch.autograd.grad(loss, flat, create_graph=True)
            (hv,) = torch.autograd.grad(g, flat, grad_outputs=v)
            out += hv
            if first_only:
                break
        return out

    def _hvp_fwd_over_rev(self, v, first_only: bool = False):
        obj = self.objective
        out = torch.zeros_like(self.theta)
        for x, y in obj.batches:
            x, y = obj._prepare(x, y)
            w = len(y) / obj.n_samples

            def loss_of(flat, x=x, y=y):
                return obj.loss_fn(functional_call(obj.model, obj._params(flat), (x,)), y)

            _, hv = jvp(grad(loss_of), (self.theta,), (v,))
            out += w * hv
            if first_only:
                break
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
        if self.form == "reuse":
            self.form = "double-backward"
