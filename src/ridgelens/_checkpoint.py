"""Checkpoints for long Krylov runs: state written atomically, resumed only if it matches the run."""

from __future__ import annotations

import hashlib
import os
import tempfile
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

    A sharded basis (``local`` keys of :meth:`maybe_save`, each rank's own slice) is never
    gathered: every rank writes its slice to its own file ``NAME.rank{r}-of-{N}.{n_done}.pt``
    (atomically), then rank 0 writes ``NAME.pt`` last, a manifest of the replicated state,
    the signature (world size, fingerprint) and the shard files with their SHA-256. On resume
    rank 0 reads the manifest and each rank loads and verifies its own file only, so no rank
    ever holds more than its slice, and the folder need not be shared between machines.
    """

    def __init__(self, folder, name: str, signature: dict, every: int = 10):
        self.path = None if folder is None else Path(folder) / f"{name}.pt"
        self.signature, self.every = dict(signature), max(int(every), 1)
        if dist.is_distributed():
            self.signature["world_size"] = dist.world()[1]
            if dist.basis_sharding():
                self.signature["shard_basis"] = True
        self._written = None  # this rank's shard file named by the manifest now

    def load(self) -> dict | None:
        """The saved state, or None when there is none (read by rank 0, handed to every rank)."""
        if self.path is None:
            return None
        if self.signature.get("shard_basis"):
            dist.agree(lambda: check_writable(self.path.parent), "check that every rank can write its shard")
        state = dist.rank0(self._load, "checkpoint broadcast")
        if state is not None and "shards" in state:
            mine = {}  # this rank's slice stays here: agree() gathers only whether each rank could load its own
            dist.agree(lambda: mine.update(self._load_shard(state["shards"])), "checkpoint shard load")
            state = {**state, **mine}
        return state

    def _shard_name(self, n_done: int) -> str:
        rank, size = dist.world()
        return f"{self.path.stem}.rank{rank}-of-{size}.{n_done}.pt"

    def _load_shard(self, shards: list) -> dict:
        """Load this rank's slice, named by the manifest and checked against its digest; remove its stale files."""
        entry = shards[dist.world()[0]]
        path = self.path.parent / entry["file"]
        if not path.exists():
            raise DataError(f"checkpoint {self.path}: the shard {path.name} of rank {dist.world()[0]} is missing; "
                            "restore it, or delete the checkpoint folder (the stage then starts afresh)")
        if file_digest(path) != entry["sha256"]:
            raise DataError(f"checkpoint {self.path}: the shard {path.name} of rank {dist.world()[0]} is corrupted "
                            "(its SHA-256 differs from the manifest's); delete the checkpoint folder (the stage "
                            "then starts afresh)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self._written = path
        self._remove_stale()
        return state

    def _remove_stale(self) -> None:
        """Remove this rank's shard files that the manifest does not name (left by a run killed mid-save)."""
        for p in self.path.parent.glob(self._shard_name(0).rsplit(".", 2)[0] + ".*.pt"):
            if p != self._written:
                p.unlink(missing_ok=True)

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
            if bool(state["signature"].get("shard_basis")) != bool(self.signature.get("shard_basis")):
                how = "with" if state["signature"].get("shard_basis") else "without"
                raise DistributedError(f"checkpoint {self.path} was written by a run {how} a sharded basis "
                                       f"(--shard-basis); resume {how} it, or use another --checkpoint folder")
        if not isinstance(state, dict) or state.get("signature") != self.signature:
            raise RidgelensError(
                f"checkpoint {self.path} belongs to another run ({state.get('signature')}); "
                f"this run is {self.signature}. Use another --checkpoint folder or delete it"
            )
        return state

    def maybe_save(self, n_done: int, state_fn, *, local: tuple = ()) -> None:
        """Save ``state_fn()`` every ``every`` products.

        ``local``: the keys of the state that hold this rank's slice of a sharded basis; every
        rank then calls ``state_fn`` and writes those keys to its own shard file.
        """
        if self.path is None or n_done % self.every:
            return
        if self.signature.get("shard_basis") and local:
            self._save_sharded(n_done, state_fn(), local)
        elif dist.is_rank0():
            self.save(state_fn())

    def save(self, state: dict) -> None:
        """Write ``state`` atomically (rank 0 only under a process group)."""
        if self.path is None or not dist.is_rank0():
            return
        # Streamed to the temporary file: no in-memory copy of a basis that may be gigabytes.
        atomic_write_with(self.path, lambda fh: torch.save({**state, "signature": self.signature}, fh))

    def _save_sharded(self, n_done: int, state: dict, local: tuple) -> None:
        """Each rank's slice to its own file, then rank 0's manifest naming them (an error anywhere stops every rank)."""
        path = self.path.parent / self._shard_name(n_done)

        def write_shard():
            atomic_write_with(path, lambda fh: torch.save({k: state[k] for k in local}, fh))
            return {"file": path.name, "sha256": file_digest(path)}

        shards = dist.agree(write_shard, "checkpoint shard write")
        manifest = {k: v for k, v in state.items() if k not in local}
        dist.rank0(lambda: self.save({**manifest, "shards": shards}), "checkpoint manifest write")
        self._written = path
        self._remove_stale()


def check_writable(folder) -> None:
    """Every rank writes its own shard of a sharded basis: refuse a folder this rank cannot write (call it on every rank)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)  # a folder on each machine's own disk is enough
        os.rmdir(tempfile.mkdtemp(prefix=".ridgelens-probe-", dir=folder))
    except OSError as exc:
        raise DataError(f"--checkpoint {folder}: rank {dist.world()[0]} cannot create files there "
                        f"({exc.strerror or type(exc).__name__}); with a sharded basis (--shard-basis) every rank "
                        "writes its own slice of the basis, so give a folder every rank can write, or drop "
                        "--shard-basis (rank 0 then writes the whole basis)") from None


def file_digest(path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (a shard may be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


#: torch dtypes numpy has no type for (``Tensor.numpy`` raises TypeError on them)
_NUMPY_LACKS = tuple(getattr(torch, n) for n in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                                                 "float8_e5m2fnuz") if hasattr(torch, n))


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
            t = a.detach().cpu().contiguous()
            if t.dtype in _NUMPY_LACKS:  # bfloat16 and the float8s: their bytes, under torch's dtype name
                h.update(str((str(t.dtype), tuple(t.shape))).encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
                continue
            a = t.numpy()
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


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
