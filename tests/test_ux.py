"""Progress bars, --version, a light --help, and how an Analysis shows itself (summary, HTML, pandas)."""

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens import _progress
from ridgelens.cli import main
from ridgelens.pipeline import _display


def test_progress_draws_only_when_enabled_and_nests():
    s = io.StringIO()
    with _progress.Progress("outer stage", 2, enabled=True, stream=s, unit="refits") as outer:
        with _progress.Progress("inner stage", 3, enabled=True, stream=s) as inner:
            inner.advance(3)
        outer.advance()
    text = s.getvalue()
    assert "outer stage" in text and "inner stage" in text and "0/3" in text and inner.done == 3
    assert _progress._live["progress"] is None  # the display stopped with the last bar
    quiet = io.StringIO()
    with _progress.Progress("x", 2, stream=quiet) as bar:  # not a terminal: silent by default
        bar.advance()
    assert quiet.getvalue() == "" and bar.done == 1
    with _progress.quiet():
        assert not _progress.is_enabled()
    _progress.set_enabled(True)
    try:
        assert _progress.is_enabled() and not _progress.is_enabled(False)
    finally:
        _progress.set_enabled(None)


def test_every_long_stage_reports_progress(capsys):
    import torch

    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor(X[:100, :3] / X[:100, :3].std(0))
    Y = torch.tensor((y[:100] - y[:100].mean()) / y[:100].std())[:, None]
    obj = rl.TorchObjective(torch.nn.Linear(3, 1).double(), torch.nn.functional.mse_loss, [(X, Y)])
    rl.analyze(obj, [0.5, 1.0], method="matrix-free", k=2, progress=True, polish=True)
    err = capsys.readouterr().err
    for stage in ("minimize (trust-ncg)", "lanczos", "spectral density (SLQ)", "krylov", "refit θ*(λ = 0.5)"):
        assert stage in err, stage
    rl.analyze(obj, [0.5], method="matrix-free", k=2, refit=False)  # stderr is not a terminal: silent
    assert capsys.readouterr().err == ""


def test_cli_draws_bars_on_a_terminal_and_quiet_silences_them(tmp_path, capsys):
    argv = ["analyze", "--data", "diabetes", "--model", "mlp", "--hidden", "2", "--train-iters", "5",
            "--refit-iters", "5", "--lambdas", "0.1", "--standardize"]
    _progress.set_enabled(True)  # as if stderr were a terminal
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "training the MLP (L-BFGS)" in err and "refit θ*(λ = 0.1)" in err
    assert _progress._setting is None  # the CLI restores the setting
    _progress.set_enabled(True)
    assert main([*argv, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert "━" not in capsys.readouterr().err


def test_version_and_a_help_that_imports_neither_torch_nor_numpy(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"ridgelens {rl.__version__}"
    code = ("import sys\nfrom ridgelens.cli import main\n"
            "for argv in (['--help'], ['analyze', '--help'], ['demo', '--help'], ['explore', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'sklearn', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "--batch-size" in done.stdout and "--quiet" in done.stdout


def test_help_texts_state_the_defaults_the_code_uses():
    from ridgelens.cli import build_parser
    from ridgelens.cli._analyze import MLP_DEFAULTS, TORCH_DEFAULTS

    sub = build_parser()._subparsers._group_actions[0].choices["analyze"]
    helps = {a.dest: a.help for a in sub._actions}
    assert "squared loss" in helps["model"] and "cross-entropy" not in helps["model"]
    assert "default: 10" in helps["k"] and "default: 20" in helps["k"]
    assert f"default: {MLP_DEFAULTS['hidden']}" in helps["hidden"]
    assert f"default: {MLP_DEFAULTS['train_iters']}" in helps["train_iters"]
    assert float(re.search(r"default: ([0-9.e-]+)\)", helps["refit_tol"]).group(1)) == TORCH_DEFAULTS["refit_tol"]
    assert f"default: {TORCH_DEFAULTS['batch_size']}" in helps["batch_size"]
    assert f"default: {TORCH_DEFAULTS['dtype']}" in helps["dtype"]


@pytest.fixture(scope="module")
def diabetes_analysis():
    X, y = load_diabetes(return_X_y=True)
    return rl.analyze(rl.LeastSquares(X, y), [1e-3, 1e-2, 1e-1])


def test_summary_html_and_pandas_show_the_results(diabetes_analysis):
    res = diabetes_analysis
    text = res.summary()
    lines = text.splitlines()
    assert lines[0].startswith("LeastSquares: n = 442 samples, 11 parameters (10 penalized)")
    body = lines[-3:]
    for line, lam, df in zip(body, res.lambdas, res.effective_df, strict=True):
        cells = line.split()
        assert float(cells[0]) == pytest.approx(lam) and float(cells[1]) == pytest.approx(df, rel=1e-3)
        assert cells[-1] == "yes"
    assert len(repr(res)) < 200 and ".summary()" in repr(res)
    page = res._repr_html_()
    assert page.count("<tr>") == 1 + res.lambdas.size and "‖θ̃−θ*‖/‖θ*‖" in page
    frame = res.to_pandas()
    assert list(frame.columns) == list(_display.COLUMNS)
    np.testing.assert_array_equal(frame["lambda"], res.lambdas)
    np.testing.assert_array_equal(frame["rel_error"], res.rel_error)


def test_to_pandas_without_pandas_says_so(diabetes_analysis, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ModuleNotFoundError, match=r"needs pandas.*pip install pandas"):
        diabetes_analysis.to_pandas()


@pytest.mark.filterwarnings("ignore:θ̂ is not a stationary point", "ignore:the curvature has negative")
def test_forming_a_dense_torch_hessian_reports_its_n_products(capsys):
    import torch

    from ridgelens.operators import HessianOperator

    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor(X[:80, :4] / X[:80, :4].std(0))
    Y = torch.tensor((y[:80] - y[:80].mean()) / y[:80].std())[:, None]
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    obj = rl.TorchObjective(net, torch.nn.functional.mse_loss, [(X, Y)])
    op = HessianOperator(obj, obj.theta0)
    H = op.to_dense(block=5, progress=True).numpy()
    err = capsys.readouterr().err
    assert f"forming the dense matrix (n = {obj.n_params} products)" in err
    assert f"{obj.n_params}/{obj.n_params}" in err  # the bar counted every product (19 in blocks of 5)
    # The matrix is unchanged: the double-backward Hessian, column by column, against one-at-a-time products.
    ref = np.stack([op.matvec(np.eye(obj.n_params)[j]) for j in range(obj.n_params)], axis=1)
    np.testing.assert_allclose(H, 0.5 * (ref + ref.T), rtol=1e-12, atol=1e-14)
    op.to_dense()  # stderr is not a terminal: silent by default
    assert capsys.readouterr().err == ""
    rl.analyze(obj, [0.5], method="dense", refit=False, progress=True)  # analyze's own dense stage shows it too
    assert "forming the dense matrix" in capsys.readouterr().err
