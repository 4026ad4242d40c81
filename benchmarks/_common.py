"""Shared pieces of the matrix-free benchmarks: models, data, timing, peak memory.

Not a benchmark itself. The scripts beside it import it as ``_common`` (the script's
folder is on ``sys.path`` when it runs as ``python benchmarks/bench_*.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------------- timing
def sync(device) -> None:
    """Wait for queued kernels on a CUDA device (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device="cpu", clock=time.perf_counter):
    """``(seconds, result)`` of one call, with the device synchronized on both sides.

    ``clock``: wall time by default; ``time.process_time`` (CPU seconds of this process) is
    steadier on a loaded CPU machine when the run is single-threaded.
    """
    sync(device)
    t0 = clock()
    out = fn()
    sync(device)
    return clock() - t0, out


def interleaved_medians(fns: dict, repeats: int, device="cpu", warmup: int = 1, clock=time.perf_counter,
                        shuffle: bool = False) -> dict:
    """Median seconds of each callable, timed in rounds (one call of each per round).

    Interleaving spreads a busy machine's noise over every contender instead of
    penalizing whichever happened to run during a burst. With ``shuffle`` each round runs the
    contenders in another (seeded) order: a fixed order times the first one right after the
    last one of the previous round (caches and allocator left by another workload), which on
    sub-millisecond calls is a bias of its own. Returns ``{name: (median, times)}``.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    order, rng = list(fns), random.Random(0)
    for _ in range(repeats):
        if shuffle:
            rng.shuffle(order)
        for name in order:
            times[name].append(timed(fns[name], device, clock)[0])
    return {name: (statistics.median(t), t) for name, t in times.items()}


def paired_rounds(fns: dict, arg, rounds: int, before=lambda key: None) -> dict:
    """CPU seconds of each ``fns[key](arg)`` per round, in a shuffled order each round (A/B in one process).

    ``before(key)`` runs just before each call (a version switch; timed with it, a few µs).
    Returns ``{key: [seconds per round]}``, the rounds aligned across keys for :func:`paired_ratio`.
    """
    calls = {key: (lambda key=key: (before(key), fns[key](arg))) for key in fns}
    timed_rounds = interleaved_medians(calls, rounds, warmup=0, clock=time.process_time, shuffle=True)
    return {key: t for key, (_, t) in timed_rounds.items()}


def first_outputs(fns: dict, arg, before=lambda key: None) -> dict:
    """``{key: fns[key](arg)}``, each after ``before(key)``: the first calls (graph builds), before any timing."""
    out = {}
    for key, fn in fns.items():
        before(key)
        out[key] = fn(arg)
    return out


def max_rel_gap(a, b) -> float:
    """``max |a − b| / max |b|`` of two products of the same vector."""
    return float((a - b).abs().max() / b.abs().max())


def paired_ratio(times: dict, a, b) -> float:
    """The median over rounds of ``times[a] / times[b]``: steadier than a ratio of medians on a drifting machine."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def spread(times) -> str:
    """``min–max`` of a list of seconds, in ms, to show how noisy a median is."""
    return f"{min(times) * 1e3:.0f}–{max(times) * 1e3:.0f}"


# ------------------------------------------------------------------------- memory
def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (the address space's high-water mark).

    Read from ``VmHWM`` in /proc/self/status. ``getrusage(RUSAGE_SELF).ru_maxrss`` is not
    used on Linux: it carries over the high-water mark of the address space the process
    had before ``execve``, i.e. a subprocess reports at least its parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Return freed heap to the system and restart the peak (``VmHWM``) at the current RSS.

    So that a child which did other work first (training a model) measures the peak of what
    follows only: ``malloc_trim(0)`` (glibc) drops what the allocator kept, and writing 5 to
    /proc/self/clear_refs resets the high-water mark (Linux ≥ 4.0). False if either failed.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, AttributeError):
        return False
    return True


def current_rss_bytes() -> int:
    """Resident set size now (from /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def run_child(script: str, args: list[str]) -> dict:
    """Run ``script`` in a fresh interpreter (so its peak RSS is its own) and parse its last JSON line."""
    cmd = [sys.executable, script, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"child {' '.join(cmd)} printed no JSON:\n{proc.stdout[-2000:]}")


def mib(b: float) -> str:
    return f"{b / 2**20:8.1f} MiB"


# ------------------------------------------------------------------------- models
def mlp(sizes, activation=nn.Tanh) -> nn.Sequential:
    """A fully connected net ``sizes[0] → … → sizes[-1]`` with ``activation`` between layers."""
    layers = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers[:-1])


#: LeNet-300-100 on 784 inputs: 266,610 parameters (the "about 270k" MLP of issue 3).
MLP_SIZES = (784, 300, 100, 10)


class TinyTransformer(nn.Module):
    """Token classifier: embedding + learned positions, a 2-layer TransformerEncoder, mean-pool, linear head."""

    def __init__(self, vocab=64, seq=16, d_model=64, nhead=4, ff=128, layers=2, classes=10):
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(seq, d_model))
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.enc(self.emb(x) + self.pos).mean(dim=1))


@contextlib.contextmanager
def math_attention():
    """Force the math kernel of scaled_dot_product_attention.

    The fused CPU/CUDA attention kernels have no double-backward (and no forward-mode)
    derivative, so no HVP can go through them; the math kernel is twice differentiable.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- data
def teacher_data(n: int, d: int, classes: int = 10, seed: int = 0, noise: float = 0.5):
    """Synthetic classification data: Gaussian inputs labelled by a random tanh teacher net plus noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    W1 = torch.randn(d, 64, generator=g) / d**0.5
    W2 = torch.randn(64, classes, generator=g) / 8**0.5
    logits = torch.tanh(2.0 * X @ W1) @ W2
    logits = logits + noise * torch.randn(n, classes, generator=g)
    return X, logits.argmax(dim=1)


def token_data(n: int, seq: int, vocab: int, classes: int = 10, seed: int = 0):
    """Random token sequences labelled by a (noisy) bag-of-tokens rule."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, vocab, (n, seq), generator=g)
    W = torch.randn(vocab, classes, generator=g)
    counts = torch.zeros(n, vocab).scatter_add_(1, X, torch.ones(n, seq))
    y = (counts @ W + 0.5 * torch.randn(n, classes, generator=g)).argmax(dim=1)
    return X, y


def batches_of(X, y, batch: int):
    """A re-iterable list of (inputs, targets) pairs."""
    return [(X[i:i + batch], y[i:i + batch]) for i in range(0, len(y), batch)]


def train_adam(model, batches, *, epochs: int, lr: float = 1e-3, seed: int = 0, loss_fn=None) -> float:
    """A few epochs of mini-batch Adam (seeded shuffling of the batch order); returns the last epoch's mean loss."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    last = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for i in rng.permutation(len(batches)):
            x, y = batches[i]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        last = total / count
    return last


def plain_gradient(model, batches, loss_fn, n: int):
    """One full-data gradient the ordinary way: ``loss.backward()`` per batch into ``.grad``."""
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        (loss_fn(model(x), y) * (len(y) / n)).backward()
    return [p.grad for p in model.parameters()]


def machine_line(device="cpu") -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return (f"device: CPU, {os.cpu_count()} cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} at start")


def trained_objective(model, X, y, *, train_batch: int, batch: int, epochs: int, seed: int):
    """Train ``model`` with seeded Adam (float32), then view it in float64 as a TorchObjective.

    Returns ``(objective, θ, seconds of training)``; θ is the trained point.
    """
    import ridgelens as rl

    t0 = time.perf_counter()
    train_adam(model, batches_of(X, y, train_batch), epochs=epochs, lr=1e-3, seed=seed)
    seconds = time.perf_counter() - t0
    model = model.double().eval()
    obj = rl.TorchObjective(model, F.cross_entropy, batches_of(X.double(), y, batch))
    return obj, obj.theta0, seconds
