"""A converged flag means the k *wanted* eigenvalues, to within tol·|σ_max| — checked against dense eigh
on trained MLPs whose Hessians have a large near-null cluster (243 parameters, 30 samples)."""

import warnings

import numpy as np
import pytest
import torch

import ridgelens as rl
from ridgelens.objectives.torch import TorchObjective


def _half(o, t):
    return 0.5 * ((o - t) ** 2).sum(-1).mean()


@pytest.fixture(scope="module", params=[0, 1, 2])
def trained(request):
    torch.manual_seed(request.param)
    net = torch.nn.Sequential(torch.nn.Linear(6, 24), torch.nn.Tanh(), torch.nn.Linear(24, 3)).double()
    X, Y = torch.randn(30, 6, dtype=torch.float64), torch.randn(30, 3, dtype=torch.float64)
    obj = TorchObjective(net, _half, [(X, Y)])
    theta = obj.minimize(method="lbfgs", max_iter=300).theta
    op = rl.hessian(obj, theta)
    return request.param, op, np.linalg.eigvalsh(op.to_dense().numpy())


@pytest.mark.parametrize(("which", "k", "tol"), [("smallest", 4, 1e-6), ("largest", 10, 1e-3), ("both", 6, 1e-6)])
def test_converged_means_the_wanted_eigenvalues(trained, which, k, tol):
    seed, op, w = trained
    smax = np.abs(w).max()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = rl.eigen(op, k, which=which, tol=tol, method="lanczos", seed=seed)
    ref = {"smallest": w[:k], "largest": w[::-1][:k], "both": np.r_[w[::-1][:3], w[:3]]}[which]
    err = np.abs(np.sort(s.eigenvalues) - np.sort(ref))
    # each returned pair is an eigenpair to tol (residual bound) ...
    assert (s.residuals[s.converged] <= tol * smax * 1.01).all()
    if s.converged.all():  # ... and "converged" means they are the wanted ones
        assert err.max() <= 2 * tol * smax, (which, err.max() / smax)
    else:  # otherwise it says so, with a warning
        assert any(issubclass(c.category, rl.ConvergenceWarning) for c in caught)
    assert s.checks["rounds"] >= (1 if s.converged.all() else 0)


def test_check_false_skips_only_the_deflated_check(trained):
    """eigen(check=False) is the same Lanczos run without the deflated check: the same pairs (the check found no
    miss here), exactly the check's products fewer, and Spectrum.checks says no check ran."""
    seed, op, w = trained
    full = rl.eigen(op, 5, tol=1e-6, method="lanczos", seed=seed)
    bare = rl.eigen(op, 5, tol=1e-6, method="lanczos", seed=seed, check=False)
    assert full.checks["rounds"] == 1 and not full.checks["missed"] and full.checks["n_matvecs"] > 0
    assert bare.checks["rounds"] == 0 and bare.checks["n_matvecs"] == 0
    assert bare.n_matvecs == full.n_matvecs - full.checks["n_matvecs"]
    np.testing.assert_array_equal(bare.eigenvalues, full.eigenvalues)
    np.testing.assert_allclose(bare.eigenvalues, w[::-1][:5], rtol=0, atol=1e-6 * np.abs(w).max())
    with pytest.raises(rl.RidgelensError, match="check must be True or False"):
        rl.eigen(op, 5, method="lanczos", check="yes")
