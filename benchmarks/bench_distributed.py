"""Data-parallel curvature on this machine: 1 and 2 gloo processes, per HVP and per top-k run.

Model: a 64-256-256-10 tanh MLP (85,002 parameters, float64) on scikit-learn's digits (1797
rows, batches of 128, mean ½‖f(x) − onehot(y)‖²) at its seeded initial weights. For each
world size N (each rank a separate process holding every N-th batch, one thread each):

- per HVP: the median time of ``TorchHessianOperator.matvec`` (form "double-backward", the
  recompute form a large model uses), and the share of it spent inside the all-reduce;
- the bare limit of the same run: a ``torch.distributed.all_reduce`` of n float64 alone
  (its median gives the all-reduce constant of docs/scaling.md) and the one-process HVP
  time divided by N (perfect scaling);
- per top-k run: ``eigen(op, 10, method="lanczos", ncv=40)``, its wall time, and the basis
  bytes per rank with and without ``sharded_bases`` (counted from the blocks allocated) and
  the process' peak RSS.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_distributed.py --threads 1 [--repeats 7]

On a shared machine the 2-process timings are noisy (both ranks compete with everything
else for the cores); the medians are printed with their spread.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HIDDEN = 256
BATCH = 128


def objective():
    """The benchmark's MLP on this rank's share of the digits batches."""
    from sklearn.datasets import load_digits

    import ridgelens as rl
    from ridgelens import _distributed as dist

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0)
    Y = torch.nn.functional.one_hot(torch.tensor(y), 10).to(torch.float64)
    batches = dist.shard([(X[i:i + BATCH], Y[i:i + BATCH]) for i in range(0, len(X), BATCH)])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 10)).double()

    def loss(o, t):
        return 0.5 * ((o - t) ** 2).sum(dim=-1).mean()

    return rl.TorchObjective(net, loss, batches)


def worker(rank: int, world: int, port: int, repeats: int, out: str) -> None:
    """One rank: time HVPs (with the all-reduce share), a bare all-reduce, and top-k with/without a sharded basis."""
    import torch.distributed as tdist

    import ridgelens as rl
    from _common import peak_rss_bytes
    from ridgelens import _distributed as dist
    from ridgelens.spectra import _krylov

    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    obj = objective()
    op = rl.hessian(obj, obj.theta0, form="double-backward")
    n = op.n
    reduce_time = [0.0]
    original = dist.all_reduce_sum

    def timed_reduce(t, what="all-reduce"):
        t0 = time.perf_counter()
        r = original(t, what)
        reduce_time[0] += time.perf_counter() - t0
        return r

    dist.all_reduce_sum = timed_reduce  # the operators look it up in the module at each call
    v = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    op.matvec(v)  # warm-up
    hvp, share = [], []
    for _ in range(repeats):
        dist.barrier()
        reduce_time[0] = 0.0
        t0 = time.perf_counter()
        op.matvec(v)
        t = time.perf_counter() - t0
        hvp.append(t)
        share.append(reduce_time[0] / t)
    bare = []
    buf = torch.zeros(n, dtype=torch.float64)
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        tdist.all_reduce(buf)
        bare.append(time.perf_counter() - t0)

    allocated = []
    grow = _krylov.LanczosBasis._grow

    def counting(self, zero=False):
        grow(self, zero)
        allocated.append(self._blocks[-1].numel() * self._blocks[-1].element_size())

    _krylov.LanczosBasis._grow = counting
    topk = {}
    for sharded in (False, True):
        allocated.clear()
        dist.barrier()
        t0 = time.perf_counter()
        with dist.sharded_bases(sharded):
            spec = rl.eigen(op, 10, method="lanczos", ncv=40, tol=1e-6)
        topk[str(sharded)] = {"seconds": time.perf_counter() - t0, "basis_bytes": sum(allocated),
                              "n_matvecs": int(spec.n_matvecs), "top": spec.eigenvalues[:3].tolist()}
    row = {"rank": rank, "n": n, "hvp": hvp, "share": share, "bare_allreduce": bare, "topk": topk,
           "peak_rss": peak_rss_bytes(), "batches": obj.n_batches}
    rows = dist.all_gather_objects(row)
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(rows, fh)
    tdist.destroy_process_group()


def run_world(world: int, repeats: int, threads: int) -> list[dict]:
    """Spawn ``world`` ranks of this script and return their rows."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tempfile.mktemp(suffix=".json")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(r), str(world), str(port),
                               "--repeats", str(repeats), "--out", out, "--threads", str(threads)], env=env)
             for r in range(world)]
    try:
        for p in procs:
            if p.wait(timeout=1200) != 0:
                raise SystemExit(f"a rank of the {world}-process run failed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with open(out) as fh:
        rows = json.load(fh)
    os.unlink(out)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", nargs=3, type=int, metavar=("RANK", "WORLD", "PORT"))
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.worker:
        worker(*args.worker, args.repeats, args.out)
        return
    from _common import machine_line

    print(machine_line())
    print(f"MLP 64-{HIDDEN}-{HIDDEN}-10 on digits, batches of {BATCH}, float64, {args.threads} thread(s) per rank, "
          f"medians of {args.repeats}")
    res = {w: run_world(w, args.repeats, args.threads) for w in (1, 2)}
    n = res[1][0]["n"]
    one_hvp = np.median(res[1][0]["hvp"])
    print(f"n = {n} parameters; basis of ncv + 1 = 41 vectors")
    print("world  rank  batches  HVP ms (min-max)      in all-reduce  bare all-reduce ms  top-10 s  "
          "basis MB/rank (unsharded → sharded)  peak RSS MB")
    for w, rows in res.items():
        for r in rows:
            h = np.array(r["hvp"]) * 1e3
            print(f"{w:5d}  {r['rank']:4d}  {r['batches']:7d}  {np.median(h):7.1f} ({h.min():.1f}-{h.max():.1f})"
                  f"  {100 * np.median(r['share']):12.1f}%  {1e3 * np.median(r['bare_allreduce']):18.2f}"
                  f"  {r['topk']['False']['seconds']:8.2f}  {r['topk']['False']['basis_bytes'] / 2**20:10.1f} → "
                  f"{r['topk']['True']['basis_bytes'] / 2**20:.1f}{'':18s}  {r['peak_rss'] / 2**20:9.0f}")
    two_hvp = max(np.median(r["hvp"]) for r in res[2])
    print(f"HVP speed-up 1 → 2 processes: {one_hvp / two_hvp:.2f}× (perfect: 2.00×; ratio to the bare limit "
          f"one-process/2: {(one_hvp / 2) / two_hvp:.2f})")
    t1 = res[1][0]["topk"]["False"]["seconds"]
    t2 = max(r["topk"]["False"]["seconds"] for r in res[2])
    t2s = max(r["topk"]["True"]["seconds"] for r in res[2])
    print(f"top-10 Lanczos: 1 process {t1:.2f} s, 2 processes {t2:.2f} s, 2 with a sharded basis {t2s:.2f} s")
    for w, rows in res.items():
        for s in ("False", "True"):
            r = rows[0]
            m = r["topk"][s]["n_matvecs"]
            rest = (r["topk"][s]["seconds"] - m * np.median(r["hvp"])) / m
            print(f"  {w} process(es), {'sharded' if s == 'True' else 'unsharded'} basis: {m} HVPs; time per step "
                  f"beyond the HVP (basis operations, restarts, gathers): {1e3 * rest:.1f} ms")
    same = all(np.allclose(r["topk"][s]["top"], res[1][0]["topk"]["False"]["top"], rtol=1e-8)
               for rows in res.values() for r in rows for s in ("False", "True"))
    print(f"top eigenvalues agree across runs (rtol 1e-8): {same}")
    local = one_hvp * 1e3 / n
    print(f"constants: local HVP {local * 1e3:.3f} µs per parameter over 1797 samples (1 process); "
          f"all-reduce of n float64 over gloo/loopback {1e3 * np.median(res[2][0]['bare_allreduce']):.2f} ms "
          f"= {8 * n / np.median(res[2][0]['bare_allreduce']) / 1e9:.2f} GB/s effective")


if __name__ == "__main__":
    main()
