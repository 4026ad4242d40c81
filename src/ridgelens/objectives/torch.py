"""Any PyTorch model as an objective: value, gradient and exact Hessian-vector products."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from scipy import optimize
from torch import nn
from torch.func import functional_call

from ridgelens import _distributed as dist
from ridgelens._autodiff import second_order_attention
from ridgelens._progress import Progress
from ridgelens.errors import (
    DataError,
    ModelError,
    ModelModeError,
    ModelOutputError,
    PenaltyError,
    RidgelensError,
)
from ridgelens.objectives._base import GaussianLoss, MinimizeResult, Objective
from ridgelens.objectives._probes import batch_failure, check_batch, probe_objective, random_sampler

_RANDOM_IN_TRAIN = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


class TorchObjective(Objective):
    r"""A ``torch.nn.Module`` and its data as a mean loss on one flat parameter vector.

    The public protocol that curvature operators are built from (and nothing else):
    :meth:`flat_tensor` (θ as one tensor on :attr:`device` in :attr:`dtype`),
    :meth:`prepared_batches` (the batches, on that device and dtype), :meth:`batch_weight`
    (``n_b / n``), :meth:`outputs` (the model's outputs at a flat θ), :attr:`loss_fn` (a
    batch's mean loss from outputs and targets), :meth:`batch_losses` (the weighted losses),
    :attr:`n_batches` and :meth:`fingerprint` (a digest of the model's structure, the loss and
    every batch, for checkpoints).

    ``R(θ) = Σ_b (n_b / n) · loss_fn(model_θ(x_b), y_b)``, where ``loss_fn`` is
    mean-reduced over its batch, so that R is the mean over all n samples even when
    the last batch is short. θ is the concatenation of the model's trainable
    parameters in ``named_parameters()`` order.

    The caller's model is never changed: evaluations go through
    :func:`torch.func.functional_call` with θ's values. A model in train mode whose
    dropout or batch-norm layers would make the loss random (or would update running
    statistics) is refused with :class:`ModelModeError`; pass ``eval_mode=True`` to
    evaluate a private copy of the model in eval mode instead (dropout with p = 0 is not
    random and is accepted). What no module scan can see is measured on the first batch:
    two evaluations that differ (dropout inside ``forward``, nondeterministic kernels, a
    ``DataLoader`` whose passes see other samples) raise :class:`RandomObjectiveError`, and
    a sum-reduced loss raises :class:`LossReductionError`.

    Parameters
    ----------
    model : torch.nn.Module
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returning the *mean* loss of a batch.
    batches : iterable of (inputs, targets)
        Re-iterable: a list of pairs or a ``DataLoader`` (not a one-shot generator).
    eval_mode : bool, default False
        Evaluate a copy of the model in eval mode (see above).
    unpenalized : sequence of str, default ()
        Glob patterns of parameter names left out of the penalty, e.g. ``("*.bias",)``.
    dtype : torch.dtype, optional
        Compute in this dtype (default: the model's). float64 is best for analysis. The
        parameters, frozen ones and floating buffers included, are used in it; the model itself
        is not converted. By default (None) the trainable parameters take the first one's dtype
        and buffers and frozen parameters keep their own.
    penalty : mapping of str to float, or array of shape (n_params,), optional
        Penalty factors (the penalty becomes ``(λ/2)θᵀDθ``): name patterns to factors, the
        shape of AdamW parameter groups (``{"*.bias": 0, "*norm*": 0, "*embed*": 0.1}``; first
        match wins, other parameters keep 1), or one factor per entry. ``unpenalized`` patterns
        are factor 0. See :meth:`~ridgelens.objectives.Objective.set_penalty`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 1).double()
    >>> X = torch.randn(10, 3, dtype=torch.float64); Y = torch.randn(10, 1, dtype=torch.float64)
    >>> obj = TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)])
    >>> obj.n_params, obj.n_samples
    (4, 10)
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, batches: Iterable, *,
                 eval_mode: bool = False, unpenalized: Sequence[str] = (), dtype=None, penalty=None):
        if not isinstance(model, nn.Module):
            raise RidgelensError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise RidgelensError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if batches is None or not hasattr(batches, "__iter__"):
            raise RidgelensError(f"batches must be a list of (inputs, targets) pairs or a DataLoader, "
                                 f"got {type(batches).__name__}")
        if iter(batches) is batches:
            raise RidgelensError(
                "batches must be re-iterable (a list of (inputs, targets) pairs or a DataLoader); "
                "got a one-shot iterator, which would be exhausted after the first pass"
            )
        offenders = [f"{name or 'the model'} ({type(m).__name__}{f', p={m.p:g}' if hasattr(m, 'p') else ''})"
                     for name, m in model.named_modules()
                     if m.training and isinstance(m, _RANDOM_IN_TRAIN) and getattr(m, "p", None) != 0]
        if offenders:
            if not eval_mode:
                raise ModelModeError(
                    "the model is in train mode and has dropout/batch-norm layers, which make the loss random "
                    f"and update running statistics: {', '.join(offenders[:3])}{', ...' if len(offenders) > 3 else ''}"
                    "; call model.eval() yourself, or pass eval_mode=True to analyze a private eval-mode copy"
                )
        if eval_mode and any(m.training for m in model.modules()):  # also for dropout inside forward
            model = copy.deepcopy(model).eval()
        self.model = model
        self.loss_fn = loss_fn
        self.batches = batches
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise RidgelensError("the model has no trainable parameters (requires_grad=True)")
        first = named[0][1]
        if any(p.is_meta for _, p in named):
            raise RidgelensError("the model's parameters are on the 'meta' device (shapes without values); "
                                 "load its weights (e.g. model.to_empty(device='cpu') then load_state_dict) first")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point
                                      and not dtype.is_complex):
            raise RidgelensError(f"dtype must be a real floating torch dtype (torch.float64, torch.float32, …), "
                                 f"got {dtype!r}")
        self.dtype = dtype if dtype is not None else first.dtype
        self.device = first.device
        self._names = [n for n, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]
        # Buffers (batch-norm statistics, rotary frequencies) and frozen parameters: with a dtype asked for,
        # the floating ones in it too (a float32 model analysed in float64 would mix dtypes in its forward);
        # by default each keeps its own (a float32 rotary table in a bfloat16 model). Buffers are copies, so a
        # forward that updates one in place leaves the model's alone; frozen parameters (a frozen base can be
        # most of the memory) are shared.
        def own(b, copy):
            return b.to(dtype, copy=copy) if dtype is not None and b.is_floating_point() else (b.clone() if copy else b)

        self._buffers = {**{n: own(b, True) for n, b in model.named_buffers()},
                         **{n: own(p.detach(), False) for n, p in model.named_parameters() if not p.requires_grad}}
        if isinstance(unpenalized, str):  # one pattern, not its characters
            unpenalized = (unpenalized,)
        unmatched = [pat for pat in unpenalized if not any(fnmatch.fnmatch(n, pat) for n in self._names)]
        if unmatched:  # a typo ("bias" for "*.bias") would leave every parameter penalized, silently
            raise PenaltyError(f"unpenalized pattern(s) {', '.join(repr(p) for p in unmatched)} match no parameter; "
                               f"the names are {', '.join(self._names[:20])}{', ...' if len(self._names) > 20 else ''} "
                               f"(glob patterns, e.g. '*.bias')")
        self.penalized = np.concatenate([
            np.full(s, not any(fnmatch.fnmatch(n, pat) for pat in unpenalized))
            for n, s in zip(self._names, self._sizes, strict=True)
        ])
        if not self.penalized.any():
            raise RidgelensError(f"unpenalized={tuple(unpenalized)!r} leaves no parameter penalized")
        if penalty is not None:  # unpenalized globs are the factor-0 patterns of the general penalty
            if hasattr(penalty, "keys"):
                self.set_penalty({**dict.fromkeys(unpenalized, 0.0), **dict(penalty)})
            else:
                mask = self.penalized.copy()
                pm = self.set_penalty(penalty)
                self.set_penalty(type(pm)(pm.factors * mask, pm.source, pm.detail))
        for n, p in named:
            if p.is_complex():
                raise ModelError(f"the model's parameter {n} is complex ({p.dtype}); ridgelens analyzes real weights")
        with torch.no_grad():
            self.theta0 = torch.cat([p.detach().reshape(-1) for _, p in named]).to(torch.float64).cpu().numpy()
        bad = ~np.isfinite(self.theta0)
        if bad.any():  # one pass over θ; which parameter is looked up only then
            k, ends = int(np.argmax(bad)), np.cumsum(self._sizes)
            i = int(np.searchsorted(ends, k, side="right"))
            raise ModelError(f"the model's parameter {self._names[i]} holds non-finite weights ({self.theta0[k]} at "
                             f"flat index {k - int(ends[i]) + self._sizes[i]} of {self._sizes[i]})")
        # Under a process group: n over every rank's shard, one model on every rank, a joint fingerprint.
        self._n = dist.global_count(self.batches, self._count_samples, self.device, self._smaller_batches())
        self._fingerprint = None
        if dist.is_distributed():
            dist.check_model(self._names, self._shapes, self.dtype, self.theta0)
            self._fingerprint = dist.joint_fingerprint(self.fingerprint())
        self.default_tol = 1e-8 if self.dtype == torch.float64 else 1e-4
        self._probe_at_start()

    def _probe_at_start(self) -> None:
        """Refuse a random or sum-reduced objective (two evaluations of one batch; see ``_probes``).

        A subclass that needs more set-up before its first evaluation overrides this and calls
        ``probe_objective(self)`` itself once ready.
        """
        probe_objective(self)

    # ----------------------------------------------------------------- plumbing
    def _smaller_batches(self) -> str:
        """How to get more batches out of the same data (for the error of a rank that holds none)."""
        return "use smaller batches (--batch-size; cut the data into more batches)"

    def _count_samples(self) -> int:
        n = 0
        for k, batch in enumerate(self.batches):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise DataError(f"batch {k} must be an (inputs, targets) pair, got {type(batch).__name__}")
            check_batch(k, *batch)
            n_b = len(batch[1])
            if n_b == 0:
                raise DataError(f"batch {k} is empty")
            n += n_b
        if n == 0:
            raise DataError("batches is empty: no samples to take the mean over")
        self.n_batches = k + 1
        return n

    def flat_tensor(self, theta, requires_grad: bool = False) -> torch.Tensor:
        """θ (an array or a tensor of shape (n_params,)) as a new tensor on the model's device and dtype."""
        if isinstance(theta, torch.Tensor):
            if theta.shape != (self.n_params,):
                raise RidgelensError(f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}")
            if theta.is_meta:
                raise RidgelensError("theta is on the 'meta' device (a shape without values); pass θ̂'s values")
            t = theta.detach().to(device=self.device, dtype=self.dtype).clone()
        else:
            t = torch.as_tensor(self._check(theta), device=self.device).to(self.dtype)
        return t.requires_grad_(requires_grad)

    _to_tensor = flat_tensor

    def batch_weight(self, targets) -> float:
        """``n_b / n``: the weight of a batch with these targets in the mean loss."""
        return len(targets) / self._n

    def outputs(self, flat: torch.Tensor, inputs) -> torch.Tensor:
        """The model's outputs on ``inputs`` with the parameters ``flat`` (the caller's model is untouched)."""
        return functional_call(self.model, self._params(flat), (inputs,))

    def fingerprint(self) -> str:
        """A digest of the parameter names and shapes, the loss, the dtype and every batch (streamed, cached).

        Two objectives with the same model structure but other data (another y, permuted labels)
        get different fingerprints, so a checkpoint of one is never resumed by the other. Batches from
        a ``DataLoader`` that shuffles are digested sample by sample in sorted order, so that every
        pass (another order, other batches) gives the same fingerprint.
        """
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha256()
            h.update(repr([(n, tuple(s)) for n, s in zip(self._names, self._shapes, strict=True)]).encode())
            h.update(repr((getattr(self.loss_fn, "__qualname__", repr(self.loss_fn)), str(self.dtype),
                           type(self.model).__name__)).encode())
            shuffled = random_sampler(self.batches) is not None  # each pass: other batches, another order
            rows = []
            for x, y in self.batches:
                arrays = []
                for t in (x, y):
                    a = t.detach().cpu().contiguous() if isinstance(t, torch.Tensor) else torch.as_tensor(t)
                    a = a.float() if a.dtype == torch.bfloat16 else a
                    h.update(str((a.dtype, tuple(a.shape[1:] if shuffled else a.shape))).encode())
                    arrays.append(a.numpy())
                    if not shuffled:
                        h.update(arrays[-1].tobytes())
                if shuffled:  # a digest per sample, in sorted order
                    xs, ys = arrays
                    rows.extend(hashlib.sha256(xs[i].tobytes() + ys[i].tobytes()).digest() for i in range(len(ys)))
            if shuffled:
                h.update(b"".join(sorted(rows)))
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @property
    def takes_parameter_views(self) -> bool:
        """Whether :meth:`batch_losses` takes the list of :meth:`parameter_views` in place of the flat θ.

        So do :meth:`outputs` and :meth:`batch_loss`. True for ridgelens' own objectives; False for
        a subclass that overrides one of them (its code may use θ as one tensor, e.g.
        ``flat.square().sum()``).
        """
        return all(getattr(type(self), m).__module__.startswith("ridgelens.")
                   for m in ("batch_loss", "batch_losses", "outputs"))

    def parameter_views(self, flat: torch.Tensor, leaves: bool = False) -> list:
        """The parameters as views of ``flat`` (shape (n_params,)), each in its model shape, in the model's order.

        With ``leaves=True`` each view is an autograd leaf of its own that requires a gradient (``flat``
        itself must not): :meth:`batch_losses` and the other methods that take ``flat`` take this
        list too, and autograd then gives per-parameter gradients without building a flat vector
        (at 10.9M float64 parameters, 83 MiB a gradient).
        """
        if leaves:
            flat = flat.detach()
        views = [c.view(s) for c, s in zip(torch.split(flat, self._sizes), self._shapes, strict=True)]
        return [v.requires_grad_(True) for v in views] if leaves else views

    def _params(self, flat) -> dict:
        views = flat if isinstance(flat, (list, tuple)) else self.parameter_views(flat)
        params = dict(zip(self._names, views, strict=True))
        params.update(self._buffers)
        return params

    def _prepare(self, x, y):
        """Move a batch to the model's device; floating tensors to the compute dtype."""
        x, y = x.to(self.device), y.to(self.device)
        if torch.is_floating_point(x):
            x = x.to(self.dtype)
        if torch.is_floating_point(y):
            y = y.to(self.dtype)
        return x, y

    def prepared_batches(self, start: int = 0, stop: int | None = None):
        """Yield the batches numbered ``start`` to ``stop`` − 1, on the model's device and dtype."""
        for i, (x, y) in enumerate(self.batches):
            if i < start:
                continue
            if stop is not None and i >= stop:
                break
            yield self._prepare(x, y)

    def batch_loss(self, flat: torch.Tensor, x, y) -> torch.Tensor:
        """The mean loss of one prepared batch ``(x, y)`` (any number of samples) at the parameters ``flat``.

        The one per-batch loss of the objective: :meth:`batch_losses` (and so every curvature
        product) weighs it, and ``optimizer_refit`` steps on it for its own minibatches. A
        subclass whose model computes its loss another way overrides this method.
        """
        return self.loss_fn(functional_call(self.model, self._params(flat), (x,)), y)

    def batch_losses(self, flat: torch.Tensor, start: int = 0, stop: int | None = None):
        """Yield ``(n_b / n) * loss_b`` for each batch (those numbered ``start`` to ``stop`` − 1).

        ``flat``: θ as one tensor, or as the list of :meth:`parameter_views`.
        """
        for k, (x, y) in enumerate(self.prepared_batches(start, stop), start):
            try:
                loss = self.batch_loss(flat, x, y)
            except RidgelensError:
                raise
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:  # e.g. a label past the classes
                if isinstance(exc, torch.OutOfMemoryError):
                    raise
                raise batch_failure(k, x, y, exc) from None  # batch 0 was probed; later ones only now
            yield loss * self.batch_weight(y)

    def _check(self, theta) -> np.ndarray:
        a = np.asarray(theta, dtype=np.float64)
        if a.shape != (self.n_params,):
            raise RidgelensError(f"theta must have shape ({self.n_params},), got {a.shape}")
        return a

    # --------------------------------------------------------------- objective
    @property
    def param_names(self) -> list[str]:
        """``"layer.weight[i]"`` for each entry of θ (built on demand: one string per parameter)."""
        return [f"{n}[{i}]" if s > 1 else n for n, s in zip(self._names, self._sizes, strict=True)
                for i in range(s)]

    def param_blocks(self) -> tuple[list[str], list[int]]:
        """Parameter tensor names (``named_parameters()``) and their sizes, for penalty patterns."""
        return list(self._names), list(self._sizes)

    @property
    def n_params(self) -> int:
        return int(sum(self._sizes))

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def gaussian_loss(self) -> GaussianLoss | None:
        """:class:`GaussianLoss` when ``loss_fn`` says the loss is Gaussian, else None.

        ``nn.MSELoss()`` or ``F.mse_loss`` (the mean over every target entry), or a callable with
        a ``gaussian_factor`` attribute f (its batch loss is f·Σr²/n_b). Otherwise the evidence
        takes the loss as the per-sample negative log-likelihood.
        """
        f = getattr(self.loss_fn, "gaussian_factor", None)
        mse = self.loss_fn is nn.functional.mse_loss or (isinstance(self.loss_fn, nn.MSELoss)
                                                         and self.loss_fn.reduction == "mean")
        if f is None and not mse:
            return None
        y = next(iter(self.batches))[1]
        per_sample = int(np.prod(tuple(y.shape[1:])))  # target entries per sample
        factor = float(f) if f is not None else 1.0 / per_sample
        return GaussianLoss(n_obs=self.n_samples * per_sample, scale=factor / self.n_samples)

    def value(self, theta) -> float:
        flat = self._to_tensor(self._check(theta))
        with torch.no_grad():
            total = float(sum(self.batch_losses(flat)))
        if dist.is_distributed():
            total = float(dist.all_reduce_sum(torch.tensor([total], dtype=torch.float64, device=self.device),
                                               "loss all-reduce"))  # NCCL reduces device tensors only
        return total

    def value_and_gradient(self, theta) -> tuple[float, np.ndarray]:
        """R(θ) and ∇R(θ) in one pass over the data."""
        flat = self._to_tensor(self._check(theta), requires_grad=True)
        total, grad = 0.0, torch.zeros_like(flat)
        for loss in self.batch_losses(flat):
            (g,) = torch.autograd.grad(loss, flat)
            grad += g
            total += float(loss.detach())
        if dist.is_distributed():  # the loss rides along with the gradient: one all-reduce
            both = dist.all_reduce_sum(torch.cat([grad.detach(), grad.new_tensor([total])]), "gradient all-reduce")
            grad, total = both[:-1], float(both[-1])
        return total, grad.detach().to(torch.float64).cpu().numpy()

    def gradient(self, theta) -> np.ndarray:
        return self.value_and_gradient(theta)[1]

    def hvp(self, theta, v) -> np.ndarray:
        """Exact ∇²R(θ) v by double backward (Pearlmutter), accumulated over batches."""
        flat = self._to_tensor(self._check(theta), requires_grad=True)
        vt = self._to_tensor(self._check(v))
        out = torch.zeros_like(flat)
        with second_order_attention():
            for loss in self.batch_losses(flat):
                (g,) = torch.autograd.grad(loss, flat, create_graph=True)
                (hv,) = torch.autograd.grad(g, flat, grad_outputs=vt)
                out += hv
        dist.all_reduce_sum(out, "Hessian-vector product all-reduce")
        return out.detach().to(torch.float64).cpu().numpy()

    def state_dict(self, theta) -> dict:
        """θ as a ``state_dict``-like mapping of parameter name to tensor (a copy)."""
        flat = self._to_tensor(self._check(theta))
        return {n: t.detach().clone() for n, t in self._params(flat).items() if n in self._names}

    # ---------------------------------------------------------------- minimize
    def minimize(self, l2: float = 0.0, *, x0=None, tol=None, max_iter: int = 1000,
                 method: str = "trust-ncg", lr: float | None = None) -> MinimizeResult:
        """Minimize ``R(θ) + (l2/2)‖θ_p‖²`` from ``x0`` (default: the model's current θ).

        ``method`` is ``"trust-ncg"`` (Newton-CG in a trust region with exact HVPs; the
        default, copes with negative curvature), ``"lbfgs"`` (scipy L-BFGS-B), or
        ``"gd"``: full-batch gradient descent with weight decay,
        ``θ ← θ − lr (λθ_p + ∇R(θ))``, as a training run would do. ``tol`` defaults
        to 1e-8 in float64 and 1e-4 in float32.
        """
        return super().minimize(l2, x0=self.theta0 if x0 is None else x0, tol=tol,
                                max_iter=max_iter, method=method, lr=lr)

    def _minimize(self, l2, x0, tol, max_iter, method="trust-ncg", lr=None):
        bar = Progress(f"minimize ({method}{f', λ = {l2:g}' if l2 else ''})", max_iter, unit="iterations")
        try:
            return self._minimize_with(bar, l2, x0, tol, max_iter, method, lr)
        finally:
            bar.close()

    def _minimize_with(self, bar, l2, x0, tol, max_iter, method, lr):
        P = self.penalty_factors
        x0 = self._check(x0)

        def fun(t):
            f, g = self.value_and_gradient(t)
            return f + 0.5 * l2 * float(P @ (t * t)), g + l2 * P * t

        def result(theta, n_iter, message, n_matvecs=0):
            gnorm = float(np.linalg.norm(self.penalized_gradient(theta, l2)))
            return MinimizeResult(theta=theta, l2=l2, converged=gnorm <= tol, gradient_norm=gnorm,
                                  tol=tol, n_iter=n_iter, method=method, message=message, n_matvecs=n_matvecs)

        if method == "gd":
            if lr is None or not lr > 0:
                raise RidgelensError(f"method='gd' needs a learning rate lr > 0, got {lr!r}")
            theta = x0.copy()
            for it in range(max_iter):
                g = self.penalized_gradient(theta, l2)
                if not np.isfinite(g).all():
                    return result(theta, it, "diverged: non-finite gradient (lr too large?)")
                if np.linalg.norm(g) <= tol:
                    return result(theta, it, "gradient norm below tol")
                theta = theta - lr * g
                bar.update(it + 1)
            return result(theta, max_iter, f"reached max_iter={max_iter}")
        try:
            return self._scipy_minimize(bar, fun, result, l2, x0, tol, max_iter, method, P)
        except ValueError as exc:  # scipy's check_finite: the loss, gradient or products overflowed
            if "infs or NaNs" not in str(exc):
                raise
            raise ModelOutputError(f"minimizing at λ = {l2:g} ({method}) met non-finite values: the loss, its gradient "
                                   "or its Hessian products overflowed (inputs or weights of huge magnitude?"
                                   f"{self._largest_input()})") from None

    def _largest_input(self) -> str:
        """Where the inputs' largest magnitude is (``"; the largest input is … in batch b, row r, column c"``), or ''."""
        best, offset = None, 0
        for b, (x, _) in enumerate(self.batches):
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
                flat = x.detach().abs().reshape(len(x), -1)
                i = int(flat.argmax())
                v = float(flat.reshape(-1)[i])
                if best is None or v > best[0]:
                    row, col = divmod(i, flat.shape[1])
                    best = (v, offset + row, b, row, col, x.ndim > 2)
            offset += len(x) if hasattr(x, "__len__") else 0
        if best is None:
            return ""
        v, at, b, row, col, nd = best
        where = f"entry {col} of the row, flattened" if nd else f"column {col}"
        # a list of batches is rows in a fixed order; a DataLoader's may be shuffled anew on every pass
        rows = f"row {at} of the batches (batch {b}, its row {row})" if isinstance(self.batches, (list, tuple)) \
            else f"batch {b} of this pass, its row {row}"
        return f"; the largest input is {v:.3g}, at {rows}, {where}"

    def _scipy_minimize(self, bar, fun, result, l2, x0, tol, max_iter, method, P):
        if method == "lbfgs":
            res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                    options={"maxiter": max_iter, "gtol": tol * 1e-2, "ftol": 0.0,
                                             "maxcor": 30}, callback=lambda *_: bar.advance())
            return result(res.x, int(res.nit), str(res.message))
        if method == "trust-ncg":
            products = [0]  # counted here: scipy's nhev can differ from the calls it made

            def hessp(t, v):
                products[0] += 1
                return self.hvp(t, v) + l2 * P * v

            res = optimize.minimize(fun, x0, jac=True, method="trust-ncg", hessp=hessp,
                                    options={"gtol": tol, "maxiter": max_iter}, callback=lambda *_: bar.advance())
            return result(res.x, int(res.nit), str(res.message), products[0])
        raise RidgelensError(f"method must be one of 'trust-ncg', 'lbfgs', 'gd'; got {method!r}")

