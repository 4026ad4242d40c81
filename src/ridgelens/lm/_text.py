"""Text as byte tokens: the Python standard library's own sources, or a user's text file.

Every machine with Python has the standard library's ``.py`` files, so the built-in language
model trains on real text without a download. The corpus is deterministic: the files under
``sysconfig.get_paths()["stdlib"]`` (not ``site-packages`` or tests), sorted by relative path.
Training and validation are split **by file** (every ``val_every``-th file is validation), so
no validation window shares a file with a training window.
"""

from __future__ import annotations

import codecs
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from ridgelens.errors import DataError

#: Folders of the standard library that are not its own source text (installed packages, tests, caches).
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__", "lib2to3",
              "turtledemo", "__phello__"}


@dataclass(frozen=True)
class TokenSplit:
    """Training and validation windows of ``context + 1`` tokens each.

    Attributes
    ----------
    train, val : LongTensor of shape (n_windows, context + 1)
    train_files, val_files : list of str
        Where the windows came from (relative paths, or the user's file).
    source : str
    """

    train: torch.Tensor
    val: torch.Tensor
    train_files: list
    val_files: list
    source: str


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files, sorted by path relative to its root (deterministic)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if not (_SKIP_DIRS & set(p.relative_to(root).parts[:-1]))]
    if not files:
        raise DataError(f"no Python source files under the standard library folder {root}")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def text_bytes(data: bytes, name: str) -> bytes:
    """``data`` if it is text (UTF-8, no NUL bytes), else a :class:`DataError` naming ``name``."""
    if not data:
        raise DataError(f"text file {name} is empty")
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):  # UTF-32's first: UTF-32-LE's mark begins with UTF-16-LE's
        if data.startswith(bom):  # its NUL bytes would read as binary
            raise DataError(f"text file {name} is {enc.upper()} (it starts with a {enc.upper()} byte-order mark); "
                            f"re-encode it as UTF-8, e.g. iconv -f {enc} -t utf-8 {Path(name).name} > "
                            f"{Path(name).stem}-utf8.txt")
    if b"\x00" in data[:65536]:
        raise DataError(f"text file {name} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"text file {name} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    return data


def windows(tokens: torch.Tensor, context: int, limit: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of ``context + 1`` tokens (inputs and the next-token targets), at most ``limit``."""
    n = (tokens.numel() - 1) // context
    if limit is not None:
        n = min(n, limit)
    if n < 1:
        return tokens.new_zeros((0, context + 1))
    return torch.stack([tokens[i * context: i * context + context + 1] for i in range(n)])


def _encode(chunks: list[bytes]) -> torch.Tensor:
    return torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8).to(torch.long)


def stdlib_split(context: int, train_tokens: int, val_tokens: int | None = None, *, val_every: int = 5,
                 offset: int = 0) -> TokenSplit:
    """Byte windows from the standard library, split by file.

    Files are taken in sorted order from the ``offset``-th on; file ``i`` goes to validation
    when ``i % val_every == val_every - 1``. Files are read until both sides hold enough
    windows for ``train_tokens`` and ``val_tokens`` (default: a quarter of ``train_tokens``)
    predicted tokens; each file's text is used whole (concatenated with a newline).
    """
    if context < 1:
        raise DataError(f"context must be >= 1 token, got {context}")
    if train_tokens < context:
        raise DataError(f"--tokens ({train_tokens}) must hold at least one context ({context} tokens)")
    val_tokens = max(context, train_tokens // 4) if val_tokens is None else val_tokens
    want = {"train": -(-train_tokens // context), "val": -(-val_tokens // context)}
    chunks = {"train": [], "val": []}
    names = {"train": [], "val": []}
    size = {"train": 0, "val": 0}
    root = Path(sysconfig.get_paths()["stdlib"])
    for i, path in enumerate(stdlib_files()[offset:]):
        side = "val" if i % val_every == val_every - 1 else "train"
        if size[side] >= want[side] * context + 1:
            if all(size[s] >= want[s] * context + 1 for s in size):
                break
            continue
        try:
            data = text_bytes(path.read_bytes(), str(path))
        except (OSError, DataError):
            continue  # an unreadable or non-UTF-8 file of the installation is skipped, deterministically
        chunks[side].append(data + b"\n")
        names[side].append(path.relative_to(root).as_posix())
        size[side] += len(data) + 1
    tr = windows(_encode(chunks["train"]), context, want["train"])
    va = windows(_encode(chunks["val"]), context, want["val"])
    if tr.shape[0] < want["train"] or va.shape[0] < 1:
        raise DataError(f"the standard library holds too little text for {train_tokens} training tokens")
    return TokenSplit(tr, va, names["train"], names["val"], "stdlib")


def file_split(path, context: int, train_tokens: int | None = None, *, val_fraction: float = 0.2,
               tokenize=None, require: bool = False) -> TokenSplit:
    """Windows from one text file: the first ``1 − val_fraction`` of it trains, the rest validates.

    ``tokenize`` maps the text's bytes to a 1-D LongTensor of token ids (default: the bytes).
    A file that is empty, binary, not UTF-8, or shorter than two contexts (one for training,
    one for validation) is refused with a :class:`DataError` naming it. ``train_tokens`` is at
    most that many (in whole windows); with ``require`` the file must hold them all.
    """
    from ridgelens.data import read_input

    name = str(path)
    data = text_bytes(read_input(path, "text file"), name)
    tokens = tokenize(data) if tokenize is not None else _encode([data])
    need = 2 * context + 2
    if tokens.numel() < need:
        n = tokens.numel()
        raise DataError(f"text file {name} has {n} token{'' if n == 1 else 's'}, fewer than two contexts of {context} "
                        f"(+1) for a training and a validation window; give a longer text or a smaller --context")
    cut = max(context + 1, int(tokens.numel() * (1 - val_fraction)))
    cut = min(cut, tokens.numel() - context - 1)
    limit = None if train_tokens is None else max(1, -(-train_tokens // context))
    tr = windows(tokens[:cut], context, limit)
    if require and limit is not None and tr.shape[0] < limit:
        raise DataError(f"text file {name} holds {tr.shape[0] * context} training tokens ({tr.shape[0]} windows of "
                        f"{context}, in its first {1 - val_fraction:.0%}), fewer than --tokens {train_tokens}; give a "
                        "longer text or fewer --tokens")
    va = windows(tokens[cut:], context, None if limit is None else max(1, limit // 4))
    return TokenSplit(tr, va, [f"{name}[:{cut}]"], [f"{name}[{cut}:]"], name)
