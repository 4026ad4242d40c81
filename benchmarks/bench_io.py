"""Large CSV files: the streamed reader against the careful (previous) one, and a least-squares run on it.

The file: scikit-learn's diabetes rows (442 × 10 features + target), repeated to ``--mb``
megabytes (issue 13 measured 253 MB: 215 s and 2.48 GB with the careful reader). Each
contender runs in a fresh interpreter, so its peak resident memory is its own:

- ``careful``: ``load_dataset`` with the streamed path switched off (the reader before it);
- ``streamed``: ``load_dataset`` as it is (blocks of lines through pandas' C parser, or NumPy's
  without pandas, copied into a preallocated X and y); its time includes importing pandas;
- ``streamed+analyze``: the load, then ``analyze(LeastSquares(X, y), [0.01, 1])`` with refits;
- ``stream-ls``: ``stream_least_squares`` (the moments of [X, y], block by block, X never held),
  then the same analysis; its θ̂ is compared with ``streamed+analyze``'s.

Printed: seconds, peak RSS, the peak above a child that only imports ridgelens (``baseline``) over
the numeric data (n × (d + 1) × 8 bytes), and the same above a child that also imports pandas
(``baseline+pandas``: the parser's code, not data), and the ratios.

    .venv/bin/python benchmarks/bench_io.py [--mb 50] [--threads 1] [--repeats 3]
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

    if mode.startswith("baseline"):  # the interpreter with its imports, nothing read: subtracted below
        t0 = time.perf_counter()
        if mode == "baseline+pandas":
            import pandas
        print(json.dumps({"load_s": time.perf_counter() - t0, "fit_s": None, "peak": peak_rss_bytes(), "rows": 0}))
        return
    if mode == "careful":
        data.read_plain_csv = lambda *a: None
    t0 = time.perf_counter()
    if mode != "careful" and Path(path).stat().st_size >= data._fastcsv.PANDAS_FROM:  # pandas' import: timed
        try:  # apart too (the first large CSV of a process pays it, the next ones do not)
            import pandas  # noqa: F401
        except ImportError:
            pass
    imported = time.perf_counter() - t0
    if mode == "stream-ls":
        obj = data.stream_least_squares(f"csv:{path}")
    else:
        ds = data.load_dataset(f"csv:{path}")
        obj = LeastSquares(ds.X, ds.y) if mode == "streamed+analyze" else None
    load = time.perf_counter() - t0
    fit = theta = None
    if mode in ("streamed+analyze", "stream-ls"):
        t1 = time.perf_counter()
        res = analyze(obj, [0.01, 1.0])
        fit = time.perf_counter() - t1
        assert float(res.rel_error.max()) < 1e-6
        theta = res.theta_hat.tolist()
    print(json.dumps({"load_s": load, "import_s": imported, "fit_s": fit, "peak": peak_rss_bytes(),
                      "rows": int(obj.n_samples if obj else ds.X.shape[0]), "theta": theta}))


def data_module():
    from ridgelens.data import _fastcsv

    return _fastcsv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
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
        modes = ("baseline", "baseline+pandas", "careful", "streamed", "streamed+analyze", "stream-ls")
        runs = {m: [] for m in modes}
        for _ in range(args.repeats):  # interleaved rounds, so a busy spell hits every contender alike
            for m in modes:
                runs[m].append(run_child(script, ["--child", m, str(path)]))
    res = {m: {k: (float(np.median([r[k] for r in rs])) if isinstance(rs[0][k], (int, float)) else rs[0][k])
               for k in rs[0]} for m, rs in runs.items()}
    print(f"medians of {args.repeats} interleaved rounds (fresh interpreter each)")
    base, pbase = res.pop("baseline")["peak"], res.pop("baseline+pandas")
    print(f"  baseline (imports only): peak RSS {mib(base)}; importing pandas too: {mib(pbase['peak'])} "
          f"(+{mib(pbase['peak'] - base).strip()}, {pbase['load_s']:.2f} s)")
    pandas_used = size >= data_module().PANDAS_FROM
    print(f"  the streamed reader parses with {'pandas' if pandas_used else 'NumPy'} at this size "
          f"(pandas from {data_module().PANDAS_FROM / 2**20:.0f} MiB on)")
    for m, r in res.items():
        extra = f", analyze {r['fit_s']:.2f} s" if r["fit_s"] is not None else ""
        above = f", {(r['peak'] - pbase['peak']) / numeric:.2f} × above baseline+pandas" if pandas_used else ""
        print(f"  {m:18s} load {r['load_s']:7.2f} s{extra}; peak RSS {mib(r['peak'])} "
              f"= {(r['peak'] - base) / numeric:.2f} × the numeric data above the baseline{above}")
    st = res["streamed"]
    print(f"streamed / careful: {res['careful']['load_s'] / st['load_s']:.1f}× faster with pandas' import counted "
          f"({st['import_s']:.2f} s of {st['load_s']:.2f} s), {res['careful']['load_s'] / (st['load_s'] - st['import_s']):.1f}× "
          f"without (a process that has read a CSV before); {(res['careful']['peak'] - base) / (st['peak'] - base):.1f}× "
          "less peak memory (above the baseline)")
    a, b = np.array(res["stream-ls"]["theta"]), np.array(res["streamed+analyze"]["theta"])
    print(f"stream-ls θ̂ against the in-memory LeastSquares θ̂: max relative difference "
          f"{np.abs(a - b).max() / np.abs(b).max():.1e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
