"""Thick-restart Lanczos with full reorthogonalization, on the operator's own device.

Memory: ``ncv + 1`` vectors of length n (the basis), plus the k Ritz vectors returned.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ridgelens._checkpoint import Checkpoint
from ridgelens._progress import Progress
from ridgelens.errors import RidgelensError
from ridgelens.spectra._krylov_base import orthogonalize, start_vector, tensor_matvec

WHICH = ("largest", "smallest", "both")


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices (into ascending ``theta``) of the wanted Ritz values."""
    m = theta.size
    if which == "largest":
        return np.arange(m - 1, m - 1 - k, -1)
    if which == "smallest":
        return np.arange(k)
    k_hi = math.ceil(k / 2)
    return np.r_[np.arange(m - 1, m - 1 - k_hi, -1), np.arange(k - k_hi)]


def lanczos(op, k: int, *, which: str = "largest", tol: float = 1e-6, ncv: int | None = None,
            max_matvecs: int | None = None, seed: int = 0, checkpoint=None, progress: bool | None = None):
    """The k extreme eigenpairs of a symmetric operator by thick-restart Lanczos.

    Converges when every wanted pair has ``‖Hq − σq‖ ≤ tol · |σ_max|`` (the Ritz residual
    ``|β_m s_{m,i}|``, exact with full reorthogonalization). Returns a dict with
    ``eigenvalues`` (descending), ``eigenvectors`` (n, k) tensor, ``residuals``,
    ``converged`` per pair and ``n_matvecs``; a run that hits ``max_matvecs`` returns its
    partial result with the flags False.
    """
    n = op.shape[0]
    if which not in WHICH:
        raise RidgelensError(f"which must be one of {WHICH}, got {which!r}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= n):
        raise RidgelensError(f"k must be an integer in [1, {n}], got {k!r}")
    if not tol > 0:
        raise RidgelensError(f"tol must be > 0, got {tol}")
    ncv = min(n, max(2 * k + 1, k + 20) if ncv is None else int(ncv))
    if ncv <= k and ncv < n:
        raise RidgelensError(f"ncv must exceed k (got ncv={ncv}, k={k})")
    max_matvecs = max(20 * ncv, 300) if max_matvecs is None else int(max_matvecs)
    mv, device, dtype = tensor_matvec(op)
    ck = Checkpoint(checkpoint, "lanczos", {"n": n, "k": int(k), "which": which, "tol": float(tol),
                                            "ncv": ncv, "seed": int(seed)})

    V = torch.zeros(ncv + 1, n, dtype=dtype, device=device)
    T = torch.zeros(ncv, ncv, dtype=torch.float64)
    j0, nmv, beta = 0, 0, 0.0
    state = ck.load()
    if state is not None:
        V.copy_(state["V"].to(device=device, dtype=dtype))
        T.copy_(state["T"])
        j0, nmv, beta = int(state["j"]), int(state["nmv"]), float(state["beta"])
    else:
        V[0] = start_vector(n, seed, device, dtype)
    bar = Progress("lanczos", max_matvecs, progress)
    g = torch.Generator().manual_seed(int(seed) + 1)
    kk = min(k, n)
    while True:
        stop = False
        for j in range(j0, ncv):
            w = mv(V[j])
            nmv += 1
            w, h = orthogonalize(w, V[: j + 1])
            hh = h.to(device="cpu", dtype=torch.float64)
            T[: j + 1, j] = hh
            T[j, : j + 1] = hh
            beta = float(w.norm())
            scale = float(T[: j + 1, : j + 1].abs().max())
            if beta <= 1e-10 * max(scale, 1e-300) and j + 1 < n:
                # Invariant subspace: continue with a fresh random direction (coupling 0).
                r = torch.randn(n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
                w, _ = orthogonalize(r, V[: j + 1])
                V[j + 1] = w / w.norm()
                beta = 0.0
            else:
                V[j + 1] = w / beta if beta > 0 else w
            bar.update(nmv)
            m = j + 1
            if m >= kk:  # check every step, so the run stops as soon as every wanted pair has converged
                theta, S, res, want, conv = _ritz(T, m, beta, kk, which, tol)
                if conv.all() or nmv >= max_matvecs or m >= n:
                    stop = True
                    break
            ck.maybe_save(nmv, lambda j=j, nmv=nmv, beta=beta: {"V": V.cpu(), "T": T.clone(), "j": j + 1,
                                                                 "nmv": nmv, "beta": beta})
        if stop:
            break
        # Thick restart: keep the wanted Ritz vectors and the next best, then the residual direction.
        order = _wanted(theta, m, which)
        extra = [i for i in order if i not in set(want)][: max((ncv - len(want)) // 2, 1)]
        keep = np.r_[want, extra].astype(int)
        p = keep.size
        Sk = torch.from_numpy(S[:, keep]).to(device=device, dtype=dtype)
        _rotate_rows_inplace(V, Sk.T, m)  # V[:p] = Skᵀ V[:m], in column blocks: no p×n temporary
        V[p] = V[m]
        V[p + 1:] = 0
        T.zero_()
        T[:p, :p] = torch.diag(torch.from_numpy(theta[keep]))
        j0 = p
    bar.close()
    order = want[np.argsort(-theta[want], kind="stable")]
    rank = np.argsort(-theta[want], kind="stable")
    Sk = torch.from_numpy(np.ascontiguousarray(S[:, order])).to(device=device, dtype=dtype)
    _rotate_rows_inplace(V, Sk.T, m)  # the Ritz vectors, descending, in V[:k]
    Q = V[: order.size].T.clone()  # (n, k); the basis is freed on return
    return {"eigenvalues": theta[order], "eigenvectors": Q, "residuals": res[want][rank],
            "converged": conv[rank], "n_matvecs": nmv, "ncv": ncv}


def _rotate_rows_inplace(V: torch.Tensor, C: torch.Tensor, m: int, block: int = 1 << 16) -> None:
    """``V[:p] = C @ V[:m]`` for C of shape (p, m), p ≤ m, one block of columns at a time."""
    p = C.shape[0]
    for start in range(0, V.shape[1], block):
        cols = slice(start, start + block)
        V[:p, cols] = C @ V[:m, cols]


def _ritz(T: torch.Tensor, m: int, beta: float, k: int, which: str, tol: float):
    """Ritz values/vectors of the m×m projection (torch's eigh: NumPy's BLAS threads would fight torch's)."""
    w, U = torch.linalg.eigh(T[:m, :m])
    theta, S = w.numpy(), U.numpy()
    res = np.abs(beta * S[m - 1, :])
    want = _wanted(theta, k, which)
    smax = float(np.abs(theta).max()) or 1.0
    return theta, S, res, want, res[want] <= tol * smax
