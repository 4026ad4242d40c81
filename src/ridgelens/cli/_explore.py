"""``ridgelens explore``: a results.json (or the seeds' demo) → one self-contained interactive HTML page."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ridgelens.cli._output import checked_path, prepare_parent, remove_empty
from ridgelens.errors import OutputError, RidgelensError


def run_explore(args) -> None:
    """Validate the input and the output path, build the page in memory, then write it atomically."""
    if (args.results is None) == (not args.demo):
        raise RidgelensError("give a RESULTS_JSON file (from `ridgelens analyze`) or --demo, not both and not neither")
    out = checked_path(args.out, "--out", "page (.html file)", replaced=False)
    if out.is_dir():
        raise OutputError(f"--out {args.out} is a folder; give the path of the .html file to write")
    if out.exists() and not out.is_file():
        raise OutputError(f"--out {args.out} is not a regular file; give the path of the .html file to write")
    from ridgelens.report import ExplorerData, demo_data, write_explorer

    if args.demo:
        data = demo_data()
    else:
        d = _load(Path(args.results))
        _check_lambdas(d, str(args.results))
        data = ExplorerData.from_results(d, source=str(args.results))
    r = data.eigenvalues.size
    if args.directions is not None and max(args.directions) >= r:
        a, b = (d + 1 for d in args.directions)
        raise RidgelensError(f"--directions {a},{b}: there are only {r} eigen-directions (q1 … q{r})")
    if args.directions is not None and args.directions[0] == args.directions[1]:
        raise RidgelensError("--directions must name two different eigen-directions")
    created = prepare_parent(out, "--out")  # the page is built in memory, then written atomically
    try:
        path = write_explorer(data, out, directions=args.directions)
    except BaseException:
        remove_empty(created)
        raise
    print(f"wrote {args.out} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser, offline)")


def _load(path: Path):
    from ridgelens.data import read_input

    try:
        missing = not (path.exists() or path.is_symlink())
    except (OSError, ValueError):  # a name too long, a NUL character: read_input says which
        missing = False
    if missing:
        raise RidgelensError(f"{path}: no such file (write one with `ridgelens analyze ... --out DIR`)")
    raw = read_input(path, "RESULTS_JSON file")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RidgelensError(f"{path}: not valid JSON ({exc}); expected a results.json from `ridgelens analyze`") from None
    except RecursionError:
        raise RidgelensError(f"{path}: nested too deeply to be a results.json from `ridgelens analyze`") from None


def _check_lambdas(d, source: str) -> None:
    """λ in a results file must be finite numbers >= 0, as `ridgelens analyze` writes them."""
    if not isinstance(d, dict) or "lambdas" not in d:
        return  # ExplorerData.from_results names what is missing
    lam = d["lambdas"]
    if not isinstance(lam, list) or not lam:
        raise RidgelensError(f"{source}: 'lambdas' must be a non-empty list of numbers >= 0")
    for i, v in enumerate(lam):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise RidgelensError(f"{source}: lambdas[{i}] is {json.dumps(v)[:40]}; every λ must be a finite "
                                 "number >= 0 (the penalty is (λ/2)‖θ‖²)")


def directions_arg(text: str) -> tuple[int, int]:
    """``--directions 1,7`` (1-based, as the figures label q1, q2, …) → 0-based pair."""
    import argparse

    parts = [t.strip() for t in text.split(",")]
    if len(parts) != 2 or not all(t.isascii() and t.isdigit() for t in parts):  # not int()'s 1_0 or ²
        raise argparse.ArgumentTypeError(f"--directions must be two 1-based indices like 1,7, got {text!r}")
    a, b = (int(t) for t in parts)
    if a < 1 or b < 1:
        raise argparse.ArgumentTypeError(f"--directions are 1-based (q1 is the top direction), got {text!r}")
    return a - 1, b - 1
