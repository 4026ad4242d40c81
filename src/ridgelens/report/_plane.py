"""Which two eigen-directions to draw: shared by the static figures and the interactive page."""

from __future__ import annotations

import numpy as np

from ridgelens._shrinkage import rounding_tol
from ridgelens.errors import RidgelensError


def default_directions(eigenvalues, coords, lambdas=None, *, min_share: float = 0.05) -> tuple[int, int]:
    """The top direction and a flatter one that θ̂ actually uses.

    The first is the direction with the largest σ. The second is chosen among the other
    directions with σ > 0 and ``|(Qᵀθ̂)ⱼ| ≥ min_share · max|Qᵀθ̂|`` (so that something
    visibly moves; all of them if none qualifies): without ``lambdas`` the one with the
    smallest σ; with ``lambdas`` the one whose σ is nearest (on a log scale) to their
    geometric mean, so that the λ shown shrink it visibly (σ/(σ+λ) near ½) while the top
    direction survives.

    Parameters
    ----------
    eigenvalues : array of shape (r,)
        σⱼ, in descending order.
    coords : array of shape (r,)
        Qᵀθ̂, θ̂ in the eigenbasis.
    lambdas : array of shape (m,), optional
        The penalties to be shown.

    Examples
    --------
    >>> default_directions([4.0, 1.0, 0.01], [1.0, 1.0, 1e-6])
    (0, 1)
    >>> default_directions([4.0, 1.0, 0.1, 0.01], [1.0, 1.0, 1.0, 1.0], [0.05, 0.2])
    (0, 2)
    """
    sigma = np.asarray(eigenvalues, dtype=np.float64)
    z = np.abs(np.asarray(coords, dtype=np.float64))
    pos = np.flatnonzero(sigma > 0)
    if sigma.size < 2 or pos.size < 2:
        raise RidgelensError(f"a plane needs two directions with σ > 0; got {pos.size} of {sigma.size}")
    first = int(pos[np.argmax(sigma[pos])])
    rest = pos[pos != first]
    used = rest[z[rest] >= min_share * z.max(initial=0.0)]
    pool = used if used.size else rest
    lam = None if lambdas is None else np.asarray(lambdas, dtype=np.float64).reshape(-1)
    lam = None if lam is None else lam[lam > 0]
    if lam is None or lam.size == 0:
        return first, int(pool[np.argmin(sigma[pool])])
    target = np.mean(np.log(lam))
    return first, int(pool[np.argmin(np.abs(np.log(sigma[pool]) - target))])


def check_directions(directions, k: int) -> tuple[int, int]:
    """Validate a pair of distinct eigen-direction indices in ``[0, k)``."""
    try:
        a, b = (int(d) for d in directions)
    except (TypeError, ValueError):
        raise RidgelensError(f"directions must be two integers, got {directions!r}") from None
    if not (0 <= a < k and 0 <= b < k) or a == b:
        raise RidgelensError(f"directions must be two different indices in [0, {k}), got ({a}, {b})")
    return a, b


def display_eigenvalues(eigenvalues, rank_tol: float = 0.0) -> tuple[np.ndarray, int, float]:
    """σ as the figures and the page draw them: rounding-level values shown as exactly 0.

    The rule is the core's, :func:`ridgelens._shrinkage.rounding_tol` (``n·ε·max|σ|``), so a
    figure never calls zero what the results call curvature, nor the reverse: a value with
    ``|σ| ≤ tol`` is drawn as 0, where ``tol`` is the larger of the path's own ``rank_tol``
    (the same rule in the dtype the curvature was formed in: float32's is 2²⁹ times
    float64's) and that rule applied to these σ in float64 (for values that come without
    one, or with a solver's smaller tolerance). Drawn as it is, a rounding-level σ of
    −4e-16 next to σ_max = 2 sends df(λ) negative at λ ≈ 4e-16 and starts a λ slider there.
    Every figure and the page say how many values were zeroed.

    Returns ``(sigma, n_zeroed, tol)``.

    >>> s, k, _ = display_eigenvalues([2.0, 1.0, 3e-17, -4.4e-16])
    >>> s.tolist(), k
    ([2.0, 1.0, 0.0, 0.0], 2)
    """
    sigma = np.array(eigenvalues, dtype=np.float64).reshape(-1)
    tol = max(float(rank_tol), rounding_tol(sigma))
    small = (np.abs(sigma) <= tol) & (sigma != 0.0)
    sigma[np.abs(sigma) <= tol] = 0.0
    return sigma, int(small.sum()), tol


def plane_directions(eigenvalues, coords, lambdas=None, directions=None, *, rank_tol: float = 0.0) -> tuple[int, int]:
    """The one rule that picks the drawn plane, for the static figure and the interactive page alike.

    ``eigenvalues`` and ``coords`` are those of the curvature the **penalized** block sees
    (``RidgePath.eigenvalues`` and ``.coords``: H, or its Schur complement when the intercept
    or other parameters are left out of the penalty), so an unpenalized direction is never
    an axis of the picture. ``directions`` (0-based) overrides the default
    (:func:`default_directions` on the rounding-cleaned σ, see :func:`display_eigenvalues`).
    """
    sigma, _, _ = display_eigenvalues(eigenvalues, rank_tol)
    if directions is None:
        directions = default_directions(sigma, coords, lambdas)
    return check_directions(directions, sigma.size)


def embed_plane(analysis, Qab, mask) -> np.ndarray:
    """The plane's directions in the full θ: q in the penalized block, −H_uu⁻¹H_up q in the rest.

    Moving along them keeps the unpenalized block at its best response (the Schur complement's
    picture). Raises :class:`RidgelensError` when that needs a curvature the analysis does not hold.
    """
    n = mask.size
    B = np.zeros((n, 2))
    B[mask] = Qab
    if mask.all():
        return B
    spec = analysis.spectrum
    if not spec.complete or spec.Q.shape[0] != n:
        raise RidgelensError("with unpenalized parameters the model-plane figure needs the full curvature (a dense "
                             "analysis, n ≤ the dense limit)")
    H = (spec.Q * spec.eigenvalues) @ spec.Q.T
    u = ~mask
    B[u] = -np.linalg.solve(H[np.ix_(u, u)], H[np.ix_(u, mask)] @ Qab)
    return B


def plane_box(sigma, coords, gradient_coords, directions) -> dict:
    """Where the page's contour view sits, in eigen-plane coordinates ``c = (q_aᵀθ_p, q_bᵀθ_p)``.

    ``hat`` is θ̂, ``centre`` the quadratic model's minimizer (θ̂ itself without a first-order
    term, else ``Qᵀθ̂ − Qᵀg̃/σ``), and ``x``, ``y`` the axis ranges: 0, θ̂ and the centre with a
    15 % margin. The true-loss grid (:func:`ridgelens.report._loss.loss_plane`) covers exactly this box.
    """
    a, b = directions
    sigma = np.asarray(sigma, dtype=np.float64)
    ha, hb = float(coords[a]), float(coords[b])
    gc = gradient_coords
    za, zb = (ha, hb) if gc is None else (ha - gc[a] / sigma[a], hb - gc[b] / sigma[b])
    pad = 0.15 * max(float(np.abs([za, zb, ha, hb]).max()), 1e-12)
    return {"hat": (ha, hb), "centre": (float(za), float(zb)),
            "x": (min(0, za, ha) - pad, max(0, za, ha) + pad), "y": (min(0, zb, hb) - pad, max(0, zb, hb) + pad)}
