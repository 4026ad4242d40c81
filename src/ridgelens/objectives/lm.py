r"""A causal language model on a finite set of token windows, as a mean next-token loss.

``R(θ) = (1/N) Σ_{windows w} Σ_{t=1..T} −log softmax(f_θ(w_{<t}))[w_t]``, with N the number of
predicted tokens: the mean cross-entropy per token (``exp R`` is the perplexity). Every window
has the same length T, so the mean over windows of each window's mean token loss is that mean,
and the torch objective's batch weights ``n_b / n`` (windows) are exact.

Memory at vocabulary scale: a batch's logits are ``windows × T × vocab`` numbers, and a
Hessian- or Gauss–Newton-vector product holds their second-order graph (autograd's) or their
values and R (the built-in LM's hand-written products). The windows are therefore cut into
batches of at most ``max_logits`` logits each (:data:`DEFAULT_MAX_LOGITS` by default): a product
that recomputes batch by batch (Hessian ``form="recompute"``, GGN ``reuse=False``: on the built-in
LM by hand, else by autograd) never holds more than that many logits at once. A graph *reused* across
products holds every batch's; :meth:`LMObjective.product_options` gives the operator options
that keep the bound.

Data parallel (under a ``torch.distributed`` process group): either every rank passes *all*
windows with ``shard=True`` and keeps every world-size-th batch (the batches are cut first, so
each stays within ``max_logits``), or each rank passes its own windows. Either way the window
count is all-reduced (:mod:`ridgelens._distributed`), so each batch weighs its windows over the
global count and the loss, gradient and products are the mean over every rank's tokens.

The model is any ``nn.Module`` whose forward takes the token ids — positionally (the built-in
:class:`~ridgelens.lm.ByteTransformer`) or as ``input_ids=`` (a Hugging Face causal LM, called
with ``use_cache=False``) — and returns logits of shape (batch, T, vocab): as a tensor, or as
an output with a ``logits`` field. A model that returns only a ``loss`` (when given
``labels=``) works for the Hessian (it has no outputs for the Gauss–Newton matrix); a forward
that returns neither raises :class:`~ridgelens.errors.ModelOutputError`.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch.func import functional_call
from torch.nn import functional as F

from ridgelens import _distributed as dist
from ridgelens.errors import DataError, ModelOutputError, RidgelensError
from ridgelens.objectives.torch import TorchObjective

#: Logits one batch (and so one recomputed product) may hold: 2**20, 8 MiB in float64.
DEFAULT_MAX_LOGITS = 2**20


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``logits`` (…, vocab) against ``targets`` (…)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _accepts(model, name: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class LMObjective(TorchObjective):
    """A causal LM and token windows as the mean per-token cross-entropy (see module docs).

    Parameters
    ----------
    model : torch.nn.Module
    windows : LongTensor of shape (n_windows, T + 1)
        Token ids; position t predicts t + 1.
    max_logits : int, default DEFAULT_MAX_LOGITS
        Largest number of logits (windows × T × vocab) in one batch.
    context : int, optional
        The model's longest input; windows longer than it are refused (default: the model's
        ``config.context``, ``config.n_positions`` or ``config.max_position_embeddings`` if any).
    dtype, unpenalized, eval_mode
        As for :class:`TorchObjective`.
    shard : bool, default False
        Under a process group, keep only this rank's share of the batches (every rank passes
        the same windows); without one, all of them.

    Examples
    --------
    >>> import torch
    >>> from ridgelens.lm import ByteTransformer, LMConfig
    >>> net = ByteTransformer(LMConfig(layers=1, width=8, heads=1, context=4))
    >>> w = torch.tensor(list(b"def f(x): return x"))[:15].view(3, 5)
    >>> obj = LMObjective(net, w, max_logits=2048)
    >>> obj.n_batches, obj.n_tokens
    (2, 12)
    """

    def __init__(self, model, windows, *, max_logits: int = DEFAULT_MAX_LOGITS, context: int | None = None,
                 dtype=None, unpenalized=(), eval_mode: bool = False, shard: bool = False):
        w = torch.as_tensor(windows)
        if w.ndim != 2 or w.shape[1] < 2 or w.shape[0] < 1:
            raise DataError(f"windows must have shape (n_windows >= 1, T + 1 >= 2), got {tuple(w.shape)}")
        if w.dtype.is_floating_point or w.dtype == torch.bool:
            raise DataError(f"windows must hold integer token ids, got {w.dtype}")
        w = w.to(torch.long)
        if w.numel() and int(w.min()) < 0:  # e.g. -100, a label padding value: never a token
            i, j = (int(k) for k in (w < 0).nonzero()[0])
            raise DataError(f"token id {int(w[i, j])} at window {i}, position {j} is negative: windows hold token ids "
                            "(≥ 0), with no padding or ignored labels (-100)")
        if int(max_logits) < 1:
            raise RidgelensError(f"max_logits must be a positive number of logits, got {max_logits}")
        self.max_logits = int(max_logits)
        self._unpenalized = (unpenalized,) if isinstance(unpenalized, str) else tuple(unpenalized)
        self._shard = bool(shard)
        self._replicated = False  # every rank holds all of these windows (set by on())
        self.windows = w
        self.T = w.shape[1] - 1
        self.context = context if context is not None else model_context(model)
        if self.context is not None and self.T > self.context:
            raise DataError(f"windows of {self.T} + 1 tokens: their context of {self.T} (--context) is larger than "
                            f"the model's context of {self.context} tokens; cut shorter windows")
        self._keyword = _accepts(model, "input_ids")
        self._no_cache = self._keyword and _accepts(model, "use_cache")
        device = _model_device(model)  # the probes and the batches go where the model is: a GPU model's
        self.returns, self.vocab = self._probe(model, w[:1].to(device))  # embedding needs its ids there
        if self.vocab is not None and int(w.max()) >= self.vocab:
            raise DataError(f"token id {int(w.max())} is outside the model's vocabulary of {self.vocab}")
        per_window = self.T * (self.vocab or 1)
        if per_window > self.max_logits:
            raise RidgelensError(f"one window holds {per_window} logits ({self.T} tokens × vocab {self.vocab}), "
                                 f"more than max_logits={self.max_logits}; raise max_logits or shorten the context")
        self.windows_per_batch = max(1, self.max_logits // per_window)
        b = self.windows_per_batch
        batches = [(w[i:i + b, :-1], w[i:i + b, 1:]) for i in range(0, w.shape[0], b)]
        if shard:
            batches = dist.shard(batches)
        # Moved once, this rank's share only: not a host-to-device copy (and stream sync) per batch of every product
        batches = [(x.to(device), y.to(device)) for x, y in batches]
        super().__init__(model, token_cross_entropy, batches, dtype=dtype, unpenalized=unpenalized,
                         eval_mode=eval_mode)

    def _smaller_batches(self) -> str:
        if self.windows_per_batch > 1:
            return (f"lower --max-logits (max_logits={self.max_logits}: {self.windows_per_batch} windows of "
                    f"{self.T} tokens per batch), or give more text")
        return f"give more text (each batch is already one window of {self.T} tokens)"

    # ------------------------------------------------------------------ the model's forward
    def _call(self, model_or_params, x, labels=None, params=None):
        kwargs = {}
        if self._no_cache:
            kwargs["use_cache"] = False
        if labels is not None:
            kwargs["labels"] = labels
        if self._keyword:
            args, kwargs = (), {"input_ids": x, **kwargs}
        else:
            args = (x,)
        if params is None:
            return model_or_params(*args, **kwargs)
        return functional_call(model_or_params, params, args, kwargs)

    def _probe(self, model, w):
        """What the forward returns ("logits" or "loss") and the vocabulary size (None for loss only)."""
        with torch.no_grad():
            try:
                out = self._call(model, w[:, :-1])
            except IndexError as exc:  # a token id past the embedding table
                rows = getattr(getattr(model, "get_input_embeddings", lambda: None)(), "num_embeddings", None)
                raise DataError(f"token id {int(w.max())} is outside the model's input embedding"
                                f"{f' of {rows} entries' if rows else ''} (a tokenizer of another model?): "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            logits = _logits_of(out)
            if logits is not None:
                if logits.ndim != 3 or logits.shape[:2] != w[:, :-1].shape:
                    raise ModelOutputError(f"the model's logits have shape {tuple(logits.shape)}; expected "
                                           f"(batch, T, vocab) = (1, {w.shape[1] - 1}, vocab)")
                self._check_causal(model, w[:, :-1], logits)
                return "logits", int(logits.shape[-1])
            if _accepts(model, "labels"):
                loss = _loss_of(self._call(model, w, labels=w))
                if loss is not None:
                    return "loss", None
        raise ModelOutputError(f"the model's forward returned {type(out).__name__}, with neither logits nor a "
                               "loss; ridgelens needs logits (batch, T, vocab) or an output with a 'logits' or "
                               "'loss' field")

    def _check_causal(self, model, x, logits) -> None:
        """Refuse a model whose logits at a position see later tokens (a masked LM such as BERT).

        The tokens from the middle of the window on are changed; the logits before the middle
        must not move. A forward that differs from itself on the same tokens (dropout in train
        mode) is left to the randomness probe, which says so by name.
        """
        h = x.shape[1] // 2
        if h < 1:
            return
        changed = x.clone()
        for fill in (x.min(), x.max()):  # the window's own ids, valid for any embedding
            changed[:, h:] = fill
            if not torch.equal(changed, x):
                break
        else:  # one token id throughout: nothing to change it to that is surely valid
            return
        again, other = (_logits_of(self._call(model, t)) for t in (x, changed))
        if not torch.equal(again, logits):
            return
        moved = float((other[:, :h] - logits[:, :h]).abs().max())
        scale = float(logits[:, :h].abs().max())
        if moved > 1e-6 * max(scale, 1e-30):
            raise ModelOutputError(
                f"the model is not causal: its logits at positions 0..{h - 1} moved by up to {moved:.3g} (of "
                f"{scale:.3g}) when only the tokens from position {h} on changed; a next-token loss needs a causal LM "
                "(a masked LM such as BERT sees the tokens it predicts)")

    def _probe_at_start(self) -> None:
        """The randomness and reduction probes need logits: a model that returns only its loss skips them.

        Its loss is the model's own (a mean over tokens, as transformers computes it), and no
        logits exist to halve a batch with; the determinism of the forward pass is then the
        caller's to ensure (``model.eval()``).
        """
        if self.returns == "logits":
            super()._probe_at_start()

    def outputs(self, flat: torch.Tensor, inputs) -> torch.Tensor:
        """The logits (batch, T, vocab) at the parameters ``flat``."""
        if self.returns != "logits":
            # NotImplementedError (a RuntimeError): the HVP form chooser skips forms that need outputs.
            raise NotImplementedError("this model returns only a loss, so it has no logits: the Gauss-Newton "
                                      "curvature and forward-over-reverse products need them")
        return _logits_of(self._call(self.model, inputs, params=self._params(flat)))

    def batch_loss(self, flat: torch.Tensor, x, y) -> torch.Tensor:
        """The mean token loss of windows ``(x, y)`` at ``flat`` (the model's own loss when it returns only that)."""
        params = self._params(flat)
        if self.returns == "logits":
            return self.loss_fn(_logits_of(self._call(self.model, x, params=params)), y)
        full = torch.cat([x, y[:, -1:]], dim=1)
        return _loss_of(self._call(self.model, full, labels=full, params=params))

    # ------------------------------------------------------------------ LM helpers
    @property
    def n_tokens(self) -> int:
        """Predicted tokens the mean is over (windows × T; every rank's windows under a process group).

        Windows that every rank holds whole (:meth:`on` with ``shard=False``) count once: the
        all-reduced count is N times theirs.
        """
        return self.n_samples // (dist.world()[1] if self._replicated else 1) * self.T

    def perplexity(self, theta) -> float:
        """``exp R(θ)``: the perplexity per token on these windows."""
        return math.exp(self.value(theta))

    def on(self, windows, *, shard: bool | None = None) -> LMObjective:
        """The same model, settings and dtype on other windows (validation text, a subsample).

        ``shard`` keeps every world-size-th batch under a process group; ``False`` gives every
        rank all of ``windows`` (each computes the same mean: the all-reduced sums and counts
        are N times one rank's). By default a sharded objective shards ``windows`` when they
        make at least one batch per rank (a single window, a short validation text: not).
        """
        if shard is None:
            batches = -(-torch.as_tensor(windows).shape[0] // self.windows_per_batch)
            shard = self._shard and batches >= dist.world()[1]
        obj = LMObjective(self.model, windows, max_logits=self.max_logits, context=self.context, dtype=self.dtype,
                          unpenalized=self._unpenalized, shard=shard)
        obj._replicated = not shard and dist.is_distributed()
        return obj

    def product_options(self, kind: str) -> dict:
        """Operator options that keep every product within ``max_logits`` logits.

        One batch: the graph may be reused (it holds that batch's logits only). Several: the
        products recompute batch by batch: on the built-in byte LM both by hand (the Hessian's
        ``"r-op"``, the GGN's hand-written product), else the Hessian's by double backward
        (``form="recompute"``) and the GGN's by autograd (``reuse=False``).
        """
        if self.n_batches == 1:
            return {}
        return {"form": "recompute"} if kind == "hessian" else {"reuse": False}


def _model_device(model) -> torch.device:
    """Where the model's trainable weights are (the CPU for a model without any, or on 'meta': refused later)."""
    for p in model.parameters():
        if p.requires_grad:
            return torch.device("cpu") if p.is_meta else p.device
    return torch.device("cpu")


def _logits_of(out):
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() else None
    logits = out.get("logits") if isinstance(out, dict) else getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else None


def _loss_of(out):
    loss = out.get("loss") if isinstance(out, dict) else getattr(out, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.ndim == 0 else None


def model_context(model) -> int | None:
    """The longest input a model takes, from its config (``context``, ``n_positions``, ``max_position_embeddings``)."""
    cfg = getattr(model, "config", None)
    for name in ("context", "n_positions", "max_position_embeddings"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None
