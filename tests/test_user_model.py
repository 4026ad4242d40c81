"""A user's own torch model from the CLI and from Python: θ̂ as given, --polish, safe weights and data."""

import copy
import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

import ridgelens as rl
from ridgelens.cli import main
from ridgelens.data import load_dataset
from ridgelens.data._tensors import load_state_dict, load_tensors
from ridgelens.errors import DataError, ModelError

MODEL_PY = '''import torch


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))


def flat():  # make()'s net with outputs of shape (n,), not (n, 1)
    return torch.nn.Sequential(*make(), torch.nn.Flatten(0))


def not_a_module():
    return 42


class _Features(torch.nn.Sequential):
    def forward(self, x):  # an output object without the outputs themselves
        return {"hidden": super().forward(x)}


def features():
    return _Features(*make())


def broken():
    raise RuntimeError("no GPU here")


def exits():
    raise SystemExit(3)


class _NaN(torch.nn.Sequential):
    def forward(self, x):
        return super().forward(x) * float("nan")


def nan_forward():
    return _NaN(*make())


def classifier():  # three classes
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
'''


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A folder with mymodel.py, diabetes.npz (120 real rows, standardized) and briefly trained weights."""
    d = tmp_path_factory.mktemp("user")
    (d / "mymodel.py").write_text(MODEL_PY)
    (d / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    np.savez(d / "diabetes.npz", X=X, y=y)
    ns = {}
    exec(MODEL_PY, ns)
    net = ns["make"]()
    opt = torch.optim.Adam(net.parameters(), 2e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]
    for _ in range(150):
        opt.zero_grad()
        loss = 0.5 * ((net(Xt) - yt) ** 2).sum(1).mean()
        loss.backward()
        opt.step()
    torch.save(net.state_dict(), d / "weights.pt")
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double().numpy()
    return {"dir": d, "X": X, "y": y, "theta": flat, "net": net}


def _args(user, *more, out="o"):
    d = user["dir"]
    return ["analyze", "--data", f"tensors:{d / 'diabetes.npz'}", "--model", f"{d / 'mymodel.py'}:make",
            "--weights", str(d / "weights.pt"), "--lambdas", "0.05,0.5", "--out", str(d / out), "--overwrite", *more]


def _half_mse(theta, user):
    """½ mean squared error at a flat θ, computed here with plain torch in float64 (the reference)."""
    W1, b1, W2, b2 = np.split(theta, [30, 33, 36])
    h = np.tanh(user["X"] @ W1.reshape(3, 10).T + b1)
    return float(0.5 * np.mean((h @ W2.reshape(1, 3).T + b2 - user["y"][:, None]) ** 2))


def test_user_weights_are_theta_hat_as_given(user, capsys):
    code, out, err = run(capsys, *_args(user, out="given"))
    assert code == 0, err
    assert "not re-minimized" in out
    res = json.loads((user["dir"] / "given" / "results.json").read_text())
    np.testing.assert_array_equal(res["theta_hat"], user["theta"])  # float32 weights, exactly, in float64
    assert res["polish"] is None and res["choices"]["theta_hat"] == "the model's own weights"
    assert res["dtype"] == "float64" and res["model_factory"].endswith("mymodel.py:make")


def test_polish_reports_how_far_theta_moved_and_the_loss(user, capsys):
    code, out, err = run(capsys, *_args(user, "--polish", out="polished"))
    assert code == 0, err
    res = json.loads((user["dir"] / "polished" / "results.json").read_text())
    p = res["polish"]
    moved = np.linalg.norm(np.array(res["theta_hat"]) - user["theta"])
    assert p["moved"] == pytest.approx(moved, rel=1e-12) and p["moved"] > 1e-3
    assert p["moved_relative"] == pytest.approx(moved / np.linalg.norm(user["theta"]), rel=1e-12)
    assert p["loss_before"] == pytest.approx(_half_mse(user["theta"], user), rel=1e-10)
    assert p["loss_after"] == pytest.approx(_half_mse(np.array(res["theta_hat"]), user), rel=1e-10)
    assert p["loss_after"] < p["loss_before"] and p["converged"]
    assert f"moved ‖Δθ‖ = {p['moved']:.3g}" in out
    # polished to this analysis' own stationarity test, so it does not then warn that θ̂ is not stationary
    assert res["gradient_norm"] <= res["grad_tol"] and "GradientNotZeroWarning" not in err, err


def test_module_factory_and_safetensors_give_the_same_theta(user, capsys, monkeypatch):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in user["net"].state_dict().items()}, user["dir"] / "w.safetensors")
    monkeypatch.chdir(user["dir"])
    code, _, err = run(capsys, "analyze", "--data", "tensors:diabetes.npz", "--model", "mymodel:make",
                       "--weights", "w.safetensors", "--lambdas", "0.5", "--out", "st", "--dtype", "float32",
                       "--batch-size", "50", "--quiet")
    assert code == 0, err
    res = json.loads((user["dir"] / "st" / "results.json").read_text())
    np.testing.assert_array_equal(res["theta_hat"], user["theta"])
    assert res["dtype"] == "float32" and res["batch_size"] == 50


def test_a_pickle_in_place_of_weights_is_refused_never_run(user, capsys, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"0.weight": Evil()}))
    argv = _args(user, out="evil")
    argv[argv.index("--weights") + 1] = str(bad)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("ridgelens: error: --weights") and "weights_only=True" in err
    assert err.count("\n") == 1 and not marker.exists() and not (user["dir"] / "evil").exists()
    with pytest.raises(ModelError, match="never executed"):
        load_state_dict(bad)
    assert not marker.exists()


@pytest.mark.parametrize(("model", "needle"), [
    ("{d}/nofile.py:make", "no file"),
    ("{d}:make", "is a folder, not a Python file"),
    ("{d}/mymodel.py:missing", "has no function 'missing'"),
    ("{d}/mymodel.py:not_a_module", "returned a int, not a torch.nn.Module"),
    ("{d}/mymodel.py:broken", "RuntimeError: no GPU here"),
    ("{d}/mymodel.py:exits", "calling exits() called sys.exit(3) instead of returning"),
    ("{d}/exits_on_import.py:make", "called sys.exit(0) instead of returning"),
    ("{d}/mymodel.py:features", "returns a dict on the first batch of tensors:"),
    ("no_such_module_xyz:make", "no module named 'no_such_module_xyz'"),
])
def test_bad_model_specs_are_one_line_errors(user, capsys, model, needle):
    argv = _args(user, out="bad")
    argv[argv.index("--model") + 1] = model.format(d=user["dir"])
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (user["dir"] / "bad").exists()


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--device", "warp-drive", "is not a torch device"),
    ("--device", "cuda:99", "--device cuda:99"),
    ("--batch-size", "0", "--batch-size must be an integer >= 1"),
    ("--data", "diabetes", "takes --data tensors:PATH"),
    ("--standardize", None, "--standardize is for the built-in models"),
    ("--hidden", "4", "--hidden is for --model mlp"),
])
def test_bad_options_of_a_user_model(user, capsys, flag, value, needle):
    argv = _args(user, out="bad")
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag] + ([value] if value is not None else [])
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (user["dir"] / "bad").exists()


def test_outputs_shaped_unlike_the_targets_are_one_line(user, capsys):
    """(n,) outputs against the (n, 1) targets would broadcast to an (n, n) squared loss: refused, naming both shapes."""
    argv = _args(user, out="bad")
    argv[argv.index("--model") + 1] = f"{user['dir'] / 'mymodel.py'}:flat"
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert "outputs of shape (120,)" in err and "shaped as the targets, (120, 1)" in err
    assert not (user["dir"] / "bad").exists()


def test_bad_model_spec_form_and_torch_options_on_a_linear_model(user, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--data", "diabetes", "--model", "not a spec", "--lambdas", "1", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "module.path:factory" in capsys.readouterr().err
    code, _, err = run(capsys, "analyze", "--data", "diabetes", "--model", "linear", "--lambdas", "1",
                       "--device", "cpu", "--polish", "--out", str(tmp_path / "o"))
    assert code == 2 and "--device, --polish are for torch models" in err


def test_weights_of_another_shape_and_bad_tensors_files(user, capsys, tmp_path):
    torch.save({"0.weight": torch.zeros(2, 2)}, tmp_path / "small.pt")
    argv = _args(user, out="bad")
    argv[argv.index("--weights") + 1] = str(tmp_path / "small.pt")
    code, _, err = run(capsys, *argv)
    assert code == 2 and "does not fit the model" in err
    # which parameter and both shapes, not only torch's header line ("Error(s) in loading state_dict for …:")
    assert "size mismatch for 0.weight" in err and "torch.Size([2, 2])" in err and err.count("\n") == 1, err
    np.savez(tmp_path / "noy.npz", X=user["X"])
    with pytest.raises(DataError, match=r"must hold X and y \(found \['X'\]\)"):
        load_tensors(tmp_path / "noy.npz")
    X = user["X"].copy()
    X[7, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=user["y"])
    with pytest.raises(DataError, match="NaN or Inf in row 7"):
        load_tensors(tmp_path / "nan.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([object()]), y=np.zeros(1))
    with pytest.raises(DataError, match="need pickle"):
        load_tensors(tmp_path / "obj.npz")
    torch.save((torch.zeros(3, 2), torch.zeros(4)), tmp_path / "rows.pt")
    with pytest.raises(DataError, match="one row per sample"):
        load_tensors(tmp_path / "rows.pt")
    with pytest.raises(DataError, match="must end in"):
        load_tensors(tmp_path / "data.csv")
    torch.save({"X": torch.eye(4).to_sparse(), "y": torch.zeros(4)}, tmp_path / "sparse.pt")
    with pytest.raises(DataError, match=r"X is a torch\.sparse_coo tensor; save it dense"):  # was exit 1
        load_tensors(tmp_path / "sparse.pt")
    torch.save({"X": torch.ones(1, 3), "y": torch.zeros(1)}, tmp_path / "one.pt")
    with pytest.raises(DataError, match=r"holds 1 sample; need at least 2"):  # as a CSV of one row (the mlp ran)
        load_tensors(tmp_path / "one.pt")
    torch.save({"X": torch.eye(4, dtype=torch.float64), "y": torch.tensor([2**53, 2**53 + 1] * 2)}, tmp_path / "i.pt")
    with pytest.raises(DataError, match=r"y holds integers up to 9007199254740993 in size, past 2\^53"):  # 2 classes
        load_dataset("tensors:" + str(tmp_path / "i.pt"))  # were one after the float64 cast: 'a single class'
    torch.save({"X": torch.eye(4).to(torch.float8_e4m3fn), "y": torch.zeros(4)}, tmp_path / "f8.pt")
    with pytest.raises(DataError, match=r"X has dtype torch\.float8_e4m3fn; save it as float64"):  # was exit 1
        load_tensors(tmp_path / "f8.pt")


@pytest.mark.parametrize(("case", "model", "needle"), [
    ("-100 labels", "classifier", "negative class label (-100) in row 12"),
    ("-1 label, squared loss", "classifier", "negative class label (-1) in row 12"),
    ("label past the outputs", "classifier", "class label 3 in row 12, but the model has 3 outputs"),
    ("label past the outputs, held-out rows", "classifier", "class label 3 in row 12, but the model has 3 outputs"),
    ("one output", "make", "one output, and cross-entropy over one class is 0"),
    ("complex y", "make", "y must be real numeric, got dtype torch.complex128"),
])
def test_labels_the_model_cannot_score_are_one_line_errors(user, capsys, case, model, needle):
    """Class labels the loss would silently skip or misread: -100 (PyTorch's ignored label: the rows left the mean
    while n counted them, and a batch of them gave a NaN loss and an error of 0.0), a negative label under the
    squared loss (an internal error), a label at row 12 (not in the first batch) past the outputs, one output under
    cross-entropy (a loss of 0 whatever θ: an all-zero table), a complex y in a .pt (its imaginary part dropped)."""
    d = user["dir"]
    y = np.arange(120) % 3
    if case == "complex y":
        torch.save({"X": torch.tensor(user["X"]), "y": torch.tensor(user["y"]) + 0.5j}, d / "bad.pt")
        data = d / "bad.pt"
    else:
        if case == "one output":
            y[:] = 0  # one class, scored by one output: the loss is 0 whatever θ
        else:
            y[12:20] = {"-100 labels": -100, "-1 label, squared loss": -1}.get(case, 3)
        np.savez(d / "bad.npz", X=user["X"], y=y)
        data = d / "bad.npz"
    more = ["--loss", "mse"] if case in ("-1 label, squared loss", "complex y") else []
    if case.endswith("held-out rows"):  # the row named is the file's, not the training split's (it was row 10)
        more = ["--select", "validation", "--validation-fraction", "0.3"]
    code, out, err = run(capsys, "analyze", "--data", f"tensors:{data}", "--model", f"{d / 'mymodel.py'}:{model}",
                         "--lambdas", "0.1,1", "--batch-size", "10", "--out", str(d / "labels"), *more)
    assert code == 2 and needle in err and err.count("\n") == 1 and out == "", (err, out)
    assert not (d / "labels").exists()


@pytest.mark.parametrize("case", ["nan weight", "complex weights", "nan forward", "overflowing inputs"])
def test_non_finite_weights_forwards_and_overflow_are_one_line_errors(user, capsys, tmp_path, case):
    """Non-finite or complex weights, a forward that gives NaN, inputs so large that the Hessian products
    overflow: each a one-line error naming what is wrong (once an internal error, a complex part silently
    dropped, or 'H contains non-finite values'), and no output."""
    argv = _args(user, out="bad")
    state = torch.load(user["dir"] / "weights.pt", weights_only=True)
    if case == "nan weight":
        state["2.weight"][0, 1] = float("nan")
        torch.save(state, tmp_path / "w.pt")
        argv[argv.index("--weights") + 1], needle = str(tmp_path / "w.pt"), "parameter 2.weight holds non-finite"
    elif case == "complex weights":
        state["0.weight"] = state["0.weight"] + 1j
        torch.save(state, tmp_path / "w.pt")
        argv[argv.index("--weights") + 1], needle = str(tmp_path / "w.pt"), "0.weight is complex"
    elif case == "nan forward":
        argv[argv.index("--model") + 1] = f"{user['dir'] / 'mymodel.py'}:nan_forward"
        needle = "gradient at θ̂ is not finite"
    else:
        X = user["X"] * 1e200
        X[57, 4] = 9e300  # named: the row and column of the largest input
        np.savez(tmp_path / "huge.npz", X=X, y=user["y"])
        argv[argv.index("--data") + 1], needle = f"tensors:{tmp_path / 'huge.npz'}", "the largest input is 9e+300, at row 57 of the batches"
    code, _, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if not ln.startswith("ridgelens: warning:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ridgelens: error:") and needle in lines[0], err
    assert not (user["dir"] / "bad").exists()


def test_tensors_data_feed_the_built_in_models_too(user, tmp_path):
    from ridgelens.data import load_dataset

    ds = load_dataset(f"tensors:{user['dir'] / 'diabetes.npz'}")
    np.testing.assert_array_equal(ds.X, user["X"])
    torch.save({"X": torch.zeros(4, 2, 2), "y": torch.zeros(4)}, tmp_path / "img.pt")
    with pytest.raises(DataError, match="needs X of shape"):
        load_dataset(f"tensors:{tmp_path / 'img.pt'}")


def test_python_analyze_takes_a_torch_models_weights_as_given(user):
    X = torch.tensor(user["X"])
    Y = torch.tensor(user["y"])[:, None]
    net = user["net"]
    obj = rl.TorchObjective(copy.deepcopy(net).double(), lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean(), [(X, Y)])
    with pytest.warns(rl.GradientNotZeroWarning):  # briefly trained: not a stationary point, and said so
        res = rl.analyze(obj, [0.5], refit=False, curvature="ggn")
    np.testing.assert_array_equal(res.theta_hat, obj.theta0)
    assert res.polish is None and res.choices["theta_hat"] == "the model's own weights"
    pol = rl.analyze(obj, [0.5], refit=False, polish=True, curvature="ggn")
    assert pol.polish["moved"] == pytest.approx(np.linalg.norm(pol.theta_hat - obj.theta0), rel=1e-12)
    assert np.linalg.norm(obj.gradient(pol.theta_hat)) <= obj.default_tol
    with pytest.raises(rl.RidgelensError, match="polish=False needs a θ̂"):
        rl.analyze(rl.LeastSquares(user["X"], user["y"]), [0.1], polish=False)
    with pytest.raises(rl.RidgelensError, match="polish must be"):
        rl.analyze(obj, [0.1], polish="yes")



@pytest.mark.parametrize(("local_rank", "count", "expected"), [(None, 2, 0), ("1", 2, 1), ("3", 2, 1), ("1", 1, 0)])
def test_plain_cuda_is_this_processs_gpu_under_torchrun(monkeypatch, local_rank, count, expected):
    """``--device cuda`` under torchrun is ``cuda:LOCAL_RANK`` (modulo the GPUs this process sees).

    Every rank on cuda:0 is what NCCL refuses (two ranks on one GPU); with one visible GPU per
    rank (CUDA_VISIBLE_DEVICES) each rank's is its cuda:0. No GPU is needed: only the name is resolved.
    """
    from ridgelens.cli._torch import torch_device

    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert torch_device("cuda") == torch.device("cuda", expected)
    # under torchrun it is also the process's current GPU (where NCCL's object collectives go)
    assert current == ([] if local_rank is None else [torch.device("cuda", expected)])
    assert torch_device("cuda:0") == torch.device("cuda", 0)


OOM_PY = '''import torch


class OutOfMemory(torch.nn.Sequential):
    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def make():
    torch.manual_seed(0)
    return OutOfMemory(torch.nn.Linear(10, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
'''


def test_out_of_memory_is_one_line_saying_what_to_lower(user, capsys, tmp_path):
    """A model that runs out of the device's memory: exit 2 and one line naming the knobs, not an internal error."""
    (tmp_path / "oom.py").write_text(OOM_PY)
    argv = _args(user, out="oom")
    argv[argv.index("--model") + 1] = f"{tmp_path / 'oom.py'}:make"
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("ridgelens: error: out of memory (CUDA out of memory") and "--batch-size" in err, err
    assert not (user["dir"] / "oom").exists()
