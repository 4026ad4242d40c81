"""The one Krylov engine: a block-stored basis and one Lanczos iteration, shared by every solver.

:class:`LanczosIteration` runs the recurrence ``β_{j+1} v_{j+1} = A v_j − α_j v_j − β_j v_{j−1}``
with a choice of reorthogonalization:

- ``"full"``: classical Gram–Schmidt twice (DGKS) against every stored vector, kept in a
  :class:`LanczosBasis` (rows in blocks, allocated as it grows or up front); the coefficients
  on every row are returned, which a thick restart needs.
- ``"local"``: the three-term recurrence plus one more pass against the two vectors held
  (3 vectors of memory); in float32 at 10⁷ parameters the plain recurrence drifts.
- ``"none"``: the plain three-term recurrence (multi-shift CG's, whose recurrences are written on
  these Lanczos vectors).

It serves :func:`~ridgelens.spectra.eigen` (thick-restart Lanczos), the SLQ density, the Krylov
ridge path and its Schur-complement form, and multi-shift CG; each driver decides what to
do with the coefficients. ``state_dict``/``load_state_dict`` give checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

REORTH = ("full", "local", "none")


def tensor_matvec(op):
    """Return ``(matvec, device, dtype)`` of any curvature :func:`~ridgelens.operators.as_operator` accepts."""
    from ridgelens.operators import as_operator

    op = as_operator(op)
    return op.matvec, op.device, op.dtype


def orthogonalize_blocks_(w: torch.Tensor, blocks, reduce=None) -> torch.Tensor:
    """Orthogonalize ``w`` in place against the rows of ``blocks`` (matrices, in order), twice (DGKS).

    Returns the coefficients on every row, both passes summed. A basis kept in several
    tensors is never copied into one. ``reduce`` (e.g. an all-reduce) completes the inner
    products of a basis whose rows are sliced across processes.
    """
    blocks = [b for b in blocks if b.shape[0]]
    if not blocks:
        return torch.zeros(0, dtype=w.dtype, device=w.device)
    total = None
    for _ in range(2):
        h = torch.cat([b @ w for b in blocks])
        if reduce is not None:
            h = reduce(h)
        start = 0
        for b in blocks:
            w.addmv_(b.T, h[start:start + b.shape[0]], alpha=-1)
            start += b.shape[0]
        total = h if total is None else total + h
    return total


def shares_memory(w: torch.Tensor, *bufs: torch.Tensor) -> bool:
    """Whether ``w``'s data lies inside the memory of one of ``bufs`` (e.g. a row of a Krylov basis).

    Compares addresses, not storages: a NumPy operator that hands back its input comes back
    through ``torch.from_numpy`` with a storage of its own that starts at the row.
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
    """A unit random vector, the same for a given seed on every device (drawn in float64 chunks)."""
    g = torch.Generator().manual_seed(int(seed))
    v = torch.empty(n, device=device, dtype=dtype) if out is None else out
    sq = 0.0
    for start in range(0, n, chunk):
        c = torch.randn(min(chunk, n - start), generator=g, dtype=torch.float64)
        sq += float(c @ c)
        v[start:start + c.numel()] = c.to(device=device, dtype=dtype)
    return v.div_(sq**0.5)


class LanczosBasis:
    """Basis rows stored in blocks: a first block of ``first`` rows, then blocks of ``block`` rows.

    No row is ever copied to grow the basis (a single tensor grown by doubling held the old and
    the new copy while it grew). With ``capacity`` every block is allocated up front. The first
    block is what a thick restart rotates the Ritz vectors into, so they are returned as a view.
    """

    def __init__(self, n: int, device, dtype, *, block: int = 16, first: int | None = None,
                 capacity: int | None = None):
        self.n, self.device, self.dtype = n, torch.device(device), dtype
        self.block, self.first = block, block if first is None else max(int(first), 1)
        self._blocks: list[torch.Tensor] = []
        self._size = 0
        self.capacity = capacity
        if capacity is not None:  # exactly capacity rows: the last block is cut to size
            while self._allocated() < capacity:
                self._grow(zero=True)

    def _allocated(self) -> int:
        return sum(b.shape[0] for b in self._blocks)

    def _grow(self, zero: bool = False) -> None:
        rows = self.first if not self._blocks else self.block
        if self.capacity is not None:
            rows = max(1, min(rows, self.capacity - self._allocated()))
        alloc = torch.zeros if zero else torch.empty
        self._blocks.append(alloc(rows, self.n, device=self.device, dtype=self.dtype))

    def __len__(self) -> int:
        return self._size

    #: Whether the rows are slices of the vectors, one slice per rank (:class:`ShardedLanczosBasis`).
    sharded = False

    def local(self, v: torch.Tensor) -> torch.Tensor:
        """The part of a full vector that this basis stores (the vector itself here)."""
        return v

    def full(self, rows: torch.Tensor) -> torch.Tensor:
        """Full vectors from stored rows (the rows themselves here)."""
        return rows

    def norm(self, w: torch.Tensor) -> float:
        """‖w‖ of a stored-layout vector."""
        return float(w.norm())

    @property
    def head(self) -> torch.Tensor:
        """The first block (``first`` rows)."""
        return self._blocks[0]

    def _locate(self, j: int) -> tuple[int, int]:
        if j < self.first:
            return 0, j
        q, r = divmod(j - self.first, self.block)  # every block but a capacity-cut last one is full
        return q + 1, r

    def row(self, j: int) -> torch.Tensor:
        if self.capacity is not None and j >= self.capacity:
            raise IndexError(f"row {j} of a basis of capacity {self.capacity}")
        while j >= self._allocated():
            self._grow()
        b, r = self._locate(j)
        return self._blocks[b][r]

    def append(self, v: torch.Tensor) -> None:
        self.row(self._size).copy_(v)
        self._size += 1

    def set_size(self, m: int) -> None:
        """Declare rows [:m] as the basis (after a restart wrote them in place)."""
        self._size = int(m)

    def parts(self, m: int) -> list[tuple[int, torch.Tensor]]:
        """The first m rows as a list of (first row index, block view)."""
        out, a = [], 0
        for blk in self._blocks:
            if a >= m:
                break
            out.append((a, blk[: min(blk.shape[0], m - a)]))
            a += blk.shape[0]
        return out

    def holds(self, w: torch.Tensor) -> bool:
        """Whether ``w`` shares memory with the basis (it must not be orthogonalized in place)."""
        return shares_memory(w, *self._blocks)

    def orthogonalize_(self, w: torch.Tensor, m: int) -> torch.Tensor:
        """Orthogonalize ``w`` in place against rows [:m], twice (DGKS); return the coefficients."""
        return orthogonalize_blocks_(w, [blk for _, blk in self.parts(m)])

    def combine(self, Y: torch.Tensor, m: int) -> torch.Tensor:
        """``Y @ rows[:m]`` for Y of shape (r, m)."""
        out = None
        for a, blk in self.parts(m):
            part = Y[:, a:a + blk.shape[0]] @ blk
            out = part if out is None else out.add_(part)
        return out

    def rotate_(self, C: torch.Tensor, m: int, cols: int = 1 << 16) -> None:
        """Rows [:p] = C @ rows [:m] for C of shape (p, m), p ≤ m, one block of columns at a time."""
        p = C.shape[0]
        parts = self.parts(m)
        targets = self.parts(p)
        for start in range(0, self.n, cols):
            sl = slice(start, start + cols)
            new = None
            for a, blk in parts:
                part = C[:, a:a + blk.shape[0]] @ blk[:, sl]
                new = part if new is None else new.add_(part)
            for a, blk in targets:
                blk[:, sl] = new[a:a + blk.shape[0]]

    def rows_list(self) -> list[torch.Tensor]:
        """The rows, as views (for a checkpoint)."""
        return [self.row(j) for j in range(self._size)]

    def stacked(self) -> torch.Tensor:
        """The rows as one new (size, n) tensor."""
        if not self._size:
            return torch.empty(0, self.n, device=self.device, dtype=self.dtype)
        return torch.cat([blk for _, blk in self.parts(self._size)])

    def state_dict(self) -> dict:
        return {"rows": [v.cpu() for v in self.rows_list()]}

    def load_state_dict(self, state: dict) -> None:
        self._size = 0
        for v in state["rows"]:
            self.append(v.to(device=self.device, dtype=self.dtype))


class LanczosIteration:
    """The Lanczos recurrence on ``mv`` (a tensor matvec), one step at a time.

    ``start(b)`` stores ``b/‖b‖`` as row 0 and returns ‖b‖. Each :meth:`step` applies the
    operator to the current row j, orthogonalizes (see the module docs), and returns
    ``(h, beta, w)``: the coefficients (``"full"``: on every row, α_j = h[j]; otherwise the
    one-element tensor [α_j]), ``β = ‖w‖`` and the new direction w, not yet stored. The
    driver then calls :meth:`push` (store ``w/β`` as row j + 1) or replaces it (a restart,
    an invariant subspace). ``alphas`` and ``betas`` hold the tridiagonal (β_j couples rows
    j − 1 and j).
    """

    def __init__(self, mv, n: int, device, dtype, *, reorth: str = "full", basis: LanczosBasis | None = None):
        if reorth not in REORTH:
            raise ValueError(f"reorth must be one of {REORTH}, got {reorth!r}")
        self.mv, self.n, self.reorth = mv, n, reorth
        self.device, self.dtype = torch.device(device), dtype
        if reorth == "full":
            self.basis = basis if basis is not None else new_basis(n, device, dtype)
        else:
            self.basis = None
            self.ring = torch.zeros(2, n, device=device, dtype=dtype)
        self.j = 0  # index of the current row
        self.alphas: list[float] = []
        self.betas: list[float] = []  # betas[i] couples rows i and i + 1
        self.n_matvecs = 0

    def vector(self, j: int) -> torch.Tensor:
        """Row j (for "local"/"none", only the current row and the one before are held)."""
        return self.basis.row(j) if self.basis is not None else self.ring[j % 2]

    def start(self, b: torch.Tensor) -> float:
        norm = float(b.norm())
        if norm > 0:
            self.vector(0).copy_((b if self.basis is None else self.basis.local(b)) / norm)
            if self.basis is not None:
                self.basis.set_size(1)
        self.j, self.alphas, self.betas = 0, [], []
        return norm

    def step(self):
        j = self.j
        v = self.vector(j)
        sharded = self.basis is not None and self.basis.sharded
        # A sharded basis gathers the row, applies the operator, and keeps its own slice of the result.
        w = self.basis.local(self.mv(self.basis.full(v))) if sharded else self.mv(v)
        bufs = self.basis._blocks if self.basis is not None else [self.ring]
        if shares_memory(w, *bufs):  # an operator that hands back its input (or a view of the basis)
            w = w.clone()
        self.n_matvecs += 1
        if self.reorth == "full":
            h = self.basis.orthogonalize_(w, j + 1)
            alpha = float(h[j])
        else:
            alpha = float(w @ v)
            w.add_(v, alpha=-alpha)
            if j > 0:
                w.add_(self.ring[(j - 1) % 2], alpha=-self.betas[j - 1])
            if self.reorth == "local":
                rows = self.ring[: 1 + (j > 0)] if j > 0 else self.ring[j % 2: j % 2 + 1]
                c = rows @ w
                w.addmv_(rows.T, c, alpha=-1)
                alpha += float(c[j % 2] if j > 0 else c[0])
            h = torch.tensor([alpha], dtype=torch.float64)
        self.alphas.append(alpha)
        return h, self.basis.norm(w) if sharded else float(w.norm()), w

    def push(self, w: torch.Tensor, beta: float) -> None:
        """Store ``w/β`` (in place in w) as row j + 1 and advance; β is recorded as the coupling."""
        self.betas.append(beta)
        nxt = self.vector(self.j + 1)
        nxt.copy_(w.div_(beta) if beta > 0 else w)
        if self.basis is not None:
            self.basis.set_size(self.j + 2)
        self.j += 1

    def tridiagonal(self) -> np.ndarray:
        """The (j+1)×(j+1) tridiagonal from ``alphas`` and ``betas``."""
        a = np.asarray(self.alphas, dtype=np.float64)
        b = np.asarray(self.betas[: a.size - 1], dtype=np.float64)
        return np.diag(a) + np.diag(b, 1) + np.diag(b, -1)

    def state_dict(self) -> dict:
        state = {"j": self.j, "alphas": torch.tensor(self.alphas, dtype=torch.float64),
                 "betas": torch.tensor(self.betas, dtype=torch.float64), "reorth": self.reorth,
                 "n_matvecs": self.n_matvecs}
        if self.basis is not None:
            state.update(self.basis.state_dict())
        else:
            state["ring"] = self.ring.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["reorth"] != self.reorth:
            raise ValueError(f"state of a {state['reorth']!r} iteration loaded into a {self.reorth!r} one")
        self.j, self.n_matvecs = int(state["j"]), int(state["n_matvecs"])
        self.alphas, self.betas = state["alphas"].tolist(), state["betas"].tolist()
        if self.basis is not None:
            self.basis.load_state_dict(state)
        else:
            self.ring.copy_(state["ring"].to(device=self.device, dtype=self.dtype))


class ShardedLanczosBasis(LanczosBasis):
    """A basis whose rows are sliced across the ranks of a process group: each holds ``1/N`` of every row.

    The base class' methods run unchanged on the slices (it is built with ``n`` = this rank's
    width); inner products and norms are all-reduced, :meth:`full` all-gathers rows. Every
    rank runs the same recurrence on the same all-reduced products, so the coefficients, and
    the results, are those of the unsharded basis up to rounding. Its ``state_dict`` holds this
    rank's slices only: a checkpoint writes one file per rank (:class:`~ridgelens._checkpoint.Checkpoint`).
    """

    sharded = True

    def __init__(self, n: int, device, dtype, **kw):
        from ridgelens import _distributed as dist

        rank, size = dist.world()
        self.global_n, self.chunk = n, -(-n // size)
        self.lo, self.hi = min(n, rank * self.chunk), min(n, (rank + 1) * self.chunk)
        super().__init__(self.hi - self.lo, device, dtype, **kw)

    def local(self, v: torch.Tensor) -> torch.Tensor:
        """Return this rank's slice of a full vector (a copy)."""
        return v[self.lo:self.hi].clone()

    def full(self, rows: torch.Tensor) -> torch.Tensor:
        """All-gather the slices of one row (n,) or of rows (r, n) into full vectors."""
        import torch.distributed as tdist

        from ridgelens import _distributed as dist

        one = rows.ndim == 1
        rows = rows[None] if one else rows
        pad = torch.zeros(rows.shape[0], self.chunk, device=rows.device, dtype=rows.dtype)
        pad[:, : rows.shape[1]] = rows
        parts = [torch.empty_like(pad) for _ in range(dist.world()[1])]
        dist._collective("basis all-gather", lambda: tdist.all_gather(parts, pad, async_op=True))
        out = torch.cat(parts, dim=1)[:, : self.global_n]
        return out[0] if one else out

    def norm(self, w: torch.Tensor) -> float:
        """‖w‖ over every rank's slice."""
        from ridgelens import _distributed as dist

        return float(dist.all_reduce_sum((w @ w).reshape(1), "basis norm all-reduce")[0]) ** 0.5

    def orthogonalize_(self, w: torch.Tensor, m: int) -> torch.Tensor:
        """DGKS against rows [:m], each pass' inner products all-reduced."""
        from ridgelens import _distributed as dist

        return orthogonalize_blocks_(w, [blk for _, blk in self.parts(m)],
                                     reduce=lambda h: dist.all_reduce_sum(h, "basis inner products all-reduce"))


def new_basis(n: int, device, dtype, **kw) -> LanczosBasis:
    """A :class:`LanczosBasis`, or a :class:`ShardedLanczosBasis` inside :func:`sharded_bases` under a process group."""
    from ridgelens import _distributed as dist

    if dist.basis_sharding() and dist.is_distributed():
        return ShardedLanczosBasis(n, device, dtype, **kw)
    return LanczosBasis(n, device, dtype, **kw)
