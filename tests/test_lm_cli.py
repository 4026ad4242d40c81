"""``ridgelens analyze --model lm`` and ``demo --lm``: outputs, the λ that have a prediction, bad input."""

import json

import pytest

from ridgelens.cli import main

TINY = ["--layers", "1", "--width", "8", "--heads", "2", "--context", "8", "--tokens", "64", "--steps", "10",
        "--k", "2", "--subsamples", "3"]


def test_analyze_lm_writes_both_curvatures_and_says_which_lambdas_have_a_prediction(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["analyze", "--model", "lm", *TINY, "--lambdas", "0.01,3", "--save-thetas", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    r = json.loads((out / "results.json").read_text())
    _check_thetas_file(out, r)
    assert {"results.json", "model.pt", "rel_error.png", "perplexity.png", "spectral_density_hessian.png",
            "spectral_density_ggn.png"} <= {p.name for p in out.iterdir()}
    assert r["n_tokens"] == 64 and r["model"]["layers"] == 1
    assert not set(r["train_files"]) & set(r["val_files"])
    h, g = r["curvature"]["hessian"], r["curvature"]["ggn"]
    assert (h["form"], h["held"]) == ("reuse", "r-op")  # the built-in LM's hand-written pass, said so
    lowest = h["most_negative_eigenvalues"][0]
    assert lowest < 0 and h["most_negative_residuals"][0] < 1e-2 * h["top_eigenvalues"][0]
    # a Hessian prediction exists exactly for the λ above the most negative curvature; the GGN's for all
    assert h["valid"] == [lam > -lowest for lam in r["lambdas"]]
    assert g["valid"] == [True, True] and min(g["most_negative_eigenvalues"]) > -1e-6 * g["top_eigenvalues"][0]
    for c in (h, g):
        for ok, cos in zip(c["valid"], c["cosine"], strict=True):
            assert not ok or -1 <= cos <= 1
    noise = r["sampling_noise"]
    assert noise["windows_each"] == [3, 3, 2] and len(noise["hessian"]["mean"]) == 3
    assert "‖θ̃−θ*‖/‖θ*‖ < 10%" in cap.out or "at or above 10%" in cap.out
    assert "training step" in cap.err  # progress goes to stderr
    # it keeps no per-parameter vectors: Analysis.from_dict says what it is instead of naming a missing field
    import ridgelens as rl
    from ridgelens.errors import RidgelensError

    with pytest.raises(RidgelensError, match=r"language model's results\.json"):
        rl.Analysis.from_dict(r)


def _check_thetas_file(out, r):
    """thetas.pt (--save-thetas): θ̂ is model.pt's weights flattened in the order it lists, and the vectors give the
    relative errors and cosines results.json reports, recomputed here."""
    import numpy as np
    import torch

    t = torch.load(out / "thetas.pt", weights_only=True)
    sd = torch.load(out / "model.pt", weights_only=True)
    assert [name for name, _ in t["params"]] == list(sd) and all(tuple(sd[k].shape) == s for k, s in t["params"])
    flat = torch.cat([sd[name].reshape(-1).double() for name, _ in t["params"]])
    torch.testing.assert_close(t["theta_hat"], flat, rtol=0, atol=0)
    assert t["lambdas"].tolist() == r["lambdas"] and t["retrained"].shape == (2, r["n_params"])
    star = t["retrained"].numpy()
    hat = t["theta_hat"].numpy()
    for kind, c in r["curvature"].items():
        assert t["valid"][kind].tolist() == c["valid"]
        for i, ok in enumerate(c["valid"]):
            if ok:
                pred = t["predicted"][kind][i].numpy()
                err = np.linalg.norm(pred - star[i]) / np.linalg.norm(star[i])
                cos = (pred - hat) @ (star[i] - hat) / np.linalg.norm(pred - hat) / np.linalg.norm(star[i] - hat)
                assert err == pytest.approx(c["rel_error"][i], rel=1e-9) and cos == pytest.approx(c["cosine"][i],
                                                                                                   rel=1e-9)


@pytest.mark.parametrize("case,msg", [
    ("empty", "is empty"), ("binary", "looks binary"), ("short", "fewer than two contexts"),
    ("heads", "multiple of --heads"), ("data", "--data is for tabular models"),
    ("lambda0", "must be > 0"), ("polish-iters0", "--polish-iters must be a positive integer"),
    ("polish-tol", "--polish-tol must be a positive number"), ("polish-alone", "add --polish"),
    ("max-logits", "--max-logits 100 is less than one window's logits (8 tokens × vocab 256 = 2048)"),
    ("tokens", "--tokens 5 is fewer than one window of --context 8 tokens"),
    ("tokens-file", "holds 232 training tokens (29 windows of 8, in its first 80%), fewer than --tokens 1000"),
    ("subsamples", "--subsamples 20 is more than the 8 training windows"),
    ("k", "--k 1000000 is more than the model's 5048 parameters"),
])
def test_bad_lm_input_is_one_line_and_writes_nothing(tmp_path, capsys, case, msg):
    """Each refused before training (--tokens a file cannot hold was once cut silently to what it held; --subsamples
    and --k were refused only after training and the whole analysis, in words that did not name the option)."""
    text = tmp_path / "t.txt"
    text.write_bytes({"empty": b"", "binary": bytes(range(256)) * 8, "short": b"x = 1\n"}.get(case, b"a = 1\n" * 50))
    extra = {"heads": ["--heads", "3"], "data": ["--data", "digits"], "polish-iters0": ["--polish", "--polish-iters", "0"],
             "polish-tol": ["--polish", "--polish-tol", "-1"], "polish-alone": ["--polish-iters", "5"],
             "max-logits": ["--max-logits", "100"], "tokens": ["--tokens", "5"], "tokens-file": ["--tokens", "1000"],
             "subsamples": ["--subsamples", "20"], "k": ["--k", "1000000"]}.get(case, [])
    lam = "0" if case == "lambda0" else "0.1"
    out = tmp_path / "out"
    rc = main(["analyze", "--model", "lm", *TINY, "--text", str(text), *extra, "--lambdas", lam, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("ridgelens: error:") and msg in err[0], err
    assert not out.exists()


def test_lm_options_are_refused_for_tabular_models(tmp_path, capsys):
    rc = main(["analyze", "--data", "diabetes", "--model", "linear", "--text", "stdlib", "--lambdas", "0.1",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "--text is for --model lm" in capsys.readouterr().err
    rc = main(["analyze", "--data", "diabetes", "--model", "mlp", "--polish", "--polish-iters", "5", "--lambdas", "0.1",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "--refit-iters and --refit-tol set --polish's budget" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_lm_runs_a_model_of_at_least_200k_parameters(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--lm", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["n_params"] >= 200_000
    assert set(r["curvature"]) == {"hessian", "ggn"}



def test_polish_moves_theta_down_the_training_loss_and_says_so(tmp_path, capsys):
    """--polish for an LM: θ̂ is minimized further (L-BFGS) before the analysis; results.json says how far it
    moved and how the loss changed, measured here independently from the weights written to model.pt."""
    import numpy as np
    import torch

    from ridgelens.lm import LMConfig, stdlib_split, train_lm
    from ridgelens.objectives.lm import LMObjective

    out = tmp_path / "out"
    rc = main(["analyze", "--model", "lm", *TINY, "--subsamples", "0", "--curvature", "ggn", "--lambdas", "0.1",
               "--polish", "--polish-iters", "7", "--polish-tol", "1e-9", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    r = json.loads((out / "results.json").read_text())
    p = r["polish"]
    assert p["method"] == "lbfgs" and 1 <= p["n_iter"] <= 7 and p["moved"] > 0
    assert (r["settings"]["polish_iters"], r["settings"]["polish_tol"]) == (7, 1e-9)  # the budget given, used
    assert p["loss_after"] < p["loss_before"] and p["gradient_norm_after"] < p["gradient_norm_before"]
    assert "polished θ̂ (L-BFGS" in cap.out
    # the reference: the same run without --polish writes the weights as trained; both model.pt files, measured
    # here with an objective of their own (float32 training on several threads repeats to about 1e-9, not bits)
    rc = main(["analyze", "--model", "lm", *TINY, "--subsamples", "0", "--curvature", "ggn", "--lambdas", "0.1",
               "--out", str(tmp_path / "plain")])
    split = stdlib_split(8, 64)
    net = train_lm(LMConfig(layers=1, width=8, heads=2, context=8), split.train, steps=0, seed=0)

    def weights(folder):
        net.load_state_dict(torch.load(folder / "model.pt", weights_only=True), strict=False)
        return torch.nn.utils.parameters_to_vector(net.parameters()).detach().double().numpy()

    polished, trained = weights(out), weights(tmp_path / "plain")
    obj = LMObjective(net, split.train, dtype=torch.float64)
    assert np.linalg.norm(polished - trained) == pytest.approx(p["moved"], rel=1e-6)
    assert obj.value(trained) == pytest.approx(p["loss_before"], rel=1e-6)
    assert obj.value(polished) == pytest.approx(p["loss_after"], rel=1e-6)
    assert p["loss_after"] == r["train_loss_hat"]
    assert rc == 0 and json.loads((tmp_path / "plain" / "results.json").read_text())["polish"] is None


def test_the_hessian_bound_says_when_it_comes_from_the_slq_density():
    """A negative SLQ Ritz value below an unconverged smallest-eigenvalue run is the bound, and the text says so
    (the demo with --polish printed 'most negative 4.7e-06, … ; only for λ above −(most negative) ≈ 0.01829')."""
    from types import SimpleNamespace

    import numpy as np

    from ridgelens.pipeline._lm import _prediction_exists

    low = SimpleNamespace(eigenvalues=np.array([0.2468, 9e-6, 4.7e-6]), converged=np.array([False, True, True]))
    text = _prediction_exists("hessian", low, SimpleNamespace(nodes=np.array([-0.01829, 0.5])), -0.01829)
    assert text.startswith("only for λ above 0.01829: the SLQ density has a Ritz value -0.01829")
    assert "(not converged)" in text
    low = SimpleNamespace(eigenvalues=np.array([-0.31, -0.2]), converged=np.array([True, True]))
    assert _prediction_exists("hessian", low, SimpleNamespace(nodes=np.array([-0.1])), -0.31).endswith("≈ 0.31")
    assert _prediction_exists("hessian", low, SimpleNamespace(nodes=np.array([0.1])), 0.0).startswith("for every")
    assert _prediction_exists("ggn", low, None, -1.0).startswith("for every λ (G")


def test_refit_budget_and_tolerance_reach_the_retraining(tmp_path, capsys):
    """θ*(λ) is L-BFGS to a stated tolerance: --refit-iters and --refit-tol set it for an LM (they were refused,
    leaving 60 iterations and 1e-3 fixed); --refit-method stays refused (the LM's retraining is L-BFGS)."""
    out = tmp_path / "out"
    rc = main(["analyze", "--model", "lm", *TINY, "--subsamples", "0", "--curvature", "ggn", "--lambdas", "0.1,1",
               "--refit-iters", "3", "--refit-tol", "1e-12", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    t = json.loads((out / "results.json").read_text())["retraining"]
    assert t["max_iter"] == 3 and t["tol"] == 1e-12
    assert all(n <= 3 for n in t["n_iter"]) and t["converged"] == [False, False]
    assert all(g > 1e-12 for g in t["gradient_norm"])
    for argv, msg in ((["--refit-iters", "0"], "--refit-iters must be a positive integer"),
                      (["--refit-tol", "-1"], "--refit-tol must be a positive number"),
                      (["--refit-method", "lbfgs"], "not --refit-method")):
        bad = tmp_path / "bad"
        rc = main(["analyze", "--model", "lm", *TINY, "--lambdas", "0.1", *argv, "--out", str(bad)])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1 and not bad.exists(), err


def test_quiet_silences_the_language_models_progress_lines(tmp_path, capsys):
    """``--quiet``: no training steps and no stage lines on stderr (they print, without it, even off a terminal)."""
    rc = main(["analyze", "--model", "lm", *TINY, "--lambdas", "0.1", "--curvature", "ggn", "--quiet",
               "--out", str(tmp_path / "q")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.err == "", cap.err  # not even the model's and the run's own lines
    assert (tmp_path / "q" / "results.json").exists()


def test_a_refused_selection_is_the_only_line_and_the_largest_seed_runs(tmp_path, capsys):
    """--select validation with no λ that has a Hessian prediction: the error alone (the summary table printed
    before it). The largest --seed (2^63 − 1) runs: the smallest-eigenvalue run's seed + 1 overflowed after
    training."""
    argv = ["analyze", "--model", "lm", *TINY, "--subsamples", "0", "--quiet", "--curvature", "hessian",
            "--lambdas", "1e-6,2e-6", "--select", "validation", "--out", str(tmp_path / "s")]
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == "" and cap.err.count("\n") == 1 and "no λ of the grid has a hessian prediction" in \
        cap.err, cap
    assert not (tmp_path / "s").exists()
    rc = main(["analyze", "--model", "lm", *TINY, "--subsamples", "0", "--quiet", "--curvature", "ggn",
               "--seed", str(2**63 - 1), "--lambdas", "0.1", "--out", str(tmp_path / "seed")])
    assert rc == 0 and json.loads((tmp_path / "seed" / "results.json").read_text())["settings"]["seed"] == 2**63 - 1
