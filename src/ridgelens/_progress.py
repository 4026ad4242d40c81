"""Progress bars for the long stages: the one interface every part of ridgelens reports through.

Built on `rich <https://rich.readthedocs.io>`_, drawn on stderr. A bar is shown when its
``enabled`` argument is True; when it is None (the default everywhere) the process-wide
setting decides (:func:`set_enabled`, which the CLI's ``--quiet`` turns off), and by default
that is "when stderr is a terminal". So a run piped into a file, a CI log or a test prints no
bar at all, and the library never writes to stdout.

Bars nest: a bar opened while another is open is drawn below it in the same live display (a
refit's optimizer iterations under the "refits" bar), and disappears when closed.

>>> with Progress("demo", 3, enabled=False) as bar:
...     bar.advance()
>>> bar.done
1
"""

from __future__ import annotations

import functools
import sys
import time
from contextlib import contextmanager

_setting: bool | None = None  # None: show bars when stderr is a terminal
_live = {"progress": None, "open": 0, "stream": None}


def set_enabled(flag: bool | None) -> None:
    """Show bars always (True), never (False), or when stderr is a terminal (None, the default)."""
    global _setting
    _setting = None if flag is None else bool(flag)


def is_enabled(explicit: bool | None = None, stream=None) -> bool:
    """Whether a bar asked for with ``explicit`` (None = no preference) would be drawn."""
    if explicit is not None:
        return bool(explicit)
    if _setting is not None:
        return _setting
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


@contextmanager
def setting(flag: bool | None):
    """Inside this block, bars follow ``flag`` (None: leave the current setting as it is)."""
    global _setting
    before = _setting
    if flag is not None:
        _setting = bool(flag)
    try:
        yield
    finally:
        _setting = before


def quiet():
    """No bars inside this block (whatever stderr is)."""
    return setting(False)


def governs_stages(fn):
    """Make a function's ``progress=`` argument hold for every stage it calls (optimizers included)."""

    @functools.wraps(fn)
    def wrapper(*args, progress: bool | None = None, **kwargs):
        with setting(progress):
            return fn(*args, progress=progress, **kwargs)

    return wrapper


def _display(stream):
    """The shared rich display (started by the first open bar, stopped by the last)."""
    if _live["progress"] is None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=stream, stderr=stream is sys.stderr, force_terminal=None if stream.isatty() else True)
        _live["progress"] = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True, refresh_per_second=4,
            redirect_stdout=False, redirect_stderr=False)  # stdout stays stdout (a pipe, a file)
        _live["progress"].start()
        _live["stream"] = stream
    _live["open"] += 1
    return _live["progress"]


def _release() -> None:
    _live["open"] -= 1
    if _live["open"] <= 0 and _live["progress"] is not None:
        _live["progress"].stop()
        _live.update(progress=None, open=0, stream=None)


def reset() -> None:
    """Stop the display whatever bars are still open (a stage that raised before closing its bar)."""
    if _live["progress"] is not None:
        _live["progress"].stop()
    _live.update(progress=None, open=0, stream=None)


class Progress:
    """One bar: ``label  ━━━━━━━  23/200 HVPs  0:00:04 eta 0:00:31``.

    ``total`` is the count expected (or an upper bound, such as a product budget: a bar that
    stops early just closes); None for a stage of unknown length (a spinner-like bar with
    elapsed time). ``update(done)`` sets the count, ``advance(n)`` adds to it, ``close()`` (or
    leaving a ``with`` block) removes the bar. Silent unless :func:`is_enabled` says otherwise.
    """

    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None, stream=None,
                 unit: str = "HVPs"):
        self.stream = stream or sys.stderr
        self.enabled = is_enabled(enabled, self.stream)
        self.label, self.unit = label, unit
        self.total = None if total is None else max(int(total), 1)
        self.start = time.perf_counter()
        self.done = 0
        self._task = None
        if self.enabled:
            self._bar = _display(self.stream)
            self._task = self._bar.add_task(label, total=self.total, unit=unit)
            self._bar.refresh()  # drawn at once, however short the stage

    def update(self, done: int) -> None:
        """Record ``done`` units so far."""
        self.done = int(done)
        if self._task is not None:
            self._bar.update(self._task, completed=self.done)

    def advance(self, n: int = 1) -> None:
        """Add ``n`` units."""
        self.update(self.done + n)

    def describe(self, label: str) -> None:
        """Change the bar's label (e.g. the λ a refit is at)."""
        self.label = label
        if self._task is not None:
            self._bar.update(self._task, description=label)

    def close(self) -> None:
        """Remove the bar (idempotent)."""
        if self._task is not None:
            self._bar.refresh()  # the last count is drawn once (a terminal's scrollback shows where it ended)
            self._bar.remove_task(self._task)
            self._task = None
            _release()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stage(label: str, total: int | None = None, enabled: bool | None = None, unit: str = "") -> Progress:
    """A bar for a whole stage, used in a with-block; bars opened inside it nest under it."""
    return Progress(label, total, enabled, unit=unit)
