"""Eigenpairs of a curvature operator: dense ``eigh`` or matrix-free Lanczos (``method="auto"``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg

from ridgelens._auto import select_solver
from ridgelens._shrinkage import snap_rounding
from ridgelens._validation import check_flag, check_seed
from ridgelens.errors import ConvergenceWarning, RidgelensError
from ridgelens.operators import as_operator
from ridgelens.spectra._lanczos import WHICH, _wanted, lanczos


@dataclass(frozen=True)
class Spectrum:
    """Eigenpairs of a symmetric operator, eigenvalues in descending order.

    Attributes
    ----------
    eigenvalues : ndarray of shape (k,)
        σ₁ ≥ σ₂ ≥ … ≥ σ_k.
    eigenvectors : torch.Tensor of shape (n, k)
        Orthonormal columns Q, on the operator's device: in its dtype from Lanczos, in float64
        from the dense solver (``Q`` gives a float64 NumPy copy); each column's largest entry is
        positive.
    n : int
        Dimension of the operator.
    method : str
        ``"dense-eigh"`` or ``"lanczos"`` (what ``method="auto"`` resolved to).
    n_matvecs : int
        Products with the operator spent (the n that formed a matrix-free operator densely
        included; 0 when the matrix was already in memory).
    residuals : ndarray of shape (k,)
        ‖Hq − σq‖ per pair (0 for the dense solver, up to rounding).
    converged : ndarray of bool, shape (k,)
        Whether each pair met ``tol · |σ_max|`` *and* the deflated check found no wanted
        eigenvalue beyond the ones returned (see :mod:`ridgelens.spectra._lanczos`); with
        ``eigen(check=False)`` the first alone (``checks["rounds"]`` is then 0).
    choice : Choice or None
        What ``method="auto"`` resolved to, and why.
    checks : dict or None
        Lanczos: the deflated checks run (rounds, products, whether a miss was found).
    zero_tol : float
        Dense: eigenvalues with |σ| ≤ ``zero_tol`` (``n·ε·max|σ|`` in the dtype the matrix was
        formed in, :func:`ridgelens._shrinkage.rounding_tol`) are zero to rounding and were set to 0.
    """

    eigenvalues: np.ndarray
    eigenvectors: object
    n: int
    method: str
    n_matvecs: int
    residuals: np.ndarray | None = None
    converged: np.ndarray | None = None
    choice: object = None
    checks: dict | None = None
    zero_tol: float = 0.0

    @property
    def Q(self) -> np.ndarray:
        """The eigenvectors as a float64 NumPy array (a copy when they live on another device)."""
        return self.eigenvectors.detach().to(device="cpu", dtype=torch.float64).numpy()

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


def _canonical_signs(Q: torch.Tensor) -> torch.Tensor:
    """Flip columns so that each one's largest entry is positive, in place, one column at a time.

    Q may be k vectors of 10⁷ entries: ``Q.abs()`` of all of them at once would be a second Q.
    """
    for j in range(Q.shape[1]):
        col = Q[:, j]
        if float(col[int(col.abs().argmax())]) < 0:
            col.neg_()
    return Q


def eigen(operator, k: int | None = None, *, which: str = "largest", tol: float = 1e-6,
          method: str = "auto", seed: int = 0, ncv: int | None = None, max_matvecs: int | None = None,
          checkpoint=None, progress: bool | None = None, check: bool = True) -> Spectrum:
    """Eigenpairs of a symmetric operator, in descending order.

    Parameters
    ----------
    operator : CurvatureOperator, array of shape (n, n), scipy LinearOperator, …
        Anything :func:`~ridgelens.operators.as_operator` accepts.
    k : int, optional
        How many pairs (default: all n, dense only).
    which : {"largest", "smallest", "both"}, default "largest"
        Which end of the spectrum; "both" takes ⌈k/2⌉ largest and ⌊k/2⌋ smallest.
    tol : float, default 1e-6
        Lanczos stops when every wanted pair has ‖Hq − σq‖ ≤ tol · |σ_max|; then a deflated
        check looks for wanted eigenvalues it missed (and computes them).
    method : {"auto", "dense", "lanczos"}
        "auto" is dense when the matrix is in memory or n ≤ ``DENSE_MAX_PARAMS``.
    seed : int
        Start vector of Lanczos (results are deterministic for a given seed).
    ncv, max_matvecs : int, optional
        Lanczos basis size (default max(2k+1, k+20), shrunk toward k+10 where that
        basis would exceed 1 GiB) and product budget.
    checkpoint : path, optional
        Folder to save Lanczos state in, and resume from.
    progress : bool, optional
        Show a progress line (default: when stderr is a terminal).
    check : bool, default True
        Lanczos only: run the deflated check (``check_steps(k)`` products, 15 for k = 10) that
        makes ``converged`` mean "these are the k wanted eigenpairs". With ``False`` it means
        only that each returned pair has a small residual: Lanczos can converge on pairs that
        are not the wanted ones (a cluster, an eigenvalue beyond its Krylov space) and say so.
        ``Spectrum.checks["rounds"]`` says whether a check ran.

    Examples
    --------
    >>> import numpy as np
    >>> eigen(np.diag([1.0, 3.0])).eigenvalues
    array([3., 1.])
    >>> eigen(np.diag([1.0, 2.0, 3.0]), 1, method="lanczos").eigenvalues.round(12)
    array([3.])
    """
    op = as_operator(operator)
    seed = check_seed(seed)
    if which not in WHICH:
        raise RidgelensError(f"which must be one of {WHICH}, got {which!r}")
    if k is not None and not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 1 <= k <= op.n):
        raise RidgelensError(f"k must be an integer in [1, {op.n}], got {k!r}")
    check = check_flag(check, "check")
    choice = select_solver("eigen", method, n=op.n, is_dense=op.is_dense)
    if choice.name == "lanczos":
        if k is None:
            raise RidgelensError(f"the matrix-free solver needs k (how many eigenpairs of {op.n}); pass k=")
        r = lanczos(op, int(k), which=which, tol=tol, ncv=ncv, max_matvecs=max_matvecs, seed=seed,
                    checkpoint=checkpoint, progress=progress, check=bool(check))
        Q = _canonical_signs(r["eigenvectors"])
        if not r["converged"].all():
            import warnings

            why = ("a deflated check found wanted eigenvalues beyond the converged ones and could not settle them "
                   "within the budget" if r["checks"]["missed"] else "the budget ran out")
            warnings.warn(f"Lanczos stopped after {r['n_matvecs']} products with "
                          f"{int((~r['converged']).sum())} of {k} pairs not confirmed ({why}; largest residual "
                          f"{r['residuals'].max():.3g}); the partial result is returned with its flags",
                          ConvergenceWarning, stacklevel=2)
        return Spectrum(eigenvalues=np.asarray(r["eigenvalues"], dtype=np.float64), eigenvectors=Q, n=op.n,
                        method="lanczos", n_matvecs=r["n_matvecs"], residuals=r["residuals"],
                        converged=r["converged"], choice=choice, checks=r["checks"])
    before = op.n_matvecs
    H = op.to_dense().to(device="cpu", dtype=torch.float64).numpy()
    spent = 0 if op.is_dense else op.n_matvecs - before
    # Divide and conquer (syevd): all pairs, and ~4x faster than the default MRRR driver here.
    w, Q = linalg.eigh(H, check_finite=False, driver="evd")
    w, zero_tol = snap_rounding(w, op.dtype)  # rounding-level |σ| is 0, not negative curvature (and stays sorted)
    if k is not None:
        idx = _wanted(w, k, which)
        idx = idx[np.argsort(-w[idx], kind="stable")]
    else:
        idx = np.arange(w.size)[::-1]
    w, Q = w[idx], Q[:, idx]
    res = np.linalg.norm(H @ Q - Q * w, axis=0) if k is not None and k <= 64 else np.zeros(w.size)
    # On the operator's device, as from Lanczos; float64 kept (eigh's precision, whatever the operator's dtype)
    Qt = _canonical_signs(torch.from_numpy(np.ascontiguousarray(Q))).to(op.device)
    return Spectrum(eigenvalues=w.copy(), eigenvectors=Qt, n=op.n, method="dense-eigh",
                    n_matvecs=spent, residuals=res, converged=np.ones(w.size, dtype=bool), choice=choice,
                    zero_tol=zero_tol)
