"""The whole λ path by multi-shift conjugate gradients: one HVP per step shared by every λ, no basis.

CG on (H + λI)x = b, b = Hθ̂ − g, x₀ = 0, for every λ at once (Jegerlehner 1996, Frommer
2003). The residuals of all shifts stay collinear with one vector, the next Lanczos vector
of H on b: ``r_λ = −β_{k+1} (ζ_λ/η_λ) v_{k+1}``. One 3-term recurrence (no
reorthogonalization) gives the coefficients αₖ, βₖ of the Lanczos tridiagonal T, whose LDLᵀ
pivots are CG's 1/αₖ; each shift carries only its scalars ζ_λ and η_λ (the LDLᵀ pivot of
T + λI: the CG curvature pᵀ(H + λI)p up to a positive factor), its search direction p_λ
and its iterate x_λ. These are CG's recurrences written on the Lanczos vector (Saad's
D-Lanczos) rather than on a seed system's residual, so no shift is a seed whose breakdown
on an indefinite H would stop the others: the shifts below −σ_min break down alone.

Memory: x_λ and p_λ per shift, the Lanczos vectors v_{k−1}, v_k and the product: 2·#λ + 3
vectors, against m + 1 for the Krylov path's basis. Without reorthogonalization it may
need more products than that path in finite precision.

A shift whose pivot η ≤ 0 (or (smallest Ritz value of T) + λ ≤ 0) has no minimizer: it is
frozen and its row is NaN. So is λ = 0 on a singular H when b = Hθ̂ − g has a component in H's
null space (g outside range(H)): Hx = b has no solution, CG diverges until its pivot vanishes, and
without a basis it cannot form the pseudo-inverse solution that the dense and Krylov paths return
there (a ConvergenceWarning says so; use method="krylov" for that row). A shift with ``|ζ_λ/η_λ|·β_{k+1} ≤ tol·‖b‖`` (its residual
‖b − (H + λI)x_λ‖, from the recurrence) is converged and frozen too.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import eigvalsh_tridiagonal

from ridgelens._checkpoint import Checkpoint, digest, operator_key
from ridgelens._progress import Progress
from ridgelens._shrinkage import shrinkage, snap_rounding
from ridgelens.errors import RidgelensError
from ridgelens.operators import as_operator
from ridgelens.ridge._krylov import _finish
from ridgelens.spectra._krylov import LanczosIteration, to_numpy

_EPS = np.finfo(np.float64).eps


def _ritz(alphas, offd, smallest_only: bool = False) -> np.ndarray:
    """Eigenvalues of the Lanczos tridiagonal T (diagonal ``alphas``, off-diagonal ``offd``)."""
    d, e = np.asarray(alphas, dtype=np.float64), np.asarray(offd, dtype=np.float64)
    if d.size == 1:
        return d.copy()
    if smallest_only:  # bisection on the smallest one: O(m), no BLAS between two HVPs
        return eigvalsh_tridiagonal(d, e, select="i", select_range=(0, 0), lapack_driver="stebz")
    return eigvalsh_tridiagonal(d, e)


def multishift_cg_path(op, theta_hat, lam: np.ndarray, *, gradient=None, tol: float = 1e-8,
                       max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None) -> dict:
    """θ̃(λ) = (H + λI)⁻¹(Hθ̂ − g) for every λ by multi-shift CG; see the module docs.

    Returns the dict of :func:`~ridgelens.ridge._krylov.krylov_path`: ``thetas`` (m, n)
    float64, ``residuals`` (m,) relative (recurrence residuals), ``converged``, ``valid``,
    ``n_matvecs`` (the start product Hθ̂ included), ``ritz_values`` (of T, i.e. of H on the
    Krylov space).
    """
    op = as_operator(op)
    n, mv, device, dtype = op.n, op.matvec, op.device, op.dtype
    max_matvecs = min(n + 1, 500) if max_matvecs is None else int(max_matvecs)  # the start, then the steps
    lam = np.asarray(lam, dtype=np.float64)
    k = lam.size
    ck = Checkpoint(checkpoint, "multishift_cg_path", {"n": n, "tol": float(tol), "lambdas": lam.tolist(),
                                                       "start": digest(theta_hat, gradient),
                                                       "operator": operator_key(op, checkpoint)})
    state = ck.load()
    it = LanczosIteration(mv, n, device, dtype, reorth="none")  # the three-term recurrence CG is written on
    if state is not None:
        X = state["X"].to(device=device, dtype=dtype)
        P = state["P"].to(device=device, dtype=dtype)
        it.load_state_dict(state["lanczos"])
        nmv, beta0 = int(state["nmv"]), float(state["beta0"])
        eta, zeta, res = state["eta"].numpy().copy(), state["zeta"].numpy().copy(), state["res"].numpy().copy()
        conv, broke = state["conv"].numpy().copy(), state["broke"].numpy().copy()
    else:
        th = torch.as_tensor(np.asarray(theta_hat, dtype=np.float64)).to(device=device, dtype=dtype)
        b = mv(th)
        if gradient is not None:
            b = b - torch.as_tensor(np.asarray(gradient, dtype=np.float64)).to(device=device, dtype=dtype)
        nmv = 1
        beta0 = it.start(b)
        if beta0 == 0.0:
            raise RidgelensError("Hθ̂ − g is zero: θ̃(λ) = 0 for every λ > 0 (θ̂ lies in H's null space)")
        del b
        X = torch.zeros(k, n, device=device, dtype=dtype)
        P = torch.zeros(k, n, device=device, dtype=dtype)
        eta, zeta, res = np.ones(k), np.full(k, beta0), np.ones(k)
        conv, broke = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
    bar = Progress("multishift-cg path", max_matvecs, progress)

    def snapshot():
        return {"X": X.cpu(), "P": P.cpu(), "lanczos": it.state_dict(), "nmv": nmv, "beta0": beta0,
                "eta": torch.from_numpy(eta.copy()), "zeta": torch.from_numpy(zeta.copy()),
                "res": torch.from_numpy(res.copy()), "conv": torch.from_numpy(conv.copy()),
                "broke": torch.from_numpy(broke.copy())}

    alphas, offd = it.alphas, it.betas
    invariant = False
    a_max, b_max = max(map(abs, alphas), default=0.0), max(offd, default=0.0)
    while nmv < max_matvecs and not (conv | broke).all():
        first = not alphas
        beta = offd[-1] if offd else 0.0
        _, b_next, w = it.step()  # appends α to alphas
        a = alphas[-1]
        v = it.vector(it.j)
        nmv += 1
        for i in np.flatnonzero(~(conv | broke)):
            ell = 0.0 if first else beta / eta[i]
            z = zeta[i] if first else -ell * zeta[i]
            e_new = a + lam[i] - ell * beta
            scale = abs(a) + abs(lam[i]) + abs(ell * beta)
            if not (np.isfinite(e_new) and np.isfinite(z)) or e_new <= 64 * _EPS * scale:
                broke[i] = True  # pᵀ(H + λI)p ≤ 0: no minimizer, never divide by ~0
                continue
            P[i].mul_(-beta / e_new).add_(v, alpha=1.0 / e_new)  # p = (v − β p)/η
            X[i].add_(P[i], alpha=z)
            eta[i], zeta[i] = e_new, z
            res[i] = b_next * abs(z / e_new) / beta0
        t_min = float(_ritz(alphas, offd, smallest_only=True)[0])
        a_max, b_max = max(a_max, abs(a)), max(b_max, b_next)  # ‖T‖ ≤ max|α| + 2 max β
        norm_t = max(a_max + 2 * b_max, 1e-300)
        if abs(t_min) <= len(alphas) * _EPS * norm_t:
            t_min = 0.0
        # The Krylov space shows curvature at or below −λ (a zero Ritz value is fine at λ = 0).
        broke |= ~conv & (t_min + lam <= 0) & ~((t_min == 0.0) & (lam == 0.0))
        conv |= ~broke & (res <= tol)
        invariant = b_next <= 1e-12 * norm_t
        bar.update(nmv)
        if invariant:  # H maps the Krylov space into itself: every active shift is solved exactly
            conv |= ~broke
            break
        it.push(w, b_next)
        del w
        ck.maybe_save(nmv, snapshot)
    bar.close()
    m = len(alphas)
    t = _ritz(alphas, offd[: m - 1]) if m else np.zeros(0)
    t = snap_rounding(t)[0]  # the one rounding rule (ridgelens._shrinkage)
    valid = shrinkage(t, lam)[1].all(axis=1) & ~broke
    thetas = to_numpy(X)
    # λ = 0 broke down on a Krylov space with no negative Ritz value: b = Hθ̂ − g has a component in
    # H's null space, Hx = b has no solution and CG diverges. The dense and Krylov paths return the
    # pseudo-inverse solution there, which CG cannot form without a basis: NaN, said as it is.
    null_rows = broke & (lam == 0.0) & (t.min(initial=0.0) >= 0.0)
    run = {"valid": valid, "t": t, "res": res, "nmv": nmv, "conv": conv}
    converged = _finish(thetas, run, tol, stacklevel=4, name="the multishift-cg path", null_rows=null_rows)
    return {"thetas": thetas, "residuals": res, "converged": converged, "valid": valid,
            "n_matvecs": nmv, "ritz_values": t, "steps": m}
