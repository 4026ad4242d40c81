"""The penalty matrix D: ``(λ/2) θᵀDθ`` with D diagonal and ≥ 0, and where its factors came from.

The seeds' penalty ``(λ/2)‖θ‖²`` is ``D = I``; leaving parameters out (intercepts, biases) is
a 0/1 diagonal. People set D per parameter in three ways, each a constructor here:

- name patterns with factors, the shape of AdamW parameter groups:
  ``{"*.bias": 0, "*norm*": 0, "*embed*": 0.1}`` (:func:`from_patterns`);
- one factor per coefficient, glmnet's ``penalty.factor`` (:func:`from_vector`);
- one λ per group, as optimizers' ``param_groups`` carry ``weight_decay`` (:func:`from_group_lambdas`):
  the factor of a group is its λ over the reference λ.

Zero factors are handled exactly through the Schur complement; positive ones through the
scaled curvature ``D^{-1/2} H D^{-1/2}`` (see :mod:`ridgelens.ridge._weighted`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ridgelens._validation import check_nonnegative_entries
from ridgelens.errors import PenaltyError


@dataclass(frozen=True)
class PenaltyMatrix:
    """A diagonal penalty matrix ``D = diag(factors)`` and its source.

    Attributes
    ----------
    factors : ndarray of shape (n,)
        dᵢ ≥ 0, finite; at least one positive.
    source : str
        ``"mask"``, ``"patterns"``, ``"vector"``, ``"group-lambdas"`` or ``"optimizer-state"``.
    detail : dict
        What was given (patterns and how many entries each set, the file, the optimizer, …).
    """

    factors: np.ndarray
    source: str
    detail: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of parameters."""
        return int(self.factors.size)

    @property
    def penalized(self) -> np.ndarray:
        """Boolean mask of the parameters with a positive factor."""
        return self.factors > 0

    @property
    def is_mask(self) -> bool:
        """Whether every factor is 0 or 1 (the all-or-nothing penalty)."""
        return bool(np.all((self.factors == 0) | (self.factors == 1)))

    def scaling(self) -> np.ndarray:
        """``s`` with ``sᵢ = dᵢ^{-1/2}`` where dᵢ > 0 and 1 elsewhere: θ = diag(s) φ makes the penalty ‖φ_p‖²."""
        d = self.factors
        return np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 1.0)

    def times(self, other: PenaltyMatrix) -> PenaltyMatrix:
        """The product of two penalty matrices (e.g. group factors times an optimizer's preconditioner)."""
        if other.n != self.n:
            raise PenaltyError(f"cannot combine penalty matrices of {self.n} and {other.n} parameters")
        return PenaltyMatrix(self.factors * other.factors, f"{self.source}×{other.source}",
                             {self.source: self.detail, other.source: other.detail})

    def to_dict(self) -> dict:
        """A JSON-ready record (the factors, the source and its detail)."""
        return {"source": self.source, "factors": self.factors, "detail": self.detail,
                "n_zero": int((self.factors == 0).sum()), "min_positive": float(self.factors[self.factors > 0].min()),
                "max": float(self.factors.max())}


#: The widest spread (largest / smallest positive) of factors a user gives: beyond it the scaled curvature
#: D^{-1/2}HD^{-1/2} holds eigenvalues that far apart, and its rank cutoff (relative to the largest) takes the
#: ordinary ones for zeros (a factor of 1e-15 beside 1s gave a prediction 0.81 off, silently).
MAX_FACTOR_SPREAD = 1e8


def check_factors(factors, n: int, name: str = "penalty factors", *, max_spread: float | None = None) -> np.ndarray:
    """``factors`` as a float64 vector of length ``n``, finite, ≥ 0, not all 0; else :class:`PenaltyError`.

    ``max_spread``: refuse positive factors further apart than that (a user's; an optimizer's own
    preconditioner is taken as it is).
    """
    try:
        d = np.asarray(factors, dtype=np.float64)
    except (TypeError, ValueError):
        raise PenaltyError(f"{name} must be numbers, got {type(factors).__name__}") from None
    if d.ndim != 1 or d.size != n:
        raise PenaltyError(f"{name} must be {n} numbers, one per parameter; got shape {d.shape}")
    check_nonnegative_entries(d, name, error=PenaltyError, plural="factors",
                              zero="0 leaves a parameter out of the penalty")
    if not (d > 0).any():
        raise PenaltyError(f"every one of the {n} {name} is 0: the penalty would act on nothing")
    if max_spread is not None:
        pos = np.flatnonzero(d > 0)
        lo, hi = pos[np.argmin(d[pos])], pos[np.argmax(d[pos])]
        if d[hi] > max_spread * d[lo]:
            raise PenaltyError(f"{name}: entry {lo} is {d[lo]:.3g} and entry {hi} {d[hi]:.3g}, {d[hi] / d[lo]:.3g} "
                               f"times as large; beyond {max_spread:.0e} the prediction loses the other directions to "
                               "rounding. Use 0 to leave a parameter out of the penalty")
    return d.copy()


def _check_factor(pattern: str, value) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise PenaltyError(f"the factor of pattern {pattern!r} must be a number, got {value!r}") from None
    if not np.isfinite(f) or f < 0:
        raise PenaltyError(f"the factor of pattern {pattern!r} is {f:g}; factors must be finite and >= 0")
    return f


def from_patterns(names: Sequence[str], sizes: Sequence[int], patterns: Mapping[str, float], *,
                  default=1.0, label: str = "penalty") -> PenaltyMatrix:
    """Factors from name patterns (``fnmatch`` globs), as AdamW parameter groups set them.

    Each parameter tensor takes the factor of the **first** pattern (in the mapping's order) that
    its name matches, or ``default`` (a number, or one per entry of θ: the factors they keep).
    A pattern that matches no name is an error naming it.

    Examples
    --------
    >>> pm = from_patterns(["0.weight", "0.bias"], [2, 1], {"*.bias": 0.0})
    >>> pm.factors.tolist()
    [1.0, 1.0, 0.0]
    """
    checked = {str(p): _check_factor(p, v) for p, v in patterns.items()}
    unmatched = [p for p in checked if not any(fnmatch.fnmatch(n, p) for n in names)]
    if unmatched:
        raise PenaltyError(f"{label} pattern(s) {', '.join(repr(p) for p in unmatched)} match no parameter; "
                           f"the names are {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}")
    n = int(sum(sizes))
    d = np.broadcast_to(np.asarray(default, dtype=np.float64), (n,)).copy()
    counts, start = dict.fromkeys(checked, 0), 0
    for name, size in zip(names, sizes, strict=True):
        for p, v in checked.items():
            if fnmatch.fnmatch(name, p):
                d[start:start + int(size)] = v
                counts[p] += int(size)
                break
        start += int(size)
    d = check_factors(d, n, max_spread=MAX_FACTOR_SPREAD)
    kept = float(default) if np.ndim(default) == 0 else "the factors before"
    return PenaltyMatrix(d, "patterns", {"patterns": checked, "entries_set": counts, "others": kept})


def from_vector(factors, n: int, *, origin: str | None = None) -> PenaltyMatrix:
    """One factor per coefficient (glmnet's ``penalty.factor``, not rescaled)."""
    d = check_factors(factors, n, "penalty factors" + (f" from {origin}" if origin else ""),
                      max_spread=MAX_FACTOR_SPREAD)
    return PenaltyMatrix(d, "vector", {"origin": origin} if origin else {})


def from_group_lambdas(names: Sequence[str], sizes: Sequence[int], groups: Mapping[str, float], *,
                       reference: float | None = None, default: float | None = None) -> PenaltyMatrix:
    """One λ per group of parameters (name patterns → λ_g): factor = λ_g / reference.

    ``reference`` (default: the largest λ_g) is the λ the path's λ axis stands for; parameters
    in no group take ``default`` (default: ``reference``, i.e. factor 1).
    """
    lams = {str(p): _check_factor(p, v) for p, v in groups.items()}
    ref = max(lams.values(), default=0.0) if reference is None else float(reference)
    if not (np.isfinite(ref) and ref > 0):
        raise PenaltyError(f"the reference λ must be > 0, got {ref:g} (every group λ is 0?)")
    pm = from_patterns(names, sizes, {p: v / ref for p, v in lams.items()},
                       default=1.0 if default is None else float(default) / ref, label="group")
    return PenaltyMatrix(pm.factors, "group-lambdas", {"group_lambdas": lams, "reference_lambda": ref,
                                                       "entries_set": pm.detail["entries_set"]})
