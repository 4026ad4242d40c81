"""A streamed, C-parsed reader for the plain case of a numeric CSV; anything else goes to the careful one.

The careful reader (``ridgelens.data._load_csv``) holds the file's bytes, its text and a list of
Python rows at once and converts every cell with ``float``: about 27× the numeric data in memory.
Most files are plain: an ASCII body of unquoted numbers, one row per line. Those are read here
in blocks of about :data:`BLOCK` bytes, each parsed by a C parser, and every block is copied
straight into the preallocated feature matrix and target vector (sized from the first block's
bytes per row, grown in place if that was short, trimmed at the end): the peak is the data once
plus one block, never a list of blocks and their concatenation.

The parser: pandas' C reader when pandas is installed and the file is large enough to pay for
importing it (:data:`PANDAS_FROM`; about 4× NumPy's speed per byte; pandas ≥ 3.1
converts with fast_float, older ones are asked for the ``round_trip`` converter, CPython's own,
so that every value is the float ``float()`` gives), else NumPy's ``loadtxt``. The pandas path
takes only the bytes ``0-9 . , - + e E`` and line ends (a ``+`` only inside an exponent: pandas
reads a leading ``+`` through a less precise route); NumPy's, any ASCII but quotes and ``_``.

Whatever this reader does not handle exactly as the careful one would (quotes, non-ASCII
bytes, blank cells, a ragged row, a cell ``float`` reads and the parser does not, fewer than two
rows, a header the careful reader refuses) makes it give up (None), and the careful reader reads
the file again and says what is wrong with the same message as before. It never accepts a file
the careful reader refuses, and every value it returns is the float the careful reader parses.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ridgelens.errors import DataError

BLOCK = 2**20  # bytes of text parsed at a time: pandas needs several times a block while it parses one
#: Files from this size on are parsed by pandas (when installed): importing it costs 0.3–0.8 s (and
#: 28 MiB of code), which NumPy's parser, about 4× slower per byte, spends on some 50 MiB (bench_io at
#: 40 MiB: 4.3× the careful reader's speed and 3.15× the data in memory with pandas, 3.7× and 1.72×
#: with NumPy). Below it, pandas only when already imported.
PANDAS_FROM = 64 * 2**20
_PANDAS_BYTES = b"0123456789.,-+eE\r\n"  # what the pandas path parses; anything else: NumPy's rules or careful


class NotPlain(Exception):
    """The file is not plain: the careful reader must read it."""


def read_plain_csv(path: Path, target: str | None,
                   check_header: Callable[[Path, list], None]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """``(header, X, y)`` of a plain numeric CSV, or None to let the careful reader decide.

    ``target`` names the column for ``y`` (default: the last); ``check_header(path, header)``
    raises the careful reader's :class:`DataError` for a header it refuses (then: None).
    """
    head = read_header(path, check_header)
    if head is None:
        return None
    header, offset = head
    name = header[-1] if target is None else target
    if name not in header:
        return None
    t = header.index(name)
    try:
        X, y = _fill(iter_blocks(path, offset, len(header)), t, path.stat().st_size - offset)
    except NotPlain:
        return None
    if X.shape[0] < 2:
        return None
    return header, X, y


def read_header(path: Path, check_header: Callable[[Path, list], None]) -> tuple[list[str], int] | None:
    """The header row and the byte offset of the body, or None when the careful reader must decide."""
    try:
        with path.open("rb") as fh:
            first = fh.readline()
            offset = fh.tell()
    except OSError as exc:
        raise DataError(f"CSV file {path} cannot be read: {exc.strerror or exc}") from None
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8):]
    if b'"' in first:
        return None
    try:
        header = [h.strip() for h in next(csv.reader([first.decode("utf-8").rstrip("\r\n")]))]
        check_header(path, header)
    except (UnicodeDecodeError, StopIteration, csv.Error, DataError):
        return None
    return header, offset


def iter_blocks(path: Path, offset: int, ncol: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(values, n_bytes)`` for each block of whole lines from ``offset`` on; :class:`NotPlain` when one is not."""
    parse = _block_parser(path.stat().st_size)
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(BLOCK):
                chunk += fh.readline()  # end the block at a line's end
                values = parse(chunk, ncol)
                if values is None:
                    raise NotPlain
                yield values, len(chunk)
    except OSError as exc:
        raise DataError(f"CSV file {path} cannot be read: {exc.strerror or exc}") from None


def _fill(blocks, t: int, n_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Copy each block's columns but ``t`` into X and column ``t`` into y, both allocated once."""
    X, y, rows, cap = None, np.empty(0), 0, 0
    for values, size in blocks:
        m, d = values.shape[0], values.shape[1] - 1
        if X is None:
            X = np.empty((0, d))
        if rows + m > cap:  # first block: the rows its bytes per row predict; then grow in place
            cap = max(rows + m, int(1.05 * m * n_bytes / size) + 16 if not cap else cap + cap // 2)
            X.resize((cap, d), refcheck=False)
            y.resize(cap, refcheck=False)
        X[rows:rows + m, :t] = values[:, :t]
        X[rows:rows + m, t:] = values[:, t + 1:]
        y[rows:rows + m] = values[:, t]
        rows += m
    if X is None:
        raise NotPlain  # no data rows: the careful reader says so
    X.resize((rows, X.shape[1]), refcheck=False)  # trimmed in place (the tail was never touched)
    y.resize(rows, refcheck=False)
    return X, y


def _block_parser(n_bytes: int) -> Callable[[bytes, int], np.ndarray | None]:
    if n_bytes < PANDAS_FROM and "pandas" not in sys.modules:
        return _parse_numpy
    try:
        import pandas as pd
    except ImportError:
        return _parse_numpy
    version = tuple(int(p) for p in pd.__version__.split(".")[:2] if p.isdigit())
    options = {} if version >= (3, 1) else {"float_precision": "round_trip"}  # CPython's float() conversion

    def parse(chunk: bytes, ncol: int) -> np.ndarray | None:
        if not chunk.strip():
            return np.empty((0, ncol))
        if chunk.translate(None, _PANDAS_BYTES) or not _plus_in_exponents_only(chunk):
            return _parse_numpy(chunk, ncol)
        try:
            values = pd.read_csv(io.BytesIO(chunk), header=None, dtype=np.float64, na_filter=False,
                                 quoting=csv.QUOTE_NONE, engine="c", **options).to_numpy()
        except (ValueError, TypeError, OverflowError):  # pandas' ParserError and EmptyDataError are ValueErrors
            return None
        return _checked(values, chunk, ncol)

    return parse


def _plus_in_exponents_only(chunk: bytes) -> bool:
    b = np.frombuffer(chunk, dtype=np.uint8)
    plus = np.flatnonzero(b == ord("+"))
    return not plus.size or (plus[0] > 0 and bool(np.isin(b[plus - 1], np.frombuffer(b"eE", np.uint8)).all()))


def _parse_numpy(chunk: bytes, ncol: int) -> np.ndarray | None:
    if not chunk.isascii() or b'"' in chunk or b"_" in chunk:  # float() reads 1_0; NumPy does not
        return None
    text = chunk.decode("ascii")
    if not text.strip():
        return np.empty((0, ncol))
    try:
        values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    return _checked(values, chunk, ncol)


def _checked(values: np.ndarray, chunk: bytes, ncol: int) -> np.ndarray | None:
    """The block's finite values if they are one full row per non-blank line (a short row pads with NaN), else None.

    A NaN or an infinity goes to the careful reader, which names its file line.
    """
    lines = int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))) + (not chunk.endswith(b"\n"))
    if values.ndim != 2 or values.shape[1] != ncol or not np.isfinite(values).all():
        return None
    if values.shape[0] != lines and values.shape[0] != _count_rows(chunk.decode("ascii")):
        return None
    return values


def _count_rows(text: str) -> int:
    """Non-blank lines (the careful reader skips blank ones too): a skipped line must not hide a row."""
    return sum(1 for line in text.splitlines() if line.strip())
