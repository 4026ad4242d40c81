"""Data parallel over torch.distributed: two gloo processes on the CPU give the single-process answers.

Each test spawns its ranks (tests/dist_worker.py) with a deadline and kills whatever is still
running when it ends, passed or failed: no process is left behind.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ridgelens

HERE = Path(__file__).parent
WORKER = HERE / "dist_worker.py"
SRC = str(Path(ridgelens.__file__).parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(scenario, world, folder, *, timeout=60.0, env=None):
    """Run ``world`` ranks of ``scenario``; returns [(returncode, output, seconds)] in rank order.

    ``timeout`` guards against a hang (generous: start-up alone takes tens of seconds on a loaded
    machine); it is not a timing assertion.
    """
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "OMP_NUM_THREADS": "1", **(env or {})}
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, str(WORKER), scenario, str(r), str(world), str(port), str(folder)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
             for r in range(world)]
    out = []
    try:
        for p in procs:
            text, _ = p.communicate(timeout=max(timeout - (time.monotonic() - t0), 1.0))
            out.append((p.returncode, text, time.monotonic() - t0))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-300))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process answers (this process, no process group), and θ̂ of the MLP for the workers."""
    sys.path.insert(0, str(HERE))
    import dist_worker

    folder = tmp_path_factory.mktemp("dist")
    mlp = dist_worker.mlp_objective(dist_worker.digits_batches())
    theta = mlp.minimize(method="lbfgs", max_iter=100, tol=1e-9).theta
    np.save(folder / "mlp_theta.npy", theta)
    return folder, dist_worker.scenario_equal(lambda b: b, str(folder))


def test_two_gloo_ranks_equal_one_process(reference):
    folder, ref = reference
    runs = spawn("equal", 2, folder, timeout=180)
    for rc, text, _ in runs:
        assert rc == 0, text[-2000:]
    got = dict(np.load(folder / "equal-2.npz"))
    # With a sharded basis (shard_basis=True) each rank held half of every basis vector: 6 of 11 entries.
    widths = got.pop("sharded_widths")
    assert len(widths) >= 3 and all(n == 11 and w == 6 for n, w in widths), widths
    for key in [k for k in got if "_sharded_" in k]:
        assert rel(ref[key.replace("_sharded", "")], got.pop(key)) < 1e-6, key
    ref = {k: v for k, v in ref.items() if "sharded" not in k}
    assert set(got) == set(ref)
    for key, v in ref.items():
        assert np.all(np.isfinite(v)), key
        assert rel(v, got[key]) < 1e-6, (key, rel(v, got[key]))
    # The shards were uneven (rank 0: 5 diabetes batches, rank 1: 4 with the short one), and the
    # answers still are the mean over all samples: the dense eigenvalues are those of XᵀX/n.
    import torch

    from dist_worker import diabetes_batches

    X = torch.cat([x for x, _ in diabetes_batches()]).numpy()
    A = np.hstack([X, np.ones((len(X), 1))])
    top = np.linalg.eigvalsh(A.T @ A / len(X))[::-1]
    assert rel(top, ref["lin_dense_eigenvalues"]) < 1e-10


def test_a_killed_rank_is_named_and_nobody_hangs(tmp_path):
    runs = spawn("kill", 2, tmp_path, timeout=120, env={"RIDGELENS_DIST_TIMEOUT": "10"})
    (rc0, text0, _), (rc1, _, _) = runs
    assert rc1 == -9  # killed
    assert rc0 == 2, text0[-2000:]
    assert "lost rank 1" in text0 and text0.count("error:") == 1, text0[-2000:]
    exited = float(text0.split("exited at ")[1].split()[0])
    waited = exited - float((tmp_path / "killed_at").read_text())
    assert 0 < waited < 10 + 3 + 5, waited  # the timeout, the roll call's grace, a margin


def test_object_collectives_honour_the_ridgelens_timeout(tmp_path):
    # The process group's own timeout is torch's default (30 min): only RIDGELENS_DIST_TIMEOUT can end this.
    (rc0, text0, _), (rc1, _, _) = spawn("object_timeout", 2, tmp_path, timeout=120,
                                         env={"RIDGELENS_DIST_TIMEOUT": "3"})
    assert rc0 == 2 and rc1 == 0, text0[-2000:]
    assert "lost rank 1" in text0 and "check of the test value" in text0, text0[-2000:]
    waited = float(text0.split("exited at ")[1].split()[0]) - float(text0.split("started at ")[1].split()[0])
    assert 3 <= waited < 3 + 3 + 5, waited  # the timeout, the roll call's grace, a margin


def test_more_ranks_than_batches_or_other_weights_fail_on_every_rank(tmp_path):
    for rc, text, _ in spawn("bad_input", 2, tmp_path, timeout=120):
        assert rc == 2, text[-2000:]
        first = text.split("first: ")[1].splitlines()[0]
        assert "rank 1 of 2 holds no batch" in first and "larger than the number of batches" in first, first
        assert "smaller batches (--batch-size" in first, first
        assert "rank 1 has another model" in text.split("error: ")[1], text


def test_a_checkpoint_folder_that_only_rank_0_can_write_is_enough(tmp_path):
    """Rank 0 alone writes and reads checkpoints (handing their state to the others): the run succeeds.

    Rank 1 runs under an audit hook that fails every write, creation, rename or removal in
    --checkpoint (as a node whose user cannot write there); had it touched the folder, it
    would have failed.
    """
    for rc, text, _ in spawn("cli_checkpoint", 2, tmp_path, timeout=120, env={"NO_WRITE_RANK": "1"}):
        assert rc == 0 and "exit code 0" in text and "Permission denied" not in text, text[-2000:]
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["refit_0.pt"]  # 25 parameters: dense, one refit
    assert (tmp_path / "out" / "results.json").exists()


def test_a_checkpoint_folder_that_rank_0_cannot_write_is_one_error_on_every_rank(tmp_path):
    """Checked by rank 0 before any work; the refusal reaches every rank, and nothing is written."""
    for rc, text, _ in spawn("cli_checkpoint", 2, tmp_path, timeout=120, env={"NO_WRITE_RANK": "0"}):
        assert rc == 2 and "exit code 2" in text, text[-2000:]
        errors = [line for line in text.splitlines() if line.startswith("ridgelens: error:")]
        assert len(errors) == 1 and "--checkpoint" in errors[0] and "cannot create files" in errors[0], text[-2000:]
        assert "Traceback" not in text
    assert not (tmp_path / "out").exists() and list((tmp_path / "ck").iterdir()) == []


def test_with_a_sharded_basis_a_folder_that_rank_1_cannot_write_is_one_error_on_every_rank(tmp_path):
    """With --shard-basis every rank writes its own slice: each checks it can, before any work."""
    for rc, text, _ in spawn("cli_checkpoint", 2, tmp_path, timeout=120,
                             env={"NO_WRITE_RANK": "1", "EXTRA_ARGS": "--shard-basis"}):
        assert rc == 2 and "exit code 2" in text, text[-2000:]
        errors = [line for line in text.splitlines() if line.startswith("ridgelens: error:")]
        assert len(errors) == 1 and "--checkpoint" in errors[0] and "rank 1 cannot create files" in errors[0] \
            and "--shard-basis" in errors[0], text[-2000:]
        assert "Traceback" not in text
    assert not (tmp_path / "out").exists() and list((tmp_path / "ck").iterdir()) == []


def test_checkpoint_of_another_world_size_is_refused(tmp_path):
    for rc, text, _ in spawn("checkpoint", 2, tmp_path, timeout=120):
        assert rc == 0, text[-2000:]
    assert (tmp_path / "ck" / "lanczos.pt").exists()
    (rc, text, _), = spawn("checkpoint", 1, tmp_path, timeout=120)
    assert rc == 2
    assert "written by a run of 2 process(es); this run has 1" in text


@pytest.mark.slow
def test_a_restarted_job_resumes_to_the_same_result(reference, tmp_path):
    folder, ref = reference
    (tmp_path / "mlp_theta.npy").write_bytes((folder / "mlp_theta.npy").read_bytes())
    (rc0, text0, _), (rc1, _, _) = spawn("resume", 2, tmp_path, timeout=240,
                                         env={"DIE_AT": "30", "RIDGELENS_DIST_TIMEOUT": "10"})
    assert rc1 == -9 and rc0 == 2 and "lost rank 1" in text0, text0[-2000:]
    assert (tmp_path / "ck" / "lanczos.pt").exists()  # written by rank 0 before rank 1 died
    for rc, text, _ in spawn("resume", 2, tmp_path, timeout=240):
        assert rc == 0, text[-2000:]
    got = np.load(tmp_path / "resume-2.npz")
    assert rel(ref["mlp_eigenvalues"], got["eigenvalues"]) < 1e-9
    assert rel(ref["mlp_thetas"], got["thetas"]) < 1e-6


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_sharded_basis_is_checkpointed_per_rank_and_resumed_by_the_same_world_size(tmp_path, full):
    """Each rank writes its own slice; rank 0 writes the manifest last; a restart of 2 ranks resumes to the same result.

    No rank ever holds another's slice: the shard files hold 6 and 5 of the 11 columns, and the
    resumed rank 0 loads 6; another N is refused. ``full`` (slow, two more launches): a corrupted
    shard is named on every rank, and a second restart resumes the Krylov path's own checkpoint.
    """
    import hashlib

    import torch

    sys.path.insert(0, str(HERE))
    import dist_worker

    ref = dist_worker.scenario_resume_sharded(lambda b: b, str(tmp_path / "one"))
    (rc0, text0, _), (rc1, _, _) = spawn("resume_sharded", 2, tmp_path, timeout=120,
                                         env={"DIE_AT": "12", "RIDGELENS_DIST_TIMEOUT": "10"})
    assert rc1 == -9 and rc0 == 2 and "lost rank 1" in text0, text0[-2000:]
    ck = tmp_path / "ck"
    saved = torch.load(ck / "lanczos.pt", weights_only=True)  # the manifest, written at product 10
    assert saved["signature"]["world_size"] == 2 and saved["signature"]["shard_basis"] and saved["nmv"] == 10
    assert "rows" not in saved and [s["file"] for s in saved["shards"]] == ["lanczos.rank0-of-2.10.pt",
                                                                            "lanczos.rank1-of-2.10.pt"]
    for entry, width in zip(saved["shards"], (6, 5), strict=True):
        data = (ck / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        rows = torch.load(ck / entry["file"], weights_only=True)["rows"]
        assert {len(v) for v in rows} == {width}
    if full:
        shard1 = (ck / "lanczos.rank1-of-2.10.pt").read_bytes()
        (ck / "lanczos.rank1-of-2.10.pt").write_bytes(shard1[:-1] + bytes([shard1[-1] ^ 1]))
        for rc, text, _ in spawn("resume_sharded", 2, tmp_path, timeout=120):
            assert rc == 2 and "the shard lanczos.rank1-of-2.10.pt of rank 1 is corrupted" in text, text[-2000:]
        (ck / "lanczos.rank1-of-2.10.pt").write_bytes(shard1)
    for rc, text, _ in spawn("resume_sharded", 2, tmp_path, timeout=120):
        assert rc == 0 and "resumed lanczos.pt" in text, text[-2000:]
    got = dict(np.load(tmp_path / "resume_sharded-2.npz"))
    assert got.pop("widths").tolist() == [6] * len(rows)  # rank 0 loaded its own slice only
    for key in ("eigenvalues", "thetas", "df"):
        assert rel(ref[key], got[key]) < 1e-9, (key, rel(ref[key], got[key]))
    if full:  # run again: the Krylov path's own per-rank checkpoint (its basis V) is resumed too
        for rc, text, _ in spawn("resume_sharded", 2, tmp_path, timeout=120):
            assert rc == 0 and "resumed krylov_path.pt" in text, text[-2000:]
        got = dict(np.load(tmp_path / "resume_sharded-2.npz"))
        assert set(got.pop("widths").tolist()) == {6}
        for key in ("eigenvalues", "thetas", "df"):
            assert rel(ref[key], got[key]) < 1e-9, (key, rel(ref[key], got[key]))
    (rc, text, _), = spawn("resume_sharded", 1, tmp_path, timeout=120)  # another world size: refused
    assert rc == 2 and "written by a run of 2 process(es); this run has 1" in text, text[-2000:]


@pytest.mark.slow
def test_sharded_basis_through_the_schur_complement(reference, tmp_path):
    folder, ref = reference
    (tmp_path / "mlp_theta.npy").write_bytes((folder / "mlp_theta.npy").read_bytes())
    for rc, text, _ in spawn("sharded_schur", 2, tmp_path, timeout=240):
        assert rc == 0, text[-2000:]
    got = np.load(tmp_path / "sharded_schur-2.npz")
    for key in ("eigenvalues", "thetas", "df"):
        assert rel(ref[f"mlp_{key}"], got[key]) < 1e-6, key


def one_and_torchrun(args, folder, timeout=300.0):
    """``ridgelens ARGS`` in one process (``--out FOLDER/one``), then under 2-rank torchrun (``FOLDER/two``).

    Both must succeed; returns torchrun's (stdout, stderr). torchrun runs in a session of its
    own, and the whole session (the agent and its ranks) is killed if it is still running.
    """
    import signal

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env.update(PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "ridgelens", *args, "--out", str(folder / "one")],
                         capture_output=True, text=True, env=env, timeout=timeout)
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", str(free_port())]
    proc = subprocess.Popen([*torchrun, "-m", "ridgelens", *args, "--out", str(folder / "two")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out, err


@pytest.mark.slow
def test_torchrun_cli_equals_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m ridgelens analyze`` writes what one process writes."""
    import json

    args = ["analyze", "--data", "digits", "--model", "mlp", "--hidden", "4", "--train-iters", "30",
            "--lambdas", "0.5,2", "--k", "3"]
    out, _ = one_and_torchrun(args, tmp_path)
    assert out.count("ridgelens analyze: digits") == 1 and "(2 ranks)" in out  # rank 0 alone prints
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    for key in ("eigenvalues", "predicted", "refit", "effective_df"):
        assert rel(a[key], b[key]) < 1e-6, key


@pytest.fixture
def world_of_one(tmp_path):
    """A gloo process group of this process alone, destroyed afterwards (other tests see none)."""
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        tdist.destroy_process_group()


def test_numpy_objectives_and_unusable_devices_are_refused(world_of_one):
    import torch
    from sklearn.datasets import load_diabetes

    from ridgelens import _distributed as dist
    from ridgelens.errors import DistributedError

    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(DistributedError, match="LeastSquares is solved in one process"):
        ridgelens.analyze(ridgelens.LeastSquares(X, y), [0.1])
    with pytest.raises(DistributedError, match="backend 'gloo' cannot all-reduce tensors on 'meta'"):
        dist.check_device(torch.device("meta"))
    t = torch.arange(3.0)
    assert dist.all_reduce_sum(t.clone()).tolist() == [0.0, 1.0, 2.0]  # a world of one: the sum is itself


def test_cli_shard_basis_needs_torchrun(tmp_path, capsys, monkeypatch):
    from ridgelens.cli import main

    monkeypatch.delenv("RANK", raising=False)
    code = main(["analyze", "--data", "digits", "--model", "mlp", "--lambdas", "0.1", "--shard-basis",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ridgelens: error: --shard-basis") and "torchrun" in err
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_of_two_ranks_is_refused_by_one_process(tmp_path):
    import torch

    from ridgelens._checkpoint import Checkpoint
    from ridgelens.errors import DistributedError

    torch.save({"signature": {"lambda": 0.1, "world_size": 2}, "theta": torch.zeros(3)}, tmp_path / "refit_0.pt")
    with pytest.raises(DistributedError, match=r"written by a run of 2 process\(es\); this run has 1"):
        Checkpoint(tmp_path, "refit_0", {"lambda": 0.1}).load()


def test_a_missing_or_corrupted_shard_is_named(tmp_path):
    """The manifest's shard list is checked file by file (here rank 0 of a one-rank manifest)."""
    import torch

    from ridgelens._checkpoint import Checkpoint, file_digest
    from ridgelens.errors import DataError, DistributedError

    torch.save({"rows": [torch.ones(3)]}, tmp_path / "x.rank0-of-1.4.pt")
    entry = {"file": "x.rank0-of-1.4.pt", "sha256": file_digest(tmp_path / "x.rank0-of-1.4.pt")}
    torch.save({"signature": {"n": 3}, "nmv": 4, "shards": [entry]}, tmp_path / "x.pt")
    (tmp_path / "x.rank0-of-1.2.pt").write_bytes(b"stale")  # left by a run killed while saving
    state = Checkpoint(tmp_path, "x", {"n": 3}).load()
    assert state["nmv"] == 4 and torch.equal(state["rows"][0], torch.ones(3))
    assert not (tmp_path / "x.rank0-of-1.2.pt").exists()
    (tmp_path / "x.rank0-of-1.4.pt").write_bytes(b"other bytes")
    with pytest.raises(DataError, match=r"the shard x.rank0-of-1.4.pt of rank 0 is corrupted"):
        Checkpoint(tmp_path, "x", {"n": 3}).load()
    (tmp_path / "x.rank0-of-1.4.pt").unlink()
    with pytest.raises(DataError, match=r"the shard x.rank0-of-1.4.pt of rank 0 is missing"):
        Checkpoint(tmp_path, "x", {"n": 3}).load()
    torch.save({"signature": {"n": 3, "shard_basis": True}, "shards": [entry]}, tmp_path / "x.pt")
    with pytest.raises(DistributedError, match=r"written by a run with a sharded basis \(--shard-basis\); resume with"):
        Checkpoint(tmp_path, "x", {"n": 3}).load()


def test_a_rank_without_a_batch_is_told_the_setting_of_its_model_kind(world_of_one, monkeypatch):
    """Batches come from --batch-size for a torch model, from --max-logits (windows per batch) for an LM."""
    import torch

    import ridgelens as rl
    from ridgelens import _distributed as dist
    from ridgelens.errors import DataError
    from ridgelens.lm import ByteTransformer, LMConfig
    from ridgelens.objectives.lm import LMObjective

    with pytest.raises(DataError, match=r"rank 0 of 1 holds no batch.*use smaller batches \(--batch-size"):
        rl.TorchObjective(torch.nn.Linear(2, 1).double(), torch.nn.functional.mse_loss, [])
    monkeypatch.setattr(dist, "shard", lambda items: [])  # as rank 1 of more ranks than batches
    net = ByteTransformer(LMConfig(layers=1, width=4, heads=1, context=4)).double()
    windows = torch.arange(40).reshape(8, 5)
    with pytest.raises(DataError, match=r"holds no batch.*lower --max-logits \(max_logits=3072: 3 windows"):
        LMObjective(net, windows, max_logits=3 * 4 * 256, shard=True)
    with pytest.raises(DataError, match=r"holds no batch.*give more text \(each batch is already one window"):
        LMObjective(net, windows, max_logits=4 * 256, shard=True)
