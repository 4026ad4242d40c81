"""A small progress line for long matrix-free runs: HVPs done and the estimated time left."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label: 23/≤200 HVPs, 0.12 s each, ~21 s left`` to a terminal, at most 4 times a second.

    Silent unless ``enabled`` is True, or it is None and stderr is a terminal.
    """

    def __init__(self, label: str, total: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.label, self.total = label, max(int(total), 1)
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, done: int) -> None:
        """Record ``done`` products so far."""
        self.done = done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.25 and done < self.total:
            return
        self.last = now
        each = (now - self.start) / max(done, 1)
        left = each * max(self.total - done, 0)
        self.stream.write(f"\r{self.label}: {done}/≤{self.total} HVPs, {each:.3g} s each, ~{left:.0f} s left   ")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
