"""Data sets for the CLI and examples: scikit-learn's bundled sets and CSV files."""

from __future__ import annotations

import codecs
import csv
import io
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ridgelens._validation import SCALE_RANGE, check_finite_matrix, check_finite_vector, check_scale
from ridgelens.data._fastcsv import NotPlain, iter_blocks, read_header, read_plain_csv
from ridgelens.errors import DataError

BUILTIN = ("diabetes", "breast_cancer", "digits")

# The seeds' 2-D quadratic ½(θ − θ̂)ᵀH(θ − θ̂): a steep and a flat direction, rotated by 30°.
_ANGLE = np.deg2rad(30.0)
DEMO_Q = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE)], [np.sin(_ANGLE), np.cos(_ANGLE)]])
DEMO_SIGMA = np.array([2.0, 0.25])
DEMO_H = DEMO_Q @ np.diag(DEMO_SIGMA) @ DEMO_Q.T
DEMO_THETA = np.array([2.0, 1.5])
DEMO_LAMBDAS = np.array([0.1, 0.5, 2.0])


@dataclass(frozen=True)
class Dataset:
    """Features and target, ready for an objective.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    feature_names : list of str
    target_name : str
    name : str
    standardized : bool
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: list
    target_name: str
    name: str
    standardized: bool = False


def load_dataset(spec: str, *, target: str | None = None, standardize: bool = False,
                 positive_class: float | None = None) -> Dataset:
    """Load ``"diabetes"``, ``"breast_cancer"``, ``"digits"`` (bundled with scikit-learn) or ``"csv:PATH"``.

    Parameters
    ----------
    spec : str
        A built-in name, ``csv:PATH`` or ``tensors:PATH``. A CSV file needs a header row and numeric
        cells; a tensors file (``.npz`` or ``.pt``, see :mod:`ridgelens.data._tensors`) holds X of
        shape (n, d) and y of shape (n,).
    target : str, optional
        The CSV column to predict (default: the last column). Not allowed for built-ins.
    standardize : bool, default False
        Scale every feature to mean 0 and standard deviation 1 (constant columns are only centred).
    positive_class : float, optional
        Turn y into 0/1 labels, 1 where ``y == positive_class`` (e.g. digits for logistic).
    """
    if not isinstance(spec, str) or not spec:
        raise DataError(f"data must be one of {', '.join(BUILTIN)}, csv:PATH or tensors:PATH, got {spec!r}")
    if spec.startswith("csv:"):
        if not spec[4:]:
            raise DataError("csv: needs a file path, e.g. csv:data.csv")
        ds = _load_csv(Path(spec[4:]), target)
    elif spec.startswith("tensors:"):
        ds = _load_tensors_dataset(spec[8:], target)
    elif spec in BUILTIN:
        if target is not None:
            raise DataError(f"--target is only for csv: data; {spec!r} has a fixed target")
        ds = _load_builtin(spec)
    else:
        raise DataError(f"unknown data set {spec!r}: expected one of {', '.join(BUILTIN)}, csv:PATH or tensors:PATH")
    X, y = ds.X, ds.y
    row = (lambda i, j: f"data row {i + 1}") if spec.startswith("csv:") else (lambda i, j: f"row {i}")
    check_scale(X, f"{ds.name} features", ds.feature_names, row=row)
    check_scale(y, f"{ds.name} target {ds.target_name!r}", row=row)
    if positive_class is not None:
        hits = y == positive_class
        if not hits.any():
            raise DataError(f"positive_class={float(positive_class)!r} does not occur in the target "
                            f"(values: {', '.join(repr(float(v)) for v in np.unique(y)[:10])})")
        y = hits.astype(np.float64)
    if standardize:
        mu, sd = X.mean(axis=0), X.std(axis=0)
        X = (X - mu) / np.where(sd > 0, sd, 1.0)
    return Dataset(X=X, y=y, feature_names=ds.feature_names, target_name=ds.target_name,
                   name=ds.name, standardized=standardize)


def stream_least_squares(spec: str, *, target: str | None = None, fit_intercept: bool = True,
                         penalize_intercept: bool = False):
    """Least squares on a CSV file read block by block, never holding X: a :class:`StreamedLeastSquares`.

    ``spec`` is ``csv:PATH`` (or a path). A plain file (see :mod:`ridgelens.data._fastcsv`) passes
    once, block by block, into the centred moments of its columns: the peak memory is one block
    (about 1 MiB of text and what the parser needs for it) plus (d + 1)² numbers. Any other file (quotes, another encoding, a pipe,
    a bad cell) is read by the careful reader, in memory, with the same checks and messages as
    :func:`load_dataset`. See :mod:`ridgelens.objectives.streamed` for what needs X and is refused.
    """
    from ridgelens.objectives.streamed import Moments, StreamedLeastSquares

    path = Path(spec[4:] if isinstance(spec, str) and spec.startswith("csv:") else spec)
    read_input(path, "CSV file", content=False)
    head = None if stat.S_ISFIFO(path.stat().st_mode) else read_header(path, _check_header)
    name = None if head is None else (head[0][-1] if target is None else target)
    moments = None
    if head is not None and name in head[0]:
        header, offset = head
        moments = Moments(len(header))
        peak, at = np.zeros((1, len(header))), np.zeros(len(header), dtype=int)  # each column's largest |value|, its row
        try:
            for values, _ in iter_blocks(path, offset, len(header)):
                if not np.isfinite(values).all():  # the careful reader names the cell
                    raise NotPlain
                i = np.abs(values).argmax(axis=0) if values.size else np.zeros(0, dtype=int)
                top = values[i, np.arange(values.shape[1])] if values.size else peak[0]
                more = np.abs(top) > np.abs(peak[0])
                peak[0, more], at[more] = top[more], moments.n + i[more]
                if np.abs(peak).max() > SCALE_RANGE[1]:  # too large already (and before its squares overflow)
                    check_scale(peak, path.name, header, row=lambda _i, j: f"data row {at[j] + 1}")
                moments.add(values)
        except NotPlain:
            moments = None
        if moments is not None:  # the whole column's peak, not a block's
            check_scale(peak, path.name, header, row=lambda _i, j: f"data row {at[j] + 1}")
    if moments is None or moments.n < 2:  # not plain: read in memory, with the careful reader's checks
        ds = load_dataset(f"csv:{path}", target=target)
        header, name = [*ds.feature_names, ds.target_name], ds.target_name
        moments = Moments.of(np.column_stack([ds.X, ds.y]))
    t = header.index(name)
    return StreamedLeastSquares(moments, t, fit_intercept=fit_intercept, penalize_intercept=penalize_intercept,
                                feature_names=[h for k, h in enumerate(header) if k != t], target_name=name)


def _load_builtin(name: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = [str(f) for f in bunch.feature_names]
    return Dataset(X=np.asarray(bunch.data, dtype=np.float64), y=np.asarray(bunch.target, dtype=np.float64),
                   feature_names=names, target_name="target", name=name)


def _load_csv(path: Path, target: str | None) -> Dataset:
    """Read a numeric CSV with a header row; every problem is a :class:`DataError` naming the file.

    A plain file (unquoted ASCII numbers) is streamed through NumPy's parser
    (:mod:`ridgelens.data._fastcsv`); anything else, and every error message, comes from the
    careful reader below.
    """
    read_input(path, "CSV file", content=False)  # the file's checks (missing, a folder, a device) first
    plain = None if stat.S_ISFIFO(path.stat().st_mode) else read_plain_csv(path, target, _check_header)  # a pipe is read once
    if plain is not None:
        header, X, y = plain
        return _dataset(path, header, X, y, header[-1] if target is None else target)
    text = _read_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header_row = next(reader, None)
        if header_row is None:
            raise DataError(f"{path} is empty: expected a header row and data rows")
        header = [h.strip() for h in header_row]
        _check_header(path, header)
        body, lines = [], []
        start = reader.line_num + 1
        for row in reader:  # a quoted cell may span lines: a record is named by the lines it spans
            if any(c.strip() for c in row):
                body.append(row)
                lines.append(f"line {start}" if reader.line_num == start else f"the record on lines {start}-{reader.line_num}")
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file at line {reader.line_num} ({exc})") from None
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    if target is not None and target not in header:
        raise DataError(f"unknown target column {target!r} in {path}; columns are: {', '.join(header)}")
    values = np.empty((len(body), len(header)))
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: {lines[i]} has {len(row)} cells, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: column {header[j]!r} is not numeric: {lines[i]} holds {cell!r} "
                    f"(column {j + 1}; line 1 is the header); encode it as numbers or drop the column"
                ) from None
    bad = ~np.isfinite(values)
    if bad.any():  # named by file line and column (the fast reader leaves such files to this one)
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{path}: column {header[j]!r} holds {body[i][j].strip()!r} at {lines[i]} (column "
                        f"{j + 1}; line 1 is the header), {int(bad.sum())} non-finite value(s) in all; remove or "
                        "impute those rows first")
    if len(body) < 2:
        raise DataError(f"{path} has a single data row ({lines[0]}); need at least 2 samples")
    target = header[-1] if target is None else target
    t = header.index(target)
    return _dataset(path, header, np.delete(values, t, axis=1), values[:, t], target)


def _dataset(path: Path, header: list, X: np.ndarray, y: np.ndarray, target: str) -> Dataset:
    """The Dataset of a parsed CSV (``target`` split off into ``y``), NaN and infinities refused."""
    features = [h for h in header if h != target]
    X = check_finite_matrix(X, f"{path.name} features", features)
    y = check_finite_vector(y, f"{path.name} target {target!r}")
    return Dataset(X=X, y=y, feature_names=features, target_name=target, name=path.stem)


def _load_tensors_dataset(text: str, target) -> Dataset:
    """``tensors:PATH`` as a table (X of shape (n, d), y of shape (n,)) for the linear, logistic and MLP models."""
    import torch

    from ridgelens.data._tensors import load_tensors

    if not text:
        raise DataError("tensors: needs a file path, e.g. tensors:data.npz")
    if target is not None:
        raise DataError("--target is only for csv: data; a tensors file holds its target as y")
    X, y = load_tensors(text)
    if X.ndim != 2 or y.ndim != 1:
        raise DataError(f"tensors:{text}: this model needs X of shape (n, d) and y of shape (n,), got "
                        f"{tuple(X.shape)} and {tuple(y.shape)} (other shapes need your own model: "
                        "--model module:factory)")
    for name, t in (("X", X), ("y", y)):  # these models compute in float64: 2^53 + 1 would become 2^53
        if t.is_floating_point() or t.dtype == torch.bool or not t.numel():
            continue
        top = max(int(t.max()), -int(t.min()))  # (abs() of int64's smallest value overflows)
        if top > 2**53:
            raise DataError(f"tensors:{text} {name} holds integers up to {top} in size, past 2^53: float64, in "
                            "which these models compute, cannot tell them apart (2^53 + 1 reads as 2^53)")
    X = X.double().numpy()
    return Dataset(X=X, y=y.double().numpy(), feature_names=[f"x{j}" for j in range(X.shape[1])],
                   target_name="y", name=f"tensors:{text}")


def read_input(path, what: str = "file", content: bool = True) -> bytes | None:
    """The bytes of an input file, or a :class:`DataError` naming it and saying why not.

    ``what`` names the file in messages (``"CSV file"``, ``"--weights file"``, …). A folder, a
    device, a missing or unreadable file, or a path the system cannot take is refused; a
    named pipe is read to its end. ``content=False``: the checks only (returns None).
    """
    text = str(path)
    if not text:
        raise DataError(f"the {what} path is empty")
    if "\x00" in text:
        raise DataError(f"the {what} path {text!r} contains a NUL character")
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{what} {path} is a folder, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise DataError(f"{what} {path} is not a regular file (a device or socket?)")
    if not content:  # only the checks: the caller streams the file itself
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def _read_text(path: Path) -> str:
    """The file's text, decoded as UTF-8 (a byte-order mark is dropped), or a DataError saying why not."""
    raw = read_input(path, "CSV file")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
        skipped = len(codecs.BOM_UTF8)
    else:
        skipped = 0
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        hint, source = "", "latin1"
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint, source = " (it starts with a UTF-16 byte-order mark)", "utf-16"
        raise DataError(
            f"{path} is not UTF-8 text{hint}: byte 0x{raw[exc.start]:02x} at offset {exc.start + skipped} "
            f"(line {line}) cannot be decoded; re-encode the file as UTF-8, e.g. "
            f"iconv -f {source} -t utf-8 {path.name} > {path.stem}-utf8.csv"
        ) from None


def _check_header(path: Path, header: list[str]) -> None:
    """Column names must be present, distinct, and a header (not a first row of numbers)."""
    blank = [str(j + 1) for j, h in enumerate(header) if not h]
    if blank:
        raise DataError(f"{path}: the header row has no name for column{'s' if len(blank) > 1 else ''} "
                        f"{', '.join(blank)} (counting from 1); every column needs a distinct name")
    seen: dict[str, list[int]] = {}
    for j, h in enumerate(header):
        seen.setdefault(h, []).append(j + 1)
    dup = [f"{h!r} (columns {', '.join(map(str, cols))})" for h, cols in seen.items() if len(cols) > 1]
    if dup:
        raise DataError(f"{path}: the header row names {'a column' if len(dup) == 1 else 'columns'} more than once: "
                        f"{'; '.join(dup)}; every column needs a distinct name")
    if all(_is_number(h) for h in header):
        raise DataError(f"{path}: the first row ({', '.join(header[:5])}{', …' if len(header) > 5 else ''}) holds "
                        "only numbers; the CSV needs a header row naming the columns")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
