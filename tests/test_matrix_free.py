"""Matrix-free engine against dense float64 references: Lanczos, SLQ, Hutch++, the Krylov path."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import ridgelens as rl
from helpers import mixed_curvature_mlp, psd
from ridgelens.spectra import hutchpp_trace, spectral_density


@pytest.fixture(scope="module")
def mlp():
    obj, theta = mixed_curvature_mlp()  # a point with curvature of both signs
    H = np.array([obj.hvp(theta, e) for e in np.eye(obj.n_params)])
    return obj, theta, 0.5 * (H + H.T)


@pytest.mark.parametrize("form", ["reuse", "double-backward", "fwd-over-rev"])
def test_torch_operator_forms_equal_dense(mlp, form):
    obj, theta, H = mlp
    op = rl.hessian(obj, theta, form=form)
    assert op.form == form
    v = np.random.default_rng(1).normal(size=obj.n_params)
    np.testing.assert_allclose(op.matvec(v), H @ v, atol=1e-12 * np.abs(H).max() * np.abs(v).sum())


def test_auto_form_falls_back_when_graph_exceeds_budget(mlp):
    obj, theta, H = mlp
    big = rl.hessian(obj, theta)
    assert big.form == "reuse" and big.reused_batches == obj.n_batches == 3
    assert big.graph_bytes == 3 * big.batch_graph_bytes > 0
    v = np.random.default_rng(3).normal(size=obj.n_params)
    # Two of the three batches' graphs fit: those are reused, the third is recomputed.
    part = rl.hessian(obj, theta, memory_budget=big.graph_bytes - 1)
    assert part.form == "partial-reuse" and part.reused_batches == 2
    assert part.recompute_form in ("double-backward", "fwd-over-rev")
    # Not even one batch's graph fits: recompute every batch.
    none = rl.hessian(obj, theta, memory_budget=big.batch_graph_bytes - 1)
    assert none.form in ("double-backward", "fwd-over-rev") and none.reused_batches == 0
    for op in (big, part, none):
        np.testing.assert_allclose(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12 * np.abs(H).max() * np.abs(v).sum())


@pytest.mark.parametrize("recompute", ["double-backward", "fwd-over-rev"])
def test_partial_reuse_with_each_recompute_form(mlp, recompute):
    obj, theta, H = mlp
    op = rl.hessian(obj, theta, form="partial-reuse", memory_budget=rl.hessian(obj, theta).batch_graph_bytes)
    assert op.form == "partial-reuse" and op.reused_batches == 1
    op.recompute_form = recompute  # the measured choice, overridden to test both
    v = np.random.default_rng(4).normal(size=obj.n_params)
    np.testing.assert_allclose(op.matvec(v), H @ v, atol=1e-12 * np.abs(H).max() * np.abs(v).sum())
    op.release()
    assert op.form == recompute and op.reused_batches == 0
    np.testing.assert_allclose(op.matvec(v), H @ v, atol=1e-12 * np.abs(H).max() * np.abs(v).sum())


def test_memory_budget_must_not_be_negative(mlp):
    obj, theta, _H = mlp
    with pytest.raises(rl.RidgelensError, match="memory_budget"):
        rl.hessian(obj, theta, memory_budget=-1)


def test_float32_model_hvp_close_to_float64(mlp):
    obj, theta, H = mlp
    net32 = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3))
    batches32 = [(x.float(), y) for x, y in obj.batches]
    obj32 = rl.TorchObjective(net32, torch.nn.functional.cross_entropy, batches32)
    op = rl.hessian(obj32, theta)
    v = np.random.default_rng(2).normal(size=obj.n_params)
    hv = op.matvec_tensor(torch.tensor(v, dtype=torch.float32))
    assert hv.dtype == torch.float32
    np.testing.assert_allclose(hv.double().numpy(), H @ v, atol=2e-5 * np.linalg.norm(H @ v))


def test_lanczos_top_k_of_torch_hessian_matches_dense(mlp):
    obj, theta, H = mlp
    w = np.linalg.eigvalsh(H)[::-1]
    s = rl.eigen(rl.hessian(obj, theta), 8, method="lanczos", tol=1e-8)
    assert s.method == "lanczos" and s.converged.all()
    np.testing.assert_allclose(s.eigenvalues, w[:8], rtol=1e-6)
    Q = s.eigenvectors.numpy()
    np.testing.assert_allclose(np.linalg.norm(H @ Q - Q * s.eigenvalues, axis=0), s.residuals, atol=1e-7 * w[0])
    assert (s.residuals <= 1e-8 * abs(w[0])).all()


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_lanczos_which_and_restarts(which):
    w = np.linspace(-3.0, 10.0, 200)
    H = psd(200, w)
    ref = rl.eigen(H, 6, which=which, method="dense").eigenvalues
    for ncv in (None, 14):  # 14 forces thick restarts
        s = rl.eigen(H, 6, which=which, method="lanczos", tol=1e-9, ncv=ncv, max_matvecs=3000)
        assert s.converged.all()
        np.testing.assert_allclose(s.eigenvalues, ref, rtol=1e-7, atol=1e-7)


def test_lanczos_is_deterministic_and_partial_results_are_kept():
    H = psd(300, np.geomspace(100, 1e-3, 300))
    a = rl.eigen(H, 5, method="lanczos", seed=3)
    b = rl.eigen(H, 5, method="lanczos", seed=3)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    with pytest.warns(rl.ConvergenceWarning, match="partial result"):
        p = rl.eigen(H, 5, which="smallest", method="lanczos", ncv=12, max_matvecs=24)
    assert p.k == 5 and not p.converged.all() and p.n_matvecs >= 24
    assert np.isfinite(p.residuals).all()


def test_auto_method_records_choice():
    H = psd(50, np.linspace(1, 2, 50))
    assert rl.eigen(H, 3).method == "dense-eigh"
    Ht = torch.from_numpy(H)
    op = rl.as_operator(lambda V: Ht @ V, shape=H.shape)  # a matrix-free operator over a dense one
    assert rl.eigen(op, 3).method == "dense-eigh"  # n below DENSE_MAX_PARAMS
    with pytest.raises(rl.RidgelensError, match="method must be"):
        rl.eigen(H, 3, method="power")


def test_krylov_path_matches_dense_in_about_one_solve():
    H = psd(400, np.geomspace(20, 1e-2, 400), seed=4)
    th = np.random.default_rng(5).normal(size=400)
    lam = np.geomspace(1e-2, 10, 50)
    d = rl.ridge_path(H, th, lam, method="dense")
    k = rl.ridge_path(H, th, lam, method="krylov", tol=1e-10, low_rank=rl.eigen(H, 10))
    assert k.method == "krylov" and k.converged.all()
    np.testing.assert_allclose(k.thetas, d.thetas, atol=1e-6 * np.abs(d.thetas).max())
    # One CG at the smallest λ, as a reference count of products.
    from scipy.sparse.linalg import cg

    count = {"n": 0}

    def mv(v):
        count["n"] += 1
        return H @ v + lam[0] * v

    from scipy.sparse.linalg import LinearOperator

    b = H @ th
    cg(LinearOperator((400, 400), matvec=mv), b, rtol=1e-10, maxiter=2000)
    assert k.n_matvecs <= 1.2 * count["n"] + 2
    # Low-rank view: factors of the top 10 and the share of θ̂ outside their span.
    Q = d.eigenvectors[:, :10]
    np.testing.assert_allclose(k.outside_share, np.linalg.norm(th - Q @ (Q.T @ th)) / np.linalg.norm(th),
                               rtol=1e-6)
    np.testing.assert_allclose(k.factors, d.factors[:, :10], rtol=1e-6)


def test_krylov_path_with_gradient_and_singular_h():
    rng = np.random.default_rng(6)
    B = rng.normal(size=(120, 30))
    H = B @ B.T / 30  # rank 30
    th, g = rng.normal(size=120), 0.01 * rng.normal(size=120)
    lam = [0.0, 0.1, 1.0]
    d = rl.ridge_path(H, th, lam, gradient=g, method="dense")
    k = rl.ridge_path(H, th, lam, gradient=g, method="krylov", tol=1e-12)
    # λ = 0 with the gradient term: both give the minimum-norm solution in range(H).
    np.testing.assert_allclose(k.thetas, d.thetas, atol=1e-7 * np.abs(d.thetas).max())


def test_slq_and_hutchpp_against_exact_trace():
    w = np.r_[np.geomspace(50, 1, 20), np.random.default_rng(7).uniform(0, 0.5, 480)]
    H = psd(500, w, seed=8)
    d = spectral_density(H, n_probes=20, m=40, seed=1)
    assert d.n_matvecs == 800 and abs(d.weights.sum() - 1) < 1e-12
    assert abs(d.trace_of(lambda t: t) - w.sum()) < 0.15 * w.sum()
    lam = np.array([0.01, 0.1, 1.0])
    exact_df = (w[None, :] / (w[None, :] + lam[:, None])).sum(axis=1)
    np.testing.assert_allclose(d.effective_df(lam), exact_df, rtol=0.1)
    t = hutchpp_trace(H, 150, seed=2)
    assert t.n_matvecs == 150 and t.std_error > 0
    assert abs(t.value - w.sum()) < 4 * t.std_error + 1e-9
    np.testing.assert_allclose(np.trapezoid(d.density, d.grid), 1.0, rtol=0.02)


def test_slq_without_reorthogonalization_keeps_its_quadrature(monkeypatch):
    """The three-term recurrence (3 vectors of memory) gives the same df(λ) and trace as full reorth."""
    from ridgelens import _auto

    w = np.r_[np.geomspace(50, 1, 20), np.random.default_rng(7).uniform(0, 0.5, 480)]
    H = psd(500, w, seed=8)
    full = spectral_density(H, n_probes=20, m=40, seed=1, reorth="full")
    none = spectral_density(H, n_probes=20, m=40, seed=1, reorth="none")
    assert (full.reorth, none.reorth) == ("full", "local")  # "none" is the old name of "local" and none.n_matvecs == full.n_matvecs == 800
    lam = np.array([0.01, 0.1, 1.0])
    exact_df = (w[None, :] / (w[None, :] + lam[:, None])).sum(axis=1)
    np.testing.assert_allclose(none.effective_df(lam), exact_df, rtol=0.1)
    np.testing.assert_allclose(none.effective_df(lam), full.effective_df(lam), rtol=0.02)
    # Same probes: the two traces differ only by rounding (tr of the quadrature is exact: vᵀHv).
    assert abs(none.trace_of(lambda t: t) - full.trace_of(lambda t: t)) < 1e-8 * w.sum()
    monkeypatch.setattr(_auto, "SLQ_BASIS_BUDGET_BYTES", 40 * 500 * 8)  # a 41-vector basis no longer fits
    assert spectral_density(H, n_probes=2, m=40, seed=1).reorth == "local"
    assert spectral_density(H, n_probes=2, m=30, seed=1).reorth == "full"
    with pytest.raises(rl.RidgelensError, match="reorth"):
        spectral_density(H, reorth="partial")


def test_analyze_matrix_free_agrees_with_dense(mlp):
    obj, theta, _H = mlp
    lam = [0.05, 0.2, 1.0]
    with pytest.warns(rl.RidgelensWarning):
        dense = rl.analyze(obj, lam, theta_hat=theta, refit=False, method="dense")
        free = rl.analyze(obj, lam, theta_hat=theta, refit=False, method="matrix-free", k=5, path_tol=1e-12)
    assert dense.method == "dense" and free.method == "matrix-free"
    assert free.n_matvecs == free.spectrum.n_matvecs + free.density.n_matvecs + free.path.n_matvecs
    ok = dense.path.valid & free.path.valid
    assert ok.any()
    np.testing.assert_allclose(free.predicted[ok], dense.predicted[ok], atol=1e-6 * np.abs(dense.predicted[ok]).max())
    np.testing.assert_allclose(free.spectrum.eigenvalues, dense.spectrum.eigenvalues[:5], rtol=1e-6)


CHECKPOINT_SCRIPT = textwrap.dedent("""
    import sys, time, json
    import numpy as np
    import torch
    import ridgelens as rl

    class Slow(rl.CurvatureOperator):
        def __init__(self, H):
            super().__init__(H.shape[0]); self.H = torch.from_numpy(H)
        def _matmat(self, V):
            time.sleep(float(sys.argv[3]) * V.shape[1])
            return self.H @ V

    n = 300
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(n, n)))[0]
    H = (Q * np.geomspace(10, 1e-3, n)) @ Q.T
    op = Slow(H)
    s = rl.eigen(op, 4, method="lanczos", tol=1e-10, ncv=12, checkpoint=sys.argv[1], progress=False)
    th = np.random.default_rng(1).normal(size=n)
    p = rl.ridge_path(op, th, [1e-3, 1e-2, 1e-1], method="krylov", tol=1e-10, checkpoint=sys.argv[1])
    json.dump({"eig": s.eigenvalues.tolist(), "nmv": s.n_matvecs, "theta": p.thetas.tolist(),
               "pmv": p.n_matvecs}, open(sys.argv[2], "w"))
""")


def test_killed_run_resumes_from_checkpoint(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(CHECKPOINT_SCRIPT)
    ref_out, out = tmp_path / "ref.json", tmp_path / "out.json"
    subprocess.run([sys.executable, str(script), str(tmp_path / "ck_ref"), str(ref_out), "0"], check=True)
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, str(script), str(ck), str(out), "0.05"])
    deadline = time.time() + 120
    while not (ck / "lanczos.pt").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()  # at most a few products after the first checkpoint, far from the end
    proc.wait()
    assert (ck / "lanczos.pt").exists() and not out.exists()  # killed part-way
    subprocess.run([sys.executable, str(script), str(ck), str(out), "0"], check=True)
    import json

    ref, got = json.loads(ref_out.read_text()), json.loads(out.read_text())
    np.testing.assert_allclose(got["eig"], ref["eig"], rtol=1e-12)
    assert got["nmv"] == ref["nmv"]
    np.testing.assert_allclose(got["theta"], ref["theta"], rtol=1e-10, atol=1e-12)
    # A checkpoint from another run is refused, not mixed in.
    with pytest.raises(rl.RidgelensError, match="belongs to another run"):
        rl.eigen(psd(300, np.linspace(1, 2, 300)), 5, method="lanczos", checkpoint=ck)


def test_progress_line_reports_hvps_and_time_left():
    import io

    from ridgelens._progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = Progress("lanczos", 40, stream=stream)
    assert bar.enabled  # on by default on a terminal
    for i in range(1, 41):
        bar.update(i)
    bar.close()
    text = stream.getvalue()
    assert "40/40" in text and "HVPs" in text and "eta" in text  # the count, its unit, the time left
    assert text.rstrip("\r").endswith("\x1b[?25h")  # and the terminal's cursor is given back
    quiet = io.StringIO()  # not a terminal: silent unless asked
    Progress("x", 5, stream=quiet).update(5)
    assert quiet.getvalue() == ""


def test_hvp_through_attention_matches_finite_differences():
    # Fused attention kernels have no second derivative; the HVP must still work.
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                             batch_first=True).double().eval()
    head = torch.nn.Linear(8, 2).double()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer, self.head = layer, head

        def forward(self, x):
            return self.head(self.layer(x).mean(dim=1))

    X = torch.randn(12, 5, 8, dtype=torch.float64)
    y = torch.randint(0, 2, (12,))
    obj = rl.TorchObjective(Net().eval(), torch.nn.functional.cross_entropy, [(X[:6], y[:6]), (X[6:], y[6:])])
    theta, v = obj.theta0, np.random.default_rng(0).normal(size=obj.n_params)
    eps = 1e-5
    fd = (obj.gradient(theta + eps * v) - obj.gradient(theta - eps * v)) / (2 * eps)
    for form in ("reuse", "double-backward", "fwd-over-rev"):
        hv = rl.hessian(obj, theta, form=form).matvec(v)
        np.testing.assert_allclose(hv, fd, atol=1e-6 * np.abs(fd).max())
