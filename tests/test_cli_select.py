"""`ridgelens analyze --select/--report/--features`: the choice, its JSON and figure, the report in a browser.

References: scikit-learn's RidgeCV (same λ on the same grid), the data files themselves
(report numbers equal results.json's), a real headless Chromium (figures decode and render).
"""

import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV

from helpers import check_report_page
from ridgelens.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def loo_run(tmp_path_factory):
    """Least squares on a raw Longley CSV (ill-conditioned: a warning), default grid, LOO, a report."""
    import statsmodels.api as sm

    tmp = tmp_path_factory.mktemp("select")
    df = sm.datasets.longley.load_pandas().data
    csv = tmp / "longley.csv"
    df.to_csv(csv, index=False)
    out = tmp / "out"
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(["analyze", "--data", f"csv:{csv}", "--target", "TOTEMP", "--model", "linear",
                     "--select", "loo", "--report", "--out", str(out)])
    assert code == 0, err.getvalue()
    return out, df, stdout.getvalue(), err.getvalue()


def test_select_loo_matches_ridgecv_and_writes_its_choice(loo_run):
    out, df, stdout, _ = loo_run
    d = json.loads((out / "results.json").read_text())
    sel = d["selection"]
    X, y = df.drop(columns="TOTEMP").to_numpy(), df["TOTEMP"].to_numpy()
    n = len(y)
    lam = np.array(sel["lambdas"])
    assert lam.size == 100 and sel["method"] == "loo" and len(sel["criterion"]) == 100
    assert np.allclose(d["lambdas"], lam, rtol=0, atol=0)  # the analysis ran on the default grid too
    ref = RidgeCV(alphas=n * lam, gcv_mode="svd").fit(X, y).alpha_ / n
    assert sel["lambda"] == pytest.approx(ref, rel=1e-12)
    assert f"selected λ = {sel['lambda']:.6g} by loo" in stdout
    assert (out / "selection.png").stat().st_size > 1000


def test_select_on_diabetes_with_features_and_validation(tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--features", "bmi,bp,s5",
                            "--select", "validation", "--validation-fraction", "0.25", "--out", out)
    assert code == 0, err
    d = json.loads((out / "results.json").read_text())
    assert d["param_names"] == ["bmi", "bp", "s5", "intercept"]
    v = d["selection"]["validation"]
    X, _ = load_diabetes(return_X_y=True)
    assert v["n_validation"] == round(0.25 * len(X)) and d["n_samples"] == v["n_train"]
    c = d["selection"]["confirm"]
    assert abs(c["loss_gap"]) <= 1e-9 * c["refit_loss"]  # least squares: θ̃ is the refit
    assert "one refit at that λ" in stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "logistic", "--data", "breast_cancer", "--select", "loo"],
     "--select loo applies to --model linear, not logistic (for --model logistic: alo, evidence, validation)"),
    (["--model", "linear", "--data", "diabetes", "--select", "alo"], "--select alo applies to --model logistic"),
    (["--model", "linear", "--data", "diabetes", "--select", "gcv", "--lambdas", "0.1"], "at least 2 λ"),
    (["--model", "linear", "--data", "diabetes", "--select", "gcv", "--lambdas", "0.1,0.1"], "got 1 distinct of 2"),
    (["--model", "linear", "--data", "diabetes"], "--lambdas is required unless --select"),
    (["--model", "linear", "--data", "diabetes", "--select", "validation", "--validation-fraction", "1.5"],
     "--validation-fraction must be in (0, 1)"),
    (["--model", "linear", "--data", "diabetes", "--features", "bogus", "--lambdas", "1"], "no column 'bogus'"),
    (["--model", "mlp", "--data", "digits", "--select", "loo", "--lambdas", "0.1,1"],
     "not mlp (for --model mlp: evidence, validation)"),
])
def test_bad_select_requests_are_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    code, _, err = run(capsys, "analyze", *argv, "--out", out)
    assert code == 2 and err.count("\n") == 1 and err.startswith("ridgelens: error: ")
    assert message in err
    assert not out.exists()


# --- the report in a real browser -------------------------------------------------------------



def test_report_renders_its_figures_and_shows_results_json_numbers(loo_run, browser):
    out, _, _, stderr = loo_run
    d = json.loads((out / "results.json").read_text())
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((out / "report.html").as_uri())
    cells = check_report_page(page, out, d)
    assert all(u.startswith(("file:", "data:")) for u in requests)  # self-contained: nothing fetched
    keys = {k for k, *_ in cells}
    assert {"lambdas", "rel_error", "error_bound", "selection.lambda", "gradient_norm"} <= keys
    assert len(cells) > 400
    # Every warning the run printed is in the report (Longley's design is ill-conditioned).
    warned = [line.split("warning: ", 1)[1] for line in stderr.splitlines() if "ridgelens: warning:" in line]
    shown = page.locator("#warnings li").all_text_contents()
    assert warned and all(any(w.split(" (and")[0][:80] in s for s in shown) for w in warned)
    page.close()


def test_a_logistic_choice_is_given_as_scikit_learns_C(tmp_path, capsys):
    """For a logistic model the chosen λ is also LogisticRegression's C = 1/(n·λ) (not Ridge's alpha = n·λ)."""
    out = tmp_path / "bc"
    code, stdout, err = run(capsys, "analyze", "--data", "breast_cancer", "--model", "logistic", "--standardize",
                            "--features", "0,1,2,3,4,5,6,7,8,9", "--select", "validation", "--out", out)
    assert code == 0, err
    sel = json.loads((out / "results.json").read_text())["selection"]
    assert "sklearn_alpha" not in sel
    assert sel["sklearn_C"] * sel["validation"]["n_train"] * sel["lambda"] == pytest.approx(1, rel=1e-12)
    assert f"scikit-learn C = {sel['sklearn_C']:.6g}" in stdout
