"""The pipeline (analyze): premises, refit checkpoints, resumes, what the warnings say."""

import warnings

import numpy as np
import pytest

import ridgelens as rl
from helpers import psd


def test_refit_checkpoint_of_another_point_is_refused(tmp_path, small_mlp):
    obj = small_mlp[3]
    theta = obj.minimize(l2=0.05, method="trust-ncg", max_iter=100).theta
    ck = tmp_path / "ck"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck)
        again = rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck)  # resumes its own refit
        np.testing.assert_array_equal(again.refit, first.refit)
        with pytest.raises(rl.RidgelensError, match="refit of another run"):
            rl.analyze(obj, [1.0], theta_hat=theta + 1e-3, checkpoint=ck)
        with pytest.raises(rl.RidgelensError, match="refit of another run"):  # same θ̂, another refit method
            rl.analyze(obj, [1.0], theta_hat=theta, checkpoint=ck, refit_options={"method": "lbfgs"})


def test_matrix_free_premise_counts_the_paths_own_ritz_values(small_mlp):
    obj = small_mlp[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rl.analyze(obj, [1.0, 2.0], theta_hat=obj.theta0, method="matrix-free", k=3, refit=False)
    assert res.path.ritz_values is not None and res.path.ritz_values.size > 0
    assert res.min_eigenvalue <= res.path.ritz_values.min()
    # small_mlp's H is the dense Hessian at θ0: Ritz values lie inside its spectrum
    assert res.min_eigenvalue >= np.linalg.eigvalsh(small_mlp[4]).min() - 1e-8


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_analyze_killed_mid_refit_resumes_with_its_own_refits(tmp_path, small_mlp, method, monkeypatch):
    obj = small_mlp[3]
    theta = obj.minimize(l2=0.05, method="trust-ncg", max_iter=100).theta
    lam = [0.5, 1.0, 2.0]
    ck = tmp_path / "ck"
    opts = dict(theta_hat=theta, checkpoint=ck, method=method, k=3, refit_options={"method": "trust-ncg"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = rl.analyze(obj, lam, **opts)
        assert sorted(p.name for p in ck.glob("refit_*.pt")) == ["refit_0.pt", "refit_1.pt", "refit_2.pt"]
        (ck / "refit_1.pt").unlink()  # killed during the second refit
        (ck / "refit_2.pt").unlink()
        calls = []
        real = type(obj).minimize

        def counting(self, *a, **kw):
            calls.append(kw.get("l2"))
            return real(self, *a, **kw)

        monkeypatch.setattr(type(obj), "minimize", counting)
        again = rl.analyze(obj, lam, **opts)
    assert calls == [1.0, 2.0]  # refit 0 read back, not refitted
    np.testing.assert_array_equal(again.refit[0], first.refit[0])
    np.testing.assert_allclose(again.refit, first.refit, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(again.path.thetas, first.path.thetas, rtol=1e-10, atol=1e-12)
    assert again.method == method


def test_analyze_that_finds_theta_hat_itself_resumes_its_refits(tmp_path, monkeypatch):
    # No θ̂ given: analyze minimizes first; the same run started again finds the same θ̂ and resumes.
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    obj = rl.Logistic(X[:200, :4], (y[:200] > 140).astype(float))
    ck = tmp_path / "ck"
    first = rl.analyze(obj, [0.01, 0.1], checkpoint=ck)
    real = type(obj).minimize
    monkeypatch.setattr(type(obj), "minimize",
                        lambda self, *a, **kw: (_ for _ in ()).throw(AssertionError("refit again"))
                        if kw.get("l2") else real(self, *a, **kw))
    again = rl.analyze(obj, [0.01, 0.1], checkpoint=ck)
    np.testing.assert_array_equal(again.refit, first.refit)


def test_negative_curvature_warning_says_whether_any_lambda_lost_its_minimizer():
    H = psd(40, np.r_[-0.1, np.linspace(1, 2, 39)])
    theta = np.random.default_rng(3).normal(size=40)
    with pytest.warns(rl.NegativeCurvatureWarning, match="every λ given is above it, so each of the 2"):
        ok = rl.ridge_path(H, theta, [0.5, 1.0], method="krylov", tol=1e-10)
    assert ok.valid.all()
    with pytest.warns(rl.NegativeCurvatureWarning, match="1 of 2 λ have no minimizer"):
        part = rl.ridge_path(H, theta, [0.05, 1.0], method="krylov", tol=1e-10)
    assert part.valid.tolist() == [False, True]



def test_theta_hat_converged_of_given_weights_says_whether_the_gradient_is_zero(small_mlp):
    """θ̂ taken as given (the model's own weights, or theta_hat=) is 'converged' only if ‖∇R(θ̂)‖ ≤ grad_tol:
    the flag was True whatever the gradient (results.json and the report said 'θ̂ converged: yes')."""
    obj = small_mlp[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = rl.analyze(obj, [0.1], refit=False, method="dense")
        assert res.gradient_norm > res.grad_tol  # the fixture's weights are random: far from a minimizer
        assert res.theta_hat_converged is False and res.to_dict()["theta_hat_converged"] is False
        loose = rl.analyze(obj, [0.1], refit=False, method="dense", theta_hat=obj.theta0,
                           grad_tol=2 * res.gradient_norm)
    assert loose.gradient_norm == res.gradient_norm and loose.theta_hat_converged is True
