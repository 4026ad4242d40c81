"""``ridgelens explore``: a results.json (or the seeds' demo) → one self-contained interactive HTML page."""

from __future__ import annotations

import json
from pathlib import Path

from ridgelens.errors import RidgelensError


def run_explore(args) -> None:
    """Validate the input and the output path, build the page in memory, then write it atomically."""
    if (args.results is None) == (not args.demo):
        raise RidgelensError("give a RESULTS_JSON file (from `ridgelens analyze`) or --demo, not both and not neither")
    out = Path(args.out)
    if out.is_dir():
        raise RidgelensError(f"--out {out} is a folder; give the path of the .html file to write")
    from ridgelens.report import ExplorerData, demo_data, write_explorer

    if args.demo:
        data = demo_data()
    else:
        data = ExplorerData.from_results(_load(Path(args.results)), source=str(args.results))
    r = data.eigenvalues.size
    if args.directions is not None and max(args.directions) >= r:
        a, b = (d + 1 for d in args.directions)
        raise RidgelensError(f"--directions {a},{b}: there are only {r} eigen-directions (q1 … q{r})")
    if args.directions is not None and args.directions[0] == args.directions[1]:
        raise RidgelensError("--directions must name two different eigen-directions")
    path = write_explorer(data, out, directions=args.directions)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser, offline)")


def _load(path: Path):
    if not path.exists():
        raise RidgelensError(f"{path}: no such file (write one with `ridgelens analyze ... --out DIR`)")
    if not path.is_file():
        raise RidgelensError(f"{path}: not a file; give the results.json inside it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RidgelensError(f"{path}: not valid JSON ({exc}); expected a results.json from `ridgelens analyze`") from None
    except OSError as exc:
        raise RidgelensError(f"{path}: cannot be read ({exc.strerror})") from None


def directions_arg(text: str) -> tuple[int, int]:
    """``--directions 1,7`` (1-based, as the figures label q1, q2, …) → 0-based pair."""
    import argparse

    try:
        a, b = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--directions must be two 1-based indices like 1,7, got {text!r}") from None
    if a < 1 or b < 1:
        raise argparse.ArgumentTypeError(f"--directions are 1-based (q1 is the top direction), got {text!r}")
    return a - 1, b - 1
