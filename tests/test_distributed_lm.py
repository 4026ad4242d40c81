"""The byte LM over two gloo processes: its sharded windows give the single-process answers.

Every rank passes the same 25 windows with ``shard=True`` and keeps every other batch (rank 0:
5 batches with the short one, rank 1: 4). The ranks are spawned by tests/dist_worker.py and
killed when a test ends, passed or failed (``spawn`` of tests/test_distributed.py).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import rel, spawn


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Weights of a briefly trained tiny byte LM (float64), written for the workers to load."""
    from ridgelens.lm import LMConfig, stdlib_split, train_lm

    net = train_lm(LMConfig(layers=1, width=4, heads=1, context=4), stdlib_split(4, 100).train, steps=20, seed=0)
    folder = tmp_path_factory.mktemp("dist_lm")
    np.save(folder / "lm_theta.npy", torch.nn.utils.parameters_to_vector(net.parameters()).detach().double().numpy())
    return folder


def _compare(folder, scenario, min_keys):
    import dist_worker

    ref = getattr(dist_worker, f"scenario_{scenario}")(lambda b: b, str(folder))
    for rc, text, _ in spawn(scenario, 2, folder, timeout=300):
        assert rc == 0, text[-2000:]
    got = dict(np.load(folder / f"{scenario}-2.npz"))
    batches = (int(ref.pop("n_batches", 0)), int(got.pop("n_batches", 0)))
    assert set(got) == set(ref) and len(ref) >= min_keys
    assert int(got["n_tokens"]) == int(ref["n_tokens"]) == 100  # global, not this rank's 52
    diffs = {}
    for key, v in ref.items():
        assert np.all(np.isfinite(v)), key
        diffs[key] = rel(v, got[key])
        assert diffs[key] < 1e-6, (key, diffs[key])
    print(scenario, "max relative differences:", {k: f"{d:.1e}" for k, d in diffs.items()})
    return batches, diffs


def test_lm_loss_gradient_and_products_over_two_ranks(folder):
    _compare(folder, "lm_products", 5)
    # Independent of the objective's batching: the loss is the mean token cross-entropy of all windows.
    import dist_worker

    obj = dist_worker.lm_objective(str(folder), None)
    logits = obj.model(obj.windows[:, :-1])
    whole = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), obj.windows[:, 1:].reshape(-1))
    value = dist_worker.scenario_lm_products(lambda b: b, str(folder))["value"]
    assert float(value) == pytest.approx(float(whole), rel=1e-12)


@pytest.mark.slow
def test_lm_spectrum_path_and_df_over_two_ranks(folder):
    """Top eigenvalues, θ̃(λ) and df(λ) of the Hessian and the Gauss-Newton matrix (about a minute)."""
    batches, _ = _compare(folder, "lm", 7)
    assert batches == (9, 5)  # the reference holds every batch; rank 0 five of them
