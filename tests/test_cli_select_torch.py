"""`ridgelens analyze --select evidence|validation` for torch models (--model mlp, MODULE:FACTORY).

References: the held-out loss of each θ̃(λ) in results.json computed here by hand (numpy),
the exact Laplace evidence from the Gauss–Newton matrix formed here (torch.func Jacobian,
numpy eigh), and the dense run of the same model for the matrix-free one.
"""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits

import ridgelens._auto
from ridgelens.cli import main
from ridgelens.objectives.torch import TorchObjective

MODEL_PY = '''import torch


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
'''


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """digits: 6 pixels of the classes 0–8 in the first 150 rows plus one 9 (a class on one side of any
    split); diabetes: 120 rows, 3 columns, as CSV and as a tensors file, and a user's model file."""
    d = tmp_path_factory.mktemp("seltorch")
    dg = load_digits(as_frame=True).frame
    cols = ["pixel_2_3", "pixel_3_4", "pixel_4_4", "pixel_5_3", "pixel_3_2", "pixel_4_5"]
    first = dg.iloc[:150]
    rows = [*first.index[first.target < 9], dg.index[dg.target == 9][0]]
    dg.loc[rows, [*cols, "target"]].to_csv(d / "digits.csv", index=False)
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120, [2, 3, 8]], y[:120]
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    np.savez(d / "dia.npz", X=X, y=y)
    (d / "dia.csv").write_text("bmi,bp,s5,y\n" + "\n".join(",".join(map(str, r.tolist())) for r in np.c_[X, y]) + "\n")
    (d / "mymodel.py").write_text(MODEL_PY)
    return d, dg.loc[rows, cols].to_numpy(float), dg.loc[rows, "target"].to_numpy(), X, y


def _mlp(theta, X, widths):
    """The CLI's MLP d → h → tanh → out at a flat θ (Linear weights, then biases, layer by layer)."""
    d, h, o = widths
    W1, b1, W2, b2 = np.split(np.asarray(theta), np.cumsum([h * d, h, o * h]))
    return np.tanh(X @ W1.reshape(h, d).T + b1) @ W2.reshape(o, h).T + b2


def test_mlp_validation_scores_held_out_rows_of_every_class(data, capsys):
    d, X, y, _, _ = data
    out = d / "val"
    code, stdout, err = run(capsys, "analyze", "--data", f"csv:{d / 'digits.csv'}", "--model", "mlp", "--hidden", 2,
                            "--train-iters", 60, "--select", "validation", "--validation-fraction", 0.25,
                            "--lambdas", "1e-2,0.1,1", "--refit-iters", 10, "--out", out)
    assert code == 0, err
    r = json.loads((out / "results.json").read_text())
    sel = r["selection"]
    n = len(y)
    held = np.sort(np.random.default_rng(0).permutation(n)[: round(0.25 * n)])
    assert sel["validation"]["n_validation"] == held.size and r["n_samples"] == n - held.size
    assert not (held == n - 1).any()  # the one 9 trains: 9 classes held out, yet 10 outputs on both sides
    onehot = (y[held, None] == np.unique(y)[None, :]).astype(float)  # 10 outputs on both sides
    by_hand = [0.5 * np.mean(((_mlp(t, X[held], (6, 2, 10)) - onehot) ** 2).sum(1)) for t in r["predicted"]]
    np.testing.assert_allclose(sel["criterion"], by_hand, rtol=1e-10)
    assert sel["lambda"] == r["lambdas"][int(np.argmin(by_hand))] and sel["method"] == "validation"
    assert "sklearn_alpha" not in sel and "one refit at that λ" in stdout
    assert (out / "selection.png").stat().st_size > 1000


def test_mlp_evidence_matrix_free_against_its_dense_run(data, capsys, monkeypatch):
    """Matrix-free (top 4 + SLQ for the other 12) against the dense run of the same weights.

    Only the rest's log-det is estimated, so both lie in the interval that term allows:
    |Δ| ≤ (N − k)·|log(λ/(σ_k + λ))|/(2n), σ from the dense run.
    """
    d, *_ = data
    common = ["analyze", "--data", f"csv:{d / 'dia.csv'}", "--model", "mlp", "--hidden", 3, "--curvature", "ggn",
              "--select", "evidence", "--lambdas", "1e-3,1e-2,0.1,1", "--refit-iters", 10]
    code, _, err = run(capsys, *common, "--train-iters", 200, "--out", d / "dense")
    assert code == 0, err
    monkeypatch.setattr(ridgelens._auto, "DENSE_MAX_PARAMS", 10)
    code, stdout, err = run(capsys, *common, "--weights", d / "dense" / "model.pt", "--k", 4, "--out", d / "mf")
    assert code == 0, err
    dense, mf = (json.loads((d / s / "results.json").read_text()) for s in ("dense", "mf"))
    assert dense["method"] == "dense" and mf["method"] == "matrix-free"
    s = mf["selection"]
    assert "top 4 eigenvalues exactly, the other 12 from the SLQ density" in s["treatment"]
    assert s["lambda"] == s["lambdas"][int(np.argmin(s["criterion"]))]
    assert f"selected λ = {s['lambda']:.6g} by evidence" in stdout
    sigma = np.sort(np.clip(dense["eigenvalues"], 0, None))[::-1]
    lam = np.array(s["lambdas"])
    bound = (sigma.size - 4) * np.abs(np.log(lam / (sigma[3] + lam))) / (2 * mf["n_samples"])
    gap = np.abs(np.array(s["criterion"]) - dense["selection"]["criterion"])
    assert np.all(gap <= bound) and gap.max() > 0  # estimated, not copied
    assert (d / "mf" / "selection.png").stat().st_size > 1000


def test_user_model_evidence_is_the_exact_laplace_evidence(data, capsys):
    d, _, _, X, y = data
    out = d / "user"
    code, _, err = run(capsys, "analyze", "--data", f"tensors:{d / 'dia.npz'}", "--model", f"{d / 'mymodel.py'}:make",
                       "--curvature", "ggn", "--select", "evidence", "--lambdas", "0.01,0.1,1", "--refit-iters", 10,
                       "--out", out)
    assert code == 0, err
    r = json.loads((out / "results.json").read_text())
    theta = np.array(r["theta_hat"])
    n = len(y)
    J = torch.func.jacrev(lambda t: _mlp_t(t, torch.tensor(X)).reshape(-1))(torch.tensor(theta)).numpy()
    G, g = J.T @ J / n, J.T @ (_mlp(theta, X, (3, 3, 1))[:, 0] - y) / n
    sigma = np.clip(np.linalg.eigvalsh(G), 0, None)
    ref = []
    for lam in r["lambdas"]:
        th = np.linalg.solve(G + lam * np.eye(theta.size), G @ theta - g)  # ‖∇R(θ̂)‖ > grad_tol: kept
        rss = np.sum((_mlp(th, X, (3, 3, 1))[:, 0] - y) ** 2)
        # Gaussian (--loss mse): the noise precision profiled out; every parameter penalized, n_eff = n.
        log_e = (-0.5 * n * np.log(rss + n * lam * th @ th) + 0.5 * np.log(lam / (sigma + lam)).sum()
                 + 0.5 * n * (np.log(n) - 1 - np.log(2 * np.pi)))
        ref.append(-log_e / n)
    assert r["gradient_used"]
    assert "noise precision profiled out" in r["selection"]["treatment"]
    np.testing.assert_allclose(r["selection"]["criterion"], ref, rtol=1e-8)
    assert r["selection"]["lambda"] == r["lambdas"][int(np.argmin(ref))]


def _mlp_t(theta, X):
    W1, b1, W2, b2 = theta[:9].reshape(3, 3), theta[9:12], theta[12:15].reshape(1, 3), theta[15:]
    return torch.tanh(X @ W1.T + b1) @ W2.T + b2


@pytest.mark.parametrize(("model", "method", "message"), [
    ("mlp", "gcv", "--select gcv applies to --model linear, not mlp (for --model mlp: evidence, validation)"),
    ("user", "alo", "--select alo applies to --model logistic, not "),
])
def test_methods_that_do_not_apply_to_torch_models_name_those_that_do(data, capsys, model, method, message):
    d, *_ = data
    spec = f"{d / 'mymodel.py'}:make" if model == "user" else "mlp"
    src = f"tensors:{d / 'dia.npz'}" if model == "user" else f"csv:{d / 'dia.csv'}"
    code, _, err = run(capsys, "analyze", "--data", src, "--model", spec, "--select", method, "--out", d / "bad")
    assert code == 2 and err.count("\n") == 1 and message in err and "evidence, validation" in err
    assert not (d / "bad").exists()


def test_torch_model_without_lambdas_gets_the_default_grid_from_its_spectrum(data, capsys):
    d, *_ = data
    out = d / "grid"
    code, _, err = run(capsys, "analyze", "--data", f"tensors:{d / 'dia.npz'}", "--model", f"{d / 'mymodel.py'}:make",
                       "--curvature", "ggn", "--select", "evidence", "--refit-iters", 1, "--out", out)
    assert code == 0, err
    r = json.loads((out / "results.json").read_text())
    lam, sigma = np.array(r["selection"]["lambdas"]), np.array(r["eigenvalues"])
    assert lam.size == 100 and np.array_equal(lam, r["lambdas"]) and r["selection"]["grid"].startswith("default")
    positive = sigma[sigma > 0]
    assert lam.max() == pytest.approx(100 * positive.max(), rel=1e-8)
    assert lam.min() == pytest.approx(positive.min() / 100, rel=1e-8)


@pytest.mark.parametrize(("method", "lambdas"), [("evidence", None), ("validation", None),
                                                 ("validation", "0.01,0.1,1")])
def test_refits_are_only_where_needed_and_counted(data, capsys, monkeypatch, method, lambdas):
    """Default grid: one refit, at the chosen λ (validation's confirmation reuses it); a given grid: every λ.

    Counted independently: every call of TorchObjective.minimize with λ > 0 (the tiny model's
    weights are given, so no training run adds to it).
    """
    calls = []
    minimize = TorchObjective.minimize

    def counting(self, l2=0.0, **kw):
        if l2 > 0:
            calls.append(l2)
        return minimize(self, l2, **kw)

    monkeypatch.setattr(TorchObjective, "minimize", counting)
    d, *_ = data
    out = d / f"refits-{method}-{lambdas is None}"
    code, stdout, err = run(capsys, "analyze", "--data", f"tensors:{d / 'dia.npz'}", "--model",
                            f"{d / 'mymodel.py'}:make", "--curvature", "ggn", "--select", method, "--refit-iters", 3,
                            *(["--lambdas", lambdas] if lambdas else ["--report"]), "--out", out)
    assert code == 0, err
    r = json.loads((out / "results.json").read_text())
    refitted = [i for i, row in enumerate(r["refit"]) if all(v is not None for v in row)]
    stated = r["selection"]["refits"]
    assert stated["count"] == len(calls) == len(refitted)
    if lambdas is None:
        assert len(r["lambdas"]) == 100 and len(calls) == 1
        assert refitted == [r["selection"]["index"]] and calls == [r["selection"]["lambda"]]
        assert "refits θ*(λ): 1, the chosen λ only: the default grid's other 99 λ are not refitted" in stdout
        assert stdout.count("not refit") >= 99  # the table says which λ have no refit, and so does the report's
        table = (out / "report.html").read_text().split('<table id="per-lambda">')[1].split("</table>")[0]
        assert table.count("<td>—</td>") == 99 and table.count("<td>yes</td>") + table.count("<td>NO</td>") == 1
    else:
        assert len(calls) == 3 and stated["lambdas"] == [0.01, 0.1, 1.0]
    if method == "validation":
        i = r["selection"]["index"]
        assert r["selection"]["confirm"]["rel_error"] == pytest.approx(r["rel_error"][i], rel=1e-12)
