"""The true loss on the page's plane: a modest grid, evaluated once (at analysis/export time) from the objective.

The page draws it against the quadratic model's ellipses, as ``model_contours.png`` does:
for a least-squares loss the two coincide (the loss is quadratic); for a logistic or a torch
model their gap is the quadratic model's error. The grid is ``resolution²`` evaluations of
``objective.value`` (625 by default, a sixth of the 61² that ``model_contours.png`` spends).
"""

from __future__ import annotations

import numpy as np

from ridgelens._progress import Progress
from ridgelens.errors import RidgelensError
from ridgelens.report._plane import display_eigenvalues, embed_plane, plane_box, plane_directions

#: Grid points per side of the true-loss grid the page draws (RESOLUTION² loss evaluations).
RESOLUTION = 25


def loss_plane(objective, analysis, *, directions=None, resolution: int = RESOLUTION) -> dict:
    """``R(θ) − R(θ̂)`` on a ``resolution × resolution`` grid of the page's contour view.

    A grid point ``c = (x, y)`` is in eigen-plane coordinates (``q_aᵀθ_p``, ``q_bᵀθ_p``), the
    page's own axes: ``θ_p = θ̂_p + (x − q_aᵀθ̂_p) q_a + (y − q_bᵀθ̂_p) q_b``, the unpenalized
    block at its best response (:func:`ridgelens.report._plane.embed_plane`). The plane is
    :func:`~ridgelens.report._plane.plane_directions`' (the page's and the PNG's), the box
    :func:`~ridgelens.report._plane.plane_box`'.

    Returns a JSON-ready dict: ``directions`` (0-based), ``x`` (resolution,), ``y``
    (resolution,), ``z`` (resolution, resolution; row i is ``y[i]``), ``loss_at_theta_hat``
    and ``evaluations``. Raises :class:`RidgelensError` when the analysis lacks the
    eigenvectors of the two directions (or a penalty matrix rescales the coordinates).
    """
    path = analysis.path
    if analysis.penalty is not None:
        raise RidgelensError("the true-loss grid is drawn for the plain penalty (λ/2)‖θ_p‖² only; this analysis "
                             "uses a penalty matrix")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 3 <= resolution <= 1000:
        raise RidgelensError(f"resolution must be an integer from 3 to 1000 (resolution² loss evaluations), "
                             f"got {resolution!r}")
    n = np.size(analysis.theta_hat)
    if not callable(getattr(objective, "value", None)) or getattr(objective, "n_params", None) != n:
        raise RidgelensError(f"objective must be the objective the analysis was made from ({n} parameters), got "
                             f"{type(objective).__name__} with {getattr(objective, 'n_params', 'no')} parameters")
    sigma = display_eigenvalues(path.eigenvalues, path.rank_tol)[0]
    a, b = plane_directions(sigma, path.coords, analysis.lambdas, directions, rank_tol=path.rank_tol)
    Q = None if path.eigenvectors is None else np.asarray(path.eigenvectors, dtype=np.float64)
    mask = np.asarray(path.penalized, dtype=bool)
    if Q is None or Q.ndim != 2 or Q.shape[0] != int(mask.sum()) or max(a, b) >= Q.shape[1]:
        raise RidgelensError("the true-loss grid needs the eigenvectors of the two drawn directions")
    B = embed_plane(analysis, Q[:, [a, b]], mask)
    box = plane_box(sigma, path.coords, analysis.gradient_coords, (a, b))
    xs, ys = np.linspace(*box["x"], resolution), np.linspace(*box["y"], resolution)
    th = np.asarray(analysis.theta_hat, dtype=np.float64)
    (ha, hb) = box["hat"]
    r0 = float(objective.value(th))
    z = np.empty((resolution, resolution))
    with Progress("true loss on the page's plane", resolution**2, unit="losses") as bar:
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                z[i, j] = float(objective.value(th + (x - ha) * B[:, 0] + (y - hb) * B[:, 1])) - r0
            bar.advance(resolution)
    return {"directions": [a, b], "x": xs, "y": ys, "z": z, "loss_at_theta_hat": r0, "evaluations": resolution**2 + 1}


def check_loss_plane(d, source: str = "loss_plane", n_directions: int | None = None) -> dict | None:
    """``d`` (from :func:`loss_plane` or read back from JSON) with arrays, validated; None stays None.

    ``n_directions``: how many eigen-directions the analysis has (the two ``directions`` index them).
    """
    if d is None:
        return None
    try:
        xs, ys = np.asarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64)
        z = np.array([[np.nan if v is None else v for v in row] for row in d["z"]], dtype=np.float64)
        a, b = (_index(v) for v in d["directions"])
    except (KeyError, TypeError, ValueError):
        raise RidgelensError(f"{source}: expected directions, x, y and z (from ridgelens.report.loss_plane)") from None
    if a == b or min(a, b) < 0 or (n_directions is not None and max(a, b) >= n_directions):
        raise RidgelensError(f"{source}: directions must be two different indices in [0, {n_directions or '∞'}), "
                             f"got {list(d['directions'])}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise RidgelensError(f"{source}: x and y must be finite numbers")
    if xs.ndim != 1 or ys.ndim != 1 or xs.size < 3 or ys.size < 3 or z.shape != (ys.size, xs.size):
        raise RidgelensError(f"{source}: z must have shape (len(y), len(x)) with at least 3 points a side, got "
                             f"{z.shape} for {ys.size} × {xs.size}")
    if not (np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)):
        raise RidgelensError(f"{source}: x and y must increase")
    return {**d, "directions": [a, b], "x": xs, "y": ys, "z": z}


def _index(v) -> int:
    """A JSON index: an integer (not a bool, not 1.5); ValueError otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer)) or not float(v).is_integer():
        raise ValueError(v)
    return int(v)


def level_lines(lp: dict, level: float) -> tuple[list, list]:
    """The contour ``z = level`` of a loss grid as Plotly x, y lists (pieces separated by None).

    ``[None], [None]`` when the grid never reaches ``level`` (Plotly keeps such a trace in the legend).
    """
    from contourpy import contour_generator

    xs, ys = [], []
    if np.isfinite(level) and level != 0:  # 0: the minimum itself, a point
        for seg in contour_generator(lp["x"], lp["y"], np.ma.masked_invalid(lp["z"])).lines(float(level)):
            xs += [*seg[:, 0].tolist(), None]
            ys += [*seg[:, 1].tolist(), None]
    return (xs[:-1], ys[:-1]) if xs else ([None], [None])


def loss_plane_if_drawable(objective, analysis, **kwargs) -> dict | None:
    """:func:`loss_plane`, or None where the page draws no plane for it.

    That is: no eigenvectors of two positive directions, unpenalized parameters without the
    full curvature, or a penalty matrix.
    """
    path = analysis.path
    mask = np.asarray(path.penalized, dtype=bool)
    Q = path.eigenvectors
    sigma = display_eigenvalues(path.eigenvalues, path.rank_tol)[0]
    if (analysis.penalty is not None or Q is None or np.ndim(Q) != 2 or Q.shape[0] != int(mask.sum())
            or Q.shape[1] < 2 or np.count_nonzero(sigma > 0) < 2
            or not (mask.all() or (analysis.spectrum.complete and analysis.spectrum.Q.shape[0] == mask.size))):
        return None
    return loss_plane(objective, analysis, **kwargs)
