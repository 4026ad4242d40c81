"""Atomic file output: a reader sees the old file or the whole new one, never a part.

Temporary entries are named ``.ridgelens-tmp-…`` (short, whatever the target's name, so a
name at the file system's limit still works) and live beside their target, on the same
file system, so that the final ``rename`` is one atomic step.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

#: Prefix of every temporary file or folder ridgelens creates beside an output.
TMP_PREFIX = ".ridgelens-tmp-"


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_with(path, write) -> Path:
    """Like :func:`atomic_write_bytes`, but ``write(fh)`` streams into the temporary file.

    Large states (a Lanczos basis of gigabytes) go to disk without a second copy in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the data files were synced
        pass
    finally:
        os.close(fd)


def fsync_tree(root) -> None:
    """Flush every file and folder under ``root`` to disk (deepest first), then ``root`` itself."""
    for here, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(here)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _nan_to_none(o):
    if isinstance(o, float):
        return None if not np.isfinite(o) else o
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as JSON (NumPy arrays as lists, NaN/Inf as null) atomically."""
    plain = _nan_to_none(json.loads(json.dumps(obj, default=_default, allow_nan=True)))
    text = json.dumps(plain, indent=1, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode())
