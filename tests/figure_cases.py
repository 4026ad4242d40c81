"""The figures the image tests compare against committed baselines (tests/baseline/*.png).

Each case draws one figure from real data (scikit-learn's bundled sets, the seeds' quadratic)
with pinned rendering settings (:data:`RC`, :data:`DPI`), so that a fresh machine with the
pinned matplotlib (constraints.txt) draws the same pixels. Regenerate the baselines after an
intended change with ``RIDGELENS_UPDATE_BASELINES=1 pytest tests/test_figure_images.py``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ridgelens import LeastSquares, Logistic, RidgelensWarning, analyze, ridge_path
from ridgelens.data import DEMO_H, DEMO_LAMBDAS, DEMO_THETA, load_dataset
from ridgelens.plots import (
    plot_coefficient_paths,
    plot_effective_df,
    plot_lm_error,
    plot_lm_perplexity,
    plot_model_contours,
    plot_quadratic_contours,
    plot_rel_error,
    plot_shrinkage,
)

#: Rendering pinned for baselines: matplotlib's bundled DejaVu Sans, no hinting, fixed DPI.
RC = {"font.family": "DejaVu Sans", "text.hinting": "none", "axes.unicode_minus": True,
      "path.simplify": True, "image.interpolation": "nearest", "figure.dpi": 72, "savefig.dpi": 72,
      "svg.hashsalt": "ridgelens", "axes.formatter.use_mathtext": False}
DPI = 72


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RidgelensWarning)
        return fn(*args, **kw)


def diabetes():
    """Least squares on diabetes (intercept unpenalized): the exact case."""
    ds = load_dataset("diabetes")
    obj = LeastSquares(ds.X, ds.y, feature_names=ds.feature_names)
    return obj, analyze(obj, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def cancer():
    """Logistic regression on breast cancer (ten standardized "mean" features): a real error trend."""
    ds = load_dataset("breast_cancer", standardize=True)
    obj = Logistic(ds.X[:, :10], ds.y, feature_names=ds.feature_names[:10])
    return obj, _quiet(analyze, obj, [1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def diabetes_matrix_free():
    """Least squares on diabetes, matrix-free with the top 4 of 10 penalized directions only."""
    ds = load_dataset("diabetes")
    obj = LeastSquares(ds.X, ds.y, feature_names=ds.feature_names)
    return obj, _quiet(analyze, obj, [1e-4, 1e-3, 1e-2], method="matrix-free", k=4, seed=0)


def contour():
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    drawn = plot_quadratic_contours(DEMO_H, DEMO_THETA, DEMO_LAMBDAS, ax=fig.add_subplot())
    return fig, drawn


def model_contours(case=None):
    obj, res = case or diabetes()
    fig = Figure(figsize=(7.5, 5.6), layout="constrained")
    return fig, plot_model_contours(obj, res, ax=fig.add_subplot())


def paths(case=None):
    _, res = case or diabetes()
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    return fig, plot_coefficient_paths(res, ax=fig.add_subplot())


def rel_error_exact(case=None):
    _, res = case or diabetes()
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, plot_rel_error(res, ax=fig.add_subplot())


def rel_error_trend(case=None):
    _, res = case or cancer()
    # One λ without a valid prediction, as a negative-curvature run has: it must be marked, not dropped.
    valid = res.path.valid.copy()
    valid[0] = False
    err = res.rel_error.copy()
    err[0] = np.nan
    res = dataclasses.replace(res, path=dataclasses.replace(res.path, valid=valid), rel_error=err)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, plot_rel_error(res, ax=fig.add_subplot())


def shrinkage_matrix_free(case=None):
    _, res = case or diabetes_matrix_free()
    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    return fig, plot_shrinkage(res.path, 1, ax=fig.add_subplot(), density=res.density)


def effective_df_rounding():
    """df(λ) of a spectrum with one rounding-level negative eigenvalue (−4.4e-12 against σ_max = 1e4)."""
    rng = np.random.default_rng(0)
    sigma = np.array([1e4, 300.0, 20.0, 1.5, 0.1, 0.0, -4.4e-12])
    Q = np.linalg.qr(rng.normal(size=(7, 7)))[0]
    path = ridge_path((Q * np.maximum(sigma, 0)) @ Q.T, rng.normal(size=7), [1e-3, 1.0, 100.0])
    path = dataclasses.replace(path, eigenvalues=sigma, rank_tol=0.0)  # as a solver with too small a tolerance gives
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, plot_effective_df(path, ax=fig.add_subplot())


def lm_demo():
    """``ridgelens demo --lm``'s results.json (276,096 parameters, trained on the standard library's sources):
    the Hessian predicts only at λ = 1 (its most negative eigenvalue is −0.31), the Gauss–Newton at every λ."""
    return json.loads((Path(__file__).parent / "baseline" / "lm_demo_results.json").read_text())


def lm_error():
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, plot_lm_error(lm_demo(), ax=fig.add_subplot())


def lm_perplexity():
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, plot_lm_perplexity(lm_demo(), ax=fig.add_subplot())


CASES = {"contour": contour, "model_contours": model_contours, "paths": paths, "rel_error_exact": rel_error_exact,
         "rel_error_trend": rel_error_trend, "shrinkage_matrix_free": shrinkage_matrix_free,
         "effective_df_rounding": effective_df_rounding, "lm_error": lm_error, "lm_perplexity": lm_perplexity}
