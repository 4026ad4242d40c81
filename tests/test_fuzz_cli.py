"""Fuzz the command line's contract with random CSV files, λ lists and output locations.

Whatever the input, `ridgelens.cli.main` must
- return 0 or 2 (a malformed command line: SystemExit(2), as argparse does);
- on 2, print exactly one line starting `ridgelens: error:` and no traceback;
- on failure, leave every file and folder around it byte for byte as it was (no partial
  output, no `.ridgelens-tmp-*` leftovers, no new parent folders);
- on success, change nothing but the output folder, never replace a non-empty folder
  without --overwrite, and report distinct, non-blank feature names (no silent misread).

Only the closed-form linear and logistic models run here, in-process, so each example is
fast. The default profile runs 25 examples; the `slow` one 300
(`pytest tests/test_fuzz_cli.py -m slow --hypothesis-show-statistics` says what stopped each run).
"""

import contextlib
import csv
import io
import json
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ridgelens.cli import main

NAMES = st.one_of(
    st.sampled_from(["a", "b", "y", "t", "x1", "", " ", "a ", "\ufeffa", "é", "1", "2.5", "a,b", 'q"', "y\n"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=5),
)
CELLS = st.one_of(
    st.integers(-3, 3).map(str),
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["", "x", "nan", "inf", "-inf", "1e400", " 2 ", "1_0", "0x1", "١", "\x00", "1,5", '"3"']),
    st.floats().map(repr),
)


@st.composite
def csv_files(draw) -> bytes:
    """Bytes of a CSV: a header and rows (ragged at times), written plainly or quoted, in an encoding."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=80))
    ncol = draw(st.integers(1, 4))
    plain = st.sampled_from(["a", "b", "c", "y", "t", "x1", "é"])
    header = draw(st.lists(plain, min_size=ncol, max_size=ncol, unique=True)
                  | st.lists(NAMES, min_size=ncol, max_size=ncol))
    numeric = draw(st.integers(0, 2)) > 0  # a numeric body 2/3 of the time
    cell = st.integers(0, 1).map(str) | st.floats(-5, 5).map(lambda v: f"{v:.4g}") if numeric else CELLS
    nrow = draw(st.integers(0, 8) | st.integers(2, 12) if numeric else st.integers(0, 8))
    rows = [draw(st.lists(cell, min_size=ncol if numeric else max(ncol - 1, 0),
                          max_size=ncol if numeric else ncol + 1)) for _ in range(nrow)]
    if draw(st.booleans()):
        buf = io.StringIO()
        csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([header, *rows])
        text = buf.getvalue()
    else:
        text = "\n".join(",".join(r) for r in [header, *rows]) + draw(st.sampled_from(["", "\n", "\n\n"]))
    enc = draw(st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    return text.encode(enc, errors="replace")


@st.composite
def valid_csv_files(draw) -> bytes:
    """A well-formed numeric CSV (a 0/1 last column, so logistic can run too)."""
    ncol = draw(st.integers(2, 4))
    header = draw(st.lists(st.sampled_from(["a", "b", "c", "y", "t", "x1", "é", "long name"]),
                           min_size=ncol, max_size=ncol, unique=True))
    nrow = draw(st.integers(3, 12))
    num = st.floats(-5, 5, allow_nan=False).map(lambda v: f"{v:.4g}")
    rows = [[*draw(st.lists(num, min_size=ncol - 1, max_size=ncol - 1)), draw(st.sampled_from(["0", "1"]))]
            for _ in range(nrow)]
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


GOOD_LAMBDAS = st.lists(st.floats(0, 10).map(lambda v: f"{v:.3g}"), min_size=1, max_size=3).map(",".join)
ANY_LAMBDA = st.one_of(
    st.floats(0, 10).map(lambda v: f"{v:.3g}"),
    st.sampled_from(["0", "-1", "-0.5", "nan", "inf", "1e400", "", " ", "x", "1e-300", "--1"]),
    st.floats().map(repr),
)
# Each dimension is valid most of the time, so that the others (the CSV above all) get reached.
LAMBDAS = st.one_of(GOOD_LAMBDAS, GOOD_LAMBDAS, GOOD_LAMBDAS, GOOD_LAMBDAS,
                    st.lists(ANY_LAMBDA, min_size=1, max_size=4).map(",".join))

GOOD_OUT = ["new", "nested", "empty", "previous", "odd-name"]
BAD_OUT = ["foreign", "file", "under-file", "blank", "long"]
OUT_KINDS = st.sampled_from(GOOD_OUT * 3 + BAD_OUT)


def prepare_out(root: Path, kind: str) -> str:
    """Make the output location of the given kind under ``root``; returns the --out argument."""
    if kind == "new":
        return str(root / "out")
    if kind == "nested":
        return str(root / "a" / "b" / "out")
    if kind == "empty":
        (root / "out").mkdir()
        return str(root / "out")
    if kind in ("previous", "foreign"):
        (root / "out").mkdir()
        (root / "out" / "results.json").write_text('{"old": 1}')
        (root / "out" / "paths.png").write_bytes(b"old")
        if kind == "foreign":
            (root / "out" / "notes.txt").write_text("mine")
        return str(root / "out")
    if kind == "file":
        (root / "out").write_text("a file")
        return str(root / "out")
    if kind == "under-file":
        (root / "f").write_text("a file")
        return str(root / "f" / "out")
    if kind == "blank":
        return ""
    if kind == "long":
        return str(root / ("x" * 256))
    return str(root / "out ♥ [1]")


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def call(argv) -> tuple[int, str]:
    """``main(argv)`` as a user's process runs it: Python's default warning filters, not pytest's
    (which turn RuntimeWarnings into errors); the CLI prints numerical warnings as warning lines."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        try:
            code = main(argv)
        except SystemExit as exc:  # a malformed command line, reported by argparse
            code = exc.code
    return code, err.getvalue()


def check_contract(data: bytes, target, model: str, lambdas: str, kind: str, overwrite: bool,
                   record: bool = True) -> int:
    """Run one case and check the contract; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "d.csv").write_bytes(data)
        out = prepare_out(root, kind)
        before = snapshot(root)
        argv = ["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", model, f"--lambdas={lambdas}",
                "--out", out, *(["--target", target] if target is not None else []),
                *(["--overwrite"] if overwrite else [])]
        code, err = call(argv)
        if record:  # what stopped the run: see --hypothesis-show-statistics
            event(f"exit {code}")
            if code == 2:
                event(err.splitlines()[-1].replace(str(root), "")[18:60] if err else "")
        assert "Traceback" not in err, err
        assert code in (0, 2), (code, err)
        after = snapshot(root)
        assert not [k for k in after if ".ridgelens-tmp-" in k], after.keys()
        if code == 2:
            assert [ln.startswith("ridgelens: error:") for ln in err.splitlines()].count(True) == 1, err
            assert after == before, err
            return code
        out_rel = Path(out).relative_to(root)
        mine = {str(out_rel), *map(str, out_rel.parents)}  # the folder and the parents it may have made

        def others(snap):
            return {k: v for k, v in snap.items() if k not in mine and not k.startswith(f"{out_rel}/")}

        assert others(after) == others(before)
        if kind in ("previous", "foreign"):
            assert overwrite and kind == "previous", "a non-empty folder was replaced"
        res = json.loads((Path(out) / "results.json").read_text())
        features = [n for n in res["param_names"] if n != "intercept"]
        assert len(set(features)) == len(features) and all(n.strip() == n and n for n in features), features
        assert not any("\ufeff" in n for n in features)
        return code


def fuzz_args():
    return dict(
        data=st.one_of(valid_csv_files(), csv_files()),
        target=st.one_of(st.none(), st.none(), NAMES),
        model=st.sampled_from(["linear", "logistic"]),
        lambdas=LAMBDAS,
        kind=OUT_KINDS,
        overwrite=st.booleans(),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**fuzz_args())
def test_cli_contract(data, target, model, lambdas, kind, overwrite):
    check_contract(data, target, model, lambdas, kind, overwrite)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**fuzz_args())
def test_cli_contract_long(data, target, model, lambdas, kind, overwrite):
    check_contract(data, target, model, lambdas, kind, overwrite)


def test_valid_examples_succeed_under_the_contract():
    """The success branch of the contract is exercised whatever the default profile draws."""
    rows = "\n".join(f"{i},{(i * 7) % 5},{i % 2}" for i in range(12))
    assert check_contract(f"a,b,y\n{rows}\n".encode(), None, "logistic", "0.1,1", "previous", True,
                          record=False) == 0
    assert check_contract(f"\ufeffa,b,y\n{rows}\n".encode(), "a", "linear", "0,0.5", "nested", False,
                          record=False) == 0


# ----------------------------------------------------------------- torch objectives (the API)
TORCH_CASES = dict(
    reduction=st.sampled_from(["mean", "mean", "sum", "none"]),
    dropout=st.sampled_from(["none", "module p=0", "module p=0.3", "inline p=0.3", "inline p=0"]),
    train=st.booleans(),
    eval_mode=st.booleans(),
    loader=st.sampled_from(["list", "ordered", "shuffle", "shuffle+drop_last", "replacement"]),
    nan_at=st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 49), st.integers(0, 3))),
    int_inputs=st.sampled_from([False, False, False, True]),
)


def torch_case(reduction, dropout, train, eval_mode, loader, nan_at, int_inputs):
    """Build a TorchObjective from the drawn pieces; returns (objective or exception, why it must fail or None)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    import ridgelens as rl

    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randn(50, 1, generator=g, dtype=torch.float64)
    if nan_at is not None:
        X[nan_at] = float("nan")
    if int_inputs:
        X = (X * 3).round().long()
    p = 0.3 if "0.3" in dropout else 0.0

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 1)
            self.drop = nn.Dropout(p) if dropout.startswith("module") else None

        def forward(self, x):
            h = torch.tanh(self.a(x))
            h = self.drop(h) if self.drop is not None else h
            if dropout.startswith("inline"):
                h = F.dropout(h, p=p, training=self.training)
            return self.b(h)

    torch.manual_seed(1)
    net = Net().double().train(train)
    ds = torch.utils.data.TensorDataset(X, Y)
    batches = {
        "list": [(X[i:i + 16], Y[i:i + 16]) for i in range(0, 50, 16)],
        "ordered": torch.utils.data.DataLoader(ds, batch_size=16),
        "shuffle": torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True),
        "shuffle+drop_last": torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, drop_last=True),
        "replacement": torch.utils.data.DataLoader(
            ds, batch_size=16, sampler=torch.utils.data.RandomSampler(ds, replacement=True)),
    }[loader]
    loss = nn.MSELoss(reduction=reduction)
    must_fail = ("NaN" if nan_at is not None else "integer inputs" if int_inputs
                 else "not a mean" if reduction != "mean"
                 else "random" if (p > 0 and train and not eval_mode) or loader in ("shuffle+drop_last", "replacement")
                 else None)
    try:
        return rl.TorchObjective(net, loss, batches, eval_mode=eval_mode), must_fail
    except Exception as exc:
        return exc, must_fail


def check_torch_contract(**case):
    import ridgelens as rl

    obj, must_fail = torch_case(**case)
    event(f"must fail: {must_fail}")
    if isinstance(obj, Exception):
        assert isinstance(obj, rl.RidgelensError), f"untyped {type(obj).__name__}: {obj}"
        assert must_fail is not None, f"a valid objective was refused: {obj}"
        assert "\n" not in str(obj) and str(obj)
        return "refused"
    assert must_fail is None, f"accepted although {must_fail}"
    v1, v2 = obj.value(obj.theta0), obj.value(obj.theta0)  # what was accepted is a fixed function
    assert abs(v1 - v2) <= 1e-12 * abs(v1)  # (a shuffled order sums in another order: rounding only)
    return "accepted"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**TORCH_CASES)
def test_torch_objective_contract(**case):
    check_torch_contract(**case)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**TORCH_CASES)
def test_torch_objective_contract_long(**case):
    check_torch_contract(**case)


# --------------------------------------------------------------- corrupted checkpoints (the CLI)
@pytest.fixture(scope="module")
def intact_checkpoint(tmp_path_factory):
    """A tiny MLP run with --checkpoint: its folder of refit checkpoints, and the CSV it ran on."""
    root = tmp_path_factory.mktemp("ck")
    rows = "\n".join(f"{i / 10},{(i * 7) % 5},{(i % 3) / 2}" for i in range(12))
    (root / "d.csv").write_text(f"a,b,y\n{rows}\n")
    code, err = call(mlp_args(root, root / "ck", root / "out"))
    assert code == 0, err
    return root


def mlp_args(root, ck, out):
    return ["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2", "--train-iters", "30",
            "--refit-iters", "30", "--lambdas", "0.1,1", "--checkpoint", str(ck), "--out", str(out)]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["refit_0.pt", "refit_1.pt"]), cut=st.floats(0, 0.99),
       garbage=st.binary(max_size=40), mode=st.sampled_from(["truncate", "garbage", "flip"]))
def test_corrupted_checkpoint_is_one_error_naming_it(intact_checkpoint, which, cut, garbage, mode):
    import shutil

    root = intact_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "ck"
        shutil.copytree(root / "ck", ck)
        blob = (ck / which).read_bytes()
        bad = {"truncate": blob[: int(cut * len(blob))], "garbage": garbage,
               "flip": blob[: len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 0xFF]) + blob[len(blob) // 2 + 1:]}[mode]
        (ck / which).write_bytes(bad)
        before = snapshot(Path(tmp))
        code, err = call(mlp_args(root, ck, Path(tmp) / "out"))
        assert "Traceback" not in err, err
        if code == 0:  # a flipped byte inside a tensor's data is not detectable by the format: it loads
            event("a corrupted file that still loads")
            assert mode == "flip"
            return
        assert code == 2, err
        lines = [ln for ln in err.splitlines() if ln.startswith("ridgelens: error:")]
        assert len(lines) == 1 and str(ck / which) in lines[0], err
        assert snapshot(Path(tmp)) == before


# --------------------------------------------------------------- a results file's loss_plane (explore's boundary)
@pytest.fixture(scope="module")
def linear_results():
    """results.json's dict of a 4-parameter linear analysis, with its true-loss grid."""
    import numpy as np

    import ridgelens as rl
    from ridgelens.data import load_dataset
    from ridgelens.report import loss_plane

    ds = load_dataset("diabetes", standardize=True)
    obj = rl.LeastSquares(ds.X[:, :4], ds.y)
    res = rl.analyze(obj, [0.1, 1.0], refit=False)
    d = res.to_dict() | {"loss_plane": loss_plane(obj, res, resolution=3)}
    return json.loads(json.dumps(d, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else o))


INDEX = st.one_of(st.integers(-2, 5), st.sampled_from([0.5, 1.0, True, False, None, "1", 1e300]))
COORD = st.one_of(st.floats(-3, 3), st.sampled_from([None, float("inf"), float("-inf"), "x", True]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(directions=st.one_of(st.tuples(INDEX, INDEX).map(list), st.lists(INDEX, max_size=3)),
       x=st.one_of(st.just([0.0, 1.0, 2.0]), st.lists(COORD, min_size=2, max_size=4)),
       y=st.sampled_from([None, [0.0, 1.0, 2.0]]))
def test_a_loss_plane_read_back_is_valid_or_refused_by_name(linear_results, directions, x, y):
    """Whatever a results file's loss_plane holds, explore's boundary either refuses it naming the field, or
    what it accepts is drawable: two different integer directions of the analysis, finite increasing axes
    whose sizes match z (before: [0, 99], [-1, 0], [1, 1], [0.5, 1.7] and an infinite x were accepted)."""
    import math

    from ridgelens.errors import RidgelensError
    from ridgelens.report import ExplorerData

    lp = dict(linear_results["loss_plane"], directions=directions, x=x)
    if y is not None:
        lp["y"] = y
    lp["z"] = [[0.0] * len(x)] * len(lp["y"])
    try:
        data = ExplorerData.from_results(linear_results | {"loss_plane": lp})
    except RidgelensError as exc:
        assert str(exc).startswith("results.json: 'loss_plane': ") and "\n" not in str(exc), exc
        return
    a, b = data.loss_plane["directions"]
    assert [a, b] == directions and a != b and 0 <= min(a, b) and max(a, b) < data.eigenvalues.size
    assert all(not isinstance(v, bool) and float(v).is_integer() for v in directions)  # 1.0 is JSON's 1
    for axis in (x, lp["y"]):
        assert all(math.isfinite(float(v)) for v in axis) and axis == sorted(set(axis))
