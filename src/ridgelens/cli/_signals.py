"""SIGINT and SIGTERM during a run: unwind like an exception, so every staged output is removed.

Python's default SIGTERM kills the process on the spot, skipping every ``finally`` block and
leaving temporary folders behind. While :func:`handling` is active, both signals raise
:class:`Interrupted` instead (a ``BaseException``, so no ``except Exception`` in the library
swallows it). The first signal wins; later ones are ignored while the run unwinds. Inside
:func:`critical` (the final renames of a transaction, the removal of a staging folder) a
signal is held back and raised when the block ends, so it never cuts a rename sequence in
two.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))


_state = {"depth": 0, "pending": None, "fired": False}


def _handler(signum, _frame) -> None:
    if _state["fired"]:
        return
    if _state["depth"] > 0:
        if _state["pending"] is None:
            _state["pending"] = signum
        return
    _state["fired"] = True
    raise Interrupted(signum)


@contextmanager
def handling():
    """Turn SIGINT/SIGTERM into :class:`Interrupted` for the block (main thread only; restored after)."""
    _state.update(depth=0, pending=None, fired=False)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def critical():
    """Hold SIGINT/SIGTERM back until the block is done, then raise :class:`Interrupted` if one came."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None and not _state["fired"]:
            signum, _state["pending"], _state["fired"] = _state["pending"], None, True
            raise Interrupted(signum)
