"""An LM analysis restricted to one curvature, λ chosen on held-out text, and its report in a browser.

References: the held-out loss written out independently (log-softmax of the model's logits at
each θ̃), the full two-curvature run (a restricted run must give the same numbers for the
curvature it keeps), results.json itself (the report's numbers), a real headless Chromium.
"""

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from helpers import check_report_page
from ridgelens.cli import main
from ridgelens.errors import RidgelensError
from ridgelens.lm import LMConfig, stdlib_split, train_lm
from ridgelens.objectives.lm import LMObjective
from ridgelens.pipeline import LMSettings, analyze_lm
from ridgelens.select import select_lm

TINY = ["--layers", "1", "--width", "8", "--heads", "2", "--context", "8", "--tokens", "64", "--steps", "10",
        "--k", "2", "--subsamples", "0", "--lambdas", "0.01,0.3,3"]


def _analyze(out, *extra):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(["analyze", "--model", "lm", *TINY, *extra, "--out", str(out)])
    assert code == 0, err.getvalue()
    return json.loads((out / "results.json").read_text()), stdout.getvalue()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Both curvatures (the default), --select validation and --report."""
    out = tmp_path_factory.mktemp("lm") / "both"
    d, stdout = _analyze(out, "--select", "validation", "--report")
    return out, d, stdout


def test_curvature_option_restricts_the_analysis_to_one_and_changes_nothing_else(both, tmp_path):
    _, full, _ = both
    out = tmp_path / "h"
    d, stdout = _analyze(out, "--curvature", "hessian")
    assert full["curvatures"] == ["ggn", "hessian"] and d["curvatures"] == ["hessian"]
    assert list(d["curvature"]) == ["hessian"] and list(d["analyses"]) == ["hessian"]
    h, ref = d["curvature"]["hessian"], full["curvature"]["hessian"]
    for key in ("top_eigenvalues", "most_negative_eigenvalues", "valid", "val_perplexity", "n_products"):
        assert h[key] == ref[key], key  # same seed, same products: the restricted run is the full run's half
    assert d["retraining"]["val_perplexity"] == full["retraining"]["val_perplexity"]
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == {"rel_error.png", "perplexity.png", "spectral_density_hessian.png"}
    assert "err(H)" in stdout and "err(G)" not in stdout and "Gauss-Newton" not in stdout


def test_select_validation_picks_the_lowest_held_out_perplexity_of_the_predictions(both):
    out, d, stdout = both
    sel = d["selection"]
    assert sel["method"] == "validation" and sel["curvature"] == "ggn"  # G predicts at every λ
    ppl = np.array([np.inf if v is None else v for v in d["curvature"]["ggn"]["val_perplexity"]])
    i = int(np.argmin(ppl))
    assert sel["index"] == i and sel["lambda"] == d["lambdas"][i]
    assert np.allclose(np.exp(sel["criterion"]), ppl, rtol=1e-10)
    h = sel["criteria"]["hessian"]  # inf (null in JSON) where H has no prediction
    assert [v is not None for v in h] == d["curvature"]["hessian"]["valid"] and None in h
    c = sel["confirm"]
    assert c["refit_loss"] == pytest.approx(math.log(d["retraining"]["val_perplexity"][i]), rel=1e-10)
    assert c["loss_gap"] == pytest.approx(c["predicted_loss"] - c["refit_loss"], rel=1e-12)
    assert f"selected λ = {sel['lambda']:.6g} by validation" in stdout
    assert "selection.png" in d["figures"] and (out / "selection.png").stat().st_size > 1000


@pytest.mark.parametrize(("argv", "message"), [
    (["--select", "gcv"], "--select gcv applies to --model linear, not a language model (for --model lm/hf:DIR: "
                          "validation"),
    (["--select", "validation", "--lambdas", "0.1"], "at least 2 λ"),
    (["--select", "validation", "--lambdas", "0.1,0.1"], "at least 2 λ in --lambdas to choose among, got 1 distinct of 2"),
    (["--max-logits", "0"], "--max-logits must be a positive integer, got 0"),
    (["--select", "validation", "--validation-fraction", "0.3"], "--validation-fraction is not for --model lm"),
])
def test_select_requests_an_lm_cannot_take_are_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    assert main(["analyze", "--model", "lm", *TINY, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ridgelens: error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_explore_on_an_lm_results_file_says_it_has_no_page(both, tmp_path, capsys):
    """Before: 'missing field penalized_eigenvalues (is it a results.json written by `ridgelens analyze`?)'."""
    out, _, _ = both
    assert main(["explore", str(out / "results.json"), "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ridgelens: error: ") and err.count("\n") == 1 and "a language model's analysis" in err
    assert "report.html" in err and not (tmp_path / "p.html").exists()


def test_python_api_curvature_and_selection_against_an_independent_held_out_loss():
    split = stdlib_split(8, 48)
    net = train_lm(LMConfig(layers=1, width=8, heads=2, context=8), split.train, steps=10, seed=0)
    obj = LMObjective(net, split.train, dtype=torch.float64)
    val = obj.on(split.val)
    res = analyze_lm(obj, val, obj.theta0, [0.05, 3.0], curvature="hessian",
                     settings=LMSettings(k=2, k_negative=1, eig_matvecs=30, path_matvecs=30, refit_iters=20))
    assert list(res.curvatures) == ["hessian"] and res.report["curvatures"] == ["hessian"]
    sel = select_lm(res, val)
    a = res.curvatures["hessian"]
    model = obj.model
    for lam_i, theta, ok, crit in zip(sel.lambdas, a.path.thetas, a.path.valid, sel.criterion, strict=True):
        if not ok:
            assert crit == np.inf
            continue
        torch.nn.utils.vector_to_parameters(torch.as_tensor(theta, dtype=torch.float64), model.parameters())
        with torch.no_grad():
            logp = torch.log_softmax(model(val.windows[:, :-1]), -1)
            ref = -logp.gather(-1, val.windows[:, 1:, None]).mean().item()
        assert crit == pytest.approx(ref, rel=1e-10), lam_i
    assert sel.lambda_ == sel.lambdas[int(np.argmin(sel.criterion))]
    with pytest.raises(RidgelensError, match="'ggn' was not analyzed"):
        select_lm(res, val, curvature="ggn")
    with pytest.raises(RidgelensError, match="'hessian', 'ggn' or 'both'"):
        analyze_lm(obj, val, obj.theta0, [1.0], curvature="gn")
    # Another model's held-out objective, or none: named before any held-out loss (was an AttributeError for
    # None, and "no λ of the grid has a prediction" or a θ shape error for another model's).
    other = train_lm(LMConfig(layers=1, width=4, heads=2, context=8), split.train, steps=1, seed=0)
    for bad in (LMObjective(other, split.val, dtype=torch.float64), None):
        with pytest.raises(RidgelensError, match=rf"val_objective must be the held-out tokens of the analyzed model "
                                                 rf"\({obj.n_params} parameters"):
            select_lm(res, bad)
        with pytest.raises(RidgelensError, match=r"val_objective must be the held-out tokens"):
            analyze_lm(obj, bad, obj.theta0, [1.0], curvature="hessian")
    with pytest.raises(RidgelensError, match=r"analysis must be analyze_lm's result \(an LMAnalysis\), got dict"):
        select_lm(res.to_dict(), val)


def test_lm_report_shows_results_json_numbers_and_its_figures(both, browser):
    out, d, _ = both
    page = browser.new_page()
    page.goto((out / "report.html").as_uri())
    cells = check_report_page(page, out, d)
    keys = {k for k, *_ in cells}
    assert {"lambdas", "curvature.ggn.rel_error", "curvature.hessian.most_negative_eigenvalues",
            "retraining.val_perplexity", "selection.lambda", "gradient_ratio"} <= keys
    assert page.locator("#holds li").count() == 2
    page.close()
