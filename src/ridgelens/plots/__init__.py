"""Figures. Every function takes ``ax=None`` (or ``axes=None``) and returns what it drew; nothing here saves files.

- :func:`plot_quadratic_contours`: the contour-line picture of a 2-D quadratic (DLB figure 7.1).
- :func:`plot_model_contours`: the same picture for any model, in a plane through θ̂.
- :func:`plot_ridge_steps`: rotate → shrink → rotate back, as four panels.
- :func:`plot_shrinkage`, :func:`plot_effective_df`, :func:`plot_spectral_density`: the eigen view.
- :func:`plot_coefficient_paths`, :func:`plot_rel_error`: predicted against refit.
- :func:`plot_lm_error`, :func:`plot_lm_perplexity`: a language model's analysis, per curvature.
- :func:`plot_group_shrinkage`, :func:`plot_optimizer_paths`: penalty matrices and optimizers' weight decay.

matplotlib is an optional dependency (``pip install ridgelens[plot]``); importing this
package without it raises an ImportError that says so.
"""

try:
    import matplotlib  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("ridgelens.plots needs matplotlib: pip install 'ridgelens[plot]'") from exc

from ridgelens.plots._contour import plot_quadratic_contours
from ridgelens.plots._lm import plot_lm_error, plot_lm_perplexity
from ridgelens.plots._model import plot_model_contours
from ridgelens.plots._paths import plot_coefficient_paths, plot_rel_error, plot_shrinkage
from ridgelens.plots._selection import plot_selection
from ridgelens.plots._spectrum import (
    effective_df_curve,
    plot_effective_df,
    plot_spectral_density,
    smoothed_density,
)
from ridgelens.plots._steps import plot_ridge_steps
from ridgelens.plots._weight_decay import plot_group_shrinkage, plot_optimizer_paths

__all__ = [
    "effective_df_curve",
    "plot_coefficient_paths",
    "plot_effective_df",
    "plot_group_shrinkage",
    "plot_lm_error",
    "plot_lm_perplexity",
    "plot_model_contours",
    "plot_optimizer_paths",
    "plot_quadratic_contours",
    "plot_rel_error",
    "plot_ridge_steps",
    "plot_selection",
    "plot_shrinkage",
    "plot_spectral_density",
    "smoothed_density",
]
