"""Shared CLI output: a run's folder as one transaction, figures, plain tables.

A run builds every output in a staging folder beside its target (same parent, so the same
file system; named ``.ridgelens-tmp-…``), fsyncs it, and moves it into place with one
``rename`` at the end. A run that fails or is interrupted at any point removes the staging
folder and leaves the previous outputs exactly as they were. Every problem with the output
location that can be found before computing is found then, by trying (as root, permission
bits say nothing, so writability is probed by creating and removing a temporary entry).
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ridgelens._io import (
    _umask,
    atomic_write_bytes,
    fsync_dir,
    fsync_tree,
    owner_prefix,
    remove_stale,
)
from ridgelens._table import table  # noqa: F401  (re-exported: the commands print their tables with it)
from ridgelens.cli._signals import critical
from ridgelens.errors import OutputError

#: What ``--overwrite`` may delete: only names ridgelens writes into an output folder.
OWN_FILES = ("results.json", "demo.json", "model.pt", "*.png", "*.html")


def new_figure(width: float = 6.4, height: float = 4.8):
    """A matplotlib Figure not tied to pyplot (no backend, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path: Path) -> Path:
    """Render ``fig`` to PNG in memory, then write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


def checked_path(raw, option: str, what: str = "folder", *, replaced: bool = True) -> Path:
    """``raw`` as an absolute path with symbolic links resolved, or an OutputError saying what is wrong.

    Refuses an empty name, a NUL character, a component longer than the file system allows,
    a path over PATH_MAX, the root, and (when the folder will be ``replaced`` as a whole) the
    current folder or one that contains it.
    """
    if raw is None or str(raw) == "":
        raise OutputError(f"{option} is empty; give the {what} to write")
    raw = str(raw)
    if "\x00" in raw:
        raise OutputError(f"{option} {raw!r} contains a NUL character")
    path = Path(os.path.realpath(raw))
    anchor = _existing_ancestor(path)
    name_max, path_max = _limit(anchor, "PC_NAME_MAX", 255), _limit(anchor, "PC_PATH_MAX", 4096)
    for part in path.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"{option}: the name {_short(part)!r} is {len(os.fsencode(part))} bytes long; "
                              f"this file system allows {name_max}")
    if len(os.fsencode(str(path))) >= path_max:
        raise OutputError(f"{option}: the path is {len(os.fsencode(str(path)))} bytes long; "
                          f"this system allows {path_max - 1}")
    if path == Path(path.anchor):
        raise OutputError(f"{option} {raw} is the root folder; give a {what} to write")
    if replaced:
        try:
            cwd = Path.cwd().resolve()
        except OSError:
            cwd = None
        if cwd is not None and (cwd == path or path in cwd.parents):
            raise OutputError(f"{option} {raw} is the current folder or contains it; give a new folder's name")
    return path


def prepare_parent(path: Path, option: str) -> list[Path]:
    """Create ``path``'s missing parent folders and check new entries can be made there.

    Returns the folders it created (outermost first), for :func:`remove_empty` on failure.
    """
    created: list[Path] = []
    missing = []
    p = path.parent
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{option} {path}: {p} is a file, not a folder")
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except OSError as exc:
                raise OutputError(f"{option} {path}: cannot create the folder {d} ({_reason(exc)})") from None
            created.append(d)
        probe(path.parent, option, f"cannot create files in {path.parent}")
    except BaseException:
        remove_empty(created)
        raise
    return created


def prepare_checkpoint(raw, out: Path) -> list[Path]:
    """Check ``--checkpoint`` before computing and create it; returns the folders created.

    It must not be a file, nor lie inside ``--out`` (that folder is replaced as a whole, and
    a checkpoint in it would make the resumed run's ``--out`` non-empty).
    """
    ck = checked_path(raw, "--checkpoint", replaced=False)
    if ck == out or out in ck.parents:
        raise OutputError(f"--checkpoint {raw} lies inside --out; the output folder is replaced as a whole, "
                          "so keep checkpoints outside it")
    if ck.exists() and not ck.is_dir():
        raise OutputError(f"--checkpoint {raw} exists and is not a folder; give a folder for the checkpoints")
    created = prepare_parent(ck, "--checkpoint")
    if not ck.is_dir():
        try:
            os.mkdir(ck)
        except OSError as exc:
            remove_empty(created)
            raise OutputError(f"--checkpoint {raw}: cannot create the folder ({_reason(exc)})") from None
        created.append(ck)
    try:
        probe(ck, "--checkpoint", f"cannot create files in {raw}")
    except OutputError:
        remove_empty(created)
        raise
    return created


def probe(folder: Path, option: str, what: str) -> None:
    """Create and remove a temporary folder in ``folder``; an OutputError if that fails."""
    try:
        tmp = tempfile.mkdtemp(prefix=owner_prefix(), dir=folder)
        os.rmdir(tmp)
    except OSError as exc:
        raise OutputError(f"{option}: {what} ({_reason(exc)})") from None


def remove_empty(folders) -> None:
    """Remove the given folders, innermost first, where they are still empty."""
    for d in reversed(list(folders)):
        try:
            os.rmdir(d)
        except OSError:
            pass


@contextmanager
def staged_folder(raw, *, overwrite: bool = False, option: str = "--out"):
    """Yield a staging folder; on success move it into place as ``raw`` in one step.

    ``raw`` must be absent, an empty folder, or (with ``overwrite``) a folder holding only
    files ridgelens writes (:data:`OWN_FILES`): that old folder is renamed aside, the new one
    renamed in, then the old one deleted. On any exception, or SIGINT/SIGTERM (see
    :mod:`ridgelens.cli._signals`), the staging folder and the parents created for it are
    removed and the target is untouched.
    """
    target = checked_path(raw, option)
    _check_existing(target, raw, overwrite, option)
    created = prepare_parent(target, option)
    remove_stale(target.parent)  # what a run killed with SIGKILL left here
    try:
        stage = Path(tempfile.mkdtemp(prefix=owner_prefix(), dir=target.parent))
    except OSError as exc:
        remove_empty(created)
        raise OutputError(f"{option}: cannot create files in {target.parent} ({_reason(exc)})") from None
    try:
        os.chmod(stage, 0o777 & ~_umask())
        yield stage
        with critical():
            _commit(stage, target, raw, overwrite, option)
    except BaseException:
        with critical():
            shutil.rmtree(stage, ignore_errors=True)
            remove_empty(created)
        raise


def _check_existing(target: Path, raw, overwrite: bool, option: str) -> None:
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_dir():
        raise OutputError(f"{option} {raw} exists and is not a folder; give a folder's name")
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        raise OutputError(f"{option} {raw} cannot be listed ({_reason(exc)})") from None
    if entries and not overwrite:
        shown = ", ".join(entries[:4]) + (", …" if len(entries) > 4 else "")
        raise OutputError(f"{option} {raw} already holds files ({shown}); pass --overwrite to replace "
                          "it, or choose another folder")
    if entries:
        foreign = [e for e in entries
                   if (target / e).is_dir() or not any(fnmatch.fnmatchcase(e, pat) for pat in OWN_FILES)]
        if foreign:
            raise OutputError(f"{option} {raw} holds {', '.join(foreign[:4])}{', …' if len(foreign) > 4 else ''}, "
                              "which ridgelens did not write; --overwrite only replaces a folder of ridgelens "
                              "outputs. Move those out or choose another folder")
    probe(target, option, f"{raw} is read-only")


def _commit(stage: Path, target: Path, raw, overwrite: bool, option: str) -> None:
    fsync_tree(stage)
    parent = target.parent
    if not (overwrite and target.is_dir() and any(os.scandir(target))):
        try:
            os.rename(stage, target)  # also replaces an empty folder, atomically
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise OutputError(f"{option} {raw} was filled by someone else during the run; nothing was "
                                  "written. Pass --overwrite or choose another folder") from None
            raise OutputError(f"{option} {raw}: cannot move the outputs into place ({_reason(exc)})") from None
        fsync_dir(parent)
        return
    aside = parent / f"{owner_prefix()}old-{secrets.token_hex(6)}"
    try:
        os.rename(target, aside)
    except OSError as exc:
        raise OutputError(f"{option} {raw}: cannot move the old outputs aside ({_reason(exc)})") from None
    try:
        os.rename(stage, target)
    except BaseException:
        os.rename(aside, target)
        raise
    fsync_dir(parent)
    try:
        shutil.rmtree(aside)
    except OSError as exc:
        print(f"ridgelens: warning: the new outputs are in place, but the old ones in {aside} could not be "
              f"deleted ({_reason(exc)}); delete that folder", file=sys.stderr)


def _existing_ancestor(path: Path) -> Path:
    p = path
    while True:
        try:
            if p.is_dir():
                return p
        except OSError:
            pass
        if p == p.parent:
            return p
        p = p.parent


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError):
        return default


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "…"

