import os

# Figures are drawn headless in tests; the library itself never chooses a backend.
os.environ.setdefault("MPLBACKEND", "Agg")

import signal

import pytest
import torch

import ridgelens as rl


@pytest.fixture
def alarm():
    """Fail (instead of hanging the suite) if the test body takes more than 20 s."""
    def boom(*_):
        raise TimeoutError("took more than 20 s (an endless restart loop?)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def small_mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    X = torch.randn(60, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (60,))
    batches = [(X[i:i + 20], y[i:i + 20]) for i in range(0, 60, 20)]
    obj = rl.TorchObjective(net, torch.nn.functional.cross_entropy, batches)
    H = rl.hessian(obj, obj.theta0, form="double-backward").to_dense()
    return net, X, y, obj, H



# --- the real browser (Debian's chromium; `make test` installs it when run as root) ------------
CHROMIUM = os.environ.get("RIDGELENS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (the page, its layout, the report)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install -e '.[test]')")
    from pathlib import Path

    from ridgelens.report._screenshot import CHROMIUM_ARGS

    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no browser: {CHROMIUM} is missing (`make test` installs Debian's chromium via apt-get when "
                    "run as root; it could not here)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
