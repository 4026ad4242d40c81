"""Atomic file output: a reader sees the old file or the whole new one, never a part.

Temporary entries are named ``.ridgelens-tmp-…`` (short, whatever the target's name, so a
name at the file system's limit still works) and live beside their target, on the same
file system, so that the final ``rename`` is one atomic step. Their names carry this host and
process (:func:`owner_prefix`): a process killed with SIGKILL cannot remove its own, so the
next write beside them does, once that process is gone (:func:`remove_stale`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

#: Prefix of every temporary file or folder ridgelens creates beside an output.
TMP_PREFIX = ".ridgelens-tmp-"


def _host_prefix() -> str:
    return f"{TMP_PREFIX}{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]}-"


def owner_prefix() -> str:
    """``.ridgelens-tmp-<host digest>-<pid>-``: how this process names its temporary entries."""
    return f"{_host_prefix()}{os.getpid()}-"


def remove_stale(folder) -> None:
    """Remove the temporary entries in ``folder`` of ridgelens processes of this host that no longer run.

    What a run killed with SIGKILL (or the OOM killer) left behind. Another host's entries (a
    shared file system) and those of a live process are kept: only their owner may remove them.
    """
    prefix = _host_prefix()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return
    for e in entries:
        pid = e.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            shutil.rmtree(e.path) if e.is_dir(follow_symlinks=False) else os.unlink(e.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_with(path, write) -> Path:
    """Like :func:`atomic_write_bytes`, but ``write(fh)`` streams into the temporary file.

    Large states (a Lanczos basis of gigabytes) go to disk without a second copy in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=owner_prefix(), suffix=".tmp", dir=path.parent)
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
