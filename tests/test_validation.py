"""Bad input to the library raises a RidgelensError whose message names the problem."""

import re

import numpy as np
import pytest
import torch

import ridgelens as rl


def data(n=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(float)
    return X, y


def test_errors_are_value_errors():
    assert issubclass(rl.RidgelensError, ValueError)
    assert issubclass(rl.DataError, rl.RidgelensError)
    assert issubclass(rl.ModelModeError, rl.RidgelensError)


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_names_row_and_column(cls, bad):
    X, y = data()
    X[4, 2] = bad
    X[7, 0] = np.nan  # a second bad cell: the first one is named, and the count given
    with pytest.raises(rl.DataError, match=r"X contains (nan|inf|-inf) at row 4, column 2") as exc:
        cls(X, y)
    assert "2 non-finite value(s)" in str(exc.value)
    assert str(bad) in str(exc.value)


def test_non_finite_X_names_feature():
    X, y = data()
    X[5, 1] = np.nan
    with pytest.raises(rl.DataError, match=r"row 5, column 1 \('bmi'\)"):
        rl.LeastSquares(X, y, feature_names=["age", "bmi", "bp"])


def test_non_finite_X_single_column():
    X, y = data(d=1)
    X[3, 0] = np.inf
    with pytest.raises(rl.DataError, match="X contains inf at row 3"):
        rl.LeastSquares(X, y)


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
@pytest.mark.parametrize("scale, fix", [(1e160, "divide it by 1e160"), (1e-160, "multiply it by 1e160"),
                                        (1e80, "divide it by 1e80")])
def test_a_column_out_of_float64_reach_is_named_with_its_row_and_fix(cls, scale, fix):
    """Before: 1e160 was an internal error (a NaN in the eigensolver), 1e-160 a silent wrong θ̂."""
    X, y = data()
    X[:, 1] *= scale
    i = int(np.argmax(np.abs(X[:, 1])))
    with pytest.raises(rl.DataError, match=rf"X column 'b' peaks at .* \(row {i}\), outside .*{fix}"):
        cls(X, y, feature_names=["a", "b", "c"])


def test_a_target_out_of_float64_reach_is_refused_and_a_column_of_zeros_is_not():
    X, y = data()
    with pytest.raises(rl.DataError, match=r"^y peaks at 2e\+160 \(row \d+\), .* divide it by 1e160"):
        rl.LeastSquares(X, 1e160 * (y + 1.0))
    X[:, 2] = 0.0  # no scale at all is not out of range (the rank decides what it means)
    rl.LeastSquares(X * 1e45, y)  # near the edge of the range: accepted


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_y(cls, bad):
    X, y = data()
    y[9] = bad
    with pytest.raises(rl.DataError, match=rf"y contains {bad} at row 9 \(1 non-finite"):
        cls(X, y)


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
def test_shape_mismatch(cls):
    X, y = data()
    with pytest.raises(rl.DataError, match="X has 12 rows but y has 11 entries"):
        cls(X, y[:-1])


def test_bad_dimensions():
    X, y = data()
    with pytest.raises(rl.DataError, match=r"X must be 2-D .* got shape \(12,\)"):
        rl.LeastSquares(X[:, 0], y)
    with pytest.raises(rl.DataError, match=r"y must be 1-D .* got shape \(12, 2\)"):
        rl.LeastSquares(X, np.c_[y, y])
    # A column vector y is accepted as 1-D.
    a = rl.LeastSquares(X, y[:, None]).minimize().theta
    b = rl.LeastSquares(X, y).minimize().theta
    np.testing.assert_array_equal(a, b)


def test_non_numeric_X():
    X, y = data()
    Xs = X.astype(object)
    Xs[2, 1] = "abc"
    with pytest.raises(rl.DataError, match="X must be numeric"):
        rl.LeastSquares(Xs, y)


@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
def test_empty_data(cls):
    X, y = data()
    with pytest.raises(rl.DataError, match="X is empty: it has 0 rows"):
        cls(np.empty((0, 3)), np.empty(0))
    with pytest.raises(rl.DataError, match="X has 0 columns"):
        cls(np.empty((12, 0)), y)
    with pytest.raises(rl.DataError, match="y is empty"):
        cls(X, np.empty(0))


def test_logistic_non_binary_y_names_value():
    X, y = data()
    y[7] = 2.0
    with pytest.raises(rl.DataError, match=r"y in \{0, 1\}; y\[7\] = 2 ") as exc:
        rl.Logistic(X, y)
    assert "3 distinct values: 0, 1, 2" in str(exc.value)
    y = 2 * data()[1] - 1  # ±1 labels
    first_bad = int(np.argmax(y == -1))
    with pytest.raises(rl.DataError, match=rf"y\[{first_bad}\] = -1 "):
        rl.Logistic(X, y)
    y = data()[1] + 0.5
    with pytest.raises(rl.DataError, match=r"y\[0\] = (0\.5|1\.5) "):
        rl.Logistic(X, y)


def test_logistic_single_class():
    X, _ = data()
    with pytest.raises(rl.DataError, match=r"both classes in y; all 12 labels are 1"):
        rl.Logistic(X, np.ones(12))


NEGATIVE = [-0.5, -1e-3]


@pytest.mark.parametrize("lam", NEGATIVE)
def test_negative_lambda_ridge_path(lam):
    with pytest.raises(rl.RidgelensError, match=rf"lambdas must be >= 0.*got {lam:g}"):
        rl.ridge_path(np.eye(3), np.ones(3), [0.1, lam, 1.0])


@pytest.mark.parametrize("lam", NEGATIVE)
@pytest.mark.parametrize("cls", [rl.LeastSquares, rl.Logistic])
def test_negative_lambda_analyze_and_minimize(cls, lam):
    X, y = data()
    obj = cls(X, y)
    with pytest.raises(rl.RidgelensError, match=rf"lambdas must be >= 0.*got {lam:g}"):
        rl.analyze(obj, [1.0, lam])
    with pytest.raises(rl.RidgelensError, match=rf"l2 must be >= 0.*got {lam:g}"):
        obj.minimize(l2=lam)


def test_negative_lambda_torch_minimize():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1).double()
    X = torch.randn(8, 3, dtype=torch.float64)
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, X[:, :1])])
    with pytest.raises(rl.RidgelensError, match=r"l2 must be >= 0.*got -0\.25"):
        obj.minimize(l2=-0.25)
    with pytest.raises(rl.RidgelensError, match=r"lambdas must be >= 0.*got -0\.25"):
        rl.analyze(obj, [-0.25])


@pytest.mark.parametrize("lams, msg", [
    ([np.nan], "lambdas must be finite, got nan"),
    ([1.0, np.inf], "lambdas must be finite, got inf"),
    ([], "non-empty"),
    ([[0.1, 0.2]], "1-D"),
    (["a"], r"lambdas\[0\] must be a real number, got 'a'"),
    ([0.1, 5e-324], "lambdas must be 0 or between 1e-150 and 1e\\+150, got 4.94066e-324"),
    ([1e308], "lambdas must be 0 or between"),
    (None, "lambdas must be given"),
])
def test_bad_lambdas(lams, msg):
    with pytest.raises(rl.RidgelensError, match=msg):
        rl.ridge_path(np.eye(2), np.ones(2), lams)


def test_wrong_theta_hat_length():
    with pytest.raises(rl.RidgelensError, match=r"theta_hat must have shape \(3,\), got \(2,\)"):
        rl.ridge_path(np.eye(3), np.ones(2), [1.0])
    X, y = data()
    obj = rl.LeastSquares(X, y)  # 3 weights + intercept
    with pytest.raises(rl.RidgelensError, match=r"theta_hat must have shape \(4,\), got \(3,\)"):
        rl.analyze(obj, [1.0], theta_hat=np.zeros(3))
    with pytest.raises(rl.RidgelensError, match=r"theta_hat contains non-finite"):
        rl.analyze(obj, [1.0], theta_hat=np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(rl.RidgelensError, match=r"x0 must have shape \(4,\), got \(5,\)"):
        rl.Logistic(X, y).minimize(l2=0.1, x0=np.zeros(5))


def test_wrong_gradient_and_mask():
    H, th = np.eye(3), np.ones(3)
    with pytest.raises(rl.RidgelensError, match=r"gradient must have shape \(3,\)"):
        rl.ridge_path(H, th, [1.0], gradient=np.ones(4))
    with pytest.raises(rl.RidgelensError, match=r"penalized must be a boolean array of shape \(3,\)"):
        rl.ridge_path(H, th, [1.0], penalized=[1, 0, 1])
    with pytest.raises(rl.RidgelensError, match="selects no parameter"):
        rl.ridge_path(H, th, [1.0], penalized=np.zeros(3, bool))


def test_bad_curvature_matrix():
    with pytest.raises(rl.RidgelensError, match="square"):
        rl.ridge_path(np.ones((2, 3)), np.ones(2), [1.0])
    with pytest.raises(rl.RidgelensError, match="symmetric"):
        rl.ridge_path(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2), [1.0])
    with pytest.raises(rl.RidgelensError, match="non-finite"):
        rl.ridge_path(np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2), [1.0])


def test_incomplete_spectrum_and_masked_spectrum():
    H = np.diag([3.0, 2.0, 1.0])
    with pytest.raises(rl.RidgelensError, match="holds 2 of 3 eigenpairs"):
        rl.ridge_path(rl.eigen(H, k=2), np.ones(3), [1.0])
    with pytest.raises(rl.RidgelensError, match="needs the operator"):
        rl.ridge_path(rl.eigen(H), np.ones(3), [1.0], penalized=np.array([True, True, False]))
    with pytest.raises(rl.RidgelensError, match=r"k must be an integer in \[1, 3\]"):
        rl.eigen(H, k=4)


def test_operator_shape_checks():
    op = rl.DenseOperator(np.eye(3))
    with pytest.raises(rl.RidgelensError, match=r"matvec expects a vector of shape \(3,\), got \(2,\)"):
        op.matvec(np.ones(2))
    with pytest.raises(rl.RidgelensError, match=r"matmat expects a matrix of shape \(3, k\)"):
        op.matmat(np.ones((2, 2)))


def test_minimize_options():
    X, y = data()
    obj = rl.LeastSquares(X, y)
    with pytest.raises(rl.RidgelensError, match="tol must be > 0"):
        obj.minimize(tol=0.0)
    with pytest.raises(rl.RidgelensError, match=r"unknown minimize option\(s\) for a linear objective: method"):
        obj.minimize(method="gd")


def test_torch_objective_bad_input():
    net = torch.nn.Linear(2, 1).double()
    X = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(rl.RidgelensError, match=r"must be a torch\.nn\.Module, got function"):
        rl.TorchObjective(lambda x: x, torch.nn.functional.mse_loss, [(X, X[:, :1])])
    with pytest.raises(rl.RidgelensError, match="loss_fn must be callable"):
        rl.TorchObjective(net, "mse", [(X, X[:, :1])])
    with pytest.raises(rl.DataError, match="batch 1 must be an \\(inputs, targets\\) pair"):
        rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, X[:, :1]), X])
    with pytest.raises(rl.DataError, match="batch 0 is empty"):
        rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X[:0], X[:0, :1])])
    with pytest.raises(rl.DataError, match="batches is empty"):
        rl.TorchObjective(net, torch.nn.functional.mse_loss, [])
    frozen = torch.nn.Linear(2, 1).double().requires_grad_(False)
    with pytest.raises(rl.RidgelensError, match="no trainable parameters"):
        rl.TorchObjective(frozen, torch.nn.functional.mse_loss, [(X, X[:, :1])])
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, X[:, :1])])
    with pytest.raises(rl.RidgelensError, match=r"theta must have shape \(3,\), got \(2,\)"):
        obj.value(np.zeros(2))
    with pytest.raises(rl.RidgelensError, match=r"theta must have shape \(3,\)"):
        rl.HessianOperator(obj, np.zeros(4))


def test_extreme_lambdas_from_the_cli_are_one_line(tmp_path):
    """The fuzzer's case: an all-zero design at λ = 5e-324 drew a figure from a grid that underflowed to 0."""
    import subprocess
    import sys

    data = tmp_path / "z.csv"
    data.write_text("a,b\n0,0\n0,0\n0,0\n")
    for lam in ("4.94e-324", "1e308"):
        p = subprocess.run([sys.executable, "-m", "ridgelens", "analyze", "--data", f"csv:{data}", "--model", "linear",
                            "--lambdas", lam, "--out", str(tmp_path / "out")], capture_output=True, text=True)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "ridgelens: error: --lambdas must be 0 or" \
            in p.stderr
        assert not (tmp_path / "out").exists()


def _seeded_calls():
    """Every public function that takes a seed, as ``call(seed)`` on a tiny linear net."""
    from ridgelens.lm import LMConfig, train_lm
    from ridgelens.operators import check_symmetry
    from ridgelens.pipeline import LMSettings, analyze_lm, optimizer_refit

    X = torch.randn(16, 2, dtype=torch.float64)
    obj = rl.TorchObjective(torch.nn.Linear(2, 1).double(), torch.nn.functional.mse_loss, [(X, X[:, :1])])
    H = rl.hessian(obj, obj.theta0)
    return {
        "predict": lambda s: rl.predict(obj, [0.1], "sgd", seed=s),
        "analyze": lambda s: rl.analyze(obj, [0.1], seed=s),  # dense: the seed is unused, and still checked
        "eigen": lambda s: rl.eigen(H, 1, method="lanczos", seed=s),
        "spectral_density": lambda s: rl.spectral_density(H, seed=s),
        "hutchpp_trace": lambda s: rl.hutchpp_trace(H, seed=s),
        "check_symmetry": lambda s: check_symmetry(H, seed=s),
        "optimizer_refit": lambda s: optimizer_refit(obj, obj.theta0, 0.1, "sgd", epochs=1, seed=s),
        "train_lm": lambda s: train_lm(LMConfig(layers=1, width=8, heads=2, context=8),
                                       torch.zeros(2, 9, dtype=torch.long), steps=1, seed=s),
        "analyze_lm": lambda s: analyze_lm(obj, obj, obj.theta0, [1.0], settings=LMSettings(seed=s)),
    }


@pytest.mark.parametrize("bad", ["x", "3", 1.5, True, -1, 2**63, None])
def test_a_bad_seed_is_a_typed_error_naming_seed(bad):
    """A seed that is no integer in [0, 2^63) is refused by name, not by int() or torch deep inside."""
    for name, call in _seeded_calls().items():
        with pytest.raises(rl.RidgelensError, match=r"seed must be an integer in \[0, 2\^63\)") as exc:
            call(bad)
        assert repr(bad) in str(exc.value), name
    assert _seeded_calls()["spectral_density"](np.int64(3)).n_matvecs > 0  # numpy integers are seeds too


@pytest.mark.parametrize("bad, where", [("0.1", "lambdas"), (["0.1"], r"lambdas\[0\]"), ([0.1, "1"], r"lambdas\[1\]"),
                                        (np.array(["0.1"]), r"lambdas\[0\]"), ([0.1, None], r"lambdas\[1\]"),
                                        (True, "lambdas")])
def test_lambdas_that_are_not_numbers_are_refused_by_entry(bad, where):
    """NumPy reads the string "0.1" as 0.1; ridgelens names the entry instead (analyze, ridge_path, analyze_lm)."""
    from ridgelens.pipeline import analyze_lm

    X, y = data()
    obj = rl.LeastSquares(X, y)
    for call in (lambda: rl.analyze(obj, bad), lambda: rl.ridge_path(np.eye(3), np.ones(3), bad),
                 lambda: analyze_lm(obj, obj, None, bad)):
        with pytest.raises(rl.RidgelensError, match=rf"^{where} must be a real number, got"):
            call()
    assert rl.ridge_path(np.eye(3), np.ones(3), [0, 1.0, np.float32(2)]).thetas[1] == pytest.approx(np.full(3, 0.5))


@pytest.mark.parametrize("bad, needle", [("0.1", r"must be a real number, got '0\.1'"), (-1.0, "must be >= 0"),
                                         (float("nan"), "must be finite"), ([0.1, 1.0], "must be one number")])
def test_a_single_lambda_is_checked_by_its_own_name(bad, needle):
    """minimize's l2 and the optimizer functions' lam: one λ ≥ 0, refused by the argument's name (not "l2[0]")."""
    from ridgelens.pipeline import analyze_weight_decay, optimizer_fixed_point, optimizer_refit

    X = torch.randn(16, 2, dtype=torch.float64)
    obj = rl.TorchObjective(torch.nn.Linear(2, 1).double(), torch.nn.functional.mse_loss, [(X, X[:, :1])])
    for name, call in (("l2", lambda: obj.minimize(bad)),
                       ("lam", lambda: optimizer_fixed_point(obj, bad, "sgd")),
                       ("lam", lambda: optimizer_refit(obj, obj.theta0, bad, "sgd", epochs=1))):
        with pytest.raises(rl.RidgelensError, match=rf"^{name} {needle}"):
            call()
    with pytest.raises(rl.RidgelensError, match=r"optimizer_fixed_point\(\) needs an objective"):
        optimizer_fixed_point(None, 0.1, "sgd")
    with pytest.raises(rl.RidgelensError, match=r"analyze_weight_decay\(\) needs an objective"):
        analyze_weight_decay(None, [0.1], "sgd")
    fp = optimizer_fixed_point(obj, np.float32(0.5), "sgd")  # a NumPy scalar is one λ: ridge's closed form
    A = np.c_[X.numpy(), np.ones(16)]  # R = mean((Aθ − y)²), the bias penalized too: (2AᵀA/n + λI)θ = 2Aᵀy/n
    ref = np.linalg.solve(2 * A.T @ A / 16 + 0.5 * np.eye(3), 2 * A.T @ X.numpy()[:, 0] / 16)
    np.testing.assert_allclose(fp.theta, ref, rtol=1e-6)


def _lambda_takers():
    """Every public function that turns a user's λ (or another library's) into numbers itself."""
    from ridgelens import convert
    from ridgelens.plots import effective_df_curve

    density = rl.SpectralDensity.from_nodes(np.array([0.5, 2.0]), np.array([0.5, 0.5]), n=4)
    y = np.array([1.0, 2.0, 4.0])
    return {
        "lam": lambda lam: rl.shrinkage([2.0, 1.0], lam)[0],
        "lambdas": lambda lam: density.effective_df(lam),
        "lambdas ": lambda lam: effective_df_curve([2.0, 1.0], lam),
        "alpha": lambda lam: convert.lambda_from_sklearn(lam, 10),
        "lam ": lambda lam: convert.lambda_to_sklearn(lam, 10),
        "lambda_glmnet": lambda lam: convert.lambda_from_glmnet(lam, y),
        "lam  ": lambda lam: convert.lambda_to_glmnet(lam, y),
        "lambda_mass": lambda lam: convert.lambda_from_lm_ridge(lam, 10),
        "lam   ": lambda lam: convert.lambda_to_lm_ridge(lam, 10),
    }


@pytest.mark.parametrize("bad, needle", [(["0.1"], r"\[0\] must be a real number, got '0\.1' \(str\); a string"),
                                         ([1.0, True], r"\[1\] must be a real number, got True \(bool\)$"),
                                         ([-1.0], " must be >= 0"), ([float("nan")], " must be finite")])
def test_every_public_lambda_taker_checks_its_lambdas(bad, needle):
    """rl.shrinkage, SpectralDensity.effective_df, plots.effective_df_curve and the convert helpers read λ
    themselves: a string, a bool, a negative or a NaN is refused by the argument's name (it went through
    as 0.1, 1, a factor of 2 'defined' at σ + λ > 0, or NaN), and valid λ give the closed forms."""
    for name, call in _lambda_takers().items():
        with pytest.raises(rl.RidgelensError, match=rf"^{name.strip()}{needle}"):
            call(bad)
    lam = np.array([0.0, 0.5, 3.0])
    f = _lambda_takers()
    np.testing.assert_allclose(f["lam"](lam), np.array([[2 / (2 + v), 1 / (1 + v)] for v in lam]))
    np.testing.assert_allclose(f["lambdas"](lam), [4 * (0.5 * 0.5 / (0.5 + v) + 0.5 * 2 / (2 + v)) for v in lam])
    np.testing.assert_allclose(f["lambdas "](lam), [2 / (2 + v) + 1 / (1 + v) for v in lam])
    np.testing.assert_allclose(f["alpha"](lam), lam / 10)
    np.testing.assert_allclose(f["lam  "](lam), lam * np.std([1.0, 2.0, 4.0]))
    assert f["lambda_mass"](2.5) == 0.25  # a scalar stays a scalar


def test_converters_refuse_a_scale_that_is_not_positive():
    from ridgelens import convert

    for call, name in ((lambda: convert.lambda_from_sklearn(1.0, 0), "weight_sum"),
                       (lambda: convert.lambda_to_lm_ridge(1.0, "10"), "n_samples"),
                       (lambda: convert.lambda_from_glmnet(1.0, [3.0, 3.0]), "the standard deviation of y")):
        with pytest.raises(rl.RidgelensError, match=f"^{name}"):
            call()


def test_eigenvalue_arguments_are_checked_as_lambdas_are():
    """rl.shrinkage's sigma and numerator and effective_df_curve's eigenvalues: a NaN or inf, a 2-D array or a
    numerator of another shape is refused by name (effective_df_curve gave a 2-D 'curve' for [[3, 1]], df 0 for
    an infinite σ and an IndexError for one number; a numerator of 3 for 2 σ raised NumPy's broadcast error)."""
    from ridgelens.plots import effective_df_curve

    for call, needle in [(lambda: effective_df_curve([[3.0, 1.0]], [1.0]), r"^eigenvalues must be a 1-D"),
                         (lambda: effective_df_curve([np.inf, 1.0], [1.0]), r"^eigenvalues must be finite, got inf"),
                         (lambda: effective_df_curve([np.nan], [1.0]), r"^eigenvalues must be finite, got nan"),
                         (lambda: rl.shrinkage([[1.0, 2.0]], [1.0]), r"^sigma must be a 1-D"),
                         (lambda: rl.shrinkage([1.0, 2.0], [0.1], numerator=[1.0, 2.0, 3.0]),
                          r"^numerator must broadcast to .* = \(1, 2\), got shape \(3,\)"),
                         (lambda: rl.shrinkage([1.0, 2.0], [0.1, 1.0], numerator=np.ones((3, 2))),
                          r"^numerator must broadcast"),
                         (lambda: rl.shrinkage([1.0, 2.0], [0.1], numerator=[np.nan, 2.0]),
                          r"^numerator must be finite, got nan")]:
        with pytest.raises(rl.RidgelensError, match=needle):
            call()
    # one number is one eigenvalue; a numerator of (len(lam), 1) or (len(sigma),) broadcasts: closed forms
    np.testing.assert_allclose(effective_df_curve(3.0, [0.0, 1.0]), [1.0, 0.75])
    num = np.array([[2.0], [4.0]])
    np.testing.assert_allclose(rl.shrinkage([1.0, 3.0], [0.0, 1.0], numerator=num)[0],
                               [[2 / 1, 2 / 3], [4 / 2, 4 / 4]])


@pytest.mark.parametrize("bad, where", [([[True, 0.1]], "[0]"), ([[0.1, 0.2], [0.3, False]], "[3]"),
                                        ([np.array(True), 0.1], "[0]"), (((0.1,), (np.True_,)), "[1]")])
def test_a_bool_nested_among_floats_is_refused(bad, where):
    """NumPy turns a bool inside a nested list (or a bool array inside a list) into 1.0: it went through as a
    penalty of 1; it is refused like a bool at the top level, by its position in reading order."""
    from ridgelens._validation import check_nonnegative

    with pytest.raises(rl.RidgelensError, match=rf"^lam{re.escape(where)} must be a real number, got (np\.)?(True|False)_? \(bool\)"):
        check_nonnegative(bad, "lam")
    np.testing.assert_array_equal(check_nonnegative([[0.0, 1.5], [2.0, 3.0]], "lam"), [[0.0, 1.5], [2.0, 3.0]])


@pytest.mark.parametrize("case", ["X", "y", "theta_hat", "H"])
def test_complex_inputs_are_refused_not_cast(case):
    """NumPy casts complex to float64 by dropping the imaginary part, with only a ComplexWarning: LeastSquares,
    ridge_path and a dense H ran on the real parts (a bad-input hunt)."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    with pytest.raises(rl.RidgelensError, match=r"must be (real numbers|a real matrix), got complex values"):
        if case == "X":
            rl.LeastSquares(X + 1j * X, y)
        elif case == "y":
            rl.LeastSquares(X, y + 1j)
        elif case == "theta_hat":
            rl.ridge_path(np.eye(2), [1j, 1], [0.1])
        else:
            rl.ridge_path(np.eye(2) * (1 + 1j), [1.0, 1.0], [0.1])
