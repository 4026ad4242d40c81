"""``torchrun … -m ridgelens analyze``: join the process group torchrun describes, and leave it.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`session`
initializes the process group from them (the ``gloo`` backend: the CLI's models live on the
CPU; ``RIDGELENS_DIST_BACKEND=nccl`` for CUDA tensors), bounded by
:func:`ridgelens._distributed.timeout`, and destroys it at the end. Without those variables,
or when the caller already initialized a group, it does nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os

from ridgelens import _distributed as dist
from ridgelens.errors import DistributedError


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one rank of several."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@contextlib.contextmanager
def session():
    """Initialize the process group described by the environment for the block (if any and not yet done)."""
    if not launched() or dist.is_distributed():
        yield
        return
    import torch.distributed as tdist

    backend = os.environ.get("RIDGELENS_DIST_BACKEND", "gloo")
    try:
        tdist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=dist.timeout()))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DistributedError(f"cannot join the process group (backend {backend!r}, rank {os.environ['RANK']} "
                               f"of {os.environ['WORLD_SIZE']}): {first}") from None
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            tdist.destroy_process_group()


def run_sharded(args, lam, run) -> None:
    """``run(args, lam, out)`` on every rank; rank 0 alone prints and writes (``out`` is its staging folder).

    The output and checkpoint folders are checked by rank 0 before any work (with
    ``--shard-basis`` every rank then checks it can write ``--checkpoint``: each writes its
    own slice there) and a refusal reaches every rank; the others compute with ``out=None``
    and wait at a barrier while rank 0 moves the outputs into place.
    """
    from ridgelens.cli._output import checked_path, prepare_checkpoint, remove_empty, staged_folder

    stack = contextlib.ExitStack()
    created = []

    def enter():
        if not dist.is_rank0():
            return None
        if getattr(args, "checkpoint", None) is not None:
            created.extend(prepare_checkpoint(args.checkpoint, checked_path(args.out, "--out")))
        return stack.enter_context(staged_folder(args.out, overwrite=args.overwrite))

    try:
        with stack:
            out = dist.agree(enter, "check of --out and --checkpoint")[dist.world()[0]]
            if getattr(args, "shard_basis", False) and getattr(args, "checkpoint", None) is not None:
                from ridgelens._checkpoint import check_writable

                # Every rank writes its own slice of the basis there: each must be able to.
                dist.agree(lambda: check_writable(args.checkpoint), "check that every rank can write --checkpoint")
            with dist.quiet_unless_rank0(), dist.sharded_bases(bool(getattr(args, "shard_basis", False))):
                written = run(args, lam, out)
    except BaseException:
        remove_empty(created)
        raise
    dist.barrier("barrier after writing the outputs")
    if dist.is_rank0():
        print(f"wrote {args.out}/: {', '.join(written)} ({dist.world()[1]} ranks)")
