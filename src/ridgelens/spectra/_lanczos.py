"""Thick-restart Lanczos with full reorthogonalization, locking and a deflated check.

Memory: ``ncv + 1`` vectors of length n (the basis); the k Ritz vectors returned are its
first block of rows. A Ritz pair whose residual is small is *an* eigenpair; it need not be
one of the k *wanted* ones (Lanczos can converge on the edge of its Krylov space while an
eigenvalue further out, or another copy of a cluster, is missed). So once every pair has
converged, a short Lanczos run (``check_steps(k)``: k + 5 steps, at least 15 and at most 30; 3
vectors of memory) on the deflated operator ``(I − QQᵀ)A(I − QQᵀ)`` from a fresh random start
looks beyond the returned values. If it finds a Ritz value beyond them (by
more than tol·|σ_max|; a Ritz value of the deflated operator never lies outside its
spectrum, so this is a proof of a miss), the missed pairs are computed by thick-restart
Lanczos on the deflated operator with the found pairs locked, merged, and checked again.
Only then are the pairs flagged converged; if the budget runs out first they are flagged
not converged and :func:`~ridgelens.spectra.eigen` warns. (A short run can fail to see a
miss; :attr:`Spectrum.checks` says how far it looked.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ridgelens._checkpoint import Checkpoint, operator_key
from ridgelens._progress import Progress
from ridgelens.errors import RidgelensError
from ridgelens.spectra._krylov import (
    LanczosIteration,
    new_basis,
    start_vector,
)

WHICH = ("largest", "smallest", "both")
#: Steps of each deflated check run: between these, k + 5.
CHECK_STEPS_MIN, CHECK_STEPS_MAX = 15, 30


def check_steps(k: int) -> int:
    """Length of a deflated check run for k wanted pairs."""
    return int(min(CHECK_STEPS_MAX, max(CHECK_STEPS_MIN, k + 5)))
#: How many rounds of "check, then compute what was missed" before giving up.
CHECK_ROUNDS = 4


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
    """The Ritz vectors a restart may keep besides the wanted ones, best first."""
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


def _ritz(T: torch.Tensor, m: int, beta: float, k: int, which: str, tol: float, smax: float = 0.0):
    """Ritz values/vectors of the m×m projection (torch's eigh: NumPy's BLAS threads would fight torch's)."""
    w, U = torch.linalg.eigh(T[:m, :m])
    theta, S = w.numpy(), U.numpy()
    res = np.abs(beta * S[m - 1, :])
    want = _wanted(theta, k, which)
    scale = max(float(np.abs(theta).max()), smax) or 1.0
    return theta, S, res, want, res[want] <= tol * scale


def _thick_restart(mv, n, k, which, tol, ncv, max_matvecs, seed, ck, progress, smax=0.0, label="lanczos"):
    """One thick-restart Lanczos run for the k wanted pairs of ``mv``; see :func:`lanczos`."""
    device, dtype = mv.device, mv.dtype
    basis = new_basis(n, device, dtype, first=min(k, ncv + 1), capacity=ncv + 1)
    it = LanczosIteration(mv, n, device, dtype, reorth="full", basis=basis)
    T = torch.zeros(ncv, ncv, dtype=torch.float64)
    j0, nmv, beta = 0, 0, 0.0
    state = ck.load() if ck is not None else None
    if state is not None:
        basis.load_state_dict(state)
        basis.set_size(ncv + 1)
        T.copy_(state["T"])
        j0, nmv, beta = int(state["j"]), int(state["nmv"]), float(state["beta"])
    elif basis.sharded:
        basis.row(0).copy_(basis.local(start_vector(n, seed, device, dtype)))
    else:
        start_vector(n, seed, device, dtype, out=basis.row(0))
    bar = Progress(label, max_matvecs, progress)
    g = torch.Generator().manual_seed(int(seed) + 1)
    kk = min(k, n)
    while True:
        stop = False
        if j0 >= ncv:  # resumed from a checkpoint taken at the end of a pass: restart from its Ritz pairs
            m = ncv
            theta, S, res, want, conv = _ritz(T, m, beta, kk, which, tol, smax)
            stop = bool(conv.all()) or nmv >= max_matvecs
        for j in range(j0, ncv):
            it.j = j
            basis.set_size(j + 1)
            h, beta, w = it.step()
            nmv += 1
            hh = h.to(device="cpu", dtype=torch.float64)
            T[: j + 1, j] = hh
            T[j, : j + 1] = hh
            scale = float(T[: j + 1, : j + 1].abs().max())
            if beta <= 1e-10 * max(scale, 1e-300) and j + 1 < n:
                # Invariant subspace: continue with a fresh random direction (coupling 0).
                w = basis.local(torch.randn(n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype))
                basis.orthogonalize_(w, j + 1)
                basis.row(j + 1).copy_(w / basis.norm(w))
                beta = 0.0
            else:
                basis.row(j + 1).copy_(w.div_(beta) if beta > 0 else w)
            del w
            bar.update(nmv)
            m = j + 1
            if m >= kk:  # check every step, so the run stops as soon as every wanted pair has converged
                theta, S, res, want, conv = _ritz(T, m, beta, kk, which, tol, smax)
                if conv.all() or nmv >= max_matvecs or m >= n:
                    stop = True
                    break
            if ck is not None:
                basis.set_size(ncv + 1)
                ck.maybe_save(nmv, lambda j=j, nmv=nmv, beta=beta: {**basis.state_dict(), "T": T.clone(),
                                                                     "j": j + 1, "nmv": nmv, "beta": beta},
                              local=("rows",) if basis.sharded else ())
        if stop:
            break
        # Thick restart: keep the wanted Ritz vectors and the next best, then the residual direction.
        extra = _extras(theta, m, want, which)[: (ncv - len(want)) // 2]
        keep = np.r_[want, extra].astype(int)
        p = keep.size
        Sk = torch.from_numpy(S[:, keep]).to(device=device, dtype=dtype)
        basis.rotate_(Sk.T, m)
        basis.row(p).copy_(basis.row(m))
        for i in range(p + 1, ncv + 1):
            basis.row(i).zero_()
        T.zero_()
        T[:p, :p] = torch.diag(torch.from_numpy(theta[keep]))
        j0 = p
    bar.close()
    order = want[np.argsort(-theta[want], kind="stable")]
    rank = np.argsort(-theta[want], kind="stable")
    Sk = torch.from_numpy(np.ascontiguousarray(S[:, order])).to(device=device, dtype=dtype)
    basis.rotate_(Sk.T, m)
    Q = basis.full(basis.head[: order.size]).T  # (n, k), a view of the first block (gathered when sharded)
    return {"eigenvalues": theta[order], "eigenvectors": Q, "residuals": res[want][rank],
            "converged": conv[rank], "n_matvecs": nmv, "ncv": ncv, "theta_all": theta}


class _Matvec:
    """A tensor matvec with its device and dtype (what the drivers call)."""

    def __init__(self, fn, device, dtype):
        self.fn, self.device, self.dtype = fn, device, dtype

    def __call__(self, v):
        return self.fn(v)


def _deflated(mv, Q: torch.Tensor) -> _Matvec:
    """``v ↦ (I − QQᵀ) A (I − QQᵀ) v`` for orthonormal columns Q."""

    def fn(v):
        x = v - Q @ (Q.T @ v)
        w = mv(x)
        return w - Q @ (Q.T @ w)

    return _Matvec(fn, mv.device, mv.dtype)


def _miss(mv, Q, values, which, tol, smax, seed, steps) -> tuple[bool, int, np.ndarray]:
    """A short Lanczos run on the deflated operator; whether it sees a Ritz value beyond ``values``."""
    n = Q.shape[0]
    steps = int(min(steps, n - Q.shape[1]))
    if steps < 1:
        return False, 0, np.zeros(0)
    dm = _deflated(mv, Q)
    v = start_vector(n, seed, mv.device, mv.dtype)
    v -= Q @ (Q.T @ v)
    # Only the extreme Ritz values are needed: the three-term recurrence with local
    # reorthogonalization (3 vectors, not a second basis beside the k returned) gives them; its
    # Ritz values stay inside the deflated operator's spectrum up to rounding, so a value beyond
    # the returned ones still proves a miss.
    it = LanczosIteration(dm, n, mv.device, mv.dtype, reorth="local")
    it.start(v)
    del v
    for _ in range(steps):
        _, beta, w = it.step()
        if beta <= 1e-10 * max(abs(x) for x in [*it.alphas, 1e-300]) or it.j + 1 >= steps:
            break
        it.push(w, beta)
        del w
    ritz = np.linalg.eigvalsh(it.tridiagonal())
    margin = tol * max(smax, float(np.abs(values).max(initial=0.0))) or tol
    vals = np.sort(values)
    missed = False
    if which in ("largest", "both"):
        k_hi = vals.size if which == "largest" else math.ceil(vals.size / 2)
        missed |= bool(ritz.max() > vals[-k_hi] + margin)
    if which in ("smallest", "both"):
        k_lo = vals.size if which == "smallest" else vals.size - math.ceil(vals.size / 2)
        if k_lo:
            missed |= bool(ritz.min() < vals[k_lo - 1] - margin)
    return missed, it.n_matvecs, ritz


def lanczos(op, k: int, *, which: str = "largest", tol: float = 1e-6, ncv: int | None = None,
            max_matvecs: int | None = None, seed: int = 0, checkpoint=None, progress: bool | None = None,
            check: bool = True) -> dict:
    """The k extreme eigenpairs of a symmetric operator by thick-restart Lanczos; see the module docs.

    A pair is converged when ``‖Hq − σq‖ ≤ tol · |σ_max|`` and, with ``check`` (default), a
    deflated check found nothing beyond the returned values. ``max_matvecs`` bounds the first
    run; the checks and the fixes of what they find get a budget as large again. Returns a dict with ``eigenvalues``
    (descending), ``eigenvectors`` (n, k) tensor, ``residuals``, ``converged`` per pair,
    ``n_matvecs`` (every product, the checks' included), ``ncv`` and ``checks`` (rounds run,
    products spent on them, whether a miss was found and fixed).
    """
    from ridgelens.operators import as_operator

    op = as_operator(op)
    n = op.n
    if which not in WHICH:
        raise RidgelensError(f"which must be one of {WHICH}, got {which!r}")
    if not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 1 <= k <= n):
        raise RidgelensError(f"k must be an integer in [1, {n}], got {k!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise RidgelensError(f"tol must be > 0, got {tol!r}")
    mv = _Matvec(op.matvec, op.device, op.dtype)
    itemsize = torch.empty(0, dtype=op.dtype).element_size()
    ncv = default_ncv(n, k, itemsize) if ncv is None else min(n, int(ncv))
    if ncv <= k and ncv < n:
        raise RidgelensError(f"ncv must exceed k (got ncv={ncv}, k={k})")
    max_matvecs = max(20 * ncv, 300) if max_matvecs is None else int(max_matvecs)
    ck = Checkpoint(checkpoint, "lanczos", {"n": n, "k": int(k), "which": which, "tol": float(tol),
                                            "operator": operator_key(op, checkpoint), "ncv": ncv, "seed": int(seed),
                                            "layout": 3})
    r = _thick_restart(mv, n, int(k), which, tol, ncv, max_matvecs, seed, ck, progress)
    steps = check_steps(int(k))
    checks = {"rounds": 0, "n_matvecs": 0, "missed": False, "steps": steps}
    if not check or k >= n or not r["converged"].all():
        r["checks"] = checks
        return r
    smax = float(np.abs(r["theta_all"]).max())
    vals, Q, res = r["eigenvalues"], r["eigenvectors"], r["residuals"]
    nmv = r["n_matvecs"]
    ok = np.ones(vals.size, dtype=bool)
    limit = nmv + max_matvecs  # the checks and the fixes get a budget of their own, as large as the first run's
    confirmed = False
    for rnd in range(CHECK_ROUNDS):
        missed, spent, _ = _miss(mv, Q, vals, which, tol, smax, seed + 1000 + rnd, steps)
        nmv += spent
        checks["rounds"], checks["n_matvecs"] = rnd + 1, checks["n_matvecs"] + spent
        if not missed:
            confirmed = True
            break
        checks["missed"] = True
        budget = limit - nmv
        k2 = int(min(k, n - Q.shape[1]))
        if budget <= 0 or k2 < 1:
            break
        ncv2 = int(min(n - Q.shape[1], max(ncv, k2 + 1)))
        d = _thick_restart(_deflated(mv, Q), n, k2, which, tol, ncv2, budget, seed + 2000 + rnd, None,
                           progress, smax=smax, label="lanczos (deflated)")
        nmv += d["n_matvecs"]
        # True residuals of the new pairs against A itself (one product each; they are ⊥ Q only approximately).
        newQ = d["eigenvectors"].clone()
        AQ = torch.stack([mv(newQ[:, i]) for i in range(newQ.shape[1])], dim=1)
        nmv += newQ.shape[1]
        new_res = (AQ - newQ * torch.from_numpy(d["eigenvalues"]).to(AQ)).norm(dim=0).cpu().numpy()
        allv = np.r_[vals, d["eigenvalues"]]
        allres = np.r_[res, new_res]
        allok = np.r_[ok, d["converged"]]
        order_all = np.argsort(allv, kind="stable")
        chosen = order_all[_wanted(allv[order_all], k, which)]
        chosen = chosen[np.argsort(-allv[chosen], kind="stable")]
        cols = torch.cat([Q, newQ], dim=1)[:, torch.from_numpy(chosen)]
        Qr, Rr = torch.linalg.qr(cols)
        Q = Qr * torch.sign(torch.diagonal(Rr))[None, :]
        vals, res, ok = allv[chosen], allres[chosen], allok[chosen] & (allres[chosen] <= tol * smax)
        if not ok.all():
            break
    if not confirmed:
        ok[:] = False  # a miss was found and the fix could not be confirmed by a clean check: say so
    r.update(eigenvalues=vals, eigenvectors=Q, residuals=res, converged=ok, n_matvecs=nmv, checks=checks)
    return r
