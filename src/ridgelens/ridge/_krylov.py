"""The whole λ path from one Krylov space: Lanczos on b = Hθ̂ − g, shared by every shift.

K_m(H + λI, b) = K_m(H, b) for every λ, so one Lanczos run (full reorthogonalization)
gives ``x_λ = V_m (T_m + λI)⁻¹ ‖b‖e₁`` for all λ at once. Memory: the basis, O(m·n),
plus the m_λ × n result. The residual of shift λ is ``|β_m| |e_mᵀ y_λ|``; the run stops
when every λ has ‖b − (H + λI)x_λ‖ ≤ tol·‖b‖.

With a penalty mask P (unpenalized block u, e.g. biases), H + λP is not a shifted H, but
eliminating u leaves a shifted system on the penalized block: (S + λI)θ_p = b with the
Schur complement S = H_pp − H_pu H_uu⁻¹ H_up and b = r_p − H_pu H_uu⁻¹ r_u, r = Hθ̂ − g.
So one Lanczos run on S (:func:`krylov_schur_path`) serves every λ again. Each product
with S costs 1 or 2 HVPs once H_uu is formed and factored (#u HVPs; the dense inner mode,
#u ≤ 4096), else 1 + (inner CG iterations on H_uu). The free block
θ_u = H_uu⁻¹(r_u − H_up θ_p) is assembled from the vectors yⱼ = H_uu⁻¹ H_up Vⱼ that the
product S Vⱼ solved for anyway, kept beside the basis: memory O(m·n) plus O(m·#u).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ridgelens._checkpoint import Checkpoint, digest, operator_key
from ridgelens._progress import Progress
from ridgelens._shrinkage import shrinkage, snap_rounding
from ridgelens.errors import ConvergenceWarning, NegativeCurvatureWarning, RidgelensError
from ridgelens.operators import as_operator
from ridgelens.spectra._krylov import (
    LanczosBasis,
    LanczosIteration,
    to_numpy,
)


def _shifted_solves(T: np.ndarray, beta0: float, lam: np.ndarray):
    """``y_λ = (T + λI)⁺ β₀e₁`` for all λ via one eigendecomposition of the small T.

    Uses torch's eigh, not NumPy's: a NumPy BLAS call between two HVPs wakes OpenBLAS's
    threads, which then fight torch's for the cores and slow the next HVP several-fold.
    """
    w, Ut = torch.linalg.eigh(torch.from_numpy(T))
    t, U = w.numpy(), Ut.numpy()
    t = snap_rounding(t)[0]  # the one rounding rule (ridgelens._shrinkage)
    inv, ok = shrinkage(t, lam, numerator=1.0)  # 1/(t + λ), 0 on the 0/0 rule, NaN where t + λ ≤ 0
    inv = np.where(np.isnan(inv), 0.0, inv)
    Y = torch.from_numpy(inv * (beta0 * U[0, :])[None, :]) @ Ut.T  # (m_λ, j)
    return Y.numpy(), ok.all(axis=1), t


def krylov_path(op, theta_hat, lam: np.ndarray, *, gradient=None, tol: float = 1e-8,
                max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None) -> dict:
    """θ̃(λ) = (H + λI)⁻¹(Hθ̂ − g) for every λ from one Lanczos run; see the module docs.

    Returns a dict: ``thetas`` (m, n) float64, ``residuals`` (m,) relative, ``converged``,
    ``valid`` (False where some Ritz value t has t + λ ≤ 0), ``n_matvecs``, ``ritz_values``.
    """
    op = as_operator(op)
    n, mv, device, dtype = op.n, op.matvec, op.device, op.dtype
    max_matvecs = min(n + 1, 500) if max_matvecs is None else int(max_matvecs)  # the start, then n steps
    th = torch.as_tensor(np.asarray(theta_hat, dtype=np.float64)).to(device=device, dtype=dtype)
    ck = Checkpoint(checkpoint, "krylov_path", {"n": n, "tol": float(tol), "lambdas": lam.tolist(),
                                                "start": digest(theta_hat, gradient),
                                                "operator": operator_key(op, checkpoint)})

    def start():
        b = mv(th)
        if gradient is not None:
            b = b - torch.as_tensor(np.asarray(gradient, dtype=np.float64)).to(device=device, dtype=dtype)
        return b

    run = _shifted_lanczos(mv, n, start, lam, tol=tol, max_steps=max_matvecs, ck=ck, progress=progress,
                           device=device, dtype=dtype, label="krylov path",
                           zero_msg="Hθ̂ − g is zero: θ̃(λ) = 0 for every λ > 0 (θ̂ lies in H's null space)")
    def at(lam2, stacklevel=5):
        r = resolve(run, np.asarray(lam2, dtype=np.float64))
        thetas = to_numpy(run["basis"].full(run["basis"].combine(torch.from_numpy(r["Y"]).to(device=device, dtype=dtype),
                                                                run["m"])))
        conv = _finish(thetas, r, tol, stacklevel=stacklevel)
        return {"thetas": thetas, "residuals": r["res"], "converged": conv, "valid": r["valid"],
                "n_matvecs": run["nmv"], "ritz_values": r["t"], "basis_size": run["m"]}

    return {**at(lam), "at": at}


def krylov_schur_path(S, theta_hat, lam: np.ndarray, *, gradient=None, tol: float = 1e-8,
                      max_matvecs: int | None = None, checkpoint=None, progress: bool | None = None) -> dict:
    """θ̃(λ) = (H + λP)⁻¹(Hθ̂ − g) for every λ from one Lanczos run on the Schur complement.

    ``S`` is a :class:`~ridgelens.operators.SchurComplementOperator` of H. With r = Hθ̂ − g,
    the penalized block solves ``(S + λI)θ_p = b``, b = r_p − H_pu H_uu⁻¹ r_u (one Lanczos
    run on b serves every λ), and the free block is ``θ_u = H_uu⁻¹ r_u − Σⱼ cⱼ(λ) yⱼ`` for
    ``θ_p = Σⱼ cⱼ(λ) Vⱼ``, where ``yⱼ = H_uu⁻¹ H_up Vⱼ`` is the vector the product S Vⱼ
    solved for anyway: no further solve per λ. ``max_matvecs`` bounds the products with S;
    ``n_matvecs`` in the result counts the HVPs of H. Residuals are those of the reduced
    system, ‖b − (S + λI)θ_p‖/‖b‖.
    """
    n, n_p = S.base_n, S.n
    device, dtype = S.device, S.dtype
    max_matvecs = min(n_p, 500) if max_matvecs is None else int(max_matvecs)
    th = torch.as_tensor(np.asarray(theta_hat, dtype=np.float64)).to(device=device, dtype=dtype)
    # The operator's fingerprint covers S's mask (which parameters are free, not only how many) and θ.
    ck = Checkpoint(checkpoint, "krylov_schur_path", {"n": n, "n_penalized": n_p,
                                                      "inner_tol": S.inner_tol, "tol": float(tol),
                                                      "lambdas": lam.tolist(), "start": digest(theta_hat, gradient),
                                                      "operator": operator_key(S, checkpoint)})
    free = LanczosBasis(S.n_free, device, dtype)  # yⱼ, one row per Krylov basis vector Vⱼ
    held = {"y0": None, "hvps": 0}
    hvps_before = S.n_hvps

    def start():
        r = S.base_matvec(th)
        if gradient is not None:
            r = r - torch.as_tensor(np.asarray(gradient, dtype=np.float64)).to(device=device, dtype=dtype)
        y0, z0 = S.solve_free(r[S.u_index])
        held["y0"] = y0
        return r[S.p_index] - z0

    def mv(v):
        sv, y = S.matvec_with_solve(v)
        free.append(y)  # the solve of exactly this basis vector: row j of `free` pairs with row j of V
        return sv

    def extra_state():
        return {"Y_free": free.stacked().cpu(), "y0": held["y0"].cpu(), "hvps": held["hvps"] + S.n_hvps - hvps_before,
                **S.inner_state()}  # the factored H_uu: a resumed run does not form it again

    def restore(state):
        S.load_inner_state(state)
        for y in state["Y_free"]:
            free.append(y.to(device=device, dtype=dtype))
        held["y0"] = state["y0"].to(device=device, dtype=dtype)
        held["hvps"] = int(state["hvps"])

    run = _shifted_lanczos(mv, n_p, start, lam, tol=tol, max_steps=max_matvecs, ck=ck, progress=progress,
                           device=device, dtype=dtype, label="krylov path (Schur)",
                           zero_msg="b = (Hθ̂ − g)_p − H_pu H_uu⁻¹ (Hθ̂ − g)_u is zero: θ̃_p(λ) = 0 for every λ > 0",
                           start_cost=0, extra_state=extra_state, restore=restore)
    m = run["m"]
    hvps = held["hvps"] + S.n_hvps - hvps_before

    def at(lam2, stacklevel=5):
        lam2 = np.asarray(lam2, dtype=np.float64)
        r = resolve(run, lam2)
        Yc = torch.from_numpy(r["Y"]).to(device=device, dtype=dtype)
        thetas = np.empty((lam2.size, n))
        thetas[:, S.penalized] = to_numpy(run["basis"].full(run["basis"].combine(Yc, m)))
        thetas[:, ~S.penalized] = to_numpy(held["y0"][None, :] - free.combine(Yc, m))
        conv = _finish(thetas, r, tol, stacklevel=stacklevel)
        return {"thetas": thetas, "residuals": r["res"], "converged": conv, "valid": r["valid"],
                "n_matvecs": hvps, "n_products": run["nmv"], "ritz_values": r["t"], "basis_size": m}

    return {**at(lam), "at": at}


def _shifted_lanczos(mv, n, start, lam, *, tol, max_steps, ck, progress, device, dtype, label, zero_msg,
                     start_cost=1, extra_state=None, restore=None) -> dict:
    """The Lanczos run shared by every shift: from ``start()`` (or a checkpoint) until every λ converges.

    ``nmv`` counts the ``mv`` calls, plus ``start_cost`` for the start vector; it stops at ``max_steps``.
    """
    state = ck.load()
    it = LanczosIteration(mv, n, device, dtype, reorth="full")
    basis = it.basis
    if state is not None:
        basis.load_state_dict({"rows": [v.to(device=device, dtype=dtype) for v in state["V"]]})
        T = state["T"].numpy()
        nmv, beta0, beta = int(state["nmv"]), float(state["beta0"]), float(state["beta"])
        if restore is not None:
            restore(state)
    else:
        b = start()
        nmv, beta0, beta = start_cost, float(b.norm()), 0.0
        if beta0 == 0.0:
            raise RidgelensError(zero_msg)
        basis.append(basis.local(b) / beta0)
        T = np.zeros((0, 0))
    bar = Progress(label, max_steps, progress)
    conv = np.zeros(lam.size, dtype=bool)
    res = np.full(lam.size, np.inf)
    while True:
        j = T.shape[0]
        it.j = j
        h, beta, w = it.step()
        nmv += 1
        T2 = np.zeros((j + 1, j + 1))
        T2[:j, :j] = T
        hh = to_numpy(h)
        T2[: j + 1, j] = hh
        T2[j, : j + 1] = hh
        T = T2
        Y, valid, t = _shifted_solves(T, beta0, lam)
        res = np.abs(beta * Y[:, -1]) / beta0
        invariant = beta <= 1e-12 * max(np.abs(t).max(), 1e-300)
        conv = (res <= tol) | ~valid | invariant
        bar.update(nmv)
        if conv.all() or nmv >= max_steps or j + 1 >= n or invariant:
            break
        basis.append(w.div_(beta))
        ck.maybe_save(nmv, lambda T=T, nmv=nmv, beta=beta: {
            "V": basis.state_dict()["rows"], "T": torch.from_numpy(T.copy()), "nmv": nmv, "beta0": beta0,
            "beta": beta, **(extra_state() if extra_state is not None else {})}, local=("V",) if basis.sharded else ())
    bar.close()
    return {"Y": Y, "valid": valid, "t": t, "res": res, "conv": conv, "nmv": nmv, "basis": basis, "m": T.shape[0],
            "T": T, "beta0": beta0, "beta": beta, "tol": tol}


def resolve(run: dict, lam: np.ndarray) -> dict:
    """The small solves of a finished run for another λ list: ``Y``, ``valid``, ``res``, ``conv`` (no product)."""
    Y, valid, t = _shifted_solves(run["T"], run["beta0"], lam)
    res = np.abs(run["beta"] * Y[:, -1]) / run["beta0"]
    invariant = run["beta"] <= 1e-12 * max(np.abs(t).max(), 1e-300)
    return {**run, "Y": Y, "valid": valid, "t": t, "res": res, "conv": (res <= run["tol"]) | ~valid | invariant}


def _finish(thetas: np.ndarray, run: dict, tol: float, stacklevel: int, name: str = "the Krylov path",
            null_rows: np.ndarray | None = None) -> np.ndarray:
    """NaN the invalid rows, warn about negative curvature and unconverged λ; the converged flags.

    ``null_rows``: invalid λ = 0 rows whose cause is b's component in H's null space, not curvature.
    """
    valid, t, res, nmv = run["valid"], run["t"], run["res"], run["nmv"]
    thetas[~valid] = np.nan
    conv = run["conv"] & valid
    null_rows = np.zeros(valid.shape, dtype=bool) if null_rows is None else null_rows & ~valid
    bad = ~valid & ~null_rows
    if (t < 0).any() or bad.any():  # (multishift CG can also find a shift's curvature ≤ 0 first)
        consequence = (f"{int(bad.sum())} of {bad.size} λ have no minimizer of the quadratic model (NaN)"
                       if bad.any() else f"every λ given is above it, so each of the {bad.size} has a minimizer")
        warnings.warn(f"the Krylov space shows negative curvature (most negative Ritz value "
                      f"{t.min(initial=np.inf):.4g}); {consequence}", NegativeCurvatureWarning, stacklevel=stacklevel)
    if null_rows.any():
        warnings.warn(f"{name}: at λ = 0, Hθ̂ − g has a component in H's null space (g outside range(H)), so "
                      "(H + 0·I)x = Hθ̂ − g has no solution and CG diverges: NaN. method='krylov' or 'dense' "
                      "give the minimum-norm least-squares (pseudo-inverse) solution there",
                      ConvergenceWarning, stacklevel=stacklevel)
    if not conv[valid].all():
        warnings.warn(f"{name} stopped after {nmv} products with {int((~conv[valid]).sum())} λ above "
                      f"tol = {tol:g} (largest relative residual {res[valid].max():.3g})",
                      ConvergenceWarning, stacklevel=stacklevel)
    return conv


#: The blocked basis (kept under its old name for the Krylov paths).
_Basis = LanczosBasis
