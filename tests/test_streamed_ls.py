"""Streamed least squares (moments of [X, y] read block by block) against LeastSquares on X in memory.

Reference: :class:`LeastSquares` (SVD of the design) on the same CSV loaded whole, and NumPy's lstsq.
Tolerance: the normal equations lose about ε·κ(S) relative, κ(S) = cond(Z)² of the centred design,
so agreement is asserted to 100·ε·κ(S) (measured on each data set, not assumed).
"""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import ridgelens.data as data
from ridgelens import LeastSquares, analyze
from ridgelens.data import _fastcsv, load_dataset, stream_least_squares
from ridgelens.errors import DataError, RidgelensError
from ridgelens.objectives.streamed import Moments, StreamedLeastSquares
from ridgelens.select import select_lambda
from ridgelens.select._predict import spectrum_grid

LAMBDAS = [1e-4, 1e-2, 1.0]


def _write(path, X, y, names=None):
    names = names or [f"x{i}" for i in range(X.shape[1])] + ["y"]
    rows = "\n".join(",".join(repr(v) for v in r) for r in np.column_stack([X, y]).tolist())
    path.write_text(",".join(names) + "\n" + rows + "\n")
    return path


def _tol(ds) -> float:
    Z = ds.X - ds.X.mean(axis=0)
    return 100 * np.finfo(float).eps * np.linalg.cond(Z) ** 2


@pytest.mark.filterwarnings("ignore::ridgelens.errors.IllConditionedWarning")  # the in-memory reference says it
@pytest.mark.parametrize("shift", [0.0, 1e3])
def test_streamed_analysis_equals_the_in_memory_one(tmp_path, monkeypatch, shift):
    """Diabetes, and the same with 1000 added to every column: centred accumulation keeps the digits
    that uncentred sums would lose (entries of XᵀX ~1e6·n against a centred spread ~2e-3·n: ~9 digits)."""
    X, y = load_diabetes(return_X_y=True)
    path = _write(tmp_path / "d.csv", X + shift, y + shift)
    monkeypatch.setattr(_fastcsv, "BLOCK", 4096)  # many blocks, so the merge is exercised
    obj = stream_least_squares(f"csv:{path}")
    ds = load_dataset(f"csv:{path}")
    tol = _tol(ds)
    assert tol < 1e-10
    a, b = analyze(obj, LAMBDAS), analyze(LeastSquares(ds.X, ds.y, feature_names=ds.feature_names), LAMBDAS)
    scale = np.abs(b.theta_hat[:-1]).max()  # slopes to tol·max|w|; the intercept b = ȳ − x̄ᵀw to that times ‖x̄‖₁
    atol = np.append(np.full(10, tol * scale), tol * scale * (np.abs(ds.X.mean(axis=0)).sum() + 1))
    for got, want in ((a.theta_hat, b.theta_hat), (a.predicted, b.predicted), (a.refit, b.refit)):
        assert np.all(np.abs(got - want) <= atol)
    np.testing.assert_allclose(a.spectrum.eigenvalues, b.spectrum.eigenvalues, rtol=tol,
                               atol=tol * b.spectrum.eigenvalues[0])
    assert a.param_names == b.param_names and a.n_samples == b.n_samples == 442
    assert a.rel_error.max() < 1e-12  # least squares: the prediction is the refit, to rounding
    np.testing.assert_allclose(obj.value(b.theta_hat), LeastSquares(ds.X, ds.y).value(b.theta_hat), rtol=1e-9)


def test_moments_do_not_depend_on_the_blocks():
    X, y = load_diabetes(return_X_y=True)
    T = np.column_stack([X, y]) + 1e3
    one = Moments.of(T, rows=len(T))
    for rows in (1, 7, 100):
        m = Moments.of(T, rows=rows)
        assert m.n == one.n
        np.testing.assert_allclose(m.mean, T.mean(axis=0), rtol=1e-14)
        Z = T - T.mean(axis=0)
        np.testing.assert_allclose(m.scatter, Z.T @ Z, rtol=1e-11, atol=1e-11 * np.abs(Z.T @ Z).max())


@pytest.mark.parametrize("options", [{"fit_intercept": False}, {"penalize_intercept": True}])
def test_other_intercepts_equal_least_squares(options):
    X, y = load_diabetes(return_X_y=True)
    a = analyze(StreamedLeastSquares.from_arrays(X, y, **options), LAMBDAS)
    b = analyze(LeastSquares(X, y, **options), LAMBDAS)
    tol = 100 * np.finfo(float).eps * np.linalg.cond(X) ** 2 * np.abs(b.theta_hat).max()
    np.testing.assert_allclose(a.predicted, b.predicted, rtol=0, atol=tol)
    np.testing.assert_allclose(a.refit, b.refit, rtol=0, atol=tol)
    np.testing.assert_allclose(a.refit[0], b.refit[0], rtol=0, atol=tol)


def test_a_duplicated_column_gives_the_minimum_norm_solution():
    X, y = load_diabetes(return_X_y=True)
    X = np.column_stack([X, X[:, 2]])
    theta = StreamedLeastSquares.from_arrays(X, y).minimize().theta
    Z = X - X.mean(axis=0)
    w = np.linalg.lstsq(Z, y - y.mean(), rcond=None)[0]  # the minimum-norm slope
    np.testing.assert_allclose(theta[:-1], w, rtol=1e-8, atol=1e-8 * np.abs(w).max())
    assert theta[-2] == pytest.approx(theta[2], rel=1e-8)


def test_what_needs_x_is_refused_with_the_reason():
    X, y = load_diabetes(return_X_y=True)
    obj = StreamedLeastSquares.from_arrays(X, y)
    for method in ("loo", "gcv"):
        with pytest.raises(RidgelensError, match=rf"select_lambda\(method='{method}'\) needs the rows of X.*centred XᵀX"):
            select_lambda(obj, LAMBDAS, method=method)
    with pytest.raises(RidgelensError, match="another target"):
        obj.with_target(y)
    with pytest.raises(RidgelensError):
        select_lambda(obj, LAMBDAS, method="alo")


def test_the_default_grid_is_least_squares_one():
    """From the spectrum of S = C/n, against LeastSquares' grid from its design's singular values."""
    X, y = load_diabetes(return_X_y=True)
    a, b = spectrum_grid(StreamedLeastSquares.from_arrays(X, y)), spectrum_grid(LeastSquares(X, y))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-9)


def test_files_that_are_not_plain_use_the_careful_reader(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    path = _write(tmp_path / "q.csv", X[:50], y[:50], names=[f'"x{i}"' for i in range(10)] + ['"y"'])
    obj = stream_least_squares(str(path), target="x3")
    ref = StreamedLeastSquares.from_arrays(np.delete(np.column_stack([X[:50], y[:50]]), 3, axis=1), X[:50, 3],
                                           feature_names=[f"x{i}" for i in range(10) if i != 3] + ["y"])
    np.testing.assert_allclose(obj.minimize().theta, ref.minimize().theta, rtol=1e-12)
    assert obj.param_names == ref.param_names
    path.write_text("a,b,y\n1,2,3\n4,1e400,6\n7,8,9\n")
    with pytest.raises(DataError) as exc:
        stream_least_squares(f"csv:{path}")
    with pytest.raises(DataError) as careful:
        load_dataset(f"csv:{path}")
    assert str(exc.value) == str(careful.value) and "holds '1e400' at line 3 (column 2;" in str(exc.value)
    with pytest.raises(DataError, match="unknown target column 'z'"):
        stream_least_squares(f"csv:{path}", target="z")


def test_streaming_holds_no_table(tmp_path, monkeypatch):
    """The plain path never builds X: load_dataset's reader is not called."""
    X, y = load_diabetes(return_X_y=True)
    path = _write(tmp_path / "d.csv", X, y)
    monkeypatch.setattr(data, "read_plain_csv", lambda *a: pytest.fail("X was loaded"))
    monkeypatch.setattr(data, "_load_csv", lambda *a: pytest.fail("X was loaded"))
    assert stream_least_squares(f"csv:{path}").n_samples == 442


def _cli(capsys, *argv):
    from ridgelens.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_stream_gives_the_in_memory_results(tmp_path, capsys, monkeypatch):
    """``--stream``, and the same chosen by itself when the file would not fit (available memory set tiny)."""
    import json

    from ridgelens.cli import _stream

    X, y = load_diabetes(return_X_y=True)
    path = _write(tmp_path / "d.csv", X, y)
    base = ["analyze", "--data", f"csv:{path}", "--model", "linear", "--lambdas", "0.01,1", "--quiet"]
    assert _cli(capsys, *base, "--out", tmp_path / "mem")[0] == 0
    assert _cli(capsys, *base, "--stream", "--out", tmp_path / "st")[0] == 0
    monkeypatch.setattr(_stream, "available_memory", lambda: 1000)
    code, out, _ = _cli(capsys, *base, "--out", tmp_path / "auto")
    assert code == 0 and "too large to analyze in memory, so it is streamed" in out
    ref = json.loads((tmp_path / "mem" / "results.json").read_text())
    for run in ("st", "auto"):
        got = json.loads((tmp_path / run / "results.json").read_text())
        assert got["objective"] == "StreamedLeastSquares" and ref["objective"] == "LeastSquares"
        assert got["param_names"] == ref["param_names"] and got["target"] == ref["target"] == "y"
        tol = 1e-10 * np.abs(ref["theta_hat"]).max()  # 100·ε·κ(S) ≈ 1e-11 on diabetes (see _tol)
        np.testing.assert_allclose(got["theta_hat"], ref["theta_hat"], rtol=0, atol=tol)
    code, _, err = _cli(capsys, *base, "--stream", "--select", "loo", "--out", tmp_path / "sel")
    assert code == 2 and err.strip().splitlines() == [
        "ridgelens: error: --stream keeps only the centred XᵀX, Xᵀy and yᵀy, not the rows of X, which --select needs "
        "(--select evidence works from them)"]
    code, _, err = _cli(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--stream", "--lambdas", "1",
                        "--out", tmp_path / "b")
    assert code == 2 and "from a csv: file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sel").exists() and not (tmp_path / "b").exists()


def test_cli_stream_select_evidence_is_the_in_memory_closed_form(tmp_path, capsys):
    """--stream --select evidence (Laplace, noise profiled out) against the in-memory closed form on the same grid."""
    import json

    X, y = load_diabetes(return_X_y=True)
    path = _write(tmp_path / "d.csv", X, y)
    base = ["analyze", "--data", f"csv:{path}", "--model", "linear", "--select", "evidence", "--quiet"]
    assert _cli(capsys, *base, "--out", tmp_path / "mem")[0] == 0
    code, out, err = _cli(capsys, *base, "--stream", "--out", tmp_path / "st")
    assert code == 0, err
    ref = json.loads((tmp_path / "mem" / "results.json").read_text())["selection"]
    got = json.loads((tmp_path / "st" / "results.json").read_text())["selection"]
    np.testing.assert_allclose(got["lambdas"], ref["lambdas"], rtol=1e-9)
    np.testing.assert_allclose(got["criterion"], ref["criterion"], rtol=1e-8)
    assert got["index"] == ref["index"] and got["lambda"] == pytest.approx(ref["grid_lambda"], rel=1e-9)
    assert "noise precision profiled out" in got["treatment"] and f"selected λ = {got['lambda']:.6g} by evidence" in out


def test_one_penalty_factor_per_feature_is_accepted_as_in_memory():
    """glmnet's penalty.factor (one per feature, the intercept keeps its own 0): refused before with
    'must be 11 numbers'. Reference: (X_cᵀX_c/n + λD)w = X_cᵀy_c/n solved directly."""
    X, y = load_diabetes(return_X_y=True)
    factors = np.linspace(0.0, 2.0, X.shape[1])
    obj = StreamedLeastSquares.from_arrays(X, y)
    obj.set_penalty(factors)
    assert obj.penalty_factors[-1] == 0.0 and np.array_equal(obj.penalty_factors[:-1], factors)
    Xc, yc, n = X - X.mean(axis=0), y - y.mean(), len(y)
    for lam in LAMBDAS:
        w = np.linalg.solve(Xc.T @ Xc / n + lam * np.diag(factors), Xc.T @ yc / n)
        got = obj.minimize(l2=lam).theta
        np.testing.assert_allclose(got, np.r_[w, y.mean() - X.mean(axis=0) @ w], rtol=1e-9, atol=1e-9 * np.abs(w).max())


@pytest.mark.parametrize("power", [-30, -8, 8, 20])
def test_a_column_in_far_units_streamed_keeps_its_coefficient_and_the_path(power):
    """Diabetes with one column in units 10^power, from its moments alone. Before: at 1e-8 its
    eigenvalue (1e-16·σmax) fell under the rounding rule, θ̂ dropped the column ("rank 9 of 10") and
    the path with it, silently; at 1e8 the other coefficients came out ~1e-17. Now the rank is
    decided on the Jacobi-scaled moments and every solve is scaled. Reference: solves in the
    column's own units, (ZᵀZ/n + λD⁻²)φ = Zᵀy_c/n with Z = X_c D⁻¹, w = D⁻¹φ."""
    X, y = load_diabetes(return_X_y=True)
    n, scale = len(y), np.ones(X.shape[1])
    scale[2] = 10.0 ** power
    Xs = X * scale
    obj = StreamedLeastSquares.from_arrays(Xs, y)
    sigma, _ = obj.penalized_spectrum()
    assert (sigma > 0).all()  # full rank: the column is not dropped
    res = analyze(obj, LAMBDAS)
    Z = X - X.mean(axis=0)
    for lam, pred, refit in zip([0.0, *LAMBDAS], [res.theta_hat, *res.predicted], [res.theta_hat, *res.refit],
                                strict=True):
        w = np.linalg.solve(Z.T @ Z / n + lam * np.diag(scale ** -2.0), Z.T @ (y - y.mean()) / n) / scale
        ref = np.r_[w, y.mean() - Xs.mean(axis=0) @ w]
        for got in (pred, refit):  # per coefficient, against its own size
            assert np.max(np.abs(got - ref) / np.abs(ref)) < 2e-12, lam  # 1.4e-13 … 1.6e-13 here, as at unit scale
