"""Figures. Every function takes ``ax=None`` and returns what it drew; nothing here saves files.

matplotlib is an optional dependency (``pip install ridgelens[plot]``); importing this
package without it raises an ImportError that says so.
"""

try:
    import matplotlib  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("ridgelens.plots needs matplotlib: pip install 'ridgelens[plot]'") from exc

from ridgelens.plots._contour import plot_quadratic_contours
from ridgelens.plots._paths import plot_coefficient_paths, plot_rel_error, plot_shrinkage

__all__ = ["plot_coefficient_paths", "plot_quadratic_contours", "plot_rel_error", "plot_shrinkage"]
