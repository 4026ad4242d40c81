"""Reproducible training of the built-in byte LM: Adam on the training windows, fixed seed."""

from __future__ import annotations

import sys
import time

import torch

from ridgelens._validation import check_seed
from ridgelens.errors import RidgelensError
from ridgelens.lm._model import ByteTransformer, LMConfig


def train_lm(config: LMConfig, train_windows: torch.Tensor, *, steps: int = 200, seed: int = 0,
             lr: float = 3e-3, batch_windows: int = 16, progress: bool = False) -> ByteTransformer:
    """A :class:`ByteTransformer` trained from seed ``seed`` for ``steps`` Adam steps (float32).

    Minibatches of ``batch_windows`` windows are drawn by a generator seeded with ``seed``, and
    the initial weights by ``torch.manual_seed(seed)`` inside a forked RNG state (the caller's
    global RNG is left as it was), so the same seed gives the same weights on the same machine
    and torch build. Learning rate: linear warm-up over 10% of the steps, then cosine decay to
    10%. The model is returned in eval mode; it has no dropout.
    """
    if steps < 0:
        raise RidgelensError(f"steps must be >= 0, got {steps}")
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ByteTransformer(config)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = train_windows.shape[0]
    warm = max(1, steps // 10)
    t0 = time.perf_counter()
    net.train()
    for step in range(steps):
        scale = (step + 1) / warm if step < warm else 0.1 + 0.45 * (1 + torch.cos(
            torch.tensor(torch.pi * (step - warm) / max(1, steps - warm))).item())
        for group in opt.param_groups:
            group["lr"] = lr * scale
        idx = torch.randint(n, (min(batch_windows, n),), generator=gen)
        w = train_windows[idx]
        logits = net(w[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress and (step + 1) % max(1, steps // 10) == 0:
            print(f"  training step {step + 1}/{steps}: loss {loss.item():.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return net.eval()
