"""The one place where ``method="auto"`` is resolved."""

from __future__ import annotations

from ridgelens.errors import RidgelensError

#: Up to this many parameters a dense Hessian (n HVPs, n² memory) is built and decomposed exactly.
DENSE_MAX_PARAMS = 2000


def resolve_method(method: str, n: int, is_dense: bool, allowed=("dense", "lanczos")) -> str:
    """``"dense"`` when the matrix is in memory or n ≤ DENSE_MAX_PARAMS, else the matrix-free method."""
    if method == "auto":
        return allowed[0] if is_dense or n <= DENSE_MAX_PARAMS else allowed[1]
    if method not in allowed:
        raise RidgelensError(f"method must be 'auto' or one of {allowed}, got {method!r}")
    return method
