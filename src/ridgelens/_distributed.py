"""Data parallel over ``torch.distributed``: one all-reduce per product, and failures that never hang.

Under an initialized process group each rank holds a shard of the batches. A torch
objective counts its samples once (``n``, all-reduced) so that every batch weighs
``n_b / n`` with the *global* n; value, gradient, Hessian and Gauss–Newton products are
then local sums plus one :func:`all_reduce_sum`, and every rank holds the same result
(the mean over all samples, however unevenly the shards split). Everything above the
operators — Lanczos, SLQ, the Krylov and multi-shift paths, the Schur complement, the
refits — runs unchanged and identically on every rank: its random probes come from
seeded ``torch.Generator`` s, the same on every rank.

Faults: every collective waits at most :func:`timeout` seconds (``RIDGELENS_DIST_TIMEOUT``,
default 300). When one fails (a peer closed its connection, or the wait timed out), the
survivors answer a roll call in the process group's store and raise
:class:`~ridgelens.errors.DistributedError` naming the ranks that did not answer.

Nothing here imports from ridgelens' stages; they import this module.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import pickle
import time

import torch

from ridgelens.errors import DistributedError

#: Grace period (seconds) the survivors of a failed collective wait for each other's roll call.
ROLL_CALL_GRACE = 3.0
_seq = [0]  # collectives issued by this process (the same sequence on every rank)


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialized (any world size)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if not is_distributed():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def is_rank0() -> bool:
    """Whether this process prints and writes the outputs (rank 0, or no process group)."""
    return world()[0] == 0


def timeout() -> float:
    """Seconds any collective may wait before its peers are declared lost (``RIDGELENS_DIST_TIMEOUT``)."""
    try:
        return float(os.environ.get("RIDGELENS_DIST_TIMEOUT", "300"))
    except ValueError:
        return 300.0


def _store():
    import torch.distributed.distributed_c10d as c10d

    try:
        return c10d._get_default_store()
    except Exception:
        return None


def _roll_call(seq: int, what: str, exc: BaseException) -> DistributedError:
    """After collective ``seq`` failed: which ranks are still here? One message naming the others."""
    rank, size = world()
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    store = _store()
    lost = None
    if store is not None:
        prefix = f"ridgelens/roll/{seq}/"
        try:
            store.set(prefix + str(rank), b"1")
            deadline = time.monotonic() + ROLL_CALL_GRACE
            while True:
                here = [r for r in range(size) if store.check([prefix + str(r)])]
                if len(here) == size or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            lost = [r for r in range(size) if r not in here]
        except Exception:
            lost = None
    if lost == []:
        return DistributedError(f"rank {rank}: the {what} failed although every rank answered the roll call "
                                f"({first})")
    who = ("rank 0 or the launcher (the rendezvous store is gone)" if lost is None
           else ("rank " if len(lost) == 1 else "ranks ") + ", ".join(map(str, lost)))
    return DistributedError(f"rank {rank} of {size}: lost {who}: it did not take part in the {what} within "
                            f"{timeout():g} s (killed, crashed or hung); stopping. ({first})")


def _collective(what: str, start):
    """Run ``start()`` (an ``async_op=True`` collective), wait at most :func:`timeout`; faults → DistributedError."""
    seq = _seq[0]
    _seq[0] += 1
    try:
        work = start()
        if work is not None and work.wait(timeout=datetime.timedelta(seconds=timeout())) is False:
            raise TimeoutError(f"{what} timed out")
    except DistributedError:
        raise
    except Exception as exc:
        raise _roll_call(seq, what, exc) from None


def check_device(device) -> None:
    """Refuse a process group whose backend cannot all-reduce tensors on ``device`` (on every rank)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    device = torch.device(device)
    backend = str(dist.get_backend()).lower()
    ok = {"gloo": ("cpu", "cuda"), "nccl": ("cuda",), "mpi": ("cpu", "cuda")}.get(backend)
    if ok is not None and device.type not in ok:
        raise DistributedError(f"the process group's backend {backend!r} cannot all-reduce tensors on "
                               f"{device.type!r}; use {'nccl' if device.type == 'cuda' else 'gloo'} for "
                               f"{device.type} tensors (init_process_group(backend=...))")


def all_reduce_sum(t: torch.Tensor, what: str = "all-reduce") -> torch.Tensor:
    """Sum ``t`` over the ranks, in place (every rank gets the same sum); ``t`` itself without a process group."""
    if not is_distributed():
        return t
    import torch.distributed as dist

    _collective(what, lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True))
    return t


def _object_device() -> torch.device:
    """Where the bytes of pickled objects travel: the current GPU for NCCL, else the CPU."""
    import torch.distributed as dist

    if str(dist.get_backend()).lower() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _to_bytes(obj, device) -> torch.Tensor:
    return torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8).to(device)


def _from_bytes(t: torch.Tensor, size: int):
    return pickle.loads(t[:size].cpu().numpy().tobytes())


def all_gather_objects(obj, what: str = "all-gather") -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group.

    Pickled and sent as byte tensors through two all-gathers (sizes, then bytes), each bounded
    by :func:`timeout` like every other collective (torch's ``all_gather_object`` waits for the
    process group's own timeout).
    """
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    data = _to_bytes(obj, _object_device())
    size = torch.tensor([data.numel()], dtype=torch.long, device=data.device)
    sizes = [torch.empty_like(size) for _ in range(world()[1])]
    _collective(what, lambda: dist.all_gather(sizes, size, async_op=True))
    width = int(max(int(s) for s in sizes))
    pad = torch.zeros(width, dtype=torch.uint8, device=data.device)
    pad[: data.numel()] = data
    parts = [torch.empty_like(pad) for _ in sizes]
    _collective(what, lambda: dist.all_gather(parts, pad, async_op=True))
    return [_from_bytes(p, int(s)) for p, s in zip(parts, sizes, strict=True)]


def broadcast_object(obj, what: str = "broadcast"):
    """Rank 0's ``obj`` on every rank (a size, then the pickled bytes; each bounded by :func:`timeout`)."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    device = _object_device()
    data = _to_bytes(obj, device) if is_rank0() else None
    size = torch.tensor([data.numel() if data is not None else 0], dtype=torch.long, device=device)
    _collective(what, lambda: dist.broadcast(size, src=0, async_op=True))
    if data is None:
        data = torch.empty(int(size), dtype=torch.uint8, device=device)
    _collective(what, lambda: dist.broadcast(data, src=0, async_op=True))
    return _from_bytes(data, int(size))


def barrier(what: str = "barrier") -> None:
    """Wait for every rank (bounded by :func:`timeout`)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    _collective(what, lambda: dist.barrier(async_op=True))


def agree(fn, what: str):
    """Run ``fn()`` on every rank and return every rank's result; if it raised anywhere, raise on *every* rank.

    A check that fails on one rank alone (its shard is empty, its file unreadable) would
    otherwise leave the others waiting in the next collective.
    """
    try:
        result, err = fn(), None
    except Exception as exc:
        result, err = None, exc
    if not is_distributed():
        if err is not None:
            raise err
        return [result]
    gathered = all_gather_objects((result, None) if err is None else (None, str(err)), what)
    for r, (_, e) in enumerate(gathered):
        if e is not None:
            if err is not None and r == world()[0]:
                raise err
            raise DistributedError(e if e.startswith(f"rank {r} ") else f"rank {r}: {e}")
    return [res for res, _ in gathered]


def rank0(fn, what: str):
    """Run ``fn()`` on rank 0 only and hand its result (or its error) to every rank."""
    if not is_distributed():
        return fn()
    out = None
    if is_rank0():
        try:
            out = ("ok", fn())
        except Exception as exc:
            out = ("err", exc)
    kind, value = broadcast_object(out, what)
    if kind == "err":
        raise value
    return value


def check_same(label: str, value) -> None:
    """Raise on every rank unless every rank holds the same ``value``, naming the first rank that differs."""
    if not is_distributed():
        return
    values = all_gather_objects(value, f"check of the {label}")
    for r, v in enumerate(values):
        if v != values[0]:
            raise DistributedError(f"rank {r} has another {label} than rank 0 ({v!r} ≠ {values[0]!r}): "
                                   "every rank must hold the same model; only the batches are sharded")


def tensor_digest(t: torch.Tensor) -> str:
    """A short digest of a tensor's dtype, shape and values (for :func:`check_same`)."""
    a = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(str((a.dtype, tuple(a.shape))).encode())
    h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()[:16]


@contextlib.contextmanager
def quiet_unless_rank0():
    """Silence stdout, stderr (progress lines) and warnings on ranks other than 0 (only rank 0 prints).

    Errors still reach the user: the CLI prints them after this block has ended.
    """
    if is_rank0():
        yield
        return
    import warnings

    with (open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink),
          warnings.catch_warnings()):
        warnings.simplefilter("ignore")
        yield


def shard(items: list) -> list:
    """Return this rank's share of ``items`` (every world-size-th item from its rank on)."""
    rank, size = world()
    return list(items)[rank::size]


def global_count(batches, count_local, device, smaller="use smaller batches (--batch-size)") -> int:
    """The number of samples over every rank's shard; ``count_local()`` counts (and checks) this rank's.

    A rank without a batch (more ranks than batches) and a rank whose batches are malformed
    raise on every rank; ``smaller`` says how this objective gets more batches out of its data.
    """
    if not is_distributed():
        return count_local()
    from ridgelens.errors import DataError

    rank, size = world()

    def local():
        check_device(device)
        if next(iter(batches), None) is None:
            raise DataError(f"rank {rank} of {size} holds no batch: the world size {size} is larger than the "
                            f"number of batches; launch at most as many ranks as there are batches, or {smaller}")
        return count_local()

    return int(sum(agree(local, "count of the samples")))


def check_model(names, shapes, dtype, theta0) -> None:
    """The same parameter names, shapes, dtype and weights on every rank (one all-gather; names the first that differs)."""
    check_same("model (parameter names, shapes, dtype; digest of the weights)",
               (repr([(n, tuple(s)) for n, s in zip(names, shapes, strict=True)]), str(dtype),
                tensor_digest(torch.as_tensor(theta0))))


def joint_fingerprint(local: str) -> str:
    """A digest of every rank's fingerprint and the world size: what a checkpoint of this run must match."""
    parts = all_gather_objects(local, "fingerprint all-gather")
    return hashlib.sha256(repr((len(parts), parts)).encode()).hexdigest()[:16]


def check_shardable(objective) -> None:
    """Refuse, under a process group, an objective that does not shard its data (the NumPy closed forms)."""
    if is_distributed() and not hasattr(objective, "prepared_batches"):
        raise DistributedError(
            f"{type(objective).__name__} is solved in one process: it does not shard its rows over the "
            f"{world()[1]} ranks of the process group (each would hold all of them, and the answers would "
            "not be data parallel). Run it without torchrun / init_process_group, or wrap the model as a "
            "TorchObjective whose batches are this rank's shard")


_sharding = [False]


def basis_sharding() -> bool:
    """Whether Krylov bases built now are sliced across the ranks (inside :func:`sharded_bases`)."""
    return _sharding[0]


@contextlib.contextmanager
def sharded_bases(on: bool = True):
    """Within the block, every Lanczos/Krylov basis is stored sliced across the ranks (1/N per rank)."""
    old, _sharding[0] = _sharding[0], bool(on)
    try:
        yield
    finally:
        _sharding[0] = old


def shard_basis_option(fn):
    """Give ``fn`` a keyword ``shard_basis=False``: when true, ``fn`` runs inside :func:`sharded_bases`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, shard_basis: bool = False, **kwargs):
        if not shard_basis:
            return fn(*args, **kwargs)
        with sharded_bases():
            return fn(*args, **kwargs)

    return wrapper
