"""``ridgelens analyze --report``: the warnings a run raised, and report.html from its outputs."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from ridgelens._io import atomic_write_bytes
from ridgelens.errors import RidgelensWarning
from ridgelens.report import read_figures, results_report


@contextmanager
def recorded_warnings():
    """Record the warnings raised inside (for the report), then raise them again for the CLI to print."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always", RidgelensWarning)
            caught = rec
            yield rec
    finally:
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def write_report(out: Path, results: dict, caught, *, render=results_report) -> str:
    """Write ``out``/report.html from results.json's dict, the PNGs in ``out`` and the warnings; returns its name.

    ``render(results, figures, lines)`` makes the page (:func:`~ridgelens.report.lm_report` for a language model).
    """
    lines = []
    for w in caught:
        if issubclass(w.category, (RidgelensWarning, RuntimeWarning)):
            line = f"{w.category.__name__}: {w.message}"
            if line not in lines:
                lines.append(line)
    page = render(results, read_figures(out), lines)
    atomic_write_bytes(out / "report.html", page.encode("utf-8"))
    return "report.html"
