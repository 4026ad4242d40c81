"""Certified digits (LRE) of θ̂ on NIST StRD Longley and Wampler1–5, against numpy's lstsq.

The data and certified values are the ones ``tests/test_linear_precision.py`` asserts on (loaded
from that file, so they are written once). One line per set: the smallest LRE over the
coefficients, for ridgelens with its intercept (free, then penalized), for ridgelens with the
constant as the design's first column and ``fit_intercept=False``, and for ``np.linalg.lstsq``
on that same [1, X] (LAPACK gelsd). Issue 12 §3 asks for ≥ 11 digits.

    .venv/bin/python benchmarks/check_nist_digits.py
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from ridgelens import LeastSquares
from ridgelens.errors import IllConditionedWarning


def precision_tests():
    """The test module, for its data sets and its ``lre``."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_linear_precision.py"
    spec = importlib.util.spec_from_file_location("test_linear_precision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Print the LRE table."""
    t = precision_tests()
    sets = [("Longley", *t.longley(), t.LONGLEY_CERTIFIED)]
    for name, c in (("Wampler1", t.WAMPLER1), ("Wampler2", t.WAMPLER2)):
        sets.append((name, *t.wampler(c), np.array([float(v) for v in c[1:] + c[:1]])))
    sets += [(name, *t.wampler_noisy(name), np.ones(6)) for name in sorted(t.WAMPLER_NOISY)]
    print("set       ridgelens  ridgelens-penalized-b  ridgelens-[1,X]  numpy-lstsq-[1,X]")
    for name, X, y, certified in sets:
        A = np.hstack([np.ones((len(y), 1)), X])
        first = np.r_[certified[-1], certified[:-1]]  # (B0, B1, ...) for [1, X]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedWarning)
            digits = [t.lre(LeastSquares(X, y).minimize().theta, certified).min(),
                      t.lre(LeastSquares(X, y, penalize_intercept=True).minimize().theta, certified).min(),
                      t.lre(LeastSquares(A, y, fit_intercept=False).minimize().theta, first).min()]
        digits.append(t.lre(np.linalg.lstsq(A, y, rcond=None)[0], first).min())
        print(f"{name:9s} {digits[0]:9.2f} {digits[1]:22.2f} {digits[2]:16.2f} {digits[3]:18.2f}")


if __name__ == "__main__":
    main()
