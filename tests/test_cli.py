"""The command line: exit codes, stdout, stderr, and the files it writes (or does not)."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

import ridgelens as rl
from ridgelens.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_diabetes_matches_sklearn(tmp_path, capsys):
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear",
                         "--lambdas", "0.001,0.01,0.1", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "df(λ)" in out and "diabetes" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    for key in ["n_samples", "n_params", "lambdas", "theta_hat", "eigenvalues", "predicted", "refit",
                "rel_error", "effective_df", "gradient_norm", "min_eigenvalue", "conventions"]:
        assert key in res, key
    assert res["n_samples"] == 442 and res["n_params"] == 11
    assert "mean" in res["conventions"]["loss"].lower()
    X, y = load_diabetes(return_X_y=True)
    for lam, pred in zip(res["lambdas"], res["predicted"], strict=True):
        sk = Ridge(alpha=442 * lam, solver="cholesky").fit(X, y)
        ref = np.r_[sk.coef_, sk.intercept_]
        assert np.abs(np.array(pred) - ref).max() <= 1e-10 * np.abs(ref).max()
    for name in ["paths.png", "rel_error.png", "shrinkage.png", "effective_df.png", "spectral_density.png",
                 "model_contours.png"]:
        assert (tmp_path / "o" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ggn_of_a_linear_model_runs_with_the_hessian_and_says_so(tmp_path, capsys):
    """G = H exactly for least squares: --curvature ggn is kept, and the record names H, not a GGN it never built."""
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--curvature", "ggn",
                         "--lambdas", "0.01,0.1", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "dense Hessian curvature" in out and "note: curvature=hessian (ggn asked for" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["curvature_kind"] == "hessian" and "equals the Hessian H exactly" in res["choices"]["curvature"]
    X, y = load_diabetes(return_X_y=True)
    for lam, pred in zip(res["lambdas"], res["predicted"], strict=True):
        sk = Ridge(alpha=442 * lam, solver="cholesky").fit(X, y)
        np.testing.assert_allclose(pred, np.r_[sk.coef_, sk.intercept_], rtol=1e-9)


def test_analyze_no_intercept_is_feature_weights_in_column_order(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.normal(size=40)
    csv.write_text("a,b,c,t\n" + "\n".join(",".join(f"{v:.17g}" for v in row) for row in np.c_[X, y]))
    code, _, err = run(capsys, "analyze", "--data", f"csv:{csv}", "--target", "t", "--model", "linear",
                       "--lambdas", "0.1", "--no-intercept", "--out", str(tmp_path / "o"))
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["param_names"] == ["a", "b", "c"]
    ref = np.linalg.solve(X.T @ X / 40 + 0.1 * np.eye(3), X.T @ y / 40)
    np.testing.assert_allclose(res["predicted"][0], ref, rtol=1e-10)


def test_analyze_logistic_digits_positive_class(tmp_path, capsys):
    # Digit 8 against the rest is not linearly separable, so θ̂ exists.
    code, _, err = run(capsys, "analyze", "--data", "digits", "--model", "logistic", "--positive-class", "8",
                         "--lambdas", "1e-6,1e-4", "--out", str(tmp_path / "o"))
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["n_params"] == 65 and all(res["refit_converged"])
    # Nearly separable: H has eigenvalues ~1e-12 where θ̂ is large, so the quadratic model is far off
    # even at λ = 1e-6 (measured 0.74); the report must still be finite and come from converged refits.
    assert all(0 < e < 1 for e in res["rel_error"])
    assert len(res["eigenvalues"]) == 65


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--data", "nope", "--model", "linear", "--lambdas", "0.1"], "unknown data set 'nope'"),
        (["--data", "csv:/no/such.csv", "--model", "linear", "--lambdas", "0.1"], "not found"),
        (["--data", "diabetes", "--model", "linear", "--lambdas", "-1"], "must be >= 0"),
        (["--data", "digits", "--model", "logistic", "--lambdas", "0.1"], "needs y in {0, 1}"),
        (["--data", "digits", "--model", "logistic", "--lambdas", "0.1", "--positive-class", "11"],
         "does not occur"),
        (["--data", "diabetes", "--target", "x", "--model", "linear", "--lambdas", "0.1"], "only for csv"),
    ],
)
def test_bad_input_one_line_no_output(tmp_path, capsys, argv, needle):
    out_dir = tmp_path / "o"
    code, _, err = run(capsys, "analyze", *argv, "--out", str(out_dir))
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("ridgelens: error")]) == 1
    assert not out_dir.exists()


def test_separable_logistic_is_a_clear_error(tmp_path, capsys):
    code, out, err = run(capsys, "analyze", "--data", "breast_cancer", "--model", "logistic", "--standardize",
                         "--lambdas", "0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and "linearly separable" in err
    assert out == "" and len(err.strip().splitlines()) == 1  # one line: the curvature's choice is not said first
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        ("a,b,t\n1,2,3\n4,x,6\n7,8,9\n", [], "column 'b' is not numeric: line 3 holds 'x'"),
        ("a,b,t\n1,2,3\n4,nan,6\n7,8,9\n", [], "column 'b' holds 'nan' at line 3"),
        ("a,b,t\n1,2,3\n4,5,inf\n7,8,9\n", [], "column 't' holds 'inf' at line 3"),
        ("a,b,t\n1,2,3\n", ["--target", "zz"], "unknown target column 'zz'"),
        ("", [], "is empty"),
        ("a,b,t\n", [], "no data rows"),
        ("a,b,t\n1,2\n", [], "has 2 cells, the header has 3"),
    ],
)
def test_bad_csv(tmp_path, capsys, content, extra, needle):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    code, _, err = run(capsys, "analyze", "--data", f"csv:{csv}", "--model", "linear", "--lambdas", "0.1",
                       *extra, "--out", str(tmp_path / "o"))
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_non_binary_csv_target_for_logistic(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,t\n1,0\n2,1\n3,2\n")
    code, _, err = run(capsys, "analyze", "--data", f"csv:{csv}", "--model", "logistic", "--lambdas", "0.1",
                       "--out", str(tmp_path / "o"))
    assert code == 2 and "y[2] = 2" in err


def test_demo_runs_and_writes_figures(tmp_path, capsys):
    code, out, err = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 0, err
    assert "rotated back" in out and "diabetes" in out and "breast cancer" in out
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert max(summary["diabetes"]["sklearn_rel_diff"]) < 1e-10
    err_c = summary["breast_cancer"]["rel_error"]
    assert err_c[0] < 1e-3 < err_c[-1]
    for name in ["contour.png", "diabetes_paths.png", "breast_cancer_error.png"]:
        assert (tmp_path / name).stat().st_size > 10_000


def test_console_script_help():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ridgelens", "--help"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "analyze" in r.stdout and "demo" in r.stdout


def test_analyze_mlp_digits_matrix_free_and_reload(tmp_path, capsys):
    # 64 → 40 → 10: 3010 parameters, above the dense threshold, so the matrix-free path runs.
    common = ["analyze", "--data", "digits", "--model", "mlp", "--standardize", "--hidden", "40",
              "--lambdas", "0.01,0.1", "--k", "5", "--train-iters", "40", "--curvature", "ggn", "--refit-iters", "30"]
    code, out, err = run(capsys, *common, "--out", str(tmp_path / "a"))
    assert code == 0, err
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["n_params"] == 3010 and res["method"] == "matrix-free"
    # (auto, which looks for H's most negative eigenvalues first, is test_a_torch_model_s_default_curvature_…)
    assert res["curvature_kind"] == "ggn"
    assert "matrix-free" in out and "largest 5 eigenvalues of G" in out
    wrote = next(line for line in out.splitlines() if line.startswith("wrote "))
    assert "model.pt" in wrote and (tmp_path / "a" / "model.pt").exists()  # every file written is named
    assert res["refit_method"] == "trust-ncg" and res["refit_iters"] == 30
    assert len(res["eigenvalues"]) == 5 and res["eigenvalues"][0] >= res["eigenvalues"][-1]
    assert all(np.isfinite(res["effective_df"])) and res["effective_df"][0] > res["effective_df"][1]
    assert res["n_matvecs"] > 0 and res["density"]["n_matvecs"] > 0
    assert (tmp_path / "a" / "spectral_density.png").stat().st_size > 5000
    # The trained weights were saved; reloading them (weights_only) reproduces θ̂ exactly.
    again = [*common[:-1], "1"]  # θ̂ and the spectrum are what is compared: one refit iteration is enough
    code, _, err = run(capsys, *again, "--weights", str(tmp_path / "a" / "model.pt"), "--out", str(tmp_path / "b"))
    assert code == 0, err
    res_b = json.loads((tmp_path / "b" / "results.json").read_text())
    np.testing.assert_array_equal(res_b["theta_hat"], res["theta_hat"])
    np.testing.assert_allclose(res_b["eigenvalues"], res["eigenvalues"], rtol=1e-10)


def test_analyze_mlp_bad_weights(tmp_path, capsys):

    bad = tmp_path / "bad.pt"
    torch.save({"0.weight": torch.zeros(3, 3)}, bad)
    base = ["analyze", "--data", "digits", "--model", "mlp", "--lambdas", "0.1", "--out", str(tmp_path / "o")]
    code, _, err = run(capsys, *base, "--weights", str(bad))
    assert code == 2 and "does not fit a 64→64→10 MLP" in err and "Traceback" not in err
    code, _, err = run(capsys, *base, "--weights", str(tmp_path / "missing.pt"))
    assert code == 2 and "not found" in err
    notes = tmp_path / "notes.json"  # not a torch file at all
    notes.write_text('{"a": 1}')
    code, _, err = run(capsys, *base, "--weights", str(notes))
    assert code == 2 and "is not a state_dict saved with torch.save" in err and "weights_only=False" not in err
    assert not (tmp_path / "o").exists()


def test_analyze_linear_reports_k_eigenvalues_and_refuses_mlp_options(tmp_path, capsys):
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.01",
                         "--k", "3", "--out", str(tmp_path / "a"))
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("largest"))
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    shown = [float(v) for v in line.split(": ")[1].split(", ")]
    assert line.startswith("largest 3 eigenvalues of H") and len(shown) == 3
    np.testing.assert_allclose(shown, res["eigenvalues"][:3], rtol=1e-3)
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.01",
                         "--hidden", "8", "--train-iters", "5", "--out", str(tmp_path / "b"))
    assert code == 2 and "--hidden, --train-iters are for --model mlp" in err
    assert not (tmp_path / "b").exists()
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.01",
                         "--k", "0", "--out", str(tmp_path / "c"))
    assert code == 2 and "--k must be a positive" in err


def test_analyze_mlp_unpenalized_biases_use_the_schur_complement(tmp_path, capsys):
    # 3010 parameters (above the dense threshold), the 50 biases left out of the penalty.
    code, out, err = run(capsys, "analyze", "--data", "digits", "--model", "mlp", "--standardize", "--hidden", "40",
                         "--lambdas", "0.3,1", "--k", "4", "--train-iters", "40", "--refit-iters", "30",
                         "--unpenalized", "*.bias", "--curvature", "hessian", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "largest 4 eigenvalues of S" in out
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["method"] == "matrix-free" and res["curvature"] == "schur-complement"
    assert res["unpenalized"] == ["*.bias"] and sum(not p for p in res["penalized"]) == 50
    # Independent check: each θ̃ solves (H + λP)θ̃ = Hθ̂ − g, with H applied by the objective's own HVP.
    from ridgelens.cli._mlp import build_mlp_objective
    from ridgelens.data import load_dataset

    obj, _net, _task = build_mlp_objective(load_dataset("digits", standardize=True), hidden=40, seed=0,
                                           weights=str(tmp_path / "a" / "model.pt"), unpenalized=("*.bias",))
    theta = np.asarray(res["theta_hat"])
    g = obj.gradient(theta) if res["gradient_used"] else 0.0
    P = np.asarray(res["penalized"], dtype=float)
    for lam, pred in zip(res["lambdas"], res["predicted"], strict=True):
        pred = np.asarray(pred)
        lhs = obj.hvp(theta, pred - theta) + lam * P * pred + g
        assert np.linalg.norm(lhs) <= 1e-5 * np.linalg.norm(obj.hvp(theta, theta)), lam
    code, out, err = run(capsys, "analyze", "--data", "digits", "--model", "mlp", "--lambdas", "0.1",
                         "--unpenalized", "*.gain", "--out", str(tmp_path / "b"))
    assert code == 2 and "matches no parameter" in err and "0.bias" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--unpenalized", "*.weight", "--unpenalized", "*.bias"], "--unpenalized *.weight *.bias leaves no parameter"),
    (["--penalize-intercept"], "--penalize-intercept is for the linear and logistic"),
    (["--no-intercept"], "--no-intercept is for the linear and logistic"),
])
def test_mlp_option_combinations_are_refused_by_name(tmp_path, capsys, argv, needle):
    code, _out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "mlp", "--hidden", "2",
                          "--train-iters", "2", "--lambdas", "0.1", *argv, "--out", str(tmp_path / "o"))
    assert code == 2 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_standardize_target_trains_the_mlp_on_the_standardized_target_and_records_it(tmp_path, capsys):
    """--standardize-target is the same run as a CSV whose target column was standardized by hand, and says so."""
    X, y = load_diabetes(return_X_y=True)
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([X, (y - y.mean()) / y.std()]), delimiter=",", fmt="%.17g", comments="",
               header=",".join([*(f"x{j}" for j in range(10)), "t"]))
    mlp = ["--standardize", "--model", "mlp", "--hidden", "3", "--train-iters", "20", "--refit-iters", "20",
           "--lambdas", "0.1"]
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--standardize-target", *mlp,
                         "--out", str(tmp_path / "flag"))
    assert code == 0, err
    assert f"target standardized: y → (y − {y.mean():.6g})/{y.std():.6g}" in out
    code, _, err = run(capsys, "analyze", "--data", f"csv:{csv}", *mlp, "--out", str(tmp_path / "csv"))
    assert code == 0, err
    flag, by_hand = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("flag", "csv"))
    np.testing.assert_allclose(flag["theta_hat"], by_hand["theta_hat"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(flag["predicted"], by_hand["predicted"], rtol=1e-10, atol=1e-12)
    assert flag["target_standardized"]["mean"] == pytest.approx(y.mean(), rel=1e-15)
    assert flag["target_standardized"]["sd"] == pytest.approx(y.std(), rel=1e-15)
    assert by_hand["target_standardized"] is None


@pytest.mark.parametrize(("data", "model", "needle"), [
    ("diabetes", "linear", "--standardize-target is for --model mlp"),
    ("digits", "mlp", "--standardize-target is for a continuous target; 'target' of digits holds 10 integer classes"),
])
def test_standardize_target_is_refused_where_it_does_not_apply(tmp_path, capsys, data, model, needle):
    code, _out, err = run(capsys, "analyze", "--data", data, "--model", model, "--standardize-target", "--lambdas",
                          "0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_task_makes_an_integer_rating_a_regression_target(tmp_path, capsys):
    """Ratings 1..5 are classes by the auto rule (5 outputs); --task regression fits them as numbers (1 output)."""
    X, y = load_diabetes(return_X_y=True)
    rating = np.clip(np.round(y[:150] / 70), 1, 5)
    csv = tmp_path / "r.csv"
    np.savetxt(csv, np.column_stack([X[:150, :4], rating]), delimiter=",", fmt="%.17g", comments="",
               header="a,b,c,d,rating")
    mlp = ["--data", f"csv:{csv}", "--model", "mlp", "--hidden", "3", "--train-iters", "20", "--refit-iters", "5",
           "--lambdas", "0.1"]
    runs = {}
    for task in ("auto", "regression", "classification"):
        extra = ["--standardize-target"] if task == "regression" else []
        code, _out, err = run(capsys, "analyze", *mlp, "--task", task, *extra, "--out", str(tmp_path / task))
        assert code == 0, err
        runs[task] = json.loads((tmp_path / task / "results.json").read_text())
    classes = np.unique(rating).size
    assert runs["auto"]["task"] == runs["classification"]["task"] == "classification"
    assert runs["auto"]["n_params"] == 4 * 3 + 3 + 3 * classes + classes
    assert runs["regression"]["task"] == "regression" and runs["regression"]["n_params"] == 4 * 3 + 3 + 3 + 1
    assert runs["regression"]["target_standardized"]["mean"] == pytest.approx(rating.mean(), rel=1e-14)


@pytest.mark.parametrize(("model", "task", "needle"), [
    ("mlp", "classification", "--task classification needs integer class labels; the target holds 151.5 at row 0"),
    ("linear", "regression", "--task is for --model mlp"),
])
def test_task_is_refused_where_it_cannot_apply(tmp_path, capsys, model, task, needle):
    X, y = load_diabetes(return_X_y=True)
    csv = tmp_path / "c.csv"
    np.savetxt(csv, np.column_stack([X[:60, :3], y[:60] + 0.5]), delimiter=",", fmt="%.17g", comments="",
               header="a,b,c,t")
    code, _out, err = run(capsys, "analyze", "--data", f"csv:{csv}", "--model", model, "--task", task,
                          "--lambdas", "0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_refit_method_is_mlp_only_and_sets_its_own_iteration_default(tmp_path, capsys, monkeypatch):
    code, _out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--refit-method", "lbfgs",
                          "--lambdas", "0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and "--refit-method is for torch models" in err, err
    with pytest.raises(SystemExit):
        main(["analyze", "--data", "diabetes", "--model", "mlp", "--refit-method", "newton", "--lambdas", "0.1",
              "--out", str(tmp_path / "o")])
    assert "invalid choice" in capsys.readouterr().err
    from ridgelens.cli import _analyze as cli_analyze

    seen = []

    def fake(args, ds, lam, out, full_y=None):
        seen.append((args.refit_method, args.refit_iters))
        raise rl.RidgelensError("stop here")

    monkeypatch.setattr(cli_analyze, "_analyze_mlp", fake)
    for extra in ([], ["--refit-method", "lbfgs"], ["--refit-method", "lbfgs", "--refit-iters", "7"]):
        run(capsys, "analyze", "--data", "diabetes", "--model", "mlp", "--lambdas", "0.1", *extra,
            "--out", str(tmp_path / "o"))
    assert seen == [("trust-ncg", 200), ("lbfgs", 500), ("lbfgs", 7)]



def test_a_torch_model_s_default_curvature_is_chosen_by_whether_h_is_indefinite(tmp_path, capsys):
    """--curvature auto is the default for torch models: the Gauss-Newton matrix where H is indefinite at θ̂
    (checked against the dense Hessian's smallest eigenvalue, every eigenpair from n HVPs), else H."""
    common = ["analyze", "--data", "digits", "--model", "mlp", "--standardize", "--hidden", "8", "--train-iters", "30",
              "--lambdas", "0.1", "--refit-iters", "1"]
    code, out, err = run(capsys, *common, "--out", str(tmp_path / "auto"))
    assert code == 0, err
    auto = json.loads((tmp_path / "auto" / "results.json").read_text())
    code, out_h, err = run(capsys, *common, "--curvature", "hessian", "--out", str(tmp_path / "h"))
    assert code == 0, err
    dense = json.loads((tmp_path / "h" / "results.json").read_text())
    assert dense["method"] == "dense" and dense["curvature_kind"] == "hessian"
    indefinite = min(dense["eigenvalues"]) < -1e-8 * max(dense["eigenvalues"])
    assert indefinite  # this θ̂ (30 L-BFGS iterations) is not a minimum: the case the default exists for
    assert dense["valid"] == [False] and -min(dense["eigenvalues"]) > 0.1  # no prediction at λ = 0.1: said so
    row = next(line for line in out_h.splitlines() if line.lstrip().startswith("0.1 "))
    assert "no prediction" in row and "—" in row and "nan" not in row, row
    assert auto["curvature_kind"] == "ggn" and "curvature (auto): ggn" in out
    assert "Ritz value" in auto["choices"]["curvature"]
    # its spectrum is the Gauss-Newton matrix's, and the printout names it G, not H
    assert "smallest eigenvalue of G = " in out and "eigenvalues of G: " in out and "eigenvalues of H" not in out


def test_one_feature_and_its_intercept_is_analyzed_without_the_plane(tmp_path, capsys):
    """One feature with an unpenalized intercept has one curved direction: the run printed its table, then failed on
    the model-plane figure ('a plane needs two directions'). It now writes every other output; the prediction is
    the refit (a linear model: exact)."""
    code, _, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--features", "2",
                         "--lambdas", "0.01,0.1", "--out", str(tmp_path / "o"))
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert max(res["rel_error"]) < 1e-12 and (tmp_path / "o" / "paths.png").exists()
    assert not (tmp_path / "o" / "model_contours.png").exists()


def test_evidence_on_a_constant_target_is_one_clear_error(tmp_path, capsys):
    """A constant target: every residual and coefficient is 0 and the evidence is log 0 at every λ. It printed
    'selected λ = nan' and the table, then failed in matplotlib (exit 1). Now exit 2 and one line, before the
    table."""
    rows = ["a,b,y"] + [f"{np.sin(i):.6f},{np.cos(3 * i):.6f},5" for i in range(30)]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    code, out, err = run(capsys, "analyze", "--data", f"csv:{tmp_path / 'c.csv'}", "--target", "y", "--model",
                         "linear", "--select", "evidence", "--lambdas", "0.01,0.1", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "the evidence needs targets" in err, err
    assert "λ  " not in out and "selected" not in out and not (tmp_path / "o").exists()
