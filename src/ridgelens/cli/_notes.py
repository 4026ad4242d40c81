"""Lines the CLI adds when a premise needs a word: a singular curvature makes θ̂ one minimizer of many."""

from __future__ import annotations

import numpy as np


def singular_note(res) -> str | None:
    """Say which minimizer θ̂ is when the penalized block's curvature has zero eigenvalues, else None.

    With a null space (duplicated or collinear columns, dead units) the unregularized minimizer is
    not unique. θ̃(λ) for λ → 0 is the minimum-norm one, θ̂'s projection on range(H); θ̂ is that one
    exactly when it has no component in the null space (the SVD solution of least squares).
    """
    sigma, coords = np.asarray(res.path.eigenvalues), np.asarray(res.path.coords)
    if res.method != "dense" or coords.shape != sigma.shape:
        return None
    null = sigma == 0
    if not null.any():
        return None
    rank, p = int((~null).sum()), sigma.size
    away = float(np.linalg.norm(coords[null]))
    head = (f"note: the curvature of the penalized block is singular (rank {rank} of {p}), so the "
            "unregularized minimizer is not unique; ")
    if away <= 1e-10 * max(float(np.linalg.norm(coords)), np.finfo(float).tiny):
        return head + ("θ̂ is the minimum-norm one (no component in the null space), the λ → 0 limit that θ̃ and "
                       "the refits follow")
    return head + (f"θ̂ has a component of norm {away:.3g} in the null space, which every θ̃(λ) drops (θ̃(0) is "
                   "the minimum-norm minimizer, θ̂'s projection on range(H)), so θ̃(0) differs from θ̂")
