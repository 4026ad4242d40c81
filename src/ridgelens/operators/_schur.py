"""The Schur complement S = H_pp − H_pu H_uu⁻¹ H_up, matrix-free.

When some parameters (biases, intercepts, norm scales) are left out of the penalty, the
penalized block p sees S, the curvature of the loss minimized over the free block u. One
product ``S v`` (v of length #p) is ``w = H [v; 0]`` (one HVP: ``H_pp v`` and ``c = H_up v``),
then ``y = H_uu⁻¹ c`` and ``S v = H_pp v − H_pu y``. How H_uu is inverted is the ``inner`` mode:

``"dense"`` (the default when #u ≤ :data:`DENSE_FREE_MAX` = 4096, so H_uu takes at most
128 MiB in float64)
    H_uu is formed once, at the first product, from #u HVPs on the unit vectors of the free
    coordinates, symmetrized and Cholesky-factored in float64 on the CPU. Each of those HVPs
    is a whole column of H, so its p-part, the coupling H_pu, is kept too when it fits in
    :data:`COUPLING_MAX_BYTES` (128 MiB): then ``H_pu y`` is a matrix product and each product
    with S costs **1 HVP**. Otherwise ``H_pu y`` is a second HVP on ``[0; y]``: **2 HVPs**.
    Either way, plus #u HVPs once.
``"cg"`` (the default for larger #u)
    Conjugate gradients solve ``H_uu y = c``; each CG step is one HVP on ``[0; d]``, whose
    u-part is ``H_uu d`` and whose p-part ``H_pu d`` is accumulated alongside ``y``, so
    ``H_pu y`` comes for free. Each product costs ``1 + (CG iterations)`` HVPs, and CG takes
    about #u iterations or more. The solves are tight (1e-10 relative in float64): Lanczos
    on an inexactly applied operator loses accuracy in proportion to the inner error.

:attr:`SchurComplementOperator.n_matvecs` counts products with S (as for every operator);
:attr:`SchurComplementOperator.n_hvps` counts every HVP of H spent through S, the ones that form
H_uu included (they are also counted on H itself, ``S.base.n_matvecs``).

H_uu must be positive definite (it is at a strict minimizer). Dense: an H_uu whose smallest
eigenvalue is ≤ 0, or whose condition number exceeds :data:`MAX_FREE_CONDITION` (1e12), raises
a :class:`RidgelensError` that states its smallest eigenvalue. CG: meeting non-positive
curvature dᵀH_uu d ≤ 0 (exactly when it is not positive definite) raises one, as does a CG
that does not converge.
"""

from __future__ import annotations

import numpy as np
import torch

from ridgelens._auto import DENSE_FREE_MAX, select_solver
from ridgelens._validation import check_mask
from ridgelens.errors import RidgelensError
from ridgelens.operators._base import CurvatureOperator, as_operator

__all__ = ["DENSE_FREE_MAX", "SchurComplementOperator"]
COUPLING_MAX_BYTES = 128 * 2**20
"""The dense mode keeps H_pu (#p·#u entries in the operator's dtype) when it fits in this."""
MAX_FREE_CONDITION = 1e12
"""The dense mode refuses an H_uu whose condition number λ_max/λ_min is above this."""

_ADVICE = ("penalize those parameters too, use the dense path (method='dense', which takes a "
           "pseudo-inverse of a singular H_uu), or use a positive semi-definite curvature such as Gauss-Newton")


class SchurComplementOperator(CurvatureOperator):
    """S = H_pp − H_pu H_uu⁻¹ H_up of a curvature operator H, applied matrix-free.

    A :class:`CurvatureOperator` of size #penalized, so :func:`ridgelens.eigen`,
    :func:`ridgelens.spectral_density` and friends work on it as on H.

    Parameters
    ----------
    op : CurvatureOperator, or anything :func:`~ridgelens.operators.as_operator` accepts
        H. Products run on its device and dtype.
    penalized : bool array of shape (n,)
        True for the block p that S acts on; False for the eliminated block u.
    inner : {"auto", "dense", "cg"}
        How H_uu⁻¹ is applied (see the module docs). "dense": form H_uu from #u HVPs once and
        Cholesky-factor it (float64, CPU; #u² · 8 bytes of memory); each product with S then
        costs 1 HVP (H_pu kept) or 2. "cg": conjugate gradients, 1 + (CG iterations) HVPs per
        product, O(#u) memory. "auto" (default): "dense" when #u ≤ :data:`DENSE_FREE_MAX`.
        Recorded in :attr:`inner`.
    inner_tol : float, optional
        CG mode: CG stops when ‖c − H_uu y‖ ≤ inner_tol·‖c‖ (default ``max(1e-10, 100·eps)``
        of the dtype: 1e-10 in float64, about 1.2e-5 in float32).
    inner_max_iter : int, optional
        CG mode: iteration limit per solve (default ``2·#u + 10``).
    store_coupling : bool, optional
        Dense mode: keep H_pu (from the same #u HVPs that form H_uu) so that ``H_pu y`` needs
        no HVP. Default: when its #p·#u entries fit in :data:`COUPLING_MAX_BYTES`.

    Attributes
    ----------
    inner : str
        "dense" or "cg", the mode in use.
    store_coupling : bool
        Whether the dense mode keeps H_pu (always False in CG mode).
    n_matvecs : int
        Products with S (``matvec``/``matmat`` columns/``matvec_with_solve`` calls).
    n_hvps : int
        HVPs of H spent through this operator (outer, inner and the ones forming H_uu).
    n_setup_matvecs : int
        Of those, the HVPs that formed H_uu (#u, once, in dense mode; 0 in CG mode).
    inner_iterations : list of int
        CG mode: CG iterations of every solve so far, in order (empty in dense mode).
    free_eigenvalues : tuple of float or None
        Dense mode: (smallest, largest) eigenvalue of H_uu once it has been formed.
    penalized : ndarray of bool, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 4.0]])
    >>> S = SchurComplementOperator(H, np.array([True, False]))
    >>> float(S.matvec(np.array([1.0]))[0])  # 2 − 1·(1/4)·1
    1.75
    >>> S.inner, S.n_matvecs, S.n_hvps  # one product with S: one HVP formed H_uu, one for the product
    ('dense', 1, 2)
    """

    def __init__(self, op, penalized, *, inner: str = "auto", inner_tol: float | None = None,
                 inner_max_iter: int | None = None, store_coupling: bool | None = None):
        base = as_operator(op)
        mask = check_mask(penalized, base.n)
        super().__init__(int(mask.sum()), dtype=base.dtype, device=base.device)
        self.base, self.penalized = base, mask
        self.base_n, self.n_free = base.n, int((~mask).sum())
        self.choice = select_solver("schur_inner", inner, n_free=self.n_free)
        self.inner = self.choice.name
        self.n_hvps = 0
        eps = torch.finfo(self.dtype).eps
        self.inner_tol = min(max(1e-10, 100 * eps), 1e-2) if inner_tol is None else float(inner_tol)
        if not 0 < self.inner_tol < 1:
            raise RidgelensError(f"inner_tol must be in (0, 1), got {self.inner_tol}")
        self.inner_max_iter = 2 * self.n_free + 10 if inner_max_iter is None else int(inner_max_iter)
        if self.inner_max_iter < 1:
            raise RidgelensError(f"inner_max_iter must be >= 1, got {self.inner_max_iter}")
        if store_coupling is None:
            nbytes = self.n * self.n_free * torch.finfo(self.dtype).bits // 8
            store_coupling = self.inner == "dense" and nbytes <= COUPLING_MAX_BYTES
        elif store_coupling and self.inner != "dense":
            raise RidgelensError("store_coupling=True needs inner='dense' (CG gets H_pu y from its own HVPs)")
        self.store_coupling = bool(store_coupling)
        self.p_index = torch.as_tensor(np.flatnonzero(mask), device=self.device)
        self.u_index = torch.as_tensor(np.flatnonzero(~mask), device=self.device)
        self.n_setup_matvecs = 0
        self.inner_iterations: list[int] = []
        self.free_eigenvalues: tuple[float, float] | None = None
        self._chol: torch.Tensor | None = None  # dense mode: float64 CPU Cholesky factor of H_uu
        self._coupling: torch.Tensor | None = None  # dense mode: (#u, #p), row i = H[p, u_i] = (H_pu)ᵀ
        self._factor_error: str | None = None  # dense mode: why H_uu was refused
        self._scale = 0.0  # largest ‖Hx‖/‖x‖ seen: the yardstick for "numerically zero" curvature

    # ------------------------------------------------------------------ plumbing
    @property
    def n_products(self) -> int:
        """Products with S (the same as :attr:`n_matvecs`)."""
        return self.n_matvecs

    def fingerprint(self) -> str | None:
        from ridgelens._checkpoint import digest

        base = self.base.fingerprint()
        return None if base is None else digest(self.penalized, None, base)

    def base_matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``H x`` for a full-length tensor x (one HVP, counted in :attr:`n_hvps` and on H)."""
        w = self.base.matvec(x.to(device=self.device, dtype=self.dtype))
        self.n_hvps += 1
        xn = float(x.norm())
        if xn > 0:
            self._scale = max(self._scale, float(w.norm()) / xn)
        return w

    def _embed(self, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(self.base_n, device=self.device, dtype=self.dtype)
        x[idx] = v
        return x

    # ------------------------------------------------------------------ dense inner mode
    def _factor(self) -> None:
        """Form H_uu from #u HVPs (keeping H_pu if asked), check it and Cholesky-factor it, once."""
        if self._chol is not None:
            return
        if self._factor_error is not None:  # refused once: say so again without forming H_uu again
            raise RidgelensError(self._factor_error)
        nu, before = self.n_free, self.n_hvps
        Huu = torch.empty(nu, nu, device=self.device, dtype=self.dtype)
        coupling = torch.empty(nu, self.n, device=self.device, dtype=self.dtype) if self.store_coupling else None
        for i, j in enumerate(self.u_index.tolist()):
            e = torch.zeros(self.base_n, device=self.device, dtype=self.dtype)
            e[j] = 1.0
            w = self.base_matvec(e)  # column u_i of H: H_uu's column i and, in its p rows, H_pu's
            Huu[i] = w[self.u_index]
            if coupling is not None:
                coupling[i] = w[self.p_index]
        self.n_setup_matvecs += self.n_hvps - before
        A = Huu.to(device="cpu", dtype=torch.float64)
        del Huu
        A = 0.5 * (A + A.T)
        if not bool(torch.isfinite(A).all()):
            raise RidgelensError(f"the unpenalized block H_uu ({nu} parameters) formed from HVPs has non-finite "
                                 "entries (NaN/Inf in H's products)")
        ev = torch.linalg.eigvalsh(A)
        lo, hi = float(ev[0]), float(ev[-1])
        self.free_eigenvalues = (lo, hi)
        L, info = torch.linalg.cholesky_ex(A)
        if lo <= 0 or int(info) != 0:
            self._factor_error = (
                f"the unpenalized block H_uu ({nu} parameters) is not positive definite: its smallest eigenvalue "
                f"is {lo:.3g} (largest {hi:.3g}), so the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up does not "
                "exist (θ̂ is not a strict minimizer in the free parameters). To fix: " + _ADVICE)
        elif hi > MAX_FREE_CONDITION * lo:
            self._factor_error = (
                f"the unpenalized block H_uu ({nu} parameters) is numerically singular: its smallest eigenvalue is "
                f"{lo:.3g} against a largest of {hi:.3g} (condition number {hi / lo:.3g} > {MAX_FREE_CONDITION:g}), "
                "so H_uu⁻¹ and the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up cannot be applied accurately. "
                "To fix: " + _ADVICE)
        if self._factor_error is not None:
            raise RidgelensError(self._factor_error)
        self._chol, self._coupling = L, coupling

    def _solve_dense(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._factor()
        y = torch.cholesky_solve(c.to(device="cpu", dtype=torch.float64)[:, None], self._chol)[:, 0]
        y = y.to(device=self.device, dtype=self.dtype)
        if self._coupling is not None:
            return y, y @ self._coupling
        return y, self.base_matvec(self._embed(self.u_index, y))[self.p_index]

    def inner_state(self) -> dict:
        """Dense mode: the factored H_uu (and H_pu when kept) as CPU tensors, for a checkpoint.

        Empty in CG mode or before the first product. :meth:`load_inner_state` puts it back,
        so a resumed run does not spend the #u HVPs that formed H_uu again.
        """
        if self._chol is None:
            return {}
        state = {"free_cholesky": self._chol, "free_eigenvalues": torch.tensor(self.free_eigenvalues)}
        if self._coupling is not None:
            state["free_coupling"] = self._coupling.cpu()
        return state

    def load_inner_state(self, state: dict) -> None:
        """Restore what :meth:`inner_state` saved (ignored in CG mode, or when it lacks H_pu this mode keeps)."""
        L, coupling = state.get("free_cholesky"), state.get("free_coupling")
        if self.inner != "dense" or L is None or (self.store_coupling and coupling is None):
            return
        if tuple(L.shape) != (self.n_free, self.n_free) or (
                coupling is not None and tuple(coupling.shape) != (self.n_free, self.n)):
            raise RidgelensError(f"saved H_uu factor of shape {tuple(L.shape)} does not fit this operator "
                                 f"(#u = {self.n_free}, #p = {self.n})")
        self._chol = L.to(device="cpu", dtype=torch.float64)
        self._coupling = coupling.to(device=self.device, dtype=self.dtype) if self.store_coupling else None
        lo, hi = (float(x) for x in state["free_eigenvalues"])
        self.free_eigenvalues = (lo, hi)

    # ------------------------------------------------------------------ public
    def solve_free(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, H_pu y)`` with ``H_uu y = c``.

        Dense mode: a Cholesky solve (H_uu formed and factored at the first call), and
        ``H_pu y`` from the kept H_pu or one HVP. CG mode: one HVP per CG iteration.
        Raises :class:`RidgelensError` when H_uu is not positive definite (or, dense, too
        ill-conditioned; CG, when CG does not converge within ``inner_max_iter`` iterations).
        """
        c = c.to(device=self.device, dtype=self.dtype)
        y = torch.zeros_like(c)
        z = torch.zeros(self.n, device=self.device, dtype=self.dtype)
        c_norm = float(c.norm())
        if self.n_free == 0 or c_norm == 0.0:
            if self.inner == "cg":
                self.inner_iterations.append(0)
            return y, z
        if not np.isfinite(c_norm):
            raise RidgelensError("the right-hand side of the H_uu solve is not finite (NaN/Inf in H's products)")
        if self.inner == "dense":
            return self._solve_dense(c)
        r = c.clone()
        d = r.clone()
        rr = c_norm ** 2
        eps = torch.finfo(self.dtype).eps
        for it in range(1, self.inner_max_iter + 1):
            w = self.base_matvec(self._embed(self.u_index, d))
            q = w[self.u_index]
            dq = float(d @ q)
            dd = float(d @ d)
            if not dq > self.n_free * eps * self._scale * dd:  # also catches NaN
                raise RidgelensError(
                    f"the unpenalized block H_uu ({self.n_free} parameters) is not positive definite: "
                    f"CG met curvature dᵀH_uu d / ‖d‖² = {dq / dd:.3g} ≤ 0 (up to rounding; largest curvature "
                    f"seen {self._scale:.3g}) at iteration {it}, so the Schur complement S = H_pp − H_pu H_uu⁻¹ H_up "
                    "does not exist (θ̂ is not a strict minimizer in the free parameters). To fix: " + _ADVICE)
            alpha = rr / dq
            y += alpha * d
            z += alpha * w[self.p_index]
            r -= alpha * q
            rr_new = float(r @ r)
            if rr_new ** 0.5 <= self.inner_tol * c_norm:
                self.inner_iterations.append(it)
                return y, z
            d = r + (rr_new / rr) * d
            rr = rr_new
        raise RidgelensError(
            f"CG on the unpenalized block H_uu ({self.n_free} parameters) did not converge: relative residual "
            f"{rr ** 0.5 / c_norm:.3g} > inner_tol = {self.inner_tol:g} after {self.inner_max_iter} iterations "
            "(H_uu is near-singular or badly conditioned). Raise inner_max_iter or inner_tol, or " + _ADVICE)

    def _apply(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.base_matvec(self._embed(self.p_index, v))
        y, z = self.solve_free(w[self.u_index])
        return w[self.p_index] - z, y

    def matvec_with_solve(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S v, y)`` with ``y = H_uu⁻¹ H_up v``, the free block's response to v (one product with S)."""
        if v.shape != (self.n,):
            raise RidgelensError(f"matvec expects a vector of shape ({self.n},), got {tuple(v.shape)}")
        self.n_matvecs += 1
        return self._apply(v.to(device=self.device, dtype=self.dtype))

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._apply(v)[0]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._apply(V[:, j])[0] for j in range(V.shape[1])], dim=1)

    def matvec_tensor(self, v: torch.Tensor) -> torch.Tensor:
        """Deprecated spelling of :meth:`matvec` on a tensor."""
        return self.matvec(v)
