"""A census of bad and awkward inputs: how many ridgelens handles well, and which it does not.

Each case is one input from issue 13's classes (silent wrong answers, errors, checkpoints,
torch objectives, rounding); "handled well" means:

- a CLI case: exit 2, exactly one ``ridgelens: error:`` line, no traceback, nothing written;
- an API case that must fail: a typed :class:`ridgelens.RidgelensError` with a one-line message
  that names what is wrong (checked by a phrase);
- a case that must succeed (dropout with p = 0, a float32 Gauss-Newton matrix, a singular design):
  it runs, and what it says is right (no false warning, the minimum-norm note).

Run it against any source tree to compare (the counts differ between main and this branch):

    PYTHONPATH=src .venv/bin/python benchmarks/census_bad_inputs.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import ridgelens as rl
from ridgelens.cli import main

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def cli(argv, root: Path):
    """Run the CLI in-process; True when it kept the one-line-error contract and wrote nothing."""
    before = sorted((str(p), p.stat().st_size) for p in root.rglob("*"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:
            return False, f"raised {type(exc).__name__}"
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.startswith("ridgelens: error:")]
    after = sorted((str(p), p.stat().st_size) for p in root.rglob("*"))
    ok = code == 2 and len(lines) == 1 and "Traceback" not in text and after == before
    return ok, (lines[0] if lines else f"exit {code}")


def api(fn, phrase: str):
    """True when ``fn()`` raises a typed one-line RidgelensError containing ``phrase``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except rl.RidgelensError as exc:
        msg = str(exc)
        return phrase.lower() in msg.lower() and "\n" not in msg, f"{type(exc).__name__}: {msg[:100]}"
    except Exception as exc:
        return False, f"untyped {type(exc).__name__}: {str(exc)[:100]}"
    return False, "accepted silently"


# ------------------------------------------------------------------------------ data
def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return torch.tensor((X - X.mean(0)) / X.std(0)), torch.tensor((y - y.mean()) / y.std())[:, None]


def batches(X, Y, size=100):
    return [(X[i:i + size], Y[i:i + size]) for i in range(0, len(X), size)]


CSV = "a,b,y\n" + "\n".join(f"{i},{(i * 7) % 5},{i % 3}" for i in range(12)) + "\n"
CSV_FILES = {
    "duplicate header names": "y,b,c,y\n1,2,3,4\n2,3,4,5\n3,1,2,2\n",
    "blank header names": ",,,\n1,2,3,4\n2,3,4,5\n3,1,2,2\n",
    "a header of numbers": "1,2,3\n1,2,3\n2,3,4\n4,4,1\n",
    "a ragged row": "a,b,y\n1,2,3\n2,3\n3,1,2\n",
    "a non-numeric cell": "a,b,y\n1,2,3\n2,x,4\n3,1,2\n",
    "a single data row": "a,b,y\n1,2,3\n",
    "no data rows": "a,b,y\n",
    "an empty file": "",
    "NaN in a cell": "a,b,y\n1,nan,3\n2,3,4\n3,1,2\n",
    "infinity in the target": "a,b,y\n1,2,inf\n2,3,4\n3,1,2\n",
}
for name, text in CSV_FILES.items():
    def _csv(root, text=text):
        (root / "d.csv").write_text(text)
        return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0.1",
                    "--out", str(root / "out")], root)
    _csv.__name__ = f"CSV: {name}"
    case(_csv)


@case
def csv_latin1(root):
    (root / "d.csv").write_bytes("é,b,y\n1,2,3\n2,3,1\n3,5,2\n".encode("latin-1"))
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0.1",
                "--out", str(root / "out")], root)


@case
def csv_binary(root):
    (root / "d.csv").write_bytes(bytes(range(256)))
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0.1",
                "--out", str(root / "out")], root)


@case
def csv_target_missing(root):
    (root / "d.csv").write_text(CSV)
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--target", "zz",
                "--lambdas", "0.1", "--out", str(root / "out")], root)


for lam in ["-1", "nan", "inf", "", "x", "1e400"]:
    def _lam(root, lam=lam):
        (root / "d.csv").write_text(CSV)
        return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", f"--lambdas={lam}",
                    "--out", str(root / "out")], root)
    _lam.__name__ = f"λ list {lam!r}"
    case(_lam)

for kind in ["a file", "under a file", "empty", "too long"]:
    def _out(root, kind=kind):
        (root / "d.csv").write_text(CSV)
        (root / "f").write_text("x")
        out = {"a file": root / "f", "under a file": root / "f" / "o", "empty": "",
               "too long": root / ("x" * 300)}[kind]
        return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0.1",
                    "--out", str(out)], root)
    _out.__name__ = f"--out {kind}"
    case(_out)


@case
def train_iters_negative(root):
    (root / "d.csv").write_text(CSV)
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--train-iters", "-5",
                "--lambdas", "0.1", "--out", str(root / "out")], root)


@case
def weights_of_another_architecture(root):
    (root / "d.csv").write_text(CSV)
    torch.save(nn.Linear(3, 2).state_dict(), root / "w.pt")
    ok, detail = cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2",
                      "--weights", str(root / "w.pt"), "--lambdas", "0.1", "--out", str(root / "out")], root)
    return ok and "0.weight" in detail, detail  # the message names the mismatching keys


@case
def weights_garbage(root):
    (root / "d.csv").write_text(CSV)
    (root / "w.pt").write_bytes(b"garbage" * 9)
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2",
                "--weights", str(root / "w.pt"), "--lambdas", "0.1", "--out", str(root / "out")], root)


for mode in ["garbage", "truncated"]:
    def _ck(root, mode=mode):
        (root / "d.csv").write_text(CSV)
        (root / "ck").mkdir()
        blob = b"garbage" * 9
        if mode == "truncated":
            buf = io.BytesIO()
            torch.save({"signature": {}, "theta": torch.zeros(500)}, buf)
            blob = buf.getvalue()[:300]
        (root / "ck" / "refit_0.pt").write_bytes(blob)
        ok, detail = cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2",
                          "--train-iters", "20", "--refit-iters", "20", "--checkpoint", str(root / "ck"),
                          "--lambdas", "0.1", "--out", str(root / "out")], root)
        return ok and "corrupted" in detail, detail
    _ck.__name__ = f"a {mode} checkpoint (CLI)"
    case(_ck)



@case
def csv_duplicate_target_name(root):  # `a,a,c,y --target a` took the first `a`
    (root / "d.csv").write_text("a,a,c,y\n1,2,3,4\n2,3,4,5\n3,1,2,2\n")
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--target", "a",
                "--lambdas", "0.1", "--out", str(root / "out")], root)


@case
def checkpoint_is_a_file(root):
    (root / "d.csv").write_text(CSV)
    (root / "ck").write_text("x")
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2",
                "--checkpoint", str(root / "ck"), "--lambdas", "0.1", "--out", str(root / "out")], root)


@case
def explore_negative_and_null_lambda(root):
    from sklearn.datasets import load_diabetes

    rl.analyze(rl.LeastSquares(*load_diabetes(return_X_y=True)), [0.1, 1.0]).to_json(root / "r.json")
    results = []
    for bad in (-1.0, None):
        d = json.loads((root / "r.json").read_text())
        d["lambdas"][0] = bad
        (root / "b.json").write_text(json.dumps(d))
        results.append(cli(["explore", str(root / "b.json"), "--out", str(root / "p.html")], root))
    return all(ok for ok, _ in results), results[-1][1]

@case
def explore_nested(root):
    (root / "r.json").write_text("[" * 100000 + "]" * 100000)
    return cli(["explore", str(root / "r.json"), "--out", str(root / "p.html")], root)


@case
def explore_not_results(root):
    (root / "r.json").write_text('{"a": 1}')
    return cli(["explore", str(root / "r.json"), "--out", str(root / "p.html")], root)


# ------------------------------------------------------------------------------ API
class InlineDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(10, 8), nn.Linear(8, 1)

    def forward(self, x):
        return self.b(F.dropout(torch.tanh(self.a(x)), p=0.3, training=self.training))


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(10, 1)

    def forward(self, x):
        return self.a(x) + 1e-3 * torch.randn(len(x), 1, dtype=x.dtype)


def torch_api_cases():
    X, Y = diabetes()
    lin = nn.Linear(10, 1).double()
    ds = torch.utils.data.TensorDataset(X, Y)
    nan = X.clone()
    nan[130, 4] = float("nan")
    return {
        "dropout inside forward (train mode)": (
            lambda: rl.TorchObjective(InlineDropout().double(), F.mse_loss, batches(X, Y)), "random"),
        "random noise in forward (eval mode)": (
            lambda: rl.TorchObjective(Noisy().double().eval(), F.mse_loss, batches(X, Y)), "nondeterministic"),
        "a shuffling DataLoader with drop_last": (lambda: rl.TorchObjective(
            lin, F.mse_loss, torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, drop_last=True)),
            "drop_last"),
        "a sampler with replacement": (lambda: rl.TorchObjective(lin, F.mse_loss, torch.utils.data.DataLoader(
            ds, batch_size=64, sampler=torch.utils.data.RandomSampler(ds, replacement=True))), "replacement"),
        "MSELoss(reduction='sum')": (
            lambda: rl.TorchObjective(lin, nn.MSELoss(reduction="sum"), batches(X, Y)), "sum-reduced"),
        "L1Loss(reduction='sum')": (
            lambda: rl.TorchObjective(lin, nn.L1Loss(reduction="sum"), batches(X, Y)), "sum-reduced"),
        "a loss without reduction": (lambda: rl.TorchObjective(
            lin, lambda o, t: F.mse_loss(o, t, reduction="none"), batches(X, Y)), "scalar"),
        "NaN in a torch batch": (lambda: rl.TorchObjective(lin, F.mse_loss, batches(nan, Y)), "row 30, column 4"),
        "batches=None": (lambda: rl.TorchObjective(lin, F.mse_loss, None), "batches"),
        "integer inputs": (lambda: rl.TorchObjective(lin, F.mse_loss, batches(X.long(), Y)), "batch 0"),
        "a model on the meta device": (
            lambda: rl.TorchObjective(nn.Linear(10, 1, device="meta"), F.mse_loss, batches(X, Y)), "meta"),
        "a one-shot generator of batches": (
            lambda: rl.TorchObjective(lin, F.mse_loss, iter(batches(X, Y))), "re-iterable"),
        "hessian(None, θ)": (lambda: rl.hessian(None, np.zeros(3)), "objective"),
        "analyze(None, λ)": (lambda: rl.analyze(None, [0.1]), "objective"),
        "a closed-form Hessian at a θ of the wrong shape": (
            lambda: rl.hessian(rl.Logistic(X.numpy()[:, :2], (Y.numpy()[:, 0] > 0).astype(float)), np.zeros(2)),
            "shape (3,)"),
        "a 0×0 matrix": (lambda: rl.eigen(np.zeros((0, 0))), "0×0"),
        "a non-integer number of probes": (lambda: rl.spectral_density(np.eye(5), n_probes=2.5), "n_probes"),
        "bandwidth 0 of a density from nodes": (
            lambda: rl.SpectralDensity.from_nodes([1.0, 2.0], [0.5, 0.5], n=2, bandwidth=0.0), "bandwidth"),
        "to_json on a directory": (
            lambda: rl.analyze(rl.LeastSquares(X.numpy(), Y.numpy()[:, 0]), [0.1]).to_json(Path.cwd()), "directory"),
        "a Lanczos checkpoint of another operator without a fingerprint": (_other_operator_checkpoint, "another run"),
        "a garbage checkpoint file (API)": (lambda: _bad_checkpoint(b"garbage" * 9), "corrupted"),
        "a truncated checkpoint file (API)": (lambda: _bad_checkpoint(None), "corrupted"),
    }



def _other_operator_checkpoint():
    import scipy.sparse.linalg as sla

    with tempfile.TemporaryDirectory() as tmp:
        for diag in (np.arange(1.0, 51.0), np.arange(100.0, 0.0, -2.0)):
            rl.eigen(sla.aslinearoperator(np.diag(diag)), k=3, method="lanczos", checkpoint=tmp, progress=False)

def _bad_checkpoint(blob):
    from ridgelens._checkpoint import Checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        cp = Checkpoint(tmp, "x", {})
        if blob is None:
            buf = io.BytesIO()
            torch.save({"signature": {}, "v": torch.zeros(500)}, buf)
            blob = buf.getvalue()[:200]
        cp.path.write_bytes(blob)
        cp.load()


for name, (fn, phrase) in torch_api_cases().items():
    def _api(root, fn=fn, phrase=phrase):
        return api(fn, phrase)
    _api.__name__ = f"API: {name}"
    case(_api)


# ------------------------------------------------------- predict, the true-loss grid, the design, select_lm
def _results_with_loss_plane(root, **lp):
    """A linear analysis' results.json whose loss_plane has ``lp``'s fields replaced."""
    import json

    from ridgelens.report import loss_plane

    X, Y = diabetes()
    obj = rl.LeastSquares(X.numpy()[:, :4], Y.numpy()[:, 0])
    res = rl.analyze(obj, [0.1, 1.0], refit=False)
    d = res.to_dict() | {"loss_plane": {**loss_plane(obj, res, resolution=3), **lp}}
    (root / "r.json").write_text(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else o))
    return ["explore", str(root / "r.json"), "--out", str(root / "p.html")]


for name, lp in {"directions out of range": {"directions": [0, 99]}, "negative directions": {"directions": [-1, 0]},
                 "equal directions": {"directions": [1, 1]}, "fractional directions": {"directions": [0.5, 1.7]},
                 "an infinite x": {"x": [-1e400, 0.0, 1.0]}}.items():
    def _lp(root, lp=lp):
        return cli(_results_with_loss_plane(root, **lp), root)
    _lp.__name__ = f"results.json: loss_plane with {name}"
    case(_lp)


def _adamw_state(edit=None):
    import copy

    X, Y = diabetes()
    lin = nn.Linear(10, 1).double()
    opt = torch.optim.AdamW(lin.parameters(), weight_decay=0.1)
    F.mse_loss(lin(X), Y).backward()
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    if edit:
        edit(sd)
    return rl.TorchObjective(lin, F.mse_loss, batches(X, Y)), sd


def morning_api_cases():
    X, Y = diabetes()
    ls = rl.LeastSquares(X.numpy(), Y.numpy()[:, 0])
    res = rl.analyze(ls, [0.1, 1.0], refit=False)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(300, 12)))
    ill = (Q - Q.mean(0)) * np.geomspace(1, 1e-9, 12)

    def predict_with(edit, optimizer="adamw"):
        obj, sd = _adamw_state(edit)
        return lambda: rl.predict(obj, [0.1], optimizer, optimizer_state=sd, theta_hat=obj.theta0)

    from ridgelens.report import ExplorerData, loss_plane
    from ridgelens.select import select_lambda

    return {
        "predict: NaN second moments": (predict_with(lambda s: s["state"][0]["exp_avg_sq"].fill_(float("nan"))),
                                        "exp_avg_sq for weight"),
        "predict: negative second moments": (predict_with(lambda s: s["state"][0]["exp_avg_sq"].fill_(-1.0)),
                                             "exp_avg_sq for weight"),
        "predict: negative weight_decay in the state": (
            predict_with(lambda s: s["param_groups"][0].__setitem__("weight_decay", -0.1)), "weight_decay"),
        "predict: eps = 'x' in the state": (predict_with(lambda s: s["param_groups"][0].__setitem__("eps", "x")), "eps"),
        "predict: a state whose 'state' is a list": (predict_with(lambda s: s.__setitem__("state", [1])), "laid out"),
        "predict: a group without 'params'": (predict_with(lambda s: s["param_groups"][0].pop("params")), "laid out"),
        "predict: another model's state": (lambda: rl.predict(
            _adamw_state()[0], [0.1], "adamw", optimizer_state=_adamw_state(
                lambda s: s["state"][0].__setitem__("exp_avg_sq", torch.ones(1, 5)))[1]), "shape"),
        "predict: an AdamW state for least squares": (
            lambda: rl.predict(ls, [0.1], "adamw", optimizer_state=_adamw_state()[1]), "LeastSquares"),
        "predict(None, …)": (lambda: rl.predict(None, [0.1], "sgd"), "objective"),
        "predict: grad_tol = NaN": (lambda: rl.predict(ls, [0.1], "sgd", grad_tol=float("nan")), "grad_tol"),
        "predict: unknown optimizer": (lambda: rl.predict(ls, [0.1], "lion"), "optimizer"),
        "LeastSquares: decomposition=['gram']": (
            lambda: rl.LeastSquares(X.numpy(), Y.numpy()[:, 0], decomposition=["gram"]), "decomposition"),
        "LeastSquares: decomposition='gram' on a wide design": (
            lambda: rl.LeastSquares(ill[:5], ill[:5, 0], decomposition="gram").minimize(), "gram"),
        "LeastSquares: decomposition='gram' at cond 1e9": (
            lambda: rl.LeastSquares(ill, ill[:, 0] + ill[:, -1], decomposition="gram").minimize(), "singular"),
        "loss_plane of another objective": (lambda: loss_plane(rl.LeastSquares(X.numpy()[:, :3], Y.numpy()[:, 0]), res),
                                            "objective"),
        "loss_plane resolution 'x'": (lambda: loss_plane(ls, res, resolution="x"), "resolution"),
        "loss_plane resolution 10**9": (lambda: loss_plane(ls, res, resolution=10**9), "resolution"),
        "ExplorerData.from_analysis(a dict)": (lambda: ExplorerData.from_analysis(res.to_dict()), "analysis"),
        "select_lambda among one repeated λ": (
            lambda: select_lambda(ls, [0.1, 0.1], method="gcv"), "distinct"),
    }


for name, (fn, phrase) in morning_api_cases().items():
    def _api(root, fn=fn, phrase=phrase):
        return api(fn, phrase)
    _api.__name__ = f"API: {name}"
    case(_api)


#: A byte LM small enough that a case the old code accepts still ends in seconds.
TINY_LM = ["--layers", "1", "--width", "8", "--heads", "2", "--context", "8", "--tokens", "64", "--steps", "5",
           "--k", "2", "--subsamples", "0"]


@case
def select_repeated_lambda(root):
    (root / "d.csv").write_text(CSV)
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0.1,0.1",
                "--select", "gcv", "--out", str(root / "out")], root)


@case
def optimizer_state_not_laid_out(root):
    (root / "d.csv").write_text(CSV)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 3)).double()  # y has 3 classes
    opt = torch.optim.AdamW(net.parameters(), weight_decay=0.1)
    net(torch.ones(3, 2, dtype=torch.float64)).sum().backward()
    opt.step()
    torch.save(opt.state_dict() | {"param_groups": 5}, root / "s.pt")
    torch.save(net.state_dict(), root / "w.pt")
    return cli(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "mlp", "--hidden", "2", "--weights",
                str(root / "w.pt"), "--optimizer-state", str(root / "s.pt"), "--lambdas", "0.1",
                "--out", str(root / "out")], root)


@case
def lm_max_logits_zero(root):
    return cli(["analyze", "--model", "lm", *TINY_LM, "--max-logits", "0", "--lambdas", "0.1,1",
                "--out", str(root / "out")], root)


@case
def lm_select_repeated_lambda(root):
    return cli(["analyze", "--model", "lm", *TINY_LM, "--select", "validation", "--lambdas", "0.3,0.3",
                "--out", str(root / "out")], root)


@case
def dropout_p0_is_accepted(root):
    X, Y = diabetes()
    net = nn.Sequential(nn.Linear(10, 4), nn.Tanh(), nn.Dropout(0.0), nn.Linear(4, 1)).double().train()
    try:
        rl.TorchObjective(net, F.mse_loss, batches(X, Y))
    except Exception as exc:
        return False, f"refused: {str(exc)[:100]}"
    return True, "accepted"


@case
def float32_ggn_has_no_false_negative_curvature(root):
    X, Y = diabetes()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 1)).float()
    obj = rl.TorchObjective(net, F.mse_loss, batches(X.float(), Y.float(), 150))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rl.analyze(obj, [1e-6, 1e-2, 1.0], theta_hat=obj.theta0, curvature="ggn", refit=False, method="dense")
    neg = [w for w in caught if issubclass(w.category, rl.NegativeCurvatureWarning)]
    ok = not neg and bool(res.path.valid.all()) and bool((res.effective_df >= 0).all())
    return ok, f"{len(neg)} NegativeCurvatureWarning, min σ {res.min_eigenvalue:.3g}"


@case
def singular_design_says_minimum_norm(root):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = np.column_stack([X, X[:, 2]])
    (root / "d.csv").write_text(",".join([f"x{i}" for i in range(11)] + ["y"]) + "\n"
                                + "\n".join(",".join(f"{v!r}" for v in r.tolist()) for r in np.column_stack([X, y])) + "\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["analyze", "--data", f"csv:{root / 'd.csv'}", "--model", "linear", "--lambdas", "0,0.1",
                     "--out", str(root / "out")])
    return code == 0 and "minimum-norm" in out.getvalue(), f"exit {code} {err.getvalue()[-200:]}"


def run() -> None:
    good, bad = [], []
    for fn in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                ok, detail = fn(Path(tmp))
            except Exception as exc:
                ok, detail = False, f"census case crashed: {type(exc).__name__}: {exc}"[:140]
        (good if ok else bad).append((fn.__name__, detail))
    for name, detail in bad:
        print(f"  NOT handled well: {name}: {detail[:140]}")
    print(f"{len(good)} of {len(CASES)} bad or awkward inputs handled well, {len(bad)} not "
          f"(ridgelens from {Path(rl.__file__).parent})")
    sys.exit(0)


if __name__ == "__main__":
    run()
