"""Stochastic Lanczos quadrature: exactness at m ≥ n, invariant exits, seeds, float32 against float64."""

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import psd


def _slq_probes(n, n_probes, seed):
    """The Rademacher probes spectral_density draws, one at a time, for ``seed``."""
    from ridgelens.spectra._density import _rademacher

    gen = torch.Generator().manual_seed(int(seed))
    return [_rademacher(n, 1, gen, "cpu", torch.float64)[0].numpy() for _ in range(n_probes)]


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_with_m_at_least_n_is_the_exact_quadratic_form_of_each_probe(reorth):
    # m ≥ n: each probe's Gauss quadrature is exact, n Σ wᵢ f(θᵢ) = mean over probes of vᵀf(H)v.
    # On a diagonal H a Rademacher probe's vᵀf(H)v is tr f(H) itself. Without reorthogonalization
    # the basis loses orthogonality by step n (ghosts): the quadrature is then close, not exact.
    from ridgelens.spectra import spectral_density

    rtol = 1e-8 if reorth == "full" else 1e-4

    n = 24
    d = np.geomspace(0.01, 10, n)
    diag = spectral_density(np.diag(d), n_probes=2, m=n + 5, seed=3, reorth=reorth)
    assert diag.n_matvecs == 2 * n
    for f in (np.log, np.sqrt, lambda t: t / (t + 0.05), lambda t: t**2):
        np.testing.assert_allclose(diag.trace_of(f), f(d).sum(), rtol=rtol)
    H = psd(n, d, seed=5)
    w, Q = np.linalg.eigh(H)
    d2 = spectral_density(H, n_probes=3, m=100, seed=7, reorth=reorth)
    np.testing.assert_allclose(d2.weights.sum(), 1.0, rtol=1e-12)
    for f in (np.log, lambda t: 1 / (t + 0.1)):
        fH = (Q * f(w)) @ Q.T
        ref = np.mean([v @ fH @ v for v in _slq_probes(n, 3, 7)])
        np.testing.assert_allclose(d2.trace_of(f), ref, rtol=rtol)
    # df(λ) is n Σ wᵢ θᵢ/(θᵢ + λ) here (no negative nodes), the same quadrature
    np.testing.assert_allclose(d2.effective_df([0.1]), d2.trace_of(lambda t: t / (t + 0.1)), rtol=1e-12)


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_m1_invariant_exit_seed_and_probes(reorth):
    from ridgelens.spectra import spectral_density

    n = 40
    H = psd(n, np.r_[np.full(20, 1.0), np.full(12, 3.0), np.full(8, 7.0)], seed=2)  # 3 distinct eigenvalues
    probes = _slq_probes(n, 4, 11)
    one = spectral_density(H, n_probes=4, m=1, seed=11, reorth=reorth)  # m = 1: the Rayleigh quotients
    np.testing.assert_allclose(one.nodes, [v @ H @ v / n for v in probes], rtol=1e-12)
    np.testing.assert_allclose(one.weights, 0.25)
    # The Krylov space of each probe is invariant after 3 steps: T is 3 × 3, its nodes H's eigenvalues.
    inv = spectral_density(H, n_probes=4, m=30, seed=11, reorth=reorth)
    assert inv.nodes.size == 12 and inv.n_matvecs == 12
    np.testing.assert_allclose(np.sort(inv.nodes), np.repeat([1.0, 3.0, 7.0], 4), atol=1e-8)
    np.testing.assert_allclose(inv.weights.sum(), 1.0, rtol=1e-12)
    w, Q = np.linalg.eigh(H)
    fH = (Q * np.log(w)) @ Q.T
    np.testing.assert_allclose(inv.trace_of(np.log), np.mean([v @ fH @ v for v in probes]), rtol=1e-8)
    again = spectral_density(H, n_probes=4, m=30, seed=11, reorth=reorth)
    np.testing.assert_array_equal(again.nodes, inv.nodes)
    np.testing.assert_array_equal(again.weights, inv.weights)
    assert not np.array_equal(spectral_density(H, n_probes=4, m=2, seed=12, reorth=reorth).nodes,
                              spectral_density(H, n_probes=4, m=2, seed=11, reorth=reorth).nodes)


class _F32(rl.CurvatureOperator):
    """A float32 operator with a native tensor product (as a float32 torch model has)."""

    def __init__(self, H):
        super().__init__(H.shape[0], dtype=torch.float32)
        self.H32 = torch.from_numpy(H).float()

    def _matmat(self, V):
        return self.H32 @ V


@pytest.mark.parametrize("reorth", ["full", "none"])
def test_slq_float32_agrees_with_float64(reorth):
    from ridgelens.spectra import spectral_density

    w = np.r_[np.geomspace(50, 1, 20), np.random.default_rng(7).uniform(0, 0.5, 280)]
    H = psd(300, w, seed=8)
    ref = spectral_density(H, n_probes=4, m=40, seed=1, reorth="full")
    got = spectral_density(_F32(H), n_probes=4, m=40, seed=1, reorth=reorth)
    assert got.reorth == {"none": "local"}.get(reorth, reorth) and got.nodes.dtype == np.float64
    lam = np.array([0.01, 0.1, 1.0])
    # "none" in float32: a near-zero Ritz value moves; df(0.01) within 0.2 % (SLQ's own error is larger)
    np.testing.assert_allclose(got.effective_df(lam), ref.effective_df(lam), rtol=1e-3 if reorth == "full" else 3e-3)
    np.testing.assert_allclose(got.trace_of(lambda t: t), w.sum(), rtol=0.1)
    np.testing.assert_allclose(got.weights.sum(), 1.0, rtol=1e-6)

