"""The whole λ path from one Krylov space: Lanczos on b = Hθ̂ − g, shared by every shift.

K_m(H + λI, b) = K_m(H, b) for every λ, so one Lanczos run (full reorthogonalization)
gives ``x_λ = V_m (T_m + λI)⁻¹ ‖b‖e₁`` for all λ at once. Memory: the basis, O(m·n),
plus the m_λ × n result. The residual of shift λ is ``|β_m| |e_mᵀ y_λ|``; the run stops
when every λ has ‖b − (H + λI)x_λ‖ ≤ tol·‖b‖.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ridgelens._checkpoint import Checkpoint
from ridgelens._progress import Progress
from ridgelens.errors import ConvergenceWarning, NegativeCurvatureWarning, RidgelensError
from ridgelens.spectra._krylov_base import orthogonalize, tensor_matvec, to_numpy


def _shifted_solves(T: np.ndarray, beta0: float, lam: np.ndarray):
    """``y_λ = (T + λI)⁺ β₀e₁`` for all λ via one eigendecomposition of the small T.

    Uses torch's eigh, not NumPy's: a NumPy BLAS call between two HVPs wakes OpenBLAS's
    threads, which then fight torch's for the cores and slow the next HVP several-fold.
    """
    w, Ut = torch.linalg.eigh(torch.from_numpy(T))
    t, U = w.numpy(), Ut.numpy()
    rank_tol = t.size * np.finfo(float).eps * max(np.abs(t).max(), 1e-300)
    t = np.where(np.abs(t) <= rank_tol, 0.0, t)
    denom = t[None, :] + lam[:, None]
    null = (t[None, :] == 0.0) & (lam[:, None] == 0.0)
    ok = (denom > 0) | null
    inv = np.where(ok & ~null, 1.0 / np.where(ok & ~null, denom, 1.0), 0.0)
    Y = torch.from_numpy(inv * (beta0 * U[0, :])[None, :]) @ Ut.T  # (m_λ, j)
    return Y.numpy(), ok.all(axis=1), t


def krylov_path(op, theta_hat, lam: np.ndarray, *, gradient=None, tol: float = 1e-8,
                max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None) -> dict:
    """θ̃(λ) = (H + λI)⁻¹(Hθ̂ − g) for every λ from one Lanczos run; see the module docs.

    Returns a dict: ``thetas`` (m, n) float64, ``residuals`` (m,) relative, ``converged``,
    ``valid`` (False where some Ritz value t has t + λ ≤ 0), ``n_matvecs``, ``ritz_values``.
    """
    n = op.shape[0]
    mv, device, dtype = tensor_matvec(op)
    max_matvecs = min(n, 500) if max_matvecs is None else int(max_matvecs)
    th = torch.as_tensor(np.asarray(theta_hat, dtype=np.float64)).to(device=device, dtype=dtype)
    ck = Checkpoint(checkpoint, "krylov_path", {"n": n, "tol": float(tol), "lambdas": lam.tolist()})
    state = ck.load()
    basis = _Basis(n, device, dtype)
    if state is not None:
        for v in state["V"]:
            basis.append(v.to(device=device, dtype=dtype))
        T = state["T"].numpy()
        nmv, beta0, beta = int(state["nmv"]), float(state["beta0"]), float(state["beta"])
    else:
        b = mv(th)
        if gradient is not None:
            b = b - torch.as_tensor(np.asarray(gradient, dtype=np.float64)).to(device=device, dtype=dtype)
        nmv, beta0, beta = 1, float(b.norm()), 0.0
        if beta0 == 0.0:
            raise RidgelensError("Hθ̂ − g is zero: θ̃(λ) = 0 for every λ > 0 (θ̂ lies in H's null space)")
        basis.append(b / beta0)
        T = np.zeros((0, 0))
    bar = Progress("krylov path", max_matvecs, progress)
    conv = np.zeros(lam.size, dtype=bool)
    res = np.full(lam.size, np.inf)
    while True:
        j = T.shape[0]
        w = mv(basis.rows[j])
        nmv += 1
        w, h = orthogonalize(w, basis.rows[: j + 1])
        T2 = np.zeros((j + 1, j + 1))
        T2[:j, :j] = T
        hh = to_numpy(h)
        T2[: j + 1, j] = hh
        T2[j, : j + 1] = hh
        T = T2
        beta = float(w.norm())
        Y, valid, t = _shifted_solves(T, beta0, lam)
        res = np.abs(beta * Y[:, -1]) / beta0
        invariant = beta <= 1e-12 * max(np.abs(t).max(), 1e-300)
        conv = (res <= tol) | ~valid | invariant
        bar.update(nmv)
        if conv.all() or nmv >= max_matvecs or j + 1 >= n or invariant:
            break
        basis.append(w / beta)
        ck.maybe_save(nmv, lambda T=T, nmv=nmv, beta=beta: {
            "V": list(basis.rows.cpu()), "T": torch.from_numpy(T.copy()), "nmv": nmv, "beta0": beta0, "beta": beta})
    bar.close()
    X = torch.from_numpy(Y).to(device=device, dtype=dtype) @ basis.rows[: T.shape[0]]
    thetas = to_numpy(X)
    thetas[~valid] = np.nan
    conv &= valid
    if (t < 0).any():
        warnings.warn(f"the Krylov space shows negative curvature (most negative Ritz value {t.min():.4g}); "
                      f"{int((~valid).sum())} λ have no minimizer of the quadratic model (NaN)",
                      NegativeCurvatureWarning, stacklevel=3)
    if not conv[valid].all():
        warnings.warn(f"the Krylov path stopped after {nmv} products with {int((~conv[valid]).sum())} λ above "
                      f"tol = {tol:g} (largest relative residual {res[valid].max():.3g})",
                      ConvergenceWarning, stacklevel=3)
    return {"thetas": thetas, "residuals": res, "converged": conv, "valid": valid, "n_matvecs": nmv,
            "ritz_values": t, "basis_size": T.shape[0]}


class _Basis:
    """Krylov basis rows in one preallocated tensor that grows by doubling (no per-step copies)."""

    def __init__(self, n: int, device, dtype, capacity: int = 32):
        self._data = torch.empty(capacity, n, device=device, dtype=dtype)
        self._size = 0

    def append(self, v: torch.Tensor) -> None:
        if self._size == self._data.shape[0]:
            grown = torch.empty(2 * self._size, self._data.shape[1], device=self._data.device, dtype=self._data.dtype)
            grown[: self._size] = self._data
            self._data = grown
        self._data[self._size] = v
        self._size += 1

    @property
    def rows(self) -> torch.Tensor:
        """The basis so far, (size, n), a view."""
        return self._data[: self._size]
