"""The one seam: a linear operator on flat parameter vectors, on torch tensors.

A :class:`CurvatureOperator` has a ``shape`` ``(n, n)``, a torch ``dtype`` and ``device``,
and one hook to implement, ``_matmat(V)`` for a tensor ``V`` of shape ``(n, b)``. Everything
else is derived: ``matvec``, ``matmat`` and ``@`` (tensors in, tensors out; NumPy arrays in,
float64 NumPy arrays out), ``to_dense()``, ``to_scipy()``, and composition::

    A + B,  A - B,  c * A,  A @ B,  A.shift(λ) (= A + λI),  A.sandwich(s) (= diag(s) A diag(s))

so ``D^{-1/2} H D^{-1/2}`` is ``H.sandwich(d ** -0.5)``. Products are counted in
:attr:`CurvatureOperator.n_matvecs`: one per vector, whatever the operator is.

>>> import numpy as np
>>> op = DenseOperator(np.array([[2.0, 1.0], [1.0, 3.0]]))
>>> op.matvec(np.array([1.0, 0.0]))
array([2., 1.])
>>> op.shape, op.n_matvecs
((2, 2), 1)
>>> (op.shift(1.0) @ np.array([1.0, 0.0])).tolist()
[3.0, 1.0]
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ridgelens._progress import Progress
from ridgelens._validation import check_seed, refuse_complex
from ridgelens.errors import RidgelensError

#: A matrix passed as curvature may be off symmetric by this much (relative to its largest entry).
SYMMETRY_TOL = 1e-8


def _checked_device(device: torch.device, what: str) -> torch.device:
    """``device`` with its index (plain 'cuda' is the current GPU), unless it is 'meta' (no values to multiply).

    A tensor's device always has its index ('cuda:0'), and ``torch.device('cuda') != torch.device('cuda:0')``:
    an operator declared on 'cuda' would otherwise refuse its own products and its partners' vectors.
    """
    if device.type == "meta":
        raise RidgelensError(f"{what} on the 'meta' device has shapes but no values; build it on the device "
                             "that holds θ̂ and the model (cpu, cuda, …)")
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


class CurvatureOperator:
    """A linear operator ``(n, n)`` on flat vectors, symmetric unless :attr:`symmetric` is False.

    Subclasses implement :meth:`_matmat` (a tensor ``(n, b)`` on :attr:`device` in :attr:`dtype`
    to a tensor ``(n, b)``) and may override :meth:`_matvec` when one vector has a cheaper path.

    Attributes
    ----------
    n : int
    dtype : torch.dtype
    device : torch.device
    n_matvecs : int
        Products with this operator so far (a ``matmat`` of b columns counts b).
    symmetric : bool
    """

    symmetric = True

    def __init__(self, n: int, *, dtype=torch.float64, device="cpu"):
        self.n = int(n)
        self.dtype = dtype
        self.device = _checked_device(torch.device(device), "a curvature operator")
        self.n_matvecs = 0

    # ------------------------------------------------------------------ the hook
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _matmat(V) for V of shape (n, b)")

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matmat(v[:, None])[:, 0]

    # ------------------------------------------------------------------ derived
    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)``."""
        return (self.n, self.n)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype products run in (same as :attr:`dtype`)."""
        return self.dtype

    @property
    def is_dense(self) -> bool:
        """Whether the matrix is held in memory."""
        return False

    def _in(self, x, ndim: int, what: str):
        numpy_in = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x, dtype=np.float64)) if numpy_in else x
        if t.ndim != ndim or t.shape[0] != self.n:
            want = f"({self.n},)" if ndim == 1 else f"({self.n}, k)"
            raise RidgelensError(f"{what} expects a {'vector' if ndim == 1 else 'matrix'} of shape {want}, "
                                 f"got {tuple(t.shape)}")
        if t.device != self.device or t.dtype != self.dtype:
            t = t.to(device=self.device, dtype=self.dtype)
        return t, numpy_in

    @staticmethod
    def _out(t: torch.Tensor, numpy_out: bool):
        return t.detach().to(device="cpu", dtype=torch.float64).numpy() if numpy_out else t

    def matvec(self, v):
        """``A v`` for ``v`` of shape (n,): a tensor (on any device; moved to :attr:`device`) or an array."""
        t, numpy_in = self._in(v, 1, "matvec")
        self.n_matvecs += 1
        return self._out(self._matvec(t), numpy_in)

    def matmat(self, V):
        """``A V`` for ``V`` of shape (n, b); equals stacking :meth:`matvec` on the columns."""
        t, numpy_in = self._in(V, 2, "matmat")
        self.n_matvecs += t.shape[1]
        return self._out(self._matmat(t) if t.shape[1] else t.clone(), numpy_in)

    def __matmul__(self, other):
        if isinstance(other, CurvatureOperator):
            return ProductOperator(self, other)
        x = other if isinstance(other, torch.Tensor) else np.asarray(other)
        return self.matvec(x) if x.ndim == 1 else self.matmat(x)

    def __add__(self, other):
        if isinstance(other, CurvatureOperator):
            return SumOperator([(1.0, self), (1.0, other)])
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, CurvatureOperator):
            return SumOperator([(1.0, self), (-1.0, other)])
        return NotImplemented

    def __mul__(self, c):
        if isinstance(c, numbers.Real):
            return SumOperator([(float(c), self)])
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self):
        return SumOperator([(-1.0, self)])

    def shift(self, lam: float) -> CurvatureOperator:
        """``A + λI``."""
        return SumOperator([(1.0, self), (float(lam), IdentityOperator(self.n, dtype=self.dtype, device=self.device))])

    def sandwich(self, s) -> CurvatureOperator:
        """``diag(s) A diag(s)`` (``s`` of shape (n,)); ``D^{-1/2} A D^{-1/2}`` is ``sandwich(d ** -0.5)``."""
        return SandwichOperator(self, s)

    def to_dense(self, block: int = 256, progress: bool | None = None) -> torch.Tensor:
        """The ``(n, n)`` matrix as a tensor (n products, ``block`` columns at a time); symmetrized when symmetric.

        A progress bar counts the n products (``progress``: see :mod:`ridgelens._progress`).
        """
        cols = []
        with Progress(f"forming the dense matrix (n = {self.n} products)", self.n, progress) as bar:
            for a in range(0, self.n, block):
                E = torch.zeros(self.n, min(block, self.n - a), dtype=self.dtype, device=self.device)
                E[torch.arange(a, a + E.shape[1]), torch.arange(E.shape[1])] = 1.0
                cols.append(self.matmat(E))
                bar.advance(E.shape[1])
        M = torch.cat(cols, dim=1) if cols else torch.zeros(0, 0, dtype=self.dtype, device=self.device)
        return 0.5 * (M + M.T) if self.symmetric else M

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` view in float64 (NumPy in, NumPy out)."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape, matvec=self.matvec, rmatvec=self.matvec if self.symmetric else None,
                              matmat=self.matmat, dtype=np.float64)

    as_linear_operator = to_scipy

    def fingerprint(self) -> str | None:
        """What the operator is taken at (point, data, mask), for checkpoints; None when unknown."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} n={self.n} dtype={self.dtype} device={self.device}>"


class DenseOperator(CurvatureOperator):
    """A symmetric matrix held in memory (a NumPy array or a tensor; kept in its device, float64 by default).

    Raises :class:`RidgelensError` when the matrix is not square, not finite or not symmetric.
    """

    def __init__(self, H, *, dtype=None):
        refuse_complex(H, "H", RidgelensError)  # not cast: its imaginary part would be lost
        if isinstance(H, torch.Tensor):
            M = H.detach()
            M = M.to(dtype or (M.dtype if M.is_floating_point() else torch.float64))
        else:
            try:
                M = torch.as_tensor(np.asarray(H, dtype=np.float64)).to(dtype or torch.float64)
            except (TypeError, ValueError):
                raise RidgelensError(f"curvature must be a numeric square matrix, got {type(H).__name__}") from None
        _checked_device(M.device, "the matrix H")
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise RidgelensError(f"H must be a square matrix, got shape {tuple(M.shape)}")
        if M.shape[0] == 0:
            raise RidgelensError("H is a 0×0 matrix: there are no parameters to analyze")
        if not bool(torch.isfinite(M).all()):
            raise RidgelensError("H contains non-finite values")
        scale = max(1.0, float(M.abs().max()))
        asym = float((M - M.T).abs().max())
        if asym > SYMMETRY_TOL * scale:
            i, j = divmod(int((M - M.T).abs().argmax()), M.shape[0])
            raise RidgelensError(f"H must be symmetric; max |H - Hᵀ| = {asym:.3g} at ({i}, {j}) — a Hessian or "
                                 "Gauss-Newton matrix is symmetric; pass (H + Hᵀ)/2 if the asymmetry is rounding")
        super().__init__(M.shape[0], dtype=M.dtype, device=M.device)
        self.matrix = 0.5 * (M + M.T)

    @property
    def H(self) -> np.ndarray:
        """The matrix as a float64 NumPy array."""
        return self.matrix.to(device="cpu", dtype=torch.float64).numpy()

    def _matmat(self, V):
        return self.matrix @ V

    def _matvec(self, v):
        return self.matrix @ v

    def to_dense(self, block: int = 256, progress: bool | None = None) -> torch.Tensor:
        return self.matrix.clone()

    @property
    def is_dense(self) -> bool:
        return True

    def fingerprint(self) -> str | None:
        from ridgelens._checkpoint import digest

        return digest(self.matrix)


class IdentityOperator(CurvatureOperator):
    """``I`` of size n."""

    def _matmat(self, V):
        return V.clone()

    def fingerprint(self):
        return f"identity-{self.n}"


class SumOperator(CurvatureOperator):
    """``Σ cᵢ Aᵢ``: sums, differences, scalar multiples and shifts of operators of one size and device."""

    def __init__(self, terms):
        terms = [(float(c), op) for c, op in terms]
        first = terms[0][1]
        for _, op in terms:
            _check_compatible(first, op, "add")
        super().__init__(first.n, dtype=first.dtype, device=first.device)
        self.terms = terms
        self.symmetric = all(op.symmetric for _, op in terms)

    def _combine(self, x, product: str):
        out = None
        for c, op in self.terms:
            part = getattr(op, product)(x)
            out = c * part if out is None else out.add_(part, alpha=c)
        return out

    def _matmat(self, V):
        return self._combine(V, "matmat")

    def _matvec(self, v):
        return self._combine(v, "matvec")

    @property
    def is_dense(self) -> bool:
        return all(op.is_dense for _, op in self.terms)

    def fingerprint(self):
        from ridgelens._checkpoint import digest

        parts = [op.fingerprint() for _, op in self.terms]
        if any(p is None for p in parts):
            return None
        return digest(np.array([c for c, _ in self.terms]), np.frombuffer("|".join(parts).encode(), dtype=np.uint8))


class ProductOperator(CurvatureOperator):
    """``A B`` (not symmetric in general)."""

    symmetric = False

    def __init__(self, A: CurvatureOperator, B: CurvatureOperator):
        _check_compatible(A, B, "multiply")
        super().__init__(A.n, dtype=A.dtype, device=A.device)
        self.A, self.B = A, B

    def _matmat(self, V):
        return self.A.matmat(self.B.matmat(V))


class SandwichOperator(CurvatureOperator):
    """``diag(s) A diag(s)``: a diagonal scaling on both sides (symmetric when A is)."""

    def __init__(self, A: CurvatureOperator, s):
        s = torch.as_tensor(np.asarray(s, dtype=np.float64) if not isinstance(s, torch.Tensor) else s)
        if s.shape != (A.n,) or not bool(torch.isfinite(s).all()):
            raise RidgelensError(f"the scaling must be {A.n} finite numbers, got shape {tuple(s.shape)}")
        super().__init__(A.n, dtype=A.dtype, device=A.device)
        self.A, self.s = A, s.to(device=A.device, dtype=A.dtype)
        self.symmetric = A.symmetric

    def _matmat(self, V):
        return self.s[:, None] * self.A.matmat(self.s[:, None] * V)

    def _matvec(self, v):
        return self.s * self.A.matvec(self.s * v)

    def fingerprint(self) -> str | None:
        """A's fingerprint and the scaling (a checkpoint of another D is refused), or None when A's is unknown."""
        from ridgelens._checkpoint import digest

        base = self.A.fingerprint()
        return None if base is None else digest(self.s, np.frombuffer(base.encode(), dtype=np.uint8))


class FunctionOperator(CurvatureOperator):
    """An operator from a function: a torch ``matmat`` callable (tensor ``(n, b)`` → ``(n, b)``) or a NumPy one.

    The first product checks what the function returns (shape, dtype, finiteness) and raises
    :class:`RidgelensError` naming what came back.
    """

    def __init__(self, fn, n: int, *, dtype=torch.float64, device="cpu", numpy: bool = False,
                 matvec_only: bool = False, symmetric: bool = True, name: str = "function"):
        super().__init__(n, dtype=dtype, device=device)
        self.fn, self.numpy, self.matvec_only, self.name = fn, numpy, matvec_only, name
        self.symmetric = symmetric

    def _call(self, V: torch.Tensor) -> torch.Tensor:
        if self.numpy:
            arg = V.detach().cpu().numpy()
            try:
                out = self.fn(arg[:, 0]) if self.matvec_only else self.fn(arg)
            except ValueError as exc:  # scipy's own check of what matvec returned (a shape that does not reshape)
                raise RidgelensError(f"the {self.name} failed on an input of shape {arg.shape}: {exc}; its matvec "
                                     f"must map n = {self.n} numbers to n numbers") from exc
            try:
                out = torch.as_tensor(np.asarray(out, dtype=np.float64))
            except (TypeError, ValueError):
                raise RidgelensError(f"the {self.name} returned {type(out).__name__}, not numbers") from None
            out = out.reshape(-1, 1) if self.matvec_only and out.ndim == 1 else out
            out = out.to(device=self.device, dtype=self.dtype)
        else:
            out = self.fn(V)
            if not isinstance(out, torch.Tensor):
                raise RidgelensError(f"the {self.name} must return a torch.Tensor, got {type(out).__name__}")
            if out.dtype != self.dtype or out.device != self.device:
                raise RidgelensError(f"the {self.name} returned a tensor of dtype {out.dtype} on {out.device}; "
                                     f"the operator was declared {self.dtype} on {self.device}")
        if tuple(out.shape) != tuple(V.shape):
            raise RidgelensError(f"the {self.name} returned shape {tuple(out.shape)} for an input of shape "
                                 f"{tuple(V.shape)}; it must map (n, b) to (n, b) with n = {self.n}")
        return out

    def _matmat(self, V):
        if self.matvec_only:
            return torch.stack([self._call(V[:, j:j + 1])[:, 0] for j in range(V.shape[1])], dim=1)
        return self._call(V)


def _check_compatible(A: CurvatureOperator, B: CurvatureOperator, what: str) -> None:
    if A.n != B.n:
        raise RidgelensError(f"cannot {what} operators of sizes {A.n} and {B.n}")
    if A.device != B.device or A.dtype != B.dtype:
        raise RidgelensError(f"cannot {what} an operator on {A.device} ({A.dtype}) with one on {B.device} "
                             f"({B.dtype}); build both on one device and dtype")


def as_operator(source, *, shape=None, dtype=None, device=None, check_symmetric: bool = True) -> CurvatureOperator:
    """Any curvature a user already has, as a :class:`CurvatureOperator`.

    Accepted: a :class:`CurvatureOperator` (returned as is, unless it declares itself not
    :attr:`~CurvatureOperator.symmetric`, as ``A @ B`` does); a dense NumPy array or torch
    tensor (a :class:`DenseOperator`, checked symmetric); a ``scipy.sparse`` matrix or a
    ``scipy.sparse.linalg.LinearOperator`` (curvlinops' ``.to_scipy()`` included); or a torch
    ``matmat`` callable with ``shape=(n, n)`` (and ``dtype``/``device`` of what it takes).
    Matrix-free operators from outside (a user's own CurvatureOperator subclass or a hand-built
    FunctionOperator included, also inside a sum, shift or sandwich; once per instance) are
    probed for symmetry, ``|⟨u, Av⟩ − ⟨Au, v⟩| ≤ 1e-6·‖Au‖‖v‖`` (2 products, counted), and
    refused when they fail it; ``check_symmetric=False`` skips the probe, and the
    operator passed is not probed later either (an operator that declares itself not symmetric
    is refused either way).

    Examples
    --------
    >>> from scipy.sparse.linalg import aslinearoperator
    >>> op = as_operator(aslinearoperator(np.diag([3.0, 1.0])))
    >>> op.matvec(np.ones(2)).tolist(), op.n_matvecs
    ([3.0, 1.0], 3)
    """
    if isinstance(source, CurvatureOperator):
        if not source.symmetric:  # e.g. A @ B: every consumer (eigen, SLQ, the paths) needs a symmetric one
            raise RidgelensError(f"the curvature operator ({type(source).__name__}) is not symmetric, and a Hessian "
                                 "or Gauss-Newton operator is; a product A @ B of two operators is symmetric only "
                                 "when they commute: pass a symmetric combination (A + B, c·A, A.shift(λ), "
                                 "A.sandwich(s))")
        # A user's own subclass (or a FunctionOperator built by hand) says it is symmetric by default, whatever
        # its _matmat does: probe each such operator once, also inside ridgelens' sums, shifts and sandwiches.
        # check_symmetric=False is remembered: the operator is returned as it is, and every stage calls as_operator
        for op in _unprobed(source):
            if check_symmetric:
                check_symmetry(op)
            _mark_probed(op)  # probed, or the caller vouched for it
        return source
    if source is None:
        raise RidgelensError("curvature is None: pass an operator, a matrix, a scipy LinearOperator or a callable")
    if isinstance(source, (np.ndarray, torch.Tensor, list, tuple)):
        return DenseOperator(source, dtype=dtype)
    try:
        import scipy.sparse as sp
        from scipy.sparse.linalg import LinearOperator
    except ImportError:  # pragma: no cover
        sp = LinearOperator = None
    if sp is not None and sp.issparse(source):
        from scipy.sparse.linalg import aslinearoperator

        source = aslinearoperator(source)
    if LinearOperator is not None and isinstance(source, LinearOperator):
        if len(source.shape) != 2 or source.shape[0] != source.shape[1]:
            raise RidgelensError(f"a curvature operator must be square, got a LinearOperator of shape {source.shape}")
        op = FunctionOperator(source.matmat, int(source.shape[0]), numpy=True, name="scipy LinearOperator")
    elif callable(source):
        if shape is None or len(shape) != 2 or shape[0] != shape[1]:
            raise RidgelensError(f"a callable curvature needs shape=(n, n); got shape={shape!r}")
        op = FunctionOperator(source, int(shape[0]), dtype=dtype or torch.float64, device=device or "cpu",
                              name="matmat callable")
    else:
        raise RidgelensError(f"cannot use a {type(source).__name__} as curvature: pass a CurvatureOperator, a "
                             "square array or tensor, a scipy LinearOperator, or a matmat callable with shape=")
    if check_symmetric:
        check_symmetry(op)
    op._symmetry_probed = True  # probed here, or the caller said not to: later stages do not probe it again
    return op


def _mark_probed(op: CurvatureOperator) -> None:
    """Remember on ``op`` that its symmetry was probed (one whose ``__setattr__`` refuses is probed at every stage)."""
    try:
        op._symmetry_probed = True
    except AttributeError:
        pass


def _ours(op: CurvatureOperator) -> bool:
    """Whether ``op`` is one of ridgelens' own operators (symmetric by construction when they say so)."""
    return type(op).__module__.split(".")[0] == "ridgelens"


def _unprobed(op: CurvatureOperator) -> list:
    """The operators in ``op`` whose symmetry is only their word and that were not probed yet, each once.

    ``op`` itself when it is a user's own subclass or a :class:`FunctionOperator` not built by
    :func:`as_operator`; for ridgelens' sums (shifts and multiples included) and sandwiches, their terms.
    """
    if getattr(op, "_symmetry_probed", False):
        return []
    if type(op) is SumOperator:
        found = {id(u): u for _, term in op.terms for u in _unprobed(term)}
        return list(found.values())
    if type(op) is SandwichOperator:
        return _unprobed(op.A)
    return [op] if isinstance(op, FunctionOperator) or not _ours(op) else []


def check_symmetry(op: CurvatureOperator, seed: int = 0, rtol: float = 1e-6) -> None:
    """Raise :class:`RidgelensError` unless ``⟨u, Av⟩ = ⟨Au, v⟩`` for two random vectors (2 products)."""
    g = torch.Generator().manual_seed(check_seed(seed))
    U = torch.randn(op.n, 2, generator=g, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    AU = op.matmat(U)
    a, b = float(U[:, 0] @ AU[:, 1]), float(AU[:, 0] @ U[:, 1])
    scale = float(AU.norm()) * float(U.norm()) or 1.0
    if not np.isfinite(a + b):
        raise RidgelensError("the curvature operator returned non-finite values for a random vector")
    if abs(a - b) > rtol * scale:
        raise RidgelensError(f"the curvature operator is not symmetric: ⟨u, Av⟩ = {a:.6g} but ⟨Au, v⟩ = {b:.6g} "
                             "for random u, v; a Hessian or Gauss-Newton operator is symmetric")


class HessianOperator(CurvatureOperator):
    """The Hessian of a NumPy objective at θ, matrix-free through its ``hvp`` (float64, CPU)."""

    def __init__(self, objective, theta):
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (objective.n_params,):
            raise RidgelensError(f"theta must have shape ({objective.n_params},), got {theta.shape}")
        super().__init__(objective.n_params)
        self.objective, self.theta = objective, theta

    def _matmat(self, V):
        cols = [torch.as_tensor(self.objective.hvp(self.theta, V[:, j].numpy())) for j in range(V.shape[1])]
        return torch.stack(cols, dim=1)

    def fingerprint(self):
        """θ and the objective's own fingerprint; None when the objective has none (θ alone misses its data)."""
        from ridgelens._checkpoint import digest

        fp = getattr(self.objective, "fingerprint", None)
        return digest(self.theta, np.frombuffer(str(fp()).encode(), dtype=np.uint8)) if callable(fp) else None
