"""One rank of a data-parallel test run (spawned by tests/test_distributed.py; not a test module).

Usage: ``python dist_worker.py SCENARIO RANK WORLD PORT FOLDER``. ``WORLD`` 0 runs without a
process group (the single-process reference, on all the batches). Results go to
``FOLDER/SCENARIO-WORLD.npz`` (rank 0 only); errors are printed as one ``error:`` line.
"""

import os
import sys
import time

import numpy as np
import torch


def diabetes_batches(size=50):
    """Diabetes (442 rows, standardized), in batches of ``size``: 9 batches, the last one short."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0))
    Y = torch.tensor((y - y.mean()) / y.std())[:, None]
    return [(X[i:i + size], Y[i:i + size]) for i in range(0, len(X), size)]


def digits_batches(size=200, rows=900):
    """The first ``rows`` digits (64 pixels / 16), one-hot targets, in batches of ``size`` (the last one short)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:rows], y[:rows]
    X = torch.tensor(X / 16.0)
    Y = torch.nn.functional.one_hot(torch.tensor(y), 10).to(torch.float64)
    return [(X[i:i + size], Y[i:i + size]) for i in range(0, len(X), size)]


def half_squared(o, t):
    """Mean over samples of ½‖o − t‖²."""
    return 0.5 * ((o - t) ** 2).sum(dim=-1).mean()


def linear_objective(batches):
    import ridgelens as rl

    torch.manual_seed(0)
    return rl.TorchObjective(torch.nn.Linear(10, 1).double(), half_squared, batches)


def mlp_objective(batches):
    import ridgelens as rl

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.Tanh(), torch.nn.Linear(4, 10)).double()
    return rl.TorchObjective(net, half_squared, batches, unpenalized=("2.bias",))


def results(res):
    """The compared numbers of an Analysis."""
    return {"eigenvalues": res.spectrum.eigenvalues, "thetas": res.path.thetas, "refit": res.refit,
            "df": res.effective_df}


def scenario_equal(shard, folder):
    """Linear model (dense Hessian; matrix-free GGN) and the digits MLP (matrix-free, Schur complement)."""
    import ridgelens as rl

    out = {}
    lam = [0.01, 0.1, 1.0]
    lin = linear_objective(shard(diabetes_batches()))
    for tag, kw in (("lin_dense", {"method": "dense"}),
                    ("lin_mf_ggn", {"method": "matrix-free", "curvature": "ggn", "k": 4})):
        for key, v in results(rl.analyze(lin, lam, tol=1e-7, **kw)).items():
            out[f"{tag}_{key}"] = v
    widths = []
    from ridgelens.spectra import _krylov

    init = _krylov.ShardedLanczosBasis.__init__

    def recording(self, n, *a, **kw):
        init(self, n, *a, **kw)
        widths.append((n, self.n))

    _krylov.ShardedLanczosBasis.__init__ = recording
    kw = {"method": "matrix-free", "curvature": "ggn", "k": 4}
    for key, v in results(rl.analyze(lin, lam, tol=1e-7, shard_basis=True, **kw)).items():
        out[f"lin_mf_ggn_sharded_{key}"] = v
    out["sharded_widths"] = np.array(widths if widths else [(0, 0)])
    mlp = mlp_objective(shard(digits_batches()))
    theta_hat = np.load(os.path.join(folder, "mlp_theta.npy"))
    res = rl.analyze(mlp, [0.5, 2.0], theta_hat=theta_hat, method="matrix-free", k=4, slq_steps=30, n_probes=4,
                     tol=1e-8, refit_options={"max_iter": 50})
    for key, v in results(res).items():
        out[f"mlp_{key}"] = v
    return out


def lm_objective(folder, shard):
    """A tiny byte LM (2 100 parameters, 100 tokens of stdlib source) at the weights in FOLDER/lm_theta.npy.

    Every rank passes all 25 windows; ``shard=True`` keeps every other batch of 3 windows under
    a process group: 9 batches, rank 0 holds 5 (with the short one), rank 1 holds 4.
    """
    from ridgelens.lm import ByteTransformer, LMConfig, stdlib_split
    from ridgelens.objectives.lm import LMObjective

    net = ByteTransformer(LMConfig(layers=1, width=4, heads=1, context=4)).double()
    theta = torch.tensor(np.load(os.path.join(folder, "lm_theta.npy")))
    torch.nn.utils.vector_to_parameters(theta, net.parameters())
    return LMObjective(net, stdlib_split(4, 100).train, max_logits=3 * 4 * 256, dtype=torch.float64,
                       shard=shard is not None)


def scenario_lm(shard, folder):
    """The byte LM, matrix-free: Hessian (λ above its negative curvature) and Gauss-Newton, no refits."""
    import ridgelens as rl

    obj = lm_objective(folder, None if shard(range(2)) == [0, 1] else shard)
    out = {"n_tokens": np.array(obj.n_tokens), "n_batches": np.array(obj.n_batches)}
    for curv, lam in (("hessian", [5.0, 20.0]), ("ggn", [0.05, 0.5, 2.0])):
        res = rl.analyze(obj, lam, method="matrix-free", curvature=curv, k=3, slq_steps=12, n_probes=2,
                         refit=False, curvature_options=obj.product_options(curv))
        for key in ("eigenvalues", "thetas", "df"):
            out[f"lm_{curv}_{key}"] = results(res)[key]
    return out


#: λ of the LM refits. There θ* is no trivial point (‖θ*‖ ≈ 3; from λ ≈ 0.5 on, θ* collapses to 0)
#: and L-BFGS converges (at λ ≤ 0.05 it does not in 1000 iterations; the problem is not convex).
LM_REFIT_LAMBDAS = (0.2, 0.3)


def scenario_lm_refit(shard, folder):
    """The byte LM's refits θ*(λ) = argmin R(θ) + (λ/2)‖θ‖² by L-BFGS from θ̂, to a penalized gradient of 1e-6."""
    obj = lm_objective(folder, None if shard(range(2)) == [0, 1] else shard)
    runs = [obj.minimize(l2=lam, method="lbfgs", tol=1e-6, max_iter=400) for lam in LM_REFIT_LAMBDAS]
    return {"thetas": np.stack([r.theta for r in runs]), "gradient_norm": np.array([r.gradient_norm for r in runs]),
            "converged": np.array([r.converged for r in runs]), "n_tokens": np.array(obj.n_tokens)}


def scenario_lm_products(shard, folder):
    """The byte LM's window count, loss, gradient, Hessian and Gauss-Newton products on two vectors (fast)."""
    from ridgelens.operators import GGNOperator, TorchHessianOperator

    obj = lm_objective(folder, None if shard(range(2)) == [0, 1] else shard)
    theta = obj.theta0
    V = np.random.default_rng(0).standard_normal((obj.n_params, 2))
    value, grad = obj.value_and_gradient(theta)
    return {"n_tokens": np.array(obj.n_tokens), "value": np.array(value), "gradient": grad,
            "hessian": TorchHessianOperator(obj, theta, **obj.product_options("hessian")).matmat(V),
            "ggn": GGNOperator(obj, theta, **obj.product_options("ggn")).matmat(V)}


def die_at(n):
    """Make rank 1 SIGKILL itself at its n-th Hessian product (writing the time to FOLDER/killed_at)."""
    import signal

    from ridgelens import _distributed as dist
    from ridgelens.operators import _torch

    if dist.world()[0] != 1:
        return
    original, calls = _torch.TorchHessianOperator._rows, [0]

    def dying(self, V):
        calls[0] += 1
        if calls[0] == n:
            with open(os.path.join(sys.argv[5], "killed_at"), "w") as fh:
                fh.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, V)

    _torch.TorchHessianOperator._rows = dying


def scenario_kill(shard, folder):
    """Rank 1 dies (SIGKILL) at its 5th Hessian product; the others must stop with a message naming it."""
    import ridgelens as rl

    lin = linear_objective(shard(diabetes_batches()))
    die_at(5)
    rl.analyze(lin, [0.1], method="matrix-free", k=3, refit=False)
    return {}


def scenario_resume(shard, folder):
    """The MLP's matrix-free analysis with a checkpoint folder; rank 1 dies at product DIE_AT if set."""
    import ridgelens as rl

    mlp = mlp_objective(shard(digits_batches()))
    if os.environ.get("DIE_AT"):
        die_at(int(os.environ["DIE_AT"]))
    res = rl.analyze(mlp, [0.5, 2.0], theta_hat=np.load(os.path.join(folder, "mlp_theta.npy")),
                     method="matrix-free", k=4, slq_steps=30, n_probes=4, refit=False,
                     checkpoint=os.path.join(folder, "ck"))
    return {"eigenvalues": res.spectrum.eigenvalues, "thetas": res.path.thetas}


def scenario_resume_sharded(shard, folder):
    """The linear model's matrix-free analysis with a sharded basis and a checkpoint folder.

    Rank 1 dies at Hessian product DIE_AT if set; each checkpoint that a run resumes from is
    printed (``resumed NAME``) and the widths of its basis rows are recorded.
    """
    import ridgelens as rl
    from ridgelens._checkpoint import Checkpoint

    lin = linear_objective(shard(diabetes_batches()))
    theta = lin.minimize(method="lbfgs", tol=1e-12, max_iter=200).theta
    load, widths = Checkpoint.load, []

    def loud(self):
        state = load(self)
        if state is not None:
            print(f"resumed {self.path.name}", flush=True)
            widths.extend(len(v) for v in state.get("rows", state.get("V", [])))
        return state

    if os.environ.get("DIE_AT"):
        die_at(int(os.environ["DIE_AT"]))
    Checkpoint.load = loud
    try:
        res = rl.analyze(lin, [0.1, 1.0], theta_hat=theta, method="matrix-free", k=3, n_probes=2, slq_steps=8,
                         refit=False, shard_basis=True, checkpoint=os.path.join(folder, "ck"))
    finally:
        Checkpoint.load = load
    return {"eigenvalues": res.spectrum.eigenvalues, "thetas": res.path.thetas, "df": res.effective_df,
            "widths": np.array(widths or [0])}


def scenario_sharded_schur(shard, folder):
    """The MLP's matrix-free analysis (Schur complement: the output bias is unpenalized) with a sharded basis."""
    import ridgelens as rl

    mlp = mlp_objective(shard(digits_batches()))
    res = rl.analyze(mlp, [0.5, 2.0], theta_hat=np.load(os.path.join(folder, "mlp_theta.npy")),
                     method="matrix-free", k=4, slq_steps=30, n_probes=4, refit=False, shard_basis=True)
    return {"eigenvalues": res.spectrum.eigenvalues, "thetas": res.path.thetas, "df": res.effective_df}


def scenario_bad_input(shard, folder):
    """Two checks in one process group: one batch for two ranks; rank 1's model has other weights."""
    import ridgelens as rl
    from ridgelens import _distributed as dist
    from ridgelens.errors import RidgelensError

    try:
        linear_objective(shard(diabetes_batches(size=1000)))
    except RidgelensError as exc:
        print(f"first: {exc}", flush=True)
    torch.manual_seed(dist.world()[0])
    rl.TorchObjective(torch.nn.Linear(10, 1).double(), half_squared, shard(diabetes_batches()))
    return {}


def scenario_checkpoint(shard, folder):
    """A matrix-free analysis with a checkpoint folder (rank 0 writes it)."""
    import ridgelens as rl

    lin = linear_objective(shard(diabetes_batches()))
    res = rl.analyze(lin, [0.1], method="matrix-free", k=3, refit=False, checkpoint=os.path.join(folder, "ck"))
    return {"eigenvalues": res.spectrum.eigenvalues}


def scenario_object_timeout(shard, folder):
    """Rank 1 never joins rank 0's all-gather of objects: RIDGELENS_DIST_TIMEOUT bounds the wait, not the group's."""
    from ridgelens import _distributed as dist

    if dist.world()[0] == 1:
        time.sleep(dist.timeout() + dist.ROLL_CALL_GRACE + 2)  # then leave without a word
        os._exit(0)
    print(f"started at {time.time()!r}", flush=True)
    dist.check_same("test value", 1)
    return {}


def deny_writes_under(folder):
    """Make every write, folder creation, rename or removal under ``folder`` fail with EACCES in this process.

    An audit hook (it cannot be removed; the worker ends with the scenario): the rank sees the
    folder as one it may read but not write, as on a node whose user lacks the permission.
    """
    folder = os.path.realpath(folder)
    write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under(path):
        if isinstance(path, int) or path is None:
            return False
        path = os.path.realpath(os.fsdecode(path))
        return path == folder or path.startswith(folder + os.sep)

    def hook(event, args):
        if event == "open" and under(args[0]) and isinstance(args[2], int) and args[2] & write:
            raise PermissionError(13, "Permission denied (this rank may not write here)", os.fsdecode(args[0]))
        if event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.chmod", "os.truncate") \
                and any(under(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
            raise PermissionError(13, "Permission denied (this rank may not write here)", os.fsdecode(args[0]))

    sys.addaudithook(hook)


def scenario_cli_checkpoint(shard, folder):
    """``ridgelens analyze --model mlp --checkpoint FOLDER/ck`` on this rank, with rank NO_WRITE_RANK unable to write ck."""
    from ridgelens import _distributed as dist
    from ridgelens.cli import main as cli

    rank, size = dist.world()
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size))  # as torchrun sets them; the group is already up
    ck = os.path.join(folder, "ck")
    os.makedirs(ck, exist_ok=True)
    if rank == int(os.environ["NO_WRITE_RANK"]):
        deny_writes_under(ck)
    code = cli(["analyze", "--data", "diabetes", "--model", "mlp", "--hidden", "2", "--train-iters", "30",
                "--batch-size", "100", "--lambdas", "0.1", "--k", "2", "--refit-iters", "20", "--checkpoint", ck,
                "--out", os.path.join(folder, "out"), *os.environ.get("EXTRA_ARGS", "").split()])
    print(f"exit code {code}", flush=True)
    sys.stderr.flush()
    # At once, as main() does on an error: the process group is this worker's (not the CLI's session), and
    # an interpreter shutdown with it still up while the peer leaves too can abort in gloo's threads (SIGABRT).
    os._exit(code)


def main():
    scenario, rank, world, port, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    torch.set_num_threads(1)
    if world > 0:
        import torch.distributed as tdist

        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    from ridgelens import _distributed as dist
    from ridgelens.errors import RidgelensError

    try:
        out = globals()[f"scenario_{scenario}"](dist.shard, folder)
    except RidgelensError as exc:
        print(f"error: {exc}", flush=True)
        print(f"exited at {time.time()!r}", flush=True)
        # At once: with the process group still up, an interpreter shutdown while a peer leaves too
        # can abort in gloo's threads ("terminate called without an active exception", SIGABRT).
        os._exit(2)
    if rank == 0:
        np.savez(os.path.join(folder, f"{scenario}-{world}.npz"), **out)
    if world > 0:
        dist.barrier()
        import torch.distributed as tdist

        tdist.destroy_process_group()


if __name__ == "__main__":
    main()
