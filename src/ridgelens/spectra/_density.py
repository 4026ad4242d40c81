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

from ridgelens._auto import select_solver
from ridgelens._progress import Progress
from ridgelens._shrinkage import shrinkage
from ridgelens._validation import check_lambdas, check_seed
from ridgelens.errors import RidgelensError
from ridgelens.spectra._krylov import LanczosIteration, new_basis, tensor_matvec


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
        ``"full"`` or ``"local"``: how the Lanczos vectors were kept orthogonal.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    bandwidth: float
    n: int
    n_matvecs: int
    reorth: str = "full"

    @classmethod
    def from_nodes(cls, nodes, weights, *, n: int, n_matvecs: int = 0, reorth: str = "full",
                   bandwidth: float | None = None, n_grid: int = 400) -> SpectralDensity:
        """The density of quadrature ``nodes`` and ``weights``, smoothed with a Gaussian on a grid.

        ``bandwidth`` defaults to 1% of the nodes' span; the grid reaches 3 bandwidths beyond them.
        """
        _check_bandwidth(bandwidth)
        nodes, weights = np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)
        span = float(nodes.max() - nodes.min()) or max(abs(float(nodes.max())), 1.0)
        bw = 0.01 * span if bandwidth is None else float(bandwidth)
        grid = np.linspace(nodes.min() - 3 * bw, nodes.max() + 3 * bw, n_grid)
        return cls(nodes=nodes, weights=weights, grid=grid, density=gaussian_density(nodes, weights, grid, bw),
                   bandwidth=bw, n=n, n_matvecs=n_matvecs, reorth=reorth)

    def trace_of(self, f) -> float:
        """Estimate ``tr f(H) = n Σ weightsᵢ f(nodesᵢ)``."""
        return float(self.n * np.sum(self.weights * f(self.nodes)))

    def effective_df(self, lambdas, rank_tol: float = 0.0) -> np.ndarray:
        """df(λ) = tr H(H + λI)⁻¹ ≈ n Σ wᵢ θᵢ⁺/(θᵢ⁺ + λ) (negative nodes, and |θᵢ| ≤ rank_tol, count as 0)."""
        lam = check_lambdas(lambdas, "lambdas")
        t = np.where(np.abs(self.nodes) <= rank_tol, 0.0, np.maximum(self.nodes, 0.0))
        f, _ = shrinkage(t, lam)  # t ≥ 0: defined for every λ ≥ 0 (0/0 := 0)
        return self.n * (f * self.weights[None, :]).sum(axis=1)


def gaussian_density(nodes, weights, grid, width: float) -> np.ndarray:
    """Σₖ wₖ N(x; nodeₖ, width²) on ``grid``: a smoothed density of the spectrum, shape (g,)."""
    x = np.asarray(grid, dtype=np.float64)[:, None]
    d = (x - np.asarray(nodes, dtype=np.float64)[None, :]) / width
    return (np.exp(-0.5 * d**2) @ np.asarray(weights, dtype=np.float64)) / (width * np.sqrt(2 * np.pi))


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


REORTH = ("auto", "full", "local", "none")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise RidgelensError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_bandwidth(bandwidth) -> None:
    """None (the default) or a finite number > 0; a zero, negative or NaN bandwidth has no Gaussian."""
    try:
        ok = bandwidth is None or (not isinstance(bandwidth, bool) and 0 < float(bandwidth) < np.inf)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RidgelensError(f"bandwidth must be a positive number, got {bandwidth!r}")


def spectral_density(op, *, n_probes: int = 8, m: int = 60, seed: int = 0, bandwidth: float | None = None,
                     n_grid: int = 400, reorth: str = "auto", progress: bool | None = None) -> SpectralDensity:
    """Eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    Costs ``n_probes · m`` products. ``bandwidth`` defaults to 1% of the spectrum's span.

    ``reorth``: ``"full"`` reorthogonalizes each Lanczos vector against all earlier ones
    (memory m + 1 vectors); ``"local"`` (``"none"`` is its old name) runs the three-term
    recurrence with one more pass against the two vectors held (memory 3 vectors): in floating
    point its Ritz values repeat ("ghosts"), but the Gauss quadrature it defines stays accurate
    (Paige; Greenbaum), which is all SLQ uses. ``"auto"`` is full unless that basis would pass
    1 GiB (:func:`ridgelens._auto.select_solver`). The choice is recorded in ``SpectralDensity.reorth``.
    ``progress``: a progress bar of the products (default: when stderr is a terminal).
    """
    n = op.shape[0] if hasattr(op, "shape") else np.shape(op)[0]
    n_probes, m = _check_positive_int(n_probes, "n_probes"), _check_positive_int(m, "m")
    if reorth not in REORTH:
        raise RidgelensError(f"reorth must be one of {REORTH}, got {reorth!r}")
    _check_bandwidth(bandwidth)
    _check_positive_int(n_grid, "n_grid")
    m = min(m, n)
    mv, device, dtype = tensor_matvec(op)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    reorth = select_solver("slq_reorth", reorth, basis_bytes=(m + 1) * n * itemsize).name
    gen = torch.Generator().manual_seed(check_seed(seed))
    basis = new_basis(n, device, dtype, first=m + 1, capacity=m + 1) if reorth == "full" else None
    nodes, weights, nmv = [], [], 0
    bar = Progress("spectral density (SLQ)", n_probes * m, progress)
    for _ in range(n_probes):
        it = LanczosIteration(mv, n, device, dtype, reorth=reorth, basis=basis)
        v = _rademacher(n, 1, gen, device, dtype)[0]
        it.start(v)
        del v
        for j in range(m):
            _, b, w = it.step()
            nmv += 1
            bar.update(nmv)
            scale = max(max(abs(x) for x in it.alphas), max(it.betas, default=0.0), 1e-300)
            if j + 1 == m or b <= 1e-12 * scale:
                break
            it.push(w, b)
        T = it.tridiagonal()
        # torch's eigh: NumPy's BLAS threads would fight torch's between products.
        theta, U = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(T)))
        nodes.append(theta)
        weights.append(U[0, :] ** 2 / n_probes)
    bar.close()
    return SpectralDensity.from_nodes(np.concatenate(nodes), np.concatenate(weights), n=n, n_matvecs=nmv,
                                      reorth=reorth, bandwidth=bandwidth, n_grid=n_grid)


def hutchpp_trace(op, n_matvecs: int = 90, *, seed: int = 0) -> TraceEstimate:
    """tr(H) by Hutch++ with ``n_matvecs`` products (a multiple of 3 is used); exact when 2n/3 ≥ n."""
    from ridgelens.operators import as_operator

    op = as_operator(op)
    n = op.n
    if isinstance(n_matvecs, bool) or not isinstance(n_matvecs, (int, np.integer)) or n_matvecs < 3:
        raise RidgelensError(f"Hutch++ needs an integer number of products ≥ 3, got {n_matvecs!r}")
    mv, device, dtype = op.matvec, op.device, op.dtype
    gen = torch.Generator().manual_seed(check_seed(seed))
    s = min(n_matvecs // 3, n)
    S = _rademacher(n, s, gen, device, dtype)
    HS = op.matmat(S.T.contiguous()).T  # one batched product for the whole sketch
    Q, _ = torch.linalg.qr(HS.T)  # (n, s)
    HQ = op.matmat(Q).T
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
