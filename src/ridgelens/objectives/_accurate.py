r"""Residuals and products as if computed in twice the working precision, at BLAS speed.

:class:`~ridgelens.objectives.LeastSquares` refines θ̂ with the residual ``y − Xw − b`` (and, in
Björck's refinement, ``XᵀWρ``) summed in twice the working precision. Dekker's error-free
product and Knuth's error-free sum (:func:`two_prod`, :func:`two_sum`) do that one entry at a
time, some thirty passes over X; here the products are matrix products, after Ozaki, Ogita,
Oishi & Rump's error-free splitting (Numer. Algorithms 59, 2012):

- column j of ``M`` is scaled by ``2^kⱼ`` and ``vⱼ`` by ``2^−kⱼ`` (exact), so that every
  ``v'ⱼ`` lies in [½, 1) and keeps all its bits below;
- ``v'`` is cut exactly into slices of ``bv`` bits (multiples of ``2^−bv``, ``2^−2bv``, … down
  to its last bit), and each row of the scaled ``M`` into two slices of ``bm`` bits below the
  row's bound ``2^e`` (multiples of ``2^(e−bm)`` and ``2^(e−2bm)``) and a rest below ``2^(e−2bm)``;
- with ``bm + bv + log₂ p ≤ 53`` (p terms per row), every product of two slices and every
  partial sum of a row is an integer multiple of one unit, below ``2^53`` of it: the slices'
  products come out of any BLAS, in any order, *exactly*. Only the rest's product rounds, and
  it is below ``p·2^(e−2bm)`` (``bm`` = 30 up to p = 2^19 columns: ``p·2^−60`` of the row's bound).

The columns of :func:`block_products` are then summed by the error-free cascade :func:`cascade`:
within about ``ε·|Mv| + p·ε²·Σ|Mᵢⱼvⱼ|``, as Ogita, Rump & Oishi's Dot2, for eight passes over
each cache-sized block of ``M`` and two matrix products. A design of fewer than ``_NARROW``
columns has fewer terms per row than these columns: its residual multiplies entry by entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp's splitting of a double into two halves)
#: Entries per block of rows (256 KiB arrays, in cache).
BLOCK = 1 << 15
#: Bits of each of the two leading slices of M's rows (the rest is below 2^−60 of the row).
_MATRIX_BITS = 30
#: Rows summed at once by :func:`accurate_residual` (one block, if it has more): the cascade's
#: temporaries stay in cache.
_GROUP_ROWS = 1 << 12
#: Products summed at once by :func:`accurate_transpose` (8 MiB; each block of rows gives slices × d).
_GROUP_ENTRIES = 1 << 20
#: :func:`accurate_residual` of a design with fewer columns multiplies entry by entry (the two ways
#: take about the same time at 10 columns, one thread).
_NARROW = 10
#: The scale of a zero ``vⱼ``: ``2^k·M`` is 0 for every finite M, so that its column (whose products
#: are 0) does not set a row's bound, which would leave the other products to the rounded rest.
_ZERO_EXPONENT = -2200


def two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth): ``(s, e)``."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def two_prod(a, b):
    """``a · b = p + e`` exactly (Dekker, with Veltkamp's splitting): ``(p, e)``."""
    p = a * b
    ca, cb = _SPLITTER * a, _SPLITTER * b
    ah, bh = ca - (ca - a), cb - (cb - b)
    al, bl = a - ah, b - bh
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def cascade(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of ``terms`` (k × m) by a pairwise cascade of error-free sums: (rounded sums, their errors).

    Rows are added pairwise (contiguous vectors when ``terms`` is C-ordered); an odd row waits a level.
    """
    err = np.zeros(terms.shape[1:])
    while terms.shape[0] > 1:
        half = terms.shape[0] // 2
        sums, e = two_sum(terms[0:2 * half:2], terms[1:2 * half:2])
        err += e.sum(axis=0)
        terms = np.concatenate([sums, terms[2 * half:]]) if terms.shape[0] % 2 else sums
    return terms[0], err


def _cut(M: np.ndarray, top, bits: int):
    """``(S, M − S)``: M rounded to multiples of ``2^(top − bits)``, exactly, if ``|M| ≤ 2^top``.

    ``(M + σ) − σ`` with ``σ = 1.5·2^(top − bits + 52)`` (``bits ≤ 51`` keeps ``M + σ`` in σ's
    binade, whose spacing is that multiple). ``M`` is overwritten with the rest.
    """
    sigma = np.ldexp(1.5, top - bits + 52)
    hi = np.add(M, sigma)
    hi -= sigma
    M -= hi
    return hi, M


@dataclass(frozen=True)
class VectorSplit:
    """``v = 2^k ∘ scaled`` with ``scaled = slices.sum(axis=1)`` exactly, for products of p terms."""

    k: np.ndarray
    scaled: np.ndarray
    slices: np.ndarray
    matrix_bits: int

    def __getitem__(self, rows) -> VectorSplit:
        return VectorSplit(self.k[rows], self.scaled[rows], self.slices[rows], self.matrix_bits)


def split_vector(v: np.ndarray, p: int) -> VectorSplit:
    """Split ``v`` (finite) for :func:`block_products` of rows of ``p`` terms."""
    budget = 53 - int(np.ceil(np.log2(max(p, 2))))
    matrix_bits = min(_MATRIX_BITS, budget - 4)
    k = np.frexp(v)[1]
    scaled = np.ldexp(v, -k)  # in [1/2, 1), or 0
    k[v == 0] = _ZERO_EXPONENT
    rest, slices = scaled.copy(), []
    for a in range(1, -(-53 // (budget - matrix_bits)) + 1):
        hi, rest = _cut(rest, 0, a * (budget - matrix_bits))
        slices.append(hi)
    return VectorSplit(k, scaled, np.column_stack(slices), matrix_bits)


def block_products(M: np.ndarray, split: VectorSplit) -> np.ndarray:
    """Columns whose row sums are ``M @ v`` (``split`` of v): all exact but the last, below ``p·2^−60`` of the row.

    ``M`` (m × p, any layout) a block that fits in cache. An overflow shows as non-finite entries.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Ms = np.ldexp(M, split.k)  # Ms @ scaled = M @ v, term by term
        top = np.frexp(np.max(np.abs(Ms), axis=1))[1][:, None]
        # Every row scaled to the bound 2^0 (exact), so that each cut adds one scalar: NumPy adds a
        # per-row column vector about 3x slower. The products are the same, scaled back below.
        np.ldexp(Ms, -top, out=Ms)
        M1, rest = _cut(Ms, 0, split.matrix_bits)
        M2, rest = _cut(rest, 0, 2 * split.matrix_bits)
        q = split.slices.shape[1]
        P = np.empty((M.shape[0], 2 * q + 1))
        np.matmul(M1, split.slices, out=P[:, :q])
        np.matmul(M2, split.slices, out=P[:, q:2 * q])
        np.matmul(rest, split.scaled, out=P[:, 2 * q])
        return np.ldexp(P, top, out=P)


def _row_blocks(n: int, width: int, entries: int = BLOCK) -> list[slice]:
    """Slices of the rows of an n-row matrix of ``width`` columns, ``entries`` entries at most each."""
    rows = max(1, entries // max(width, 1))
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


def accurate_residual(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
                      rho: np.ndarray | None = None) -> np.ndarray:
    """``y − rho − X coef − intercept`` (``rho`` 0 if None) as if computed in twice the working precision.

    Summed per group of rows (the product columns held for one group only). Below ``_NARROW``
    columns, the products are Dekker's, entry by entry, whose errors (tiny) are added in working
    precision: fewer terms to sum than :func:`block_products`' columns. Falls back to the plain
    residual if the scaling overflows (entries beyond ~1e300).
    """
    n, d = X.shape
    split = split_vector(coef, d) if d >= _NARROW else None
    out = np.empty(n)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the plain residual below
        for g in _row_blocks(n, 1, max(_GROUP_ROWS, BLOCK // max(d, 1))):
            Xg, err = X[g], 0.0
            if split is not None:
                P = np.vstack([block_products(Xg[b], split) for b in _row_blocks(*Xg.shape)])
            else:
                P, err = two_prod(Xg, coef)
                err = err.sum(axis=1)
            first = [y[g]] if rho is None else [y[g], -rho[g]]
            s, e = cascade(np.vstack([*first, np.full(g.stop - g.start, -intercept), -P.T]))
            out[g] = s + (e - err)
    if not np.all(np.isfinite(out)):
        out = y - (0.0 if rho is None else rho) - X @ coef - intercept
    return out


def accurate_transpose(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``Xᵀv`` as if computed in twice the working precision (the same products, on ``X[block]ᵀ``).

    The blocks' products are summed group by group (``_GROUP_ENTRIES`` at once: a wide design's
    are not all held), the groups' sums added error-free, their errors in working precision.
    """
    n, d = X.shape
    blocks = _row_blocks(n, d)
    if not blocks:
        return np.zeros(d)
    split = split_vector(v, blocks[0].stop - blocks[0].start)
    per_group = max(1, _GROUP_ENTRIES // (d * (2 * split.slices.shape[1] + 1)))
    total, err = np.zeros(d), np.zeros(d)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, len(blocks), per_group):
            s, e = cascade(np.vstack([block_products(X[b].T, split[b]).T for b in blocks[i:i + per_group]]))
            total, e2 = two_sum(total, s)
            err += e + e2
        out = total + err
    return out if np.all(np.isfinite(out)) else X.T @ v
