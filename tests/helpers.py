"""Small shared test helpers (imported by the test modules; pytest puts tests/ on sys.path)."""

import numpy as np
import torch

import ridgelens as rl


def psd(n, spectrum, seed=0):
    """A symmetric n×n matrix with the given eigenvalues, in a random orthogonal basis."""
    Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]
    return (Q * spectrum) @ Q.T


def mixed_curvature_mlp():
    """A float64 tanh MLP (103 parameters) on 150 samples, and a point θ with curvature of both signs.

    θ minimizes the loss plus (0.05/2)‖θ‖², so the unpenalized Hessian there is indefinite.
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)).double()
    X = torch.randn(150, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (150,))
    batches = [(X[i:i + 64], y[i:i + 64]) for i in range(0, 150, 64)]
    obj = rl.TorchObjective(net, torch.nn.functional.cross_entropy, batches)
    return obj, obj.minimize(l2=0.05, method="lbfgs", max_iter=300).theta


def lbfgs_fit(net, loss_fn, X, Y, **options):
    """Train ``net`` in place on (X, Y) with one full-batch torch L-BFGS step (strong Wolfe line search)."""
    opt = torch.optim.LBFGS(net.parameters(), line_search_fn="strong_wolfe", **options)

    def closure():
        opt.zero_grad()
        loss = loss_fn(net(X), Y)
        loss.backward()
        return loss

    opt.step(closure)
    return net


def check_report_page(page, out, d) -> list:
    """A report.html open in ``page``: one <img> per PNG in ``out`` (selection.png among them), each decoded and
    larger than 100 px, and every ``td[data-value]`` cell equal to results.json ``d`` (value and text).
    Returns the cells as ``[key, index, value, text]``."""
    from ridgelens.report._results import number

    pngs = sorted(p.name for p in out.glob("*.png"))
    assert page.locator("img").count() == len(pngs) and "selection.png" in pngs
    sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert all(ok and w > 100 and h > 100 for ok, w, h in sizes)
    cells = page.evaluate("Array.from(document.querySelectorAll('td[data-value]')).map("
                          "c => [c.dataset.key, c.dataset.index ?? null, c.dataset.value, c.textContent])")
    for key, index, value, text in cells:
        ref = d
        for part in key.split("."):
            ref = ref[part]
        ref = ref if index is None else ref[int(index)]
        assert float(value) == ref, (key, index)  # the exact value, as in results.json
        assert text == number(ref)
    return cells


def node_names(t):
    """Names of every autograd node the tensor (or gradient edge) ``t`` was computed through.

    ``t`` may also be a held graph of per-parameter gradients: a list of ``(edge, parameter index)``.
    """
    if isinstance(t, list):
        return set().union(*(node_names(edge) for edge, _ in t))
    seen, todo, names = set(), [t.node if hasattr(t, "node") else t.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names
