"""A streamed, C-parsed reader for the plain case of a numeric CSV; anything else goes to the careful one.

The careful reader (``ridgelens.data._load_csv``) holds the file's bytes, its text and a list of
Python rows at once and converts every cell with ``float``: about 10× the file in memory and
~1 MB/s. Most files are plain: an ASCII body of unquoted numbers, one row per line. Those are
read here in blocks of lines by NumPy's C parser (``np.loadtxt``), so the peak is the numeric
data twice (the blocks, then their concatenation) plus one block of text.

Whatever this reader does not handle exactly as the careful one would (quotes, non-ASCII
bytes, blank cells, a ragged row, a cell ``float`` reads and NumPy does not, fewer than two
rows) makes it return None, and the careful reader reads the file again and says what is
wrong with the same message as before. It never accepts a file the careful reader refuses:
every value it returns is a float that the careful reader would also have parsed.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import numpy as np

from ridgelens.errors import DataError

BLOCK = 4 * 2**20  # bytes of text parsed at a time


def read_plain_csv(path: Path) -> tuple[list[str], np.ndarray] | None:
    """``(header, values)`` of a plain numeric CSV read in blocks, or None to let the careful reader decide."""
    try:
        with path.open("rb") as fh:
            first = fh.readline()
            if first.startswith(codecs.BOM_UTF8):
                first = first[len(codecs.BOM_UTF8):]
            if b'"' in first:
                return None
            try:
                header = [h.strip() for h in next(csv.reader([first.decode("utf-8").rstrip("\r\n")]))]
            except (UnicodeDecodeError, StopIteration, csv.Error):
                return None
            blocks, ncol = [], len(header)
            while True:
                chunk = fh.read(BLOCK)
                if not chunk:
                    break
                chunk += fh.readline()  # end the block at a line's end
                values = _parse_block(chunk, ncol)
                if values is None:
                    return None
                if values.size:
                    blocks.append(values)
                del chunk
    except OSError as exc:
        raise DataError(f"CSV file {path} cannot be read: {exc.strerror or exc}") from None
    rows = sum(b.shape[0] for b in blocks)
    if rows < 2:
        return None
    out = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return header, out


def _parse_block(chunk: bytes, ncol: int) -> np.ndarray | None:
    if not chunk.isascii() or b'"' in chunk or b"_" in chunk:  # float() reads 1_0; NumPy does not
        return None
    text = chunk.decode("ascii")
    if not text.strip():
        return np.empty((0, ncol))
    try:
        values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    if values.shape[1] != ncol or values.shape[0] != _count_rows(text):
        return None
    return values


def _count_rows(text: str) -> int:
    """Non-blank lines (the careful reader skips blank ones too): a skipped line must not hide a row."""
    return sum(1 for line in text.splitlines() if line.strip())
