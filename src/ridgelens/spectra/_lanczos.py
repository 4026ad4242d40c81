"""Thick-restart Lanczos with full reorthogonalization, on the operator's own device.

Memory: ``ncv + 1`` vectors of length n (the basis); the k Ritz vectors returned are
its first rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ridgelens._checkpoint import Checkpoint, operator_fingerprint
from ridgelens._progress import Progress
from ridgelens.errors import RidgelensError
from ridgelens.spectra._krylov_base import (
    orthogonalize_blocks_,
    shares_memory,
    start_vector,
    tensor_matvec,
)

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


#: A basis larger than this many bytes is shrunk toward k + 10 vectors (more restarts, less memory).
BASIS_BUDGET_BYTES = 1 << 30


def default_ncv(n: int, k: int, itemsize: int) -> int:
    """Lanczos basis size: max(2k+1, k+20), shrunk toward k+10 when that would exceed 1 GiB.

    Measured on an MLP's top 20 (bench_scale): ncv = k+10 costs about 15 % more products
    than k+21, k+6 about 60 % more. The rule depends on n and the dtype only, so a run
    is reproducible on any machine.
    """
    roomy = max(2 * k + 1, k + 20)
    fits = BASIS_BUDGET_BYTES // max(n * itemsize, 1) - 1
    return int(min(n, max(k + 10, min(roomy, fits))))


def _extras(theta: np.ndarray, m: int, want: np.ndarray, which: str) -> list[int]:
    """The Ritz vectors a restart may keep besides the wanted ones, best first.

    Those next to the wanted end; for "both", alternately from the top and the bottom.
    """
    taken = {int(i) for i in want}
    top = [i for i in range(m - 1, -1, -1) if i not in taken]
    if which == "largest":
        return top
    if which == "smallest":
        return top[::-1]
    bottom = top[::-1]
    out, seen = [], set()
    for hi, lo in zip(top, bottom, strict=True):
        for i in (hi, lo):
            if i not in seen:
                seen.add(i)
                out.append(i)
    return out


def lanczos(op, k: int, *, which: str = "largest", tol: float = 1e-6, ncv: int | None = None,
            max_matvecs: int | None = None, seed: int = 0, checkpoint=None, progress: bool | None = None):
    """The k extreme eigenpairs of a symmetric operator by thick-restart Lanczos.

    Converges when every wanted pair has ``‖Hq − σq‖ ≤ tol · |σ_max|`` (the Ritz residual
    ``|β_m s_{m,i}|``, exact with full reorthogonalization). Returns a dict with
    ``eigenvalues`` (descending), ``eigenvectors`` (n, k) tensor, ``residuals``,
    ``converged`` per pair and ``n_matvecs``; a run that hits ``max_matvecs`` returns its
    partial result with the flags False.

    Memory: ncv + 1 vectors of length n, and nothing more: the Ritz vectors are rotated
    into the first k rows of the basis, which are returned; the other rows are freed.
    """
    n = op.shape[0]
    if which not in WHICH:
        raise RidgelensError(f"which must be one of {WHICH}, got {which!r}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= n):
        raise RidgelensError(f"k must be an integer in [1, {n}], got {k!r}")
    if not tol > 0:
        raise RidgelensError(f"tol must be > 0, got {tol}")
    mv, device, dtype = tensor_matvec(op)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    ncv = default_ncv(n, k, itemsize) if ncv is None else min(n, int(ncv))
    if ncv <= k and ncv < n:
        raise RidgelensError(f"ncv must exceed k (got ncv={ncv}, k={k})")
    max_matvecs = max(20 * ncv, 300) if max_matvecs is None else int(max_matvecs)
    ck = Checkpoint(checkpoint, "lanczos", {"n": n, "k": int(k), "which": which, "tol": float(tol),
                                            "operator": operator_fingerprint(op),
                                            "ncv": ncv, "seed": int(seed), "layout": 2})

    V = _SplitBasis(ncv + 1, k, n, device, dtype)
    T = torch.zeros(ncv, ncv, dtype=torch.float64)
    j0, nmv, beta = 0, 0, 0.0
    state = ck.load()
    if state is not None:
        V.head.copy_(state["head"].to(device=device, dtype=dtype))
        V.tail.copy_(state["tail"].to(device=device, dtype=dtype))
        T.copy_(state["T"])
        j0, nmv, beta = int(state["j"]), int(state["nmv"]), float(state["beta"])
    else:
        start_vector(n, seed, device, dtype, out=V.row(0))
    bar = Progress("lanczos", max_matvecs, progress)
    g = torch.Generator().manual_seed(int(seed) + 1)
    kk = min(k, n)
    while True:
        stop = False
        if j0 >= ncv:  # resumed from a checkpoint taken at the end of a pass: restart from its Ritz pairs
            m = ncv
            theta, S, res, want, conv = _ritz(T, m, beta, kk, which, tol)
            stop = bool(conv.all()) or nmv >= max_matvecs
        for j in range(j0, ncv):
            w = mv(V.row(j))
            if V.holds(w):  # an operator that hands back its input (or a view of the basis)
                w = w.clone()
            nmv += 1
            h = V.orthogonalize_(w, j + 1)
            hh = h.to(device="cpu", dtype=torch.float64)
            T[: j + 1, j] = hh
            T[j, : j + 1] = hh
            beta = float(w.norm())
            scale = float(T[: j + 1, : j + 1].abs().max())
            if beta <= 1e-10 * max(scale, 1e-300) and j + 1 < n:
                # Invariant subspace: continue with a fresh random direction (coupling 0).
                w = torch.randn(n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
                V.orthogonalize_(w, j + 1)
                V.row(j + 1).copy_(w / w.norm())
                beta = 0.0
            else:
                V.row(j + 1).copy_(w.div_(beta) if beta > 0 else w)
            del w
            bar.update(nmv)
            m = j + 1
            if m >= kk:  # check every step, so the run stops as soon as every wanted pair has converged
                theta, S, res, want, conv = _ritz(T, m, beta, kk, which, tol)
                if conv.all() or nmv >= max_matvecs or m >= n:
                    stop = True
                    break
            ck.maybe_save(nmv, lambda j=j, nmv=nmv, beta=beta: {"head": V.head, "tail": V.tail, "T": T.clone(),
                                                                 "j": j + 1, "nmv": nmv, "beta": beta})
        if stop:
            break
        # Thick restart: keep the wanted Ritz vectors and the next best, then the residual direction.
        # p = k + extra must stay below ncv, or the next pass has no step to take (ncv = k + 1: extra = 0).
        extra = _extras(theta, m, want, which)[: (ncv - len(want)) // 2]
        keep = np.r_[want, extra].astype(int)
        p = keep.size
        Sk = torch.from_numpy(S[:, keep]).to(device=device, dtype=dtype)
        V.rotate_(Sk.T, m)  # rows [:p] = Skᵀ rows [:m], in column blocks: no p×n temporary
        V.row(p).copy_(V.row(m))
        for i in range(p + 1, ncv + 1):
            V.row(i).zero_()
        T.zero_()
        T[:p, :p] = torch.diag(torch.from_numpy(theta[keep]))
        j0 = p
    bar.close()
    order = want[np.argsort(-theta[want], kind="stable")]
    rank = np.argsort(-theta[want], kind="stable")
    Sk = torch.from_numpy(np.ascontiguousarray(S[:, order])).to(device=device, dtype=dtype)
    V.rotate_(Sk.T, m)  # the Ritz vectors, descending, in the head rows
    Q = V.head[: order.size].T  # (n, k), a view of the head; the tail is freed on return
    return {"eigenvalues": theta[order], "eigenvectors": Q, "residuals": res[want][rank],
            "converged": conv[rank], "n_matvecs": nmv, "ncv": ncv}


class _SplitBasis:
    """Lanczos basis rows stored as a head of k rows and a tail of the rest.

    The Ritz vectors end up in the head, which is returned as is: the result costs no
    copy, and the peak memory is the basis alone.
    """

    def __init__(self, rows: int, k: int, n: int, device, dtype):
        self.k = min(k, rows)
        self.head = torch.zeros(self.k, n, device=device, dtype=dtype)
        self.tail = torch.zeros(rows - self.k, n, device=device, dtype=dtype)

    def holds(self, w: torch.Tensor) -> bool:
        """Whether ``w`` shares memory with the basis (it must not be orthogonalized in place)."""
        return shares_memory(w, self.head, self.tail)

    def row(self, i: int) -> torch.Tensor:
        return self.head[i] if i < self.k else self.tail[i - self.k]

    def _parts(self, m: int):
        a = min(m, self.k)
        return self.head[:a], self.tail[: m - a]

    def orthogonalize_(self, w: torch.Tensor, m: int) -> torch.Tensor:
        """Orthogonalize ``w`` in place against rows [:m], twice (DGKS); return the coefficients."""
        return orthogonalize_blocks_(w, self._parts(m))

    def rotate_(self, C: torch.Tensor, m: int, block: int = 1 << 16) -> None:
        """Rows [:p] = C @ rows [:m] for C of shape (p, m), p ≤ m, one block of columns at a time."""
        p = C.shape[0]
        A, B = self._parts(m)
        a = A.shape[0]
        for start in range(0, self.head.shape[1], block):
            cols = slice(start, start + block)
            new = C[:, :a] @ A[:, cols]
            if B.shape[0]:
                new += C[:, a:] @ B[:, cols]
            self.head[: min(p, self.k), cols] = new[: self.k]
            if p > self.k:
                self.tail[: p - self.k, cols] = new[self.k:]


def _ritz(T: torch.Tensor, m: int, beta: float, k: int, which: str, tol: float):
    """Ritz values/vectors of the m×m projection (torch's eigh: NumPy's BLAS threads would fight torch's)."""
    w, U = torch.linalg.eigh(T[:m, :m])
    theta, S = w.numpy(), U.numpy()
    res = np.abs(beta * S[m - 1, :])
    want = _wanted(theta, k, which)
    smax = float(np.abs(theta).max()) or 1.0
    return theta, S, res, want, res[want] <= tol * smax
