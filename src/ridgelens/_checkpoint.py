"""Checkpoints for long Krylov runs: state written atomically, resumed only if it matches the run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ridgelens import _distributed as dist
from ridgelens._io import atomic_write_with
from ridgelens.errors import DataError, DistributedError, RidgelensError


class Checkpoint:
    """Save/load the state of one named run in ``folder`` (``None`` disables checkpointing).

    ``signature`` (a dict of plain values) identifies the run; a checkpoint written by a
    different run (other n, k, seed, tolerance, ...) is refused with a clear error rather
    than silently mixed in.

    Under a process group, rank 0 alone reads and writes; what it read reaches every rank
    (every rank's state is the same: the products are all-reduced). The world size is part
    of the signature, and a checkpoint of another world size is refused with its own message.
    """

    def __init__(self, folder, name: str, signature: dict, every: int = 10):
        self.path = None if folder is None else Path(folder) / f"{name}.pt"
        self.signature, self.every = dict(signature), max(int(every), 1)
        if dist.is_distributed():
            self.signature["world_size"] = dist.world()[1]

    def load(self) -> dict | None:
        """The saved state, or None when there is none (read by rank 0, handed to every rank)."""
        return dist.rank0(self._load, "checkpoint broadcast") if self.path is not None else None

    def _load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, BadZipFile, ...
            raise DataError(
                f"checkpoint {self.path} is corrupted or truncated and cannot be read ({type(exc).__name__}); "
                "delete it (the run then starts that stage afresh) or use another --checkpoint folder") from None
        if isinstance(state, dict) and isinstance(state.get("signature"), dict):
            saved, now = state["signature"].get("world_size", 1), self.signature.get("world_size", 1)
            if saved != now:
                raise DistributedError(f"checkpoint {self.path} was written by a run of {saved} process(es); this run "
                                       f"has {now}. Restart with the same world size (torchrun --nproc-per-node "
                                       f"{saved}) or use another --checkpoint folder")
        if not isinstance(state, dict) or state.get("signature") != self.signature:
            raise RidgelensError(
                f"checkpoint {self.path} belongs to another run ({state.get('signature')}); "
                f"this run is {self.signature}. Use another --checkpoint folder or delete it"
            )
        return state

    def maybe_save(self, n_done: int, state_fn, *, collective: bool = False) -> None:
        """Save ``state_fn()`` every ``every`` products.

        ``collective``: ``state_fn`` gathers every rank's part (a sharded basis), so every rank
        calls it; rank 0 alone writes what it returns.
        """
        if self.path is not None and n_done % self.every == 0 and (collective or dist.is_rank0()):
            self.save(state_fn())

    def save(self, state: dict) -> None:
        """Write ``state`` atomically (rank 0 only under a process group)."""
        if self.path is None or not dist.is_rank0():
            return
        # Streamed to the temporary file: no in-memory copy of a basis that may be gigabytes.
        atomic_write_with(self.path, lambda fh: torch.save({**state, "signature": self.signature}, fh))


def digest(*arrays) -> str | None:
    """A short fingerprint of arrays/tensors (None entries allowed), for a checkpoint's signature.

    Two runs on different points θ̂, gradients or masks must not share a checkpoint even
    when every size and option agrees.
    """
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def operator_fingerprint(op) -> str | None:
    """The point a Hessian operator is taken at (and a Schur complement's mask), or None if unknown."""
    base = getattr(op, "base", None)
    theta = getattr(op, "theta", None)
    if theta is None and base is not None:
        theta = getattr(base, "theta", None)
    mask = getattr(op, "penalized", None) if base is not None else None
    if theta is None and mask is None:
        return None
    return digest(theta, mask)


def operator_key(op, folder) -> str | None:
    """What a checkpoint of ``op``'s Krylov state must match: ``op.fingerprint()`` (None without a ``folder``).

    An operator that cannot say what it is (a user's ``LinearOperator``, function or ``hvp``
    objective: fingerprint None) is known by its product with a seeded random vector (one
    product), so a checkpoint of another operator of the same size is refused, not resumed.
    """
    fp = None if folder is None else op.fingerprint()
    if folder is None or fp is not None:
        return fp
    base = getattr(op, "base", None)  # a Schur complement: H's product (S's would first form H_uu) and the mask
    target = op if base is None else base
    v = torch.randn(target.n, generator=torch.Generator().manual_seed(20260), dtype=torch.float64)
    product = target.matvec(v.to(device=target.device, dtype=target.dtype))
    return "product " + digest(product, None if base is None else getattr(op, "penalized", None))
