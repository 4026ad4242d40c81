"""``--penalty``, ``--penalty-factors``, ``--optimizer(-state)``: results, and one-line errors with nothing written."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

from ridgelens.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors (one line too)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def failed(code, out, err, tmp_path, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ridgelens: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]
    assert not (tmp_path / "o").exists()


def test_linear_penalty_factors_file(tmp_path, capsys):
    f = tmp_path / "pf.txt"
    d = np.linspace(0.0, 2.0, 10)
    f.write_text("# one factor per feature\n" + ", ".join(f"{v:.17g}" for v in d) + "\n")
    code, out, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.01,0.1",
                         "--penalty-factors", str(f), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "penalty (λ/2)θᵀDθ from vector" in out and "D^{-1/2}HD^{-1/2}" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["penalty"]["source"] == "vector" and res["penalty_factors_file"] == str(f)
    X, y = load_diabetes(return_X_y=True)
    A = np.c_[X, np.ones(len(y))]
    H = A.T @ A / len(y)
    theta_hat = np.array(res["theta_hat"])
    D = np.diag(np.append(d, 0.0))  # the intercept stays free
    for lam, pred in zip(res["lambdas"], res["predicted"], strict=True):
        ref = np.linalg.solve(H + lam * D, H @ theta_hat)
        assert np.abs(np.array(pred) - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize(("content", "needles"), [
    ("1, 2, 3", ["holds 3 factors", "10 (one per feature) or 11"]),
    ("1 1 1 1 -1 1 1 1 1 1", ["pf.txt", "[4] = -1 is negative"]),
    ("1 1 1 1 nan 1 1 1 1 1", ["[4] = nan is not finite"]),
    ("1 1 x", ["entry 2 ('x') is not a number"]),
])
def test_linear_bad_penalty_factors(tmp_path, capsys, content, needles):
    f = tmp_path / "pf.txt"
    f.write_text(content)
    failed(*run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.1",
                "--penalty-factors", str(f), "--out", str(tmp_path / "o")), tmp_path, *needles)


def mlp_args(tmp_path, *more):
    return ("analyze", "--data", "diabetes", "--model", "mlp", "--standardize", "--hidden", "3", "--lambdas",
            "0.001", "--out", str(tmp_path / "o"), *more)


@pytest.mark.parametrize(("more", "needles"), [
    (("--penalty", "*.bias=0", "--penalty", "*norm*=0", "--penalty", "*embed*=0.1"),
     ["'*norm*', '*embed*' match no parameter", "0.weight"]),
    (("--penalty", "*.bias=-1"), ["'*.bias' is -1"]),
    (("--penalty", "*.bias=inf"), ["'*.bias' is inf"]),
    (("--penalty", "nofactor"), ["PATTERN=FACTOR"]),
    (("--penalty-factors", "x.txt"), ["--penalty-factors is for the linear"]),
])
def test_mlp_bad_penalty(tmp_path, capsys, more, needles):
    failed(*run(capsys, *mlp_args(tmp_path, *more)), tmp_path, *needles)


def test_linear_refuses_mlp_penalty_flags(tmp_path, capsys):
    failed(*run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.1", "--penalty",
                "*=1", "--out", str(tmp_path / "o")), tmp_path, "--penalty is for --model mlp")


@pytest.fixture
def trained(tmp_path):
    """The CLI's diabetes MLP (10→3→1), a few AdamW steps from its seed, saved as weights and optimizer state."""
    from ridgelens.data import load_dataset

    ds = load_dataset("diabetes", standardize=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    X = torch.tensor(ds.X)
    Y = torch.tensor(ds.y)[:, None]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    for i in range(200):
        idx = slice((i * 64) % 384, (i * 64) % 384 + 64)
        opt.zero_grad()
        (0.5 * ((net(X[idx]) - Y[idx]) ** 2).sum(-1).mean()).backward()
        opt.step()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    other = torch.nn.Linear(10, 2).double()
    o2 = torch.optim.AdamW(other.parameters())
    other(X[:4]).sum().backward()
    o2.step()
    torch.save(o2.state_dict(), tmp_path / "other.pt")
    sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    torch.save(sgd.state_dict(), tmp_path / "sgd.pt")
    return tmp_path


def test_mlp_optimizer_state(trained, capsys):
    tmp_path = trained
    code, out, err = run(capsys, *mlp_args(tmp_path, "--weights", str(tmp_path / "w.pt"), "--optimizer-state",
                                            str(tmp_path / "opt.pt"), "--penalty", "*.bias=0", "--refit-iters", "10",
                                            "--refit-method", "lbfgs", "--curvature", "hessian"))
    assert code == 0, err
    assert "curvature (auto)" not in out  # --curvature given: as asked (auto is test_mlp_optimizer_curvature_auto's)
    assert "penalty (λ/2)θᵀDθ from patterns×optimizer-state: 4 factors 0" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["weight_decay"]["optimizer"] == "adamw" and "Xie & Li" in res["weight_decay"]["regime"]
    assert res["penalty"]["source"] == "patterns×optimizer-state" and res["penalty"]["n_zero"] == 4
    assert "diag(√v̂ + ε)" in res["weight_decay"]["D"]
    assert res["curvature_kind"] == "hessian" and "curvature" not in res["choices"]


@pytest.mark.parametrize(("state", "more", "needles"), [
    ("other.pt", (), ["holds 2 parameters but the model has 4"]),
    ("sgd.pt", ("--optimizer", "adamw"), ["of sgd, not adamw"]),
    ("w.pt", (), ["a model's state_dict"]),
])
def test_mlp_bad_optimizer_state(trained, capsys, state, more, needles):
    tmp_path = trained
    failed(*run(capsys, *mlp_args(tmp_path, "--weights", str(tmp_path / "w.pt"), "--optimizer-state",
                                  str(tmp_path / state), *more)), tmp_path, *needles)


def test_mlp_optimizer_curvature_auto(trained, capsys):
    """--optimizer-state makes --curvature auto: ridgelens.predict's decision, recorded, checked against dense eigvalsh."""
    import ridgelens as rl
    from ridgelens.cli._mlp import build_mlp_objective
    from ridgelens.data import load_dataset
    from ridgelens.penalty import load_optimizer_state

    tmp_path = trained
    argv = mlp_args(tmp_path, "--weights", str(tmp_path / "w.pt"), "--optimizer-state", str(tmp_path / "opt.pt"),
                    "--refit-iters", "5", "--refit-method", "lbfgs")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    obj, _, _ = build_mlp_objective(load_dataset("diabetes", standardize=True), hidden=3, seed=0,
                                    weights=str(tmp_path / "w.pt"))
    state = load_optimizer_state(tmp_path / "opt.pt", (tmp_path / "opt.pt").read_bytes())
    py = rl.predict(obj, [1e-3], optimizer_state=state)
    assert res["choices"]["curvature"] == py.choices["curvature"]  # the same decision as the Python API
    assert res["curvature_kind"] == py.curvature and f"curvature (auto): {py.curvature}" in out
    lowest = np.linalg.eigvalsh(rl.hessian(obj, obj.theta0).to_dense().numpy())[0]
    assert lowest < 0 and py.curvature == "ggn"  # this briefly trained MLP's H is indefinite (dense reference)


def test_linear_curvature_auto_is_the_hessian(tmp_path, capsys):
    """--curvature auto on a convex model: the Hessian without a probe, and θ̃ still scikit-learn's ridge."""
    from sklearn.linear_model import Ridge

    code, _, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "0.1",
                         "--curvature", "auto", "--out", str(tmp_path / "o"))
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["curvature_kind"] == "hessian" and "convex" in res["choices"]["curvature"]
    X, y = load_diabetes(return_X_y=True)
    sk = Ridge(alpha=0.1 * len(y), solver="cholesky").fit(X, y)
    np.testing.assert_allclose(res["predicted"][0], np.r_[sk.coef_, sk.intercept_], rtol=1e-6, atol=1e-8)


def test_polish_with_curvature_auto_probes_the_polished_weights(trained, capsys):
    """--polish with the default --curvature auto: H is probed at the θ̂ analyzed (the polished one, as
    analyze(curvature="auto", polish=True) does), not at the weights given; the probe at the given weights had
    recorded its Ritz value as the analyzed point's. Reference: choose_curvature at results.json's θ̂."""
    import ridgelens as rl
    from ridgelens.cli._mlp import build_mlp_objective
    from ridgelens.data import load_dataset
    from ridgelens.pipeline._curvature import choose_curvature

    tmp_path = trained
    code, out, err = run(capsys, *mlp_args(tmp_path, "--weights", str(tmp_path / "w.pt"), "--polish",
                                           "--refit-iters", "30", "--refit-method", "lbfgs"))
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    obj, _, _ = build_mlp_objective(load_dataset("diabetes", standardize=True), hidden=3, seed=0,
                                    weights=str(tmp_path / "w.pt"))
    polished, given = np.array(res["theta_hat"]), obj.theta0
    assert res["polish"]["moved_relative"] > 1e-3
    at_polished, at_given = (str(choose_curvature(obj, t, seed=0)) for t in (polished, given))
    assert at_polished != at_given  # the two probes differ: the test tells which point was probed
    assert res["choices"]["curvature"] == at_polished and f"(auto, at the polished θ̂): {at_polished}" in out
    assert res["curvature_kind"] == rl.analyze(obj, [1e-3], curvature="auto", polish=True, refit=False,
                                               tol=1e-5, refit_options={"method": "lbfgs", "max_iter": 30}
                                               ).curvature_kind
