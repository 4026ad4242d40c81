"""The interactive page: one self-contained HTML file (Plotly, inlined) with a λ slider.

>>> from ridgelens.report import demo_data, lambda_grid
>>> data = demo_data()                      # the seeds' 2-D quadratic
>>> bool(lambda_grid(data)[0] == 0.0)       # the slider starts at λ = 0 (θ̃ = θ̂)
True

Plotly is an optional dependency (``pip install 'ridgelens[plot]'``); it is imported only
when a page is built, by :func:`explorer_html` / :func:`write_explorer`.
"""

from ridgelens.report._data import ExplorerData, demo_data
from ridgelens.report._lm import lm_report
from ridgelens.report._loss import loss_plane
from ridgelens.report._page import (
    DIGITS,
    explorer_figure,
    explorer_html,
    explorer_steps,
    fmt,
    lambda_grid,
    write_explorer,
)
from ridgelens.report._plane import default_directions
from ridgelens.report._results import read_figures, results_report

__all__ = [
    "DIGITS",
    "ExplorerData",
    "default_directions",
    "demo_data",
    "explorer_figure",
    "explorer_html",
    "explorer_steps",
    "fmt",
    "lambda_grid",
    "lm_report",
    "loss_plane",
    "read_figures",
    "results_report",
    "write_explorer",
]
