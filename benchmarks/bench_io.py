"""Large CSV files: the streamed reader against the careful (previous) one, and a least-squares run on it.

The file: scikit-learn's diabetes rows (442 × 10 features + target), repeated to ``--mb``
megabytes (issue 13 measured 253 MB: 215 s and 2.48 GB with the careful reader). Each
contender runs in a fresh interpreter, so its peak resident memory is its own:

- ``careful``: ``load_dataset`` with the streamed path switched off (the reader before it);
- ``streamed``: ``load_dataset`` as it is (NumPy's C parser over blocks of lines);
- ``streamed + analyze``: the load, then ``analyze(LeastSquares(X, y), [0.01, 1])`` with refits.

Printed: seconds, peak RSS, the peak above a child that only imports (``baseline``) over the
numeric data (n × (d + 1) × 8 bytes), and the ratios.

    .venv/bin/python benchmarks/bench_io.py [--mb 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine_line, mib, peak_rss_bytes, run_child


def write_csv(path: Path, mb: float) -> tuple[int, int]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    block = "\n".join(",".join(repr(v) for v in r) for r in np.column_stack([X, y]).tolist()) + "\n"
    reps = max(1, int(mb * 2**20 / len(block)))
    with path.open("w") as fh:
        fh.write(",".join([f"x{i}" for i in range(10)] + ["y"]) + "\n")
        for _ in range(reps):
            fh.write(block)
    return reps * X.shape[0], X.shape[1] + 1


def child(mode: str, path: str) -> None:
    import ridgelens.data as data
    from ridgelens import LeastSquares, analyze

    if mode == "baseline":  # the interpreter with its imports, nothing read: subtracted below
        print(json.dumps({"load_s": 0.0, "fit_s": None, "peak": peak_rss_bytes(), "rows": 0}))
        return
    if mode == "careful":
        data.read_plain_csv = lambda *a: None
    t0 = time.perf_counter()
    ds = data.load_dataset(f"csv:{path}")
    load = time.perf_counter() - t0
    fit = None
    if mode == "streamed+analyze":
        t1 = time.perf_counter()
        res = analyze(LeastSquares(ds.X, ds.y), [0.01, 1.0])
        fit = time.perf_counter() - t1
        assert float(res.rel_error.max()) < 1e-6
    print(json.dumps({"load_s": load, "fit_s": fit, "peak": peak_rss_bytes(), "rows": int(ds.X.shape[0])}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        n, cols = write_csv(path, args.mb)
        size, numeric = path.stat().st_size, n * cols * 8
        print(machine_line())
        print(f"file: {size / 2**20:.0f} MiB, {n} rows × {cols} columns (numeric data {mib(numeric)})")
        script = str(Path(__file__).resolve())
        res = {m: run_child(script, ["--child", m, str(path)])
               for m in ("baseline", "careful", "streamed", "streamed+analyze")}
    base = res.pop("baseline")["peak"]
    print(f"  baseline (imports only): peak RSS {mib(base)}; subtracted from the ratios below")
    for m, r in res.items():
        extra = f", analyze {r['fit_s']:.2f} s" if r["fit_s"] is not None else ""
        print(f"  {m:18s} load {r['load_s']:7.2f} s{extra}; peak RSS {mib(r['peak'])} "
              f"= {(r['peak'] - base) / numeric:.2f} × the numeric data above the baseline")
    print(f"streamed / careful: {res['careful']['load_s'] / res['streamed']['load_s']:.1f}× faster, "
          f"{(res['careful']['peak'] - base) / (res['streamed']['peak'] - base):.1f}× less peak memory (above the baseline)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
