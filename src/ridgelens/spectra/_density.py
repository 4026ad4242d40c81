"""Spectral density by stochastic Lanczos quadrature, and the trace by Hutch++.

SLQ (Ubaru, Chen & Saad 2017): for a Rademacher probe v, m Lanczos steps give a
tridiagonal T = U diag(θ) Uᵀ, and vᵀf(H)v/‖v‖² ≈ Σᵢ U₀ᵢ² f(θᵢ). Averaging over probes,
the density of H's eigenvalues is approximated by the nodes θᵢ with weights U₀ᵢ²/n_probes,
so ``tr f(H) ≈ n Σ weightsᵢ f(nodesᵢ)``.

Hutch++ (Meyer, Musco, Musco & Woodruff 2021): spend a third of the products on a
sketch Q of H's range, take tr(QᵀHQ) exactly, and estimate the rest with Hutchinson on
(I − QQᵀ)H(I − QQᵀ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ridgelens.errors import RidgelensError
from ridgelens.spectra._krylov_base import orthogonalize_blocks_, shares_memory, tensor_matvec


@dataclass(frozen=True)
class SpectralDensity:
    """Quadrature nodes and weights for H's eigenvalue density, and a smoothed curve.

    Attributes
    ----------
    nodes, weights : ndarray of shape (n_probes · m,)
        Ritz values and their weights (the weights sum to 1).
    grid, density : ndarray of shape (n_grid,)
        A Gaussian-smoothed density on ``grid`` (integrates to ~1).
    bandwidth : float
        Standard deviation of the Gaussian kernel.
    n : int
        Dimension of H.
    n_matvecs : int
    reorth : str
        ``"full"`` or ``"none"``: how the Lanczos vectors were kept orthogonal.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    bandwidth: float
    n: int
    n_matvecs: int
    reorth: str = "full"

    def trace_of(self, f) -> float:
        """Estimate ``tr f(H) = n Σ weightsᵢ f(nodesᵢ)``."""
        return float(self.n * np.sum(self.weights * f(self.nodes)))

    def effective_df(self, lambdas) -> np.ndarray:
        """df(λ) = tr H(H + λI)⁻¹ ≈ n Σ wᵢ θᵢ⁺/(θᵢ⁺ + λ) (negative nodes count as 0)."""
        lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
        t = np.maximum(self.nodes, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(t[None, :] > 0, t[None, :] / (t[None, :] + lam[:, None]), 0.0)
        return self.n * (f * self.weights[None, :]).sum(axis=1)


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its standard error and cost."""

    value: float
    std_error: float
    n_matvecs: int
    method: str


def _rademacher(n, k, gen, device, dtype):
    r = torch.randint(0, 2, (k, n), generator=gen, dtype=torch.int8).to(torch.float64) * 2 - 1
    return r.to(device=device, dtype=dtype)


#: Above this many bytes for an SLQ basis (m + 1 vectors), ``reorth="auto"`` keeps 3 vectors only.
SLQ_BASIS_BUDGET_BYTES = 1 << 30
REORTH = ("auto", "full", "none")


def spectral_density(op, *, n_probes: int = 8, m: int = 60, seed: int = 0, bandwidth: float | None = None,
                     n_grid: int = 400, reorth: str = "auto") -> SpectralDensity:
    """Eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    Costs ``n_probes · m`` products. ``bandwidth`` defaults to 1% of the spectrum's span.

    ``reorth``: ``"full"`` reorthogonalizes each Lanczos vector against all earlier ones
    (memory m + 1 vectors); ``"none"`` runs the plain three-term recurrence (memory 3
    vectors): in floating point its Ritz values repeat ("ghosts"), but the Gauss quadrature
    it defines stays accurate (Paige; Greenbaum), which is all SLQ uses. ``"auto"`` is full
    unless that basis would pass 1 GiB. The choice is recorded in ``SpectralDensity.reorth``.
    """
    n = op.shape[0]
    if n_probes < 1 or m < 1:
        raise RidgelensError(f"n_probes and m must be >= 1, got {n_probes}, {m}")
    if reorth not in REORTH:
        raise RidgelensError(f"reorth must be one of {REORTH}, got {reorth!r}")
    m = min(m, n)
    mv, device, dtype = tensor_matvec(op)
    if reorth == "auto":
        itemsize = torch.empty(0, dtype=dtype).element_size()
        reorth = "full" if (m + 1) * n * itemsize <= SLQ_BASIS_BUDGET_BYTES else "none"
    gen = torch.Generator().manual_seed(int(seed))
    V = torch.empty(m + 1 if reorth == "full" else 2, n, device=device, dtype=dtype)
    nodes, weights, nmv = [], [], 0
    for _ in range(n_probes):
        v = _rademacher(n, 1, gen, device, dtype)[0]
        V[0] = v / v.norm()
        del v
        alpha, beta = [], []
        for j in range(m):
            cur = V[j] if reorth == "full" else V[j % 2]
            w = mv(cur)
            if shares_memory(w, V):
                w = w.clone()  # an operator that hands back its input
            nmv += 1
            if reorth == "full":
                # Classical Gram-Schmidt twice against the whole basis, in place; α is the total
                # coefficient on the current vector (the second pass corrects the first).
                a = float(orthogonalize_blocks_(w, [V[: j + 1]])[j])
            else:
                a = float(w @ cur)
                w.add_(cur, alpha=-a)
                if j > 0:
                    w.add_(V[(j - 1) % 2], alpha=-beta[-1])
                # Local reorthogonalization against the two vectors held: in float32 and at 10⁷
                # parameters the plain recurrence drifts (df off by 20 % against float64).
                rows = V[: 1 + (j > 0)]
                c = rows @ w
                w.addmv_(rows.T, c, alpha=-1)
                a += float(c[j % 2])
            alpha.append(a)
            b = float(w.norm())
            scale = max(max(abs(x) for x in alpha), max(beta, default=0.0), 1e-300)
            if j + 1 == m or b <= 1e-12 * scale:
                break
            beta.append(b)
            if reorth == "full":
                V[j + 1] = w.div_(b)
            else:
                V[(j + 1) % 2] = w.div_(b)  # overwrites v_{j−1}, no longer needed
        T = np.diag(alpha) + np.diag(beta[: len(alpha) - 1], 1) + np.diag(beta[: len(alpha) - 1], -1)
        # torch's eigh: NumPy's BLAS threads would fight torch's between products.
        theta, U = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(T)))
        nodes.append(theta)
        weights.append(U[0, :] ** 2 / n_probes)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    span = float(nodes.max() - nodes.min()) or max(abs(float(nodes.max())), 1.0)
    bw = 0.01 * span if bandwidth is None else float(bandwidth)
    grid = np.linspace(nodes.min() - 3 * bw, nodes.max() + 3 * bw, n_grid)
    dens = (weights[None, :] * np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / bw) ** 2)).sum(axis=1)
    dens /= bw * np.sqrt(2 * np.pi)
    return SpectralDensity(nodes=nodes, weights=weights, grid=grid, density=dens, bandwidth=bw, n=n,
                           n_matvecs=nmv, reorth=reorth)


def hutchpp_trace(op, n_matvecs: int = 90, *, seed: int = 0) -> TraceEstimate:
    """tr(H) by Hutch++ with ``n_matvecs`` products (a multiple of 3 is used); exact when 2n/3 ≥ n."""
    n = op.shape[0]
    if n_matvecs < 3:
        raise RidgelensError(f"Hutch++ needs at least 3 products, got {n_matvecs}")
    mv, device, dtype = tensor_matvec(op)
    gen = torch.Generator().manual_seed(int(seed))
    s = min(n_matvecs // 3, n)
    S = _rademacher(n, s, gen, device, dtype)
    HS = torch.stack([mv(v) for v in S])
    Q, _ = torch.linalg.qr(HS.T)  # (n, s)
    HQ = torch.stack([mv(q) for q in Q.T])
    exact = float((Q.T * HQ).sum())
    used = 2 * s
    g = n_matvecs - used
    if g <= 0 or s >= n:
        return TraceEstimate(exact, 0.0, used, "hutch++")
    G = _rademacher(n, g, gen, device, dtype)
    G = G - (G @ Q) @ Q.T
    samples = np.array([float(gv @ mv(gv)) for gv in G])
    rest, se = float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(g)) if g > 1 else float("inf")
    return TraceEstimate(exact + rest, se, used + g, "hutch++")
