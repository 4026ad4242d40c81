"""The one seam: a symmetric linear operator on flat parameter vectors.

>>> import numpy as np
>>> op = DenseOperator(np.array([[2.0, 1.0], [1.0, 3.0]]))
>>> op.matvec(np.array([1.0, 0.0]))
array([2., 1.])
>>> op.shape, op.n_matvecs
((2, 2), 1)
"""

from __future__ import annotations

import abc

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ridgelens.errors import RidgelensError


class CurvatureOperator(abc.ABC):
    """A symmetric ``n × n`` linear operator (H, or a curvature proxy) acting on flat vectors.

    Subclasses implement :meth:`_matvec` (and may override :meth:`_matmat`);
    the public methods check shapes and count products in :attr:`n_matvecs`.
    """

    dtype = np.dtype(np.float64)

    def __init__(self, n: int):
        self.n = int(n)
        self.n_matvecs = 0

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)``."""
        return (self.n, self.n)

    @abc.abstractmethod
    def _matvec(self, v: np.ndarray) -> np.ndarray: ...

    def _matmat(self, V: np.ndarray) -> np.ndarray:
        return np.column_stack([self._matvec(V[:, j]) for j in range(V.shape[1])])

    def matvec(self, v) -> np.ndarray:
        """``H v`` for ``v`` of shape (n,)."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.n,):
            raise RidgelensError(f"matvec expects a vector of shape ({self.n},), got {v.shape}")
        self.n_matvecs += 1
        return self._matvec(v)

    def matmat(self, V) -> np.ndarray:
        """``H V`` for ``V`` of shape (n, k); equals stacking :meth:`matvec` on the columns."""
        V = np.asarray(V, dtype=np.float64)
        if V.ndim != 2 or V.shape[0] != self.n:
            raise RidgelensError(f"matmat expects a matrix of shape ({self.n}, k), got {V.shape}")
        self.n_matvecs += V.shape[1]
        return self._matmat(V)

    def to_dense(self) -> np.ndarray:
        """The ``(n, n)`` matrix, symmetrized as ``(M + Mᵀ)/2`` (costs n products when matrix-free)."""
        M = self.matmat(np.eye(self.n))
        return 0.5 * (M + M.T)

    def as_linear_operator(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` view (symmetric: rmatvec = matvec)."""
        return LinearOperator(self.shape, matvec=self.matvec, rmatvec=self.matvec,
                              matmat=self.matmat, dtype=np.float64)

    @property
    def is_dense(self) -> bool:
        """Whether the matrix is held in memory."""
        return False


class DenseOperator(CurvatureOperator):
    """A symmetric matrix held in memory."""

    def __init__(self, H):
        H = np.asarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise RidgelensError(f"H must be a square matrix, got shape {H.shape}")
        if not np.all(np.isfinite(H)):
            raise RidgelensError("H contains non-finite values")
        scale = max(1.0, float(np.abs(H).max()))
        asym = float(np.abs(H - H.T).max())
        if asym > 1e-8 * scale:
            raise RidgelensError(f"H must be symmetric; max |H - Hᵀ| = {asym:.3g}")
        super().__init__(H.shape[0])
        self.H = 0.5 * (H + H.T)

    def _matvec(self, v):
        return self.H @ v

    def _matmat(self, V):
        return self.H @ V

    def to_dense(self) -> np.ndarray:
        return self.H.copy()

    @property
    def is_dense(self) -> bool:
        return True


class HessianOperator(CurvatureOperator):
    """The Hessian of an objective at θ, applied matrix-free through Hessian-vector products."""

    def __init__(self, objective, theta):
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (objective.n_params,):
            raise RidgelensError(f"theta must have shape ({objective.n_params},), got {theta.shape}")
        super().__init__(objective.n_params)
        self.objective, self.theta = objective, theta

    def _matvec(self, v):
        return self.objective.hvp(self.theta, v)


def hessian(objective, theta, **options) -> CurvatureOperator:
    """The Hessian of ``objective``'s mean loss at ``theta`` as a :class:`CurvatureOperator`.

    Closed-form objectives (least squares, logistic) give a :class:`DenseOperator`; torch
    models a matrix-free ``TorchHessianOperator`` (``options``: ``form=``,
    ``memory_budget=``); other objectives a :class:`HessianOperator` over their ``hvp``.
    """
    H = objective.hessian_dense(np.asarray(theta, dtype=np.float64))
    if H is not None:
        return DenseOperator(H)
    native = getattr(objective, "hessian_operator", None)
    return native(theta, **options) if native is not None else HessianOperator(objective, theta)
