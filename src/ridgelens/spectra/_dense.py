"""Eigenpairs of a curvature operator (dense ``eigh``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from ridgelens.errors import RidgelensError
from ridgelens.operators import CurvatureOperator, DenseOperator


@dataclass(frozen=True)
class Spectrum:
    """Eigenpairs of a symmetric operator, eigenvalues in descending order.

    Attributes
    ----------
    eigenvalues : ndarray of shape (k,)
        σ₁ ≥ σ₂ ≥ … ≥ σ_k.
    eigenvectors : ndarray of shape (n, k)
        Orthonormal columns Q; each column's largest-magnitude entry is positive.
    n : int
        Dimension of the operator.
    method : str
        How they were computed (``"dense-eigh"``).
    n_matvecs : int
        Operator products spent (0 when the matrix was already in memory).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    n: int
    method: str
    n_matvecs: int

    @property
    def k(self) -> int:
        """Number of eigenpairs held."""
        return self.eigenvalues.size

    @property
    def complete(self) -> bool:
        """Whether all n eigenpairs are held."""
        return self.k == self.n

    @property
    def min_eigenvalue(self) -> float:
        """The smallest eigenvalue held."""
        return float(self.eigenvalues[-1])


def _canonical_signs(Q: np.ndarray) -> np.ndarray:
    idx = np.argmax(np.abs(Q), axis=0)
    signs = np.sign(Q[idx, np.arange(Q.shape[1])])
    signs[signs == 0] = 1.0
    return Q * signs


def eigen(operator, k: int | None = None) -> Spectrum:
    """Eigenpairs of a symmetric operator, largest first.

    Parameters
    ----------
    operator : CurvatureOperator or array of shape (n, n)
    k : int, optional
        Keep the k largest pairs (default: all n).

    Examples
    --------
    >>> import numpy as np
    >>> eigen(np.diag([1.0, 3.0])).eigenvalues
    array([3., 1.])
    """
    op = operator if isinstance(operator, CurvatureOperator) else DenseOperator(operator)
    if k is not None and not (isinstance(k, (int, np.integer)) and 1 <= k <= op.n):
        raise RidgelensError(f"k must be an integer in [1, {op.n}], got {k!r}")
    before = op.n_matvecs
    H = op.to_dense()
    spent = op.n_matvecs - before
    # Divide and conquer (syevd): all pairs, and ~4x faster than the default MRRR driver here.
    w, Q = linalg.eigh(H, check_finite=False, driver="evd")
    w, Q = w[::-1], Q[:, ::-1]
    if k is not None:
        w, Q = w[:k], Q[:, :k]
    return Spectrum(eigenvalues=w.copy(), eigenvectors=_canonical_signs(Q), n=op.n,
                    method="dense-eigh", n_matvecs=spent)
