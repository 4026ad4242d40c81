"""The Laplace evidence of a Gaussian loss profiles the noise precision out (issue 12).

References, independent of the Laplace route: the closed-form least-squares evidence
(``select_lambda(LeastSquares(...), method="evidence")``, from the design's SVD, itself checked
against BayesianRidge and a dense marginal likelihood in test_select_methods.py).

A torch ``nn.Linear`` with ``nn.MSELoss`` and an unpenalized bias is least squares with a free
intercept, its loss ``Σr²/n`` twice LeastSquares' ``Σr²/(2n)``: its λ = 2 × LeastSquares' λ
is the same penalty, and there its Laplace evidence (with n_eff = n − 1 for the bias, as the
closed form integrates the intercept out) must equal the closed form, curve and choice.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens.objectives import LeastSquares
from ridgelens.objectives.streamed import StreamedLeastSquares
from ridgelens.select import select_lambda


def _torch_linear(X, y, loss_fn):
    torch.manual_seed(0)
    net = torch.nn.Linear(X.shape[1], 1).double()
    obj = rl.TorchObjective(net, loss_fn, [(torch.tensor(X), torch.tensor(y)[:, None])], unpenalized=("bias",))
    return obj, obj.minimize(method="lbfgs", max_iter=5000, tol=1e-12).theta


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_torch_mse_linear_model_is_the_closed_form(diabetes, scale):
    X, y = diabetes
    y = y * scale
    ls = select_lambda(LeastSquares(X, y), method="evidence")
    obj, theta = _torch_linear(X, y, torch.nn.MSELoss())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # premises at θ̂ (L-BFGS's gradient), not the point here
        sel = select_lambda(obj, 2 * ls.lambdas, method="evidence", theta_hat=theta)
    np.testing.assert_allclose(sel.criterion, ls.criterion, rtol=1e-12)
    assert sel.lambda_ == 2 * ls.diagnostics["grid_lambda"]
    assert "noise precision profiled out with n_eff = 441 (442 residuals less 1 free parameters)" \
        in sel.diagnostics["treatment"]
    # One MacKay update from the grid's best lands near the closed form's fixed point.
    assert sel.diagnostics["mackay_lambda"] == pytest.approx(2 * ls.lambda_, rel=0.02)


def test_the_choice_does_not_depend_on_the_units_of_y(diabetes):
    """y × 100: the same λ, the criterion shifted by (n_eff/n)·log(100) (S scales by 100²)."""
    X, y = diabetes
    grid = np.geomspace(1e-7, 1e-1, 25)
    sels = []
    for scale in (1.0, 100.0):
        obj, theta = _torch_linear(X, y * scale, torch.nn.functional.mse_loss)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sels.append(select_lambda(obj, grid, method="evidence", theta_hat=theta))
    a, b = sels
    assert a.lambda_ == b.lambda_ and 0 < a.diagnostics["index"] < grid.size - 1
    np.testing.assert_allclose(b.criterion - a.criterion, 441 / 442 * np.log(100.0), rtol=1e-9)
    assert b.diagnostics["noise_variance"] == pytest.approx(1e4 * a.diagnostics["noise_variance"], rel=1e-8)


def test_streamed_least_squares_evidence_is_the_closed_form(diabetes):
    """io13's case: the Laplace route on the streamed moments picked 1.9e-7 against 7.6e-5."""
    X, y = diabetes
    ls = select_lambda(LeastSquares(X, y), method="evidence")
    sel = select_lambda(StreamedLeastSquares.from_arrays(X, y), ls.lambdas, method="evidence")
    np.testing.assert_allclose(sel.criterion, ls.criterion, rtol=1e-10)
    assert sel.lambda_ == ls.diagnostics["grid_lambda"]
    assert sel.lambda_ == pytest.approx(ls.lambda_, rel=0.1)  # the fixed point, between grid points


def test_a_loss_not_declared_gaussian_is_taken_as_the_negative_log_likelihood(diabetes):
    """An undeclared loss keeps exp(−nR); declaring gaussian_factor on it switches to the profiled form."""
    X, y = diabetes
    X, y = X[:100], y[:100] / y.std()

    def half_squared(o, t):
        return 0.5 * ((o - t) ** 2).sum(-1).mean()

    obj, theta = _torch_linear(X, y, half_squared)
    grid = np.geomspace(1e-6, 1e-1, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = select_lambda(obj, grid, method="evidence", theta_hat=theta)
        assert "per-sample negative log-likelihood" in plain.diagnostics["treatment"]
        res = rl.analyze(obj, grid, theta_hat=theta, refit=False)
        n = 100
        by_hand = [obj.value(t) + 0.5 * lam * t[:-1] @ t[:-1] - np.log(lam / (res.path.eigenvalues + lam)).sum()
                   / (2 * n) for lam, t in zip(grid, res.path.thetas, strict=True)]
        np.testing.assert_allclose(plain.criterion, by_hand, rtol=1e-10)
        half_squared.gaussian_factor = 0.5
        ls = select_lambda(LeastSquares(X, y), grid, method="evidence")
        gauss = select_lambda(obj, grid, method="evidence", theta_hat=theta)
    np.testing.assert_allclose(gauss.criterion, ls.criterion, rtol=1e-10)
