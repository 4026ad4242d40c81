"""Shared CLI output: figures saved atomically, tables printed plainly."""

from __future__ import annotations

import io
from pathlib import Path

from ridgelens._io import atomic_write_bytes


def new_figure(width: float = 6.4, height: float = 4.8):
    """A matplotlib Figure not tied to pyplot (no backend, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path: Path) -> Path:
    """Render ``fig`` to PNG in memory, then write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


def table(headers: list[str], rows: list[list], fmt: str = "{:.4g}") -> str:
    """A right-aligned plain-text table."""
    cells = [[c if isinstance(c, str) else fmt.format(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])
