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
from ridgelens.spectra._krylov_base import orthogonalize, tensor_matvec, to_numpy


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
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    bandwidth: float
    n: int
    n_matvecs: int

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


def spectral_density(op, *, n_probes: int = 8, m: int = 60, seed: int = 0, bandwidth: float | None = None,
                     n_grid: int = 400) -> SpectralDensity:
    """Eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    Costs ``n_probes · m`` products. ``bandwidth`` defaults to 1% of the spectrum's span.
    """
    n = op.shape[0]
    if n_probes < 1 or m < 1:
        raise RidgelensError(f"n_probes and m must be >= 1, got {n_probes}, {m}")
    m = min(m, n)
    mv, device, dtype = tensor_matvec(op)
    gen = torch.Generator().manual_seed(int(seed))
    nodes, weights, nmv = [], [], 0
    for v in _rademacher(n, n_probes, gen, device, dtype):
        V = [v / v.norm()]
        T = np.zeros((m, m))
        for j in range(m):
            w = mv(V[j])
            nmv += 1
            w, h = orthogonalize(w, torch.stack(V))
            T[: j + 1, j] = T[j, : j + 1] = to_numpy(h)
            beta = float(w.norm())
            if j + 1 == m or beta <= 1e-12 * max(np.abs(T[: j + 1, : j + 1]).max(), 1e-300):
                T = T[: j + 1, : j + 1]
                break
            V.append(w / beta)
        theta, U = np.linalg.eigh(T)
        nodes.append(theta)
        weights.append(U[0, :] ** 2 / n_probes)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    span = float(nodes.max() - nodes.min()) or max(abs(float(nodes.max())), 1.0)
    bw = 0.01 * span if bandwidth is None else float(bandwidth)
    grid = np.linspace(nodes.min() - 3 * bw, nodes.max() + 3 * bw, n_grid)
    dens = (weights[None, :] * np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / bw) ** 2)).sum(axis=1)
    dens /= bw * np.sqrt(2 * np.pi)
    return SpectralDensity(nodes=nodes, weights=weights, grid=grid, density=dens, bandwidth=bw, n=n,
                           n_matvecs=nmv)


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
