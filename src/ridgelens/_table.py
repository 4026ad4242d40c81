"""A right-aligned plain-text table, shared by the CLI's output and :meth:`Analysis.summary`."""

from __future__ import annotations


def table(headers: list[str], rows: list[list], fmt: str = "{:.4g}") -> str:
    """A right-aligned plain-text table."""
    cells = [[c if isinstance(c, str) else fmt.format(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])
