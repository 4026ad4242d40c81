"""Checkpoints for long Krylov runs: state written atomically, resumed only if it matches the run."""

from __future__ import annotations

from pathlib import Path

import torch

from ridgelens._io import atomic_write_with
from ridgelens.errors import RidgelensError


class Checkpoint:
    """Save/load the state of one named run in ``folder`` (``None`` disables checkpointing).

    ``signature`` (a dict of plain values) identifies the run; a checkpoint written by a
    different run (other n, k, seed, tolerance, ...) is refused with a clear error rather
    than silently mixed in.
    """

    def __init__(self, folder, name: str, signature: dict, every: int = 10):
        self.path = None if folder is None else Path(folder) / f"{name}.pt"
        self.signature, self.every = dict(signature), max(int(every), 1)

    def load(self) -> dict | None:
        """The saved state, or None when there is none."""
        if self.path is None or not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("signature") != self.signature:
            raise RidgelensError(
                f"checkpoint {self.path} belongs to another run ({state.get('signature')}); "
                f"this run is {self.signature}. Use another --checkpoint folder or delete it"
            )
        return state

    def maybe_save(self, n_done: int, state_fn) -> None:
        """Save ``state_fn()`` every ``every`` products."""
        if self.path is not None and n_done % self.every == 0:
            self.save(state_fn())

    def save(self, state: dict) -> None:
        """Write ``state`` atomically."""
        if self.path is None:
            return
        # Streamed to the temporary file: no in-memory copy of a basis that may be gigabytes.
        atomic_write_with(self.path, lambda fh: torch.save({**state, "signature": self.signature}, fh))
