"""Checks at the boundary. Messages say expected, got, and how to fix."""

from __future__ import annotations

import numbers

import numpy as np

from ridgelens.errors import DataError, RidgelensError


def refuse_complex(values, name: str, error=DataError) -> None:
    """Complex values are refused, not cast to float64 (NumPy drops the imaginary part with only a warning)."""
    torch_like = callable(getattr(values, "is_complex", None))  # a tensor (on any device, meta too): no host copy
    if values.is_complex() if torch_like else np.iscomplexobj(values):
        raise error(f"{name} must be real numbers, got complex values")


def check_finite_matrix(X, name: str = "X", columns=None) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, or raise naming the first bad cell."""
    refuse_complex(X, name)
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric, got an array that cannot be read as float64: {exc}") from None
    if A.ndim != 2:
        raise DataError(f"{name} must be 2-D of shape (n_samples, n_features), got shape {A.shape}")
    if A.shape[0] == 0:
        raise DataError(f"{name} is empty: it has 0 rows (samples); need at least one")
    if A.shape[1] == 0:
        raise DataError(f"{name} has 0 columns (features); need at least one")
    _check_finite(A, name, columns)
    return A


def check_finite_vector(y, name: str = "y") -> np.ndarray:
    """Return ``y`` as a 1-D float64 array, or raise naming the first bad entry."""
    refuse_complex(y, name)
    try:
        v = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from None
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise DataError(f"{name} must be 1-D of shape (n_samples,), got shape {v.shape}")
    if v.size == 0:
        raise DataError(f"{name} is empty: it has 0 entries; need at least one")
    _check_finite(v[:, None], name, None)
    return v


def _check_finite(A: np.ndarray, name: str, columns) -> None:
    if np.isfinite(A).all():  # the common case in one pass, no second array (5x faster than the below)
        return
    bad = ~np.isfinite(A)
    i, j = np.argwhere(bad)[0]
    col = f"column {j}" if columns is None else f"column {j} ({columns[j]!r})"
    where = f"row {i}, {col}" if A.shape[1] > 1 or columns is not None else f"row {i}"
    raise DataError(
        f"{name} contains {A[i, j]} at {where} ({int(bad.sum())} non-finite value(s) in all); "
        "remove or impute those rows first"
    )


#: The range a column's (or the target's) largest |value| must lie in, columns of zeros aside. ridgelens
#: computes in float64, whose squares overflow past about 1e154 and vanish below 1e-162: within
#: 1e±50 the Hessian's sums of squares (σ within 1e±100), the λ grids drawn around them (λ within
#: 1e±150, ``check_lambdas``) and coefficients of about target ÷ column keep room to spare. At
#: 1e74 a run failed in its last figure, on a λ grid past 1e150.
SCALE_RANGE = (1e-50, 1e50)


def check_scale(A: np.ndarray, name: str, columns=None, *, row=lambda i, j: f"row {i}") -> None:
    """Raise if a column of ``A`` (2-D, or a 1-D target) peaks outside :data:`SCALE_RANGE`, naming it and its row.

    ``row(i, j)`` words the row ``i`` of the peak of column ``j`` (a file's reader counts its data
    rows from 1; a streamed reader passes each column's peak alone, and knows its row).

    Such data is not wrong, only out of float64's reach for the quadratic model: the Hessian
    overflowed to inf (an internal error), or a tiny column's square vanished and its
    coefficient came back as a silent zero. Rescaling the column is the fix.
    """
    M = A if A.ndim == 2 else A[:, None]
    if M.size == 0:
        return
    peak = np.maximum(M.max(axis=0), -M.min(axis=0))  # max |·| per column without a copy of A
    lo, hi = SCALE_RANGE
    bad = np.flatnonzero((peak > hi) | ((peak > 0) & (peak < lo)))
    if not bad.size:
        return
    j = int(bad[0])
    i = int(np.argmax(np.abs(M[:, j])))
    what = name if A.ndim == 1 else (f"{name} column {j}" if columns is None else f"{name} column {columns[j]!r}")
    power = round(float(np.log10(peak[j])))
    fix = f"divide it by 1e{power}" if power > 0 else f"multiply it by 1e{-power}"
    raise DataError(f"{what} peaks at {M[i, j]:.3g} ({row(i, j)}), outside what ridgelens computes in float64 (a "
                    f"column's largest |value| between {lo:g} and {hi:g}, where squares and sums of squares stay "
                    f"finite and nonzero): rescale it, e.g. {fix}")


def check_same_rows(X: np.ndarray, y: np.ndarray) -> None:
    """Raise if ``X`` and ``y`` disagree on the number of samples."""
    if X.shape[0] != y.shape[0]:
        raise DataError(
            f"shape mismatch: X has {X.shape[0]} rows but y has {y.shape[0]} entries; "
            "they must describe the same samples"
        )


def check_objective(objective, who: str) -> None:
    """Refuse what is no objective (None, an array, …) before ``who`` asks it for anything."""
    if objective is None:
        raise RidgelensError(f"{who} needs an objective (LeastSquares, Logistic, TorchObjective, …), got None")
    if not hasattr(objective, "n_params"):
        raise RidgelensError(f"{who} needs an objective with n_params, gradient and hvp; got "
                             f"{type(objective).__name__}")


def check_heldout_objective(val_objective, n: int) -> None:
    """Refuse a held-out objective that is not of the analyzed model (``n`` parameters) or no objective."""
    if not callable(getattr(val_objective, "value", None)) or getattr(val_objective, "n_params", None) != n:
        raise RidgelensError(f"val_objective must be the held-out tokens of the analyzed model ({n} parameters; "
                             f"objective.on(val_tokens)), got {type(val_objective).__name__} with "
                             f"{getattr(val_objective, 'n_params', 'no')} parameters")


#: Positive λ outside this range are refused (float64 arithmetic on the path over- or underflows).
LAMBDA_RANGE = (1e-150, 1e150)


def check_reals(values, name: str) -> np.ndarray:
    """``values`` as a float64 array of its shape; any entry that is not a real number is refused, named.

    NumPy would read the string ``"0.1"`` as 0.1, and ``True`` as 1: each is refused with its
    position (``name[i]``) and type. Finiteness and sign are the caller's to check.
    """
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError):
        raise RidgelensError(f"{name} must be numbers, got {values!r}") from None
    listed = isinstance(values, (list, tuple))
    entries = list(_flat_entries(values)) if listed else None  # position i counts entries in reading order
    if raw.dtype.kind not in "iuf" or (listed and any(isinstance(e, (bool, np.bool_)) for e in entries)):
        entries = entries if listed else np.atleast_1d(raw).ravel().tolist()
        for i, entry in enumerate(entries):
            if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Real):
                where = "" if raw.ndim == 0 else f"[{i}]"
                hint = "; a string such as '0.1' is not read as one" if isinstance(entry, str) else ""
                raise RidgelensError(f"{name}{where} must be a real number, got {entry!r} "
                                     f"({type(entry).__name__}){hint}")
    return raw.astype(np.float64)


def _flat_entries(values):
    """The entries of nested lists, tuples and arrays in reading order (a bool among floats is still a bool)."""
    if isinstance(values, (list, tuple)):
        for v in values:
            yield from _flat_entries(v)
    elif isinstance(values, np.ndarray):
        yield from values.ravel().tolist()
    else:
        yield values


def _refuse_nonfinite(a: np.ndarray, name: str) -> None:
    """Refuse the first NaN or infinity in ``a``, naming ``name``."""
    if not np.all(np.isfinite(a)):
        raise RidgelensError(f"{name} must be finite, got {a[~np.isfinite(a)][0]}")


def check_nonnegative(values, name: str) -> np.ndarray:
    """``values`` (any shape) as float64, each a finite real number ≥ 0; the first bad entry is named."""
    a = check_reals(values, name)
    _refuse_nonfinite(a, name)
    if np.any(a < 0):
        raise RidgelensError(f"{name} must be >= 0, got {a[a < 0][0]:g}")
    return a


def check_eigenvalues(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array (a single number becomes one) of finite real numbers, named when not."""
    s = np.atleast_1d(check_reals(values, name))
    if s.ndim != 1:
        raise RidgelensError(f"{name} must be a 1-D sequence of eigenvalues, got shape {s.shape}")
    _refuse_nonfinite(s, name)
    return s


def check_lambdas(lambdas, name: str = "lambdas") -> np.ndarray:
    """Return a 1-D float64 array of finite, non-negative penalties (0, or within :data:`LAMBDA_RANGE`)."""
    if lambdas is None:
        raise RidgelensError(f"{name} must be given: one or more λ ≥ 0")
    lam = np.atleast_1d(check_reals(lambdas, name))  # float64 already
    if lam.ndim != 1 or lam.size == 0:
        raise RidgelensError(f"{name} must be a non-empty 1-D sequence, got shape {lam.shape}")
    _refuse_nonfinite(lam, name)
    if np.any(lam < 0):
        raise RidgelensError(
            f"{name} must be >= 0 (the penalty is (λ/2)‖θ‖²), got {lam[lam < 0][0]:g}"
        )
    lo, hi = LAMBDA_RANGE
    out = (lam != 0) & ((lam < lo) | (lam > hi))
    if np.any(out):
        raise RidgelensError(f"{name} must be 0 or between {lo:g} and {hi:g}, got {lam[out][0]:g}: beyond that, "
                             "float64 over- or underflows in σ+λ, n·λ and λ² on the way to the path and its figures")
    return lam


def check_lambda(value, name: str = "lam") -> float:
    """One λ ≥ 0 by :func:`check_lambdas`' rules, as a float; a sequence is refused, naming ``name``."""
    lam = check_lambdas(value, name)
    if lam.size != 1 or np.ndim(value) != 0:
        raise RidgelensError(f"{name} must be one number (a single λ ≥ 0), got {value!r}")
    return float(lam[0])


def check_tolerance(tol, name: str) -> float:
    """Return ``tol`` as a float >= 0 (NaN, a negative number or a string is refused, naming ``name``)."""
    try:
        t = float(tol)
    except (TypeError, ValueError):
        t = np.nan
    if not t >= 0:
        raise RidgelensError(f"{name} must be a number >= 0, got {tol!r}")
    return t


def check_flag(value, name: str, *, none: bool = False) -> bool | None:
    """``value`` as a bool (numpy's too), or None where ``none`` allows it; anything else is refused, naming ``name``.

    A string such as "no" is truthy: taken as a flag it would mean the opposite of what it says.
    """
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise RidgelensError(f"{name} must be True or False{', or None' if none else ''}, got {value!r}")


def check_bytes(value, name: str) -> int:
    """A number of bytes ≥ 0 as an int (2e9 is taken; a bool, a string, NaN, inf or a fraction is refused, naming ``name``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not np.isfinite(value) or value < 0 or value != int(value):
        raise RidgelensError(f"{name} must be a whole number of bytes ≥ 0, got {value!r}")
    return int(value)


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as an int in [0, 2^63) (a random generator's seed); a string, float or bool is refused, naming ``name``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise RidgelensError(f"{name} must be an integer in [0, 2^63) (the seed of a random generator), got {seed!r}")
    return int(seed)


def distinct(lam) -> str:
    """How many different λ a grid holds, for a message (``"1 distinct of 2"`` when some repeat)."""
    k = np.unique(lam).size
    return f"{k}" if k == np.size(lam) else f"{k} distinct of {np.size(lam)}"


def check_vector(v, n: int, name: str) -> np.ndarray:
    """Return ``v`` as a finite float64 vector of length ``n``."""
    refuse_complex(v, name, RidgelensError)
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise RidgelensError(f"{name} must be {n} numbers, got {type(v).__name__}") from None
    if a.shape != (n,):
        raise RidgelensError(f"{name} must have shape ({n},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise RidgelensError(f"{name} contains non-finite values (first at index {int(np.argmin(np.isfinite(a)))})")
    return a


def check_mask(mask, n: int) -> np.ndarray:
    """Return a boolean penalty mask of length ``n`` (True = penalized)."""
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n,):
        raise RidgelensError(f"penalized must be a boolean array of shape ({n},), got {m.dtype} {m.shape}")
    if not m.any():
        raise RidgelensError("penalized selects no parameter: at least one must be penalized")
    return m


def check_nonnegative_entries(v: np.ndarray, name: str, *, error=DataError, counted: str = "",
                              plural: str = "values", zero: str = "") -> None:
    """Refuse a non-finite or negative entry of ``v``, naming the first one and the count.

    ``counted`` follows the count ("non-finite weight(s) in all"), ``plural`` names the entries
    in the rule, ``zero`` says what an entry of 0 means. Raises ``error``.
    """
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raise error(f"{name}[{i}] = {v[i]} is not finite ({int(bad.sum())} non-finite{counted} in all); "
                    f"{plural} must be finite and >= 0")
    neg = v < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise error(f"{name}[{i}] = {v[i]:g} is negative ({int(neg.sum())} negative{counted} in all); "
                    f"{plural} must be >= 0" + (f" ({zero})" if zero else ""))
