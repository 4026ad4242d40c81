"""λ = 0 with a singular XᵀX (a duplicated column): θ̂ is not unique, and the run says which it is.

References: NumPy's lstsq (the minimum-norm solution), and the null vector built by hand.
"""

import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens.cli import main
from ridgelens.cli._notes import singular_note


@pytest.fixture(scope="module")
def duplicated():
    X, y = load_diabetes(return_X_y=True)
    return np.column_stack([X, X[:, 2]]), y  # column 10 repeats column 2


def min_norm(X, y):
    Xc = X - X.mean(0)
    coef = np.linalg.lstsq(Xc, y - y.mean(), rcond=None)[0]
    return np.r_[coef, y.mean() - X.mean(0) @ coef]


def test_cli_says_theta_hat_is_the_minimum_norm_one(duplicated, tmp_path, capsys):
    X, y = duplicated
    path = tmp_path / "dup.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", comments="",
               header=",".join([f"x{i}" for i in range(11)] + ["y"]))
    assert main(["analyze", "--data", f"csv:{path}", "--model", "linear", "--lambdas", "0,0.01",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "singular (rank 10 of 11)" in out and "θ̂ is the minimum-norm one" in out
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    ref = min_norm(X, y)
    np.testing.assert_allclose(res["theta_hat"], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    assert res["rel_error"][0] < 1e-10 and res["refit_converged"][0]


def test_a_theta_hat_off_the_minimum_norm_is_said_to_differ(duplicated):
    X, y = duplicated
    obj = rl.LeastSquares(X, y)
    null = np.zeros(12)
    null[2], null[10] = 3.0, -3.0  # X·null = 0: another exact minimizer
    res = rl.analyze(obj, [0.0, 0.01], theta_hat=min_norm(X, y) + null, refit=False)
    note = singular_note(res)
    assert f"component of norm {np.linalg.norm(null):.3g}" in note
    np.testing.assert_allclose(res.predicted[0], min_norm(X, y), rtol=1e-8, atol=1e-8 * np.abs(min_norm(X, y)).max())
    assert singular_note(rl.analyze(rl.LeastSquares(X[:, :10], y), [0.0], refit=False)) is None
