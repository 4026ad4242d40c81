"""``--stream``: least squares on a CSV file read block by block, never holding X.

Asked for with ``--stream``, or chosen by itself when the in-memory analysis would not fit: about
:data:`IN_MEMORY_FACTOR` times the numeric data (measured by ``benchmarks/bench_io.py``: the table,
the design with its column of ones, the SVD's factors) against the memory the system says is
available. See :mod:`ridgelens.objectives.streamed` for the method and what it cannot do.
"""

from __future__ import annotations

from pathlib import Path

from ridgelens.data import Dataset, stream_least_squares
from ridgelens.errors import RidgelensError

#: The in-memory least-squares analysis peaks near this many times the numeric data (bench_io: 5.5–6.9×).
IN_MEMORY_FACTOR = 8


def streamed_objective(args):
    """``(Dataset without X, StreamedLeastSquares)`` when the run streams, else None."""
    asked = bool(getattr(args, "stream", False))
    if not asked and not _too_big(args):
        return None
    why = "--stream" if asked else "this CSV file is too large to analyze in memory, so it is streamed (--stream)"
    if args.model != "linear" or not str(args.data or "").startswith("csv:"):
        raise RidgelensError(f"{why} reads least squares from a csv: file (--model linear --data csv:PATH); "
                             f"got --model {args.model} --data {args.data}")
    select = None if args.select == "evidence" else args.select  # the evidence: Laplace, from the moments
    given = [opt for opt, v in (("--select", select), ("--features", args.features),
                                ("--validation-fraction", args.validation_fraction),
                                ("--standardize", args.standardize), ("--positive-class", args.positive_class))
             if v not in (None, False)]
    if given:
        raise RidgelensError(f"{why} keeps only the centred XᵀX, Xᵀy and yᵀy, not the rows of X, which "
                             f"{', '.join(given)} need{'s' if len(given) == 1 else ''}"
                             + (" (--select evidence works from them)" if select else ""))
    if not asked:
        print(f"ridgelens analyze: {why}")
    obj = stream_least_squares(args.data, target=args.target, fit_intercept=not args.no_intercept,
                               penalize_intercept=args.penalize_intercept)
    names = obj.param_names[:-1] if obj.fit_intercept else obj.param_names
    return Dataset(X=None, y=None, feature_names=names, target_name=obj.target_name, name=Path(args.data[4:]).stem), obj


def _too_big(args) -> bool:
    """Whether the in-memory analysis of a csv: file would need more than the available memory."""
    if args.model != "linear" or not str(args.data or "").startswith("csv:"):
        return False
    path = Path(args.data[4:])
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            sample = fh.read(2**20)
    except OSError:
        return False  # the loader says what is wrong with it
    lines = sample.split(b"\n")[1:-1] or [b""]
    cells = sum(line.count(b",") + 1 for line in lines)
    numeric = size / max(len(sample), 1) * cells * 8
    available = available_memory()
    return available is not None and IN_MEMORY_FACTOR * numeric > available


def available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
