"""Torch plumbing shared by the Krylov methods: any CurvatureOperator as a tensor matvec."""

from __future__ import annotations

import numpy as np
import torch

from ridgelens.operators import CurvatureOperator, DenseOperator


def tensor_matvec(op):
    """Return ``(matvec, device, dtype)`` acting on 1-D tensors.

    Operators with a native ``matvec_tensor`` (torch models) run on their own device and
    dtype; NumPy operators are wrapped in float64 on the CPU (zero-copy).
    """
    if not isinstance(op, CurvatureOperator):
        op = DenseOperator(op)
    native = getattr(op, "matvec_tensor", None)
    if native is not None:
        return native, op.device, op.torch_dtype

    def mv(v: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(op.matvec(v.detach().cpu().numpy()))

    return mv, torch.device("cpu"), torch.float64


def orthogonalize_blocks_(w: torch.Tensor, blocks) -> torch.Tensor:
    """Orthogonalize ``w`` in place against the rows of ``blocks`` (matrices, in order), twice (DGKS).

    Returns the coefficients on every row, both passes summed. A basis kept in several
    tensors (a head and a tail, or blocks grown as needed) is never copied into one.
    """
    blocks = [b for b in blocks if b.shape[0]]
    total = None
    for _ in range(2):
        h = torch.cat([b @ w for b in blocks])
        start = 0
        for b in blocks:
            w.addmv_(b.T, h[start:start + b.shape[0]], alpha=-1)
            start += b.shape[0]
        total = h if total is None else total + h
    return total


def shares_memory(w: torch.Tensor, *bufs: torch.Tensor) -> bool:
    """Whether ``w``'s data lies inside the memory of one of ``bufs`` (e.g. a row of a Krylov basis).

    Compares addresses, not storages: a NumPy operator that hands back its input comes back
    through ``torch.from_numpy`` with a storage of its own that starts at the row, not at the
    start of the basis' storage.
    """
    p = w.data_ptr()
    for b in bufs:
        s = b.untyped_storage()
        if b.device == w.device and s.data_ptr() <= p < s.data_ptr() + s.nbytes():
            return True
    return False


def to_numpy(t) -> np.ndarray:
    """A float64 NumPy copy of a tensor (or array)."""
    if isinstance(t, torch.Tensor):
        return t.detach().to(torch.float64).cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def start_vector(n: int, seed: int, device, dtype, out: torch.Tensor | None = None,
                 chunk: int = 1 << 20) -> torch.Tensor:
    """A unit random vector, the same for a given seed on every device.

    Drawn in float64 on the CPU ``chunk`` entries at a time and written into ``out``
    (a new tensor if None), so a vector of 10⁷ entries costs no float64 temporary of
    its full length.
    """
    g = torch.Generator().manual_seed(int(seed))
    v = torch.empty(n, device=device, dtype=dtype) if out is None else out
    sq = 0.0
    for start in range(0, n, chunk):
        c = torch.randn(min(chunk, n - start), generator=g, dtype=torch.float64)
        sq += float(c @ c)
        v[start:start + c.numel()] = c.to(device=device, dtype=dtype)
    return v.div_(sq**0.5)
