"""The Schur complement S = H_pp − H_pu H_uu⁻¹ H_up, matrix-free.

When some parameters (biases, intercepts, norm scales) are left out of the penalty, the
penalized block p sees S, the curvature of the loss minimized over the free block u. One
product ``S v`` (v of length #p):

1. ``w = H [v; 0]`` gives ``H_pp v`` and ``c = H_up v`` (one HVP);
2. conjugate gradients solve ``H_uu y = c``; each CG step is one HVP on ``[0; d]``, whose
   u-part is ``H_uu d`` and whose p-part ``H_pu d`` is accumulated alongside ``y``, so
   ``H_pu y`` comes for free (no HVP on ``[0; y]``);
3. ``S v = H_pp v − H_pu y``.

So each product costs ``1 + (CG iterations)`` HVPs; :attr:`SchurComplementOperator.n_matvecs`
counts every one of them. The inner solves are tight (1e-10 relative in float64): Lanczos
on an inexactly applied operator loses accuracy in proportion to the inner error.

H_uu must be positive definite (it is at a strict minimizer). CG meets non-positive
curvature dᵀH_uu d ≤ 0 exactly when it is not; that raises a :class:`RidgelensError`, as
does a CG that does not converge.
"""

from __future__ import annotations

import numpy as np
import torch

from ridgelens._validation import check_mask
from ridgelens.errors import RidgelensError
from ridgelens.operators._base import CurvatureOperator

_ADVICE = ("penalize those parameters too, use the dense path (method='dense', which takes a "
           "pseudo-inverse of a singular H_uu), or use a positive semi-definite curvature such as Gauss-Newton")


class SchurComplementOperator(CurvatureOperator):
    """S = H_pp − H_pu H_uu⁻¹ H_up of a curvature operator H, applied matrix-free.

    A :class:`CurvatureOperator` of size #penalized, so :func:`ridgelens.eigen`,
    :func:`ridgelens.spectral_density` and friends work on it as on H.

    Parameters
    ----------
    op : CurvatureOperator or array of shape (n, n)
        H. Products run on its device and dtype when it has a native ``matvec_tensor``
        (torch models), else in float64 on the CPU.
    penalized : bool array of shape (n,)
        True for the block p that S acts on; False for the eliminated block u.
    inner_tol : float, optional
        CG stops when ‖c − H_uu y‖ ≤ inner_tol·‖c‖ (default ``max(1e-10, 100·eps)`` of the
        dtype: 1e-10 in float64, about 1.2e-5 in float32).
    inner_max_iter : int, optional
        CG iteration limit per solve (default ``2·#u + 10``).

    Attributes
    ----------
    n_matvecs : int
        HVPs of H spent through this operator (outer and inner CG products together).
    n_products : int
        Products with S (``matvec``/``matvec_tensor``/``matvec_with_solve`` calls and
        matrix columns); :func:`ridgelens.eigen` reports these in ``Spectrum.n_matvecs``.
    inner_iterations : list of int
        CG iterations of every solve so far, in order.
    penalized : ndarray of bool, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 4.0]])
    >>> S = SchurComplementOperator(H, np.array([True, False]))
    >>> float(S.matvec(np.array([1.0]))[0])  # 2 − 1·(1/4)·1
    1.75
    """

    def __init__(self, op, penalized, *, inner_tol: float | None = None, inner_max_iter: int | None = None):
        from ridgelens.operators._base import DenseOperator

        base = op if isinstance(op, CurvatureOperator) else DenseOperator(op)
        mask = check_mask(penalized, base.n)
        super().__init__(int(mask.sum()))
        self.base, self.penalized = base, mask
        self.base_n, self.n_free = base.n, int((~mask).sum())
        native = getattr(base, "matvec_tensor", None)
        if native is not None:
            self._base_mv, self.device, self.torch_dtype = native, base.device, base.torch_dtype
        else:
            self._base_mv, self.device, self.torch_dtype = self._numpy_mv, torch.device("cpu"), torch.float64
        eps = torch.finfo(self.torch_dtype).eps
        self.inner_tol = min(max(1e-10, 100 * eps), 1e-2) if inner_tol is None else float(inner_tol)
        if not 0 < self.inner_tol < 1:
            raise RidgelensError(f"inner_tol must be in (0, 1), got {self.inner_tol}")
        self.inner_max_iter = 2 * self.n_free + 10 if inner_max_iter is None else int(inner_max_iter)
        if self.inner_max_iter < 1:
            raise RidgelensError(f"inner_max_iter must be >= 1, got {self.inner_max_iter}")
        self.p_index = torch.as_tensor(np.flatnonzero(mask), device=self.device)
        self.u_index = torch.as_tensor(np.flatnonzero(~mask), device=self.device)
        self.n_products = 0
        self.inner_iterations: list[int] = []
        self._scale = 0.0  # largest ‖Hx‖/‖x‖ seen: the yardstick for "numerically zero" curvature

    # ------------------------------------------------------------------ plumbing
    def _numpy_mv(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.base.matvec(x.detach().cpu().numpy()))

    def base_matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``H x`` for a full-length tensor x (one HVP, counted in :attr:`n_matvecs`)."""
        w = self._base_mv(x.to(device=self.device, dtype=self.torch_dtype))
        self.n_matvecs += 1
        xn = float(x.norm())
        if xn > 0:
            self._scale = max(self._scale, float(w.norm()) / xn)
        return w

    def _embed(self, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(self.base_n, device=self.device, dtype=self.torch_dtype)
        x[idx] = v
        return x

    # ------------------------------------------------------------------ public
    def solve_free(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, H_pu y)`` with ``H_uu y = c`` solved by CG (one HVP per iteration).

        Raises :class:`RidgelensError` when CG meets non-positive curvature in H_uu
        or does not converge within ``inner_max_iter`` iterations.
        """
        c = c.to(device=self.device, dtype=self.torch_dtype)
        y = torch.zeros_like(c)
        z = torch.zeros(self.n, device=self.device, dtype=self.torch_dtype)
        c_norm = float(c.norm())
        if self.n_free == 0 or c_norm == 0.0:
            self.inner_iterations.append(0)
            return y, z
        if not np.isfinite(c_norm):
            raise RidgelensError("the right-hand side of the H_uu solve is not finite (NaN/Inf in H's products)")
        r = c.clone()
        d = r.clone()
        rr = c_norm ** 2
        eps = torch.finfo(self.torch_dtype).eps
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

    def matvec_with_solve(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S v, y)`` with ``y = H_uu⁻¹ H_up v``, the free block's response to v."""
        if v.shape != (self.n,):
            raise RidgelensError(f"matvec expects a vector of shape ({self.n},), got {tuple(v.shape)}")
        v = v.to(device=self.device, dtype=self.torch_dtype)
        self.n_products += 1
        w = self.base_matvec(self._embed(self.p_index, v))
        y, z = self.solve_free(w[self.u_index])
        return w[self.p_index] - z, y

    def matvec_tensor(self, v: torch.Tensor) -> torch.Tensor:
        """``S v`` for a 1-D tensor on the base operator's device; counts HVPs in ``n_matvecs``."""
        return self.matvec_with_solve(v)[0]

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        self.n_matvecs -= 1  # matvec/matmat counted a product; the HVPs are counted instead
        t = torch.as_tensor(v, device=self.device).to(self.torch_dtype)
        return self.matvec_tensor(t).to(torch.float64).cpu().numpy()
