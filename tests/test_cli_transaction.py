"""A run is one transaction: all outputs appear at once, or none do, and the old ones stay whole.

Every failure is checked the same way: the exit code, exactly one `ridgelens: error:` line,
no traceback, and the bytes of every file around the output folder unchanged (which also
proves no `.ridgelens-tmp-*` entry was left behind).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ridgelens.cli import _analyze, _demo, main

LINEAR = ["analyze", "--data", "diabetes", "--model", "linear"]


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: a folder as None, a file as its bytes."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err, expected_code=2):
    assert code == expected_code, err
    assert "Traceback" not in err
    assert [ln.startswith("ridgelens: error:") for ln in err.splitlines()].count(True) == 1, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished linear analysis, run once for the module."""
    out = tmp_path_factory.mktemp("finished") / "o"
    assert main([*LINEAR, "--lambdas", "0.1,1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def previous(tmp_path, finished):
    """A copy of that analysis in tmp_path/o, and the snapshot of tmp_path."""
    shutil.copytree(finished, tmp_path / "o")
    return snapshot(tmp_path)


def test_non_empty_out_is_refused_unless_overwrite(tmp_path, capsys, previous):
    code, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o")
    assert_one_error(code, err)
    assert "already holds files" in err and "--overwrite" in err
    assert snapshot(tmp_path) == previous
    code, out, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o", "--overwrite")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "results.json").read_text())["lambdas"] == [0.5]
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # the old folder was deleted, no temporary left
    assert f"wrote {tmp_path / 'o'}/" in out  # the final name, not the staging folder's


def test_overwrite_never_deletes_files_ridgelens_did_not_write(tmp_path, capsys, previous):
    (tmp_path / "o" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o", "--overwrite")
    assert_one_error(code, err)
    assert "notes.txt, which ridgelens did not write" in err
    assert snapshot(tmp_path) == before


def test_an_empty_folder_is_filled(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    code, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o")
    assert code == 0, err
    assert (tmp_path / "o" / "results.json").exists() and [p.name for p in tmp_path.iterdir()] == ["o"]


@pytest.mark.parametrize(("exc", "code", "needle"), [
    (RuntimeError("cannot draw"), 1,
     "internal error (RuntimeError: cannot draw); rerun with RIDGELENS_DEBUG=1 for the traceback"),
    (OSError(28, "No space left on device", "rel_error.png"), 2, "rel_error.png: No space left on device"),
])
def test_a_late_failure_leaves_the_previous_outputs(tmp_path, capsys, monkeypatch, previous, exc, code, needle):
    # results.json and two figures are already in the staging folder when the third figure fails.
    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(_analyze, "plot_rel_error", broken)
    c, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o", "--overwrite")
    assert_one_error(c, err, code)
    assert needle in err
    assert snapshot(tmp_path) == previous
    # A new, nested target: not even its parent folders remain.
    c, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "a" / "b" / "c")
    assert_one_error(c, err, code)
    assert snapshot(tmp_path) == previous


def test_debug_env_shows_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(_analyze, "plot_rel_error", broken)
    monkeypatch.setenv("RIDGELENS_DEBUG", "1")
    c, _, err = run(capsys, *LINEAR, "--lambdas", "0.5", "--out", tmp_path / "o")
    assert c == 1 and "Traceback" in err and "in broken" in err
    assert err.splitlines()[-1].startswith("ridgelens: error: internal error (RuntimeError")
    assert list(tmp_path.iterdir()) == []


def test_demo_is_one_transaction(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_text("old")
    before = snapshot(tmp_path)

    def broken(stage):  # part (a) has written contour.png into the staging folder by now
        assert (stage / "contour.png").exists() and stage.name.startswith(".ridgelens-tmp-")
        raise RuntimeError("part b failed")

    monkeypatch.setattr(_demo, "_part_b", broken)
    code, _, err = run(capsys, "demo", "--out", out, "--overwrite")
    assert_one_error(code, err, 1)
    assert snapshot(tmp_path) == before
    code, _, err = run(capsys, "demo", "--out", out)
    assert_one_error(code, err)
    assert "already holds files (demo.json)" in err


@pytest.fixture
def no_compute(monkeypatch):
    """Make loading the data fail loudly: the checks under test must come before it."""
    def computed(*a, **k):
        raise AssertionError("computed before checking")

    monkeypatch.setattr(_analyze, "load_dataset", computed)


@pytest.mark.parametrize(("out", "extra", "needle"), [
    ("file", [], "exists and is not a folder"),
    ("file/sub", [], "is a file, not a folder"),
    ("", [], "--out is empty"),
    ("x" * 300, [], "is 300 bytes long; this file system allows"),
    (".", [], "is the current folder or contains it"),
    ("o", ["--checkpoint", "file"], "--checkpoint file exists and is not a folder"),
    ("o", ["--checkpoint", "o/ck"], "lies inside --out"),
    ("o", ["--checkpoint", "file/ck"], "is a file, not a folder"),
])
def test_bad_locations_are_found_before_computing(tmp_path, capsys, monkeypatch, no_compute, out, extra, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("keep")
    before = snapshot(tmp_path)
    model = ["--model", "mlp"] if extra else ["--model", "linear"]
    code, _, err = run(capsys, "analyze", "--data", "diabetes", *model, "--lambdas", "0.1", *extra, "--out", out)
    assert_one_error(code, err)
    assert needle in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--train-iters", "-5", "--train-iters must be an integer >= 1, got -5"),
    ("--hidden", "0", "--hidden must be an integer >= 1, got 0"),
    ("--refit-iters", "0", "--refit-iters must be an integer >= 1, got 0"),
    ("--k", "0", "--k must be a positive number"),
    ("--refit-tol", "-0.001", "--refit-tol must be a positive number"),
    ("--refit-tol", "nan", "--refit-tol must be a positive number"),
    ("--seed", "-1", "--seed must be an integer in [0, 2^63)"),
])
def test_numbers_are_checked_at_the_boundary(tmp_path, capsys, no_compute, option, value, needle):
    code, _, err = run(capsys, "analyze", "--data", "digits", "--model", "mlp", "--lambdas", "0.1",
                       option, value, "--out", tmp_path / "o")
    assert_one_error(code, err)
    assert needle in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lambdas", ["", ",", " , "])
def test_empty_lambdas_is_one_usage_line(tmp_path, capsys, lambdas):
    with pytest.raises(SystemExit) as info:
        main([*LINEAR, "--lambdas", lambdas, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("ridgelens: error: argument --lambdas: --lambdas is empty")


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody (not even root) can create entries in, or a skip saying why there is none."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = False
    if _writable(ro):  # root ignores permission bits; an immutable folder stops root too
        ro.chmod(0o755)
        immutable = subprocess.run(["chattr", "+i", str(ro)], capture_output=True, check=False).returncode == 0
        if not immutable or _writable(ro):
            pytest.skip("cannot make a read-only folder here (root without chattr +i)")
    yield ro
    if immutable:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    ro.chmod(0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").mkdir()
    except OSError:
        return False
    (folder / "probe").rmdir()
    return True


def test_read_only_locations_are_found_before_computing(tmp_path, capsys, no_compute, read_only):
    before = snapshot(tmp_path)
    for out, needle in [(read_only / "new", "cannot create files in"), (read_only, "ro is read-only")]:
        code, _, err = run(capsys, *LINEAR, "--lambdas", "0.1", "--out", out, "--overwrite")
        assert_one_error(code, err)
        assert needle in err
    code, _, err = run(capsys, "explore", "--demo", "--out", read_only / "page.html")
    assert_one_error(code, err)
    assert "cannot create files in" in err
    assert snapshot(tmp_path) == before


@pytest.fixture
def results_json(finished):
    return json.loads((finished / "results.json").read_text())


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.update(lambdas=[0.01, -0.1]), "lambdas[1] is -0.1"),
    (lambda d: d.update(lambdas=[None, 0.1]), "lambdas[0] is null"),
    (lambda d: d.update(lambdas=[0.01, True]), "lambdas[1] is true"),
    (lambda d: d.update(lambdas=[]), "'lambdas' must be a non-empty list"),
    # A density of bandwidth 0 (or < 0) was drawn: NaN (or negative) on a reversed grid, exit 0.
    (lambda d: d.update(density={"nodes": [0.5, 1.0], "weights": [0.5, 0.5], "bandwidth": 0.0}),
     "bandwidth must be a positive number, got 0.0"),
])
def test_explore_refuses_bad_lambdas(tmp_path, capsys, results_json, edit, needle):
    d = json.loads(json.dumps(results_json))
    edit(d)
    (tmp_path / "r.json").write_text(json.dumps(d))
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "explore", tmp_path / "r.json", "--out", tmp_path / "new" / "p.html")
    assert_one_error(code, err)
    assert needle in err
    assert snapshot(tmp_path) == before


def test_explore_deeply_nested_json_and_a_late_failure(tmp_path, capsys, monkeypatch):
    (tmp_path / "deep.json").write_text("[" * 100_000)
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "explore", tmp_path / "deep.json", "--out", tmp_path / "p.html")
    assert_one_error(code, err)
    assert "nested too deeply" in err
    from ridgelens.report import _page

    def broken(*a, **k):
        raise RuntimeError("plotly broke")

    monkeypatch.setattr(_page, "explorer_html", broken)
    code, _, err = run(capsys, "explore", "--demo", "--out", tmp_path / "a" / "b" / "p.html")
    assert_one_error(code, err, 1)
    assert snapshot(tmp_path) == before  # neither the page nor its new parent folders
    code, _, err = run(capsys, "explore", "--demo", "--out", "")
    assert_one_error(code, err)
    assert "--out is empty" in err


def _start(cwd: Path, *extra):
    """`python -m ridgelens analyze` on a 97-parameter MLP with 4000 λ: 4000 short refits (a few ms each).

    Gauss-Newton curvature keeps every λ valid (this barely trained MLP's Hessian is indefinite,
    and a λ with no minimizer is not refit), so the refits run and are checkpointed one by one.
    4000 rather than 1000: on a loaded machine the test process once read the "trained" line
    only after the child had run every refit and was committing, and its signal came too late.
    --refit-iters 6 rather than 2 for the same reason (a fresh-clone CI run of 2026-12-02 missed
    the 11 s window again): the refits now take about 3× as long, and an interrupted run no longer.
    """
    lambdas = ",".join(f"{v:.4g}" for v in [10 ** (-4 + 4 * i / 3999) for i in range(4000)])
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "ridgelens", "analyze", "--data", "diabetes", "--standardize", "--model", "mlp",
         "--hidden", "8", "--train-iters", "5", "--refit-method", "lbfgs", "--refit-iters", "6", "--curvature", "ggn",
         "--lambdas", lambdas, "--out", "o", "--overwrite", *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_sigint_and_sigterm_leave_no_partial_output(tmp_path):
    # Two runs at once (one per signal), each into a folder holding a previous run's outputs.
    runs = {}
    for sig, extra in [(signal.SIGINT, []), (signal.SIGTERM, ["--checkpoint", "ck"])]:
        cwd = tmp_path / sig.name
        (cwd / "o").mkdir(parents=True)
        (cwd / "o" / "results.json").write_text('{"old": true}')
        (cwd / "o" / "paths.png").write_bytes(b"old png")
        runs[sig] = (cwd, snapshot(cwd), _start(cwd, *extra))
    for sig, (cwd, _before, proc) in runs.items():
        # Computing: past training (its line is printed), for SIGTERM past the first saved refit.
        _wait_for(lambda p=proc: p.stdout.readline().startswith("trained the"), proc, "training ended")
        if sig == signal.SIGTERM:
            _wait_for(lambda c=cwd: any((c / "ck").glob("refit_*")), proc, "the first refit was saved")
        # It was staging: the staging folder, not the old outputs set aside by a commit under way.
        assert any(p.name.startswith(".ridgelens-tmp-") and "-old-" not in p.name for p in cwd.iterdir())
        proc.send_signal(sig)
    for sig, (cwd, before, proc) in runs.items():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err
        assert "Traceback" not in err
        last = err.splitlines()[-1]
        if sig == signal.SIGINT:
            assert last == "ridgelens: interrupted"
            assert snapshot(cwd) == before
        else:
            assert last == "ridgelens: interrupted; checkpoint saved in ck"
            after = snapshot(cwd)
            assert {k: v for k, v in after.items() if not k.startswith("ck")} == before
            assert any(k.startswith("ck/refit_") for k in after)  # the checkpoint is kept, to resume from
        assert not [ln for ln in err.splitlines() if ln.startswith("ridgelens: error")]


def test_lambda_zero_alone_is_drawn_without_the_log_axis_paths(tmp_path, capsys):
    # The paths figure has a log λ axis; with only λ = 0 it used to fail after every other output was made.
    code, out, err = run(capsys, *LINEAR, "--lambdas", "0", "--out", tmp_path / "o")
    assert code == 0, err
    assert not (tmp_path / "o" / "paths.png").exists() and (tmp_path / "o" / "rel_error.png").exists()
    assert "paths.png" not in out


def test_numerical_warnings_are_printed_not_swallowed(tmp_path, capsys, monkeypatch):
    import warnings

    real = _analyze.plot_rel_error

    def noisy(*a, **k):
        for _ in range(3):
            warnings.warn("overflow encountered in exp", RuntimeWarning, stacklevel=1)
        warnings.warn("some library is deprecated", DeprecationWarning, stacklevel=1)
        return real(*a, **k)

    monkeypatch.setattr(_analyze, "plot_rel_error", noisy)
    with warnings.catch_warnings():
        warnings.resetwarnings()  # Python's defaults, as in a user's shell (pytest's turn these into errors)
        warnings.simplefilter("default")
        code, _, err = run(capsys, *LINEAR, "--lambdas", "0.1", "--out", tmp_path / "o")
    assert code == 0, err
    assert "ridgelens: warning: RuntimeWarning: overflow encountered in exp" in err
    assert "deprecated" not in err and err.count("\n") == 1


def test_a_run_killed_with_sigkill_leaves_a_staging_folder_the_next_run_removes(tmp_path, capsys):
    # SIGKILL cannot be caught; its staging folder (named with host and pid) is removed by the next run
    # beside it once that process is gone. A live process's and another host's are kept.
    from ridgelens._io import owner_prefix

    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "results.json").write_text('{"old": true}')
    proc = _start(tmp_path)
    # Past training, not merely a ".ridgelens-tmp-" entry seen: the writability probe of --out's
    # parent makes and removes one such folder first, and a fresh-clone CI run of 2026-12-02 killed
    # the run in that instant (no staging folder left to find).
    _wait_for(lambda: proc.stdout.readline().startswith("trained the"), proc, "training ended")
    _wait_for(lambda: any(p.name.startswith(".ridgelens-tmp-") for p in tmp_path.iterdir()), proc, "staging began")
    proc.kill()
    proc.communicate(timeout=60)
    stale = [p.name for p in tmp_path.iterdir() if p.name.startswith(".ridgelens-tmp-")]
    assert len(stale) == 1 and (tmp_path / "o" / "results.json").read_text() == '{"old": true}'
    live, foreign = tmp_path / f"{owner_prefix()}live", tmp_path / ".ridgelens-tmp-ffffff-1-other-host"
    live.mkdir()
    foreign.mkdir()
    code, _, err = run(capsys, *LINEAR, "--lambdas", "0.1", "--out", tmp_path / "o", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o", live.name, foreign.name])


@pytest.mark.parametrize("lambdas, says", [("1,,2", "entry 2 of '1,,2' is empty"), ("1,2,", "entry 3 of '1,2,' is empty"),
                                           ("1_0", "entry 1 of '1_0' is '1_0'"), ("0.1,x", "entry 2 of '0.1,x' is 'x'")])
def test_a_slip_in_lambdas_is_refused_by_entry_not_read_past(tmp_path, capsys, lambdas, says):
    """``1,,2`` is not read as 1,2 nor ``1_0`` as 10 (float's digit separator): each names its entry."""
    with pytest.raises(SystemExit) as info:
        main([*LINEAR, "--lambdas", lambdas, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert f"argument --lambdas: {says}, not a number" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, says", [
    (["--lambdas", "0.1,1e-400"], "entry 2 of '0.1,1e-400' is '1e-400', a nonzero number that underflows to 0"),
    (["--lambdas", "0.1", "--k", "1_0"], "argument --k: '1_0' is not an integer"),
    (["--lambdas", "0.1", "--positive-class", "0_7"], "argument --positive-class: '0_7' is not a number"),
    (["--lambdas", "0.1", "--select", "validation", "--validation-fraction", "0.1_0"],
     "argument --validation-fraction: '0.1_0' is not a number"),
    (["--lambdas", "0.1", "--features", "²"], "--features: no column '²'"),
])
def test_numbers_on_the_command_line_are_plain_ones(tmp_path, capsys, argv, says):
    """From a bad-input hunt: 1e-400 was used as λ = 0, '1_0' as 10, and '²' was an internal error."""
    assert _exit_code([*LINEAR, *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def _exit_code(argv) -> int:
    """main's exit code: returned for a run, raised (SystemExit) by argparse for a malformed line."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv, says", [
    (["--penalty", "*.bias=0", "--penalty", "*.bias=5"], "--penalty '*.bias=5' contradicts --penalty '*.bias=0'"),
    (["--unpenalized", "*.bias", "--penalty", "*.bias=2"], "--penalty '*.bias=2' contradicts --unpenalized '*.bias'"),
    (["--penalty", "*.bias=1e-400"], "the factor '1e-400' is a nonzero number that underflows to 0"),
])
def test_a_penalty_pattern_given_twice_with_two_factors_is_refused(tmp_path, capsys, argv, says):
    """The help says first match wins; a dict let the last one win (and --unpenalized lose to --penalty)."""
    args = ["analyze", "--data", "diabetes", "--model", "mlp", "--hidden", "2", "--train-iters", "2",
            "--lambdas", "0.1", *argv, "--out", str(tmp_path / "o")]
    code = _exit_code(args)
    err = capsys.readouterr().err
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_every_feature_constant_is_said_of_the_data(tmp_path, capsys):
    """It was the first figure's 'df(λ) needs at least one positive eigenvalue', which names nothing given."""
    csv = tmp_path / "c.csv"
    csv.write_text("a,b,y\n1,2,3\n1,2,4\n1,2,6\n1,2,1\n")
    assert _exit_code(["analyze", "--data", f"csv:{csv}", "--model", "linear", "--lambdas", "0.1",
                       "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "every feature of c is constant (a, b): the loss does not depend on the weights" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()
