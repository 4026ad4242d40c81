"""The start-up probes of TorchObjective: randomness and sum reduction are measured, not guessed.

References are independent of the probe: the loss evaluated again by hand (it does differ),
the Hessian of the same model without the inert layer, and the sum/mean relation of torch's
own reductions.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from torch import nn
from torch.nn import functional as F

import ridgelens as rl
from ridgelens.objectives._probes import probe_objective


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0))
    return X, torch.tensor(y - y.mean())[:, None] / 50


def batches(X, Y, size=100):
    return [(X[i:i + size], Y[i:i + size]) for i in range(0, len(X), size)]


class InlineDropout(nn.Module):
    """Dropout written inside forward: no nn.Dropout module for a scan to find."""

    def __init__(self, p=0.3):
        super().__init__()
        self.a, self.b, self.p = nn.Linear(10, 8), nn.Linear(8, 1), p

    def forward(self, x):
        return self.b(F.dropout(torch.tanh(self.a(x)), p=self.p, training=self.training))


class NoisyEval(nn.Module):
    """Draws noise in forward whatever the mode."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(10, 1)

    def forward(self, x):
        return self.a(x) + 1e-3 * torch.randn(len(x), 1, dtype=x.dtype)


def test_dropout_inside_forward_is_refused_and_eval_mode_is_accepted(diabetes):
    X, Y = diabetes
    torch.manual_seed(0)
    net = InlineDropout().double()
    data = batches(X, Y)
    # The premise: this objective is random (two evaluations by hand differ).
    with torch.no_grad():
        v = [float(F.mse_loss(net(X), Y)) for _ in range(2)]
    assert v[0] != v[1]
    with pytest.raises(rl.RandomObjectiveError, match="train mode") as exc:
        rl.TorchObjective(net, F.mse_loss, data)
    assert "F.dropout" in str(exc.value) and "eval_mode=True" in str(exc.value)
    assert isinstance(exc.value, rl.ModelModeError)  # the existing class still catches it
    obj = rl.TorchObjective(net, F.mse_loss, data, eval_mode=True)
    with torch.no_grad():
        expected = float(F.mse_loss(net.eval()(X), Y))
    assert obj.value(obj.theta0) == pytest.approx(expected, rel=1e-12)


def test_noise_in_eval_mode_names_nondeterminism(diabetes):
    X, Y = diabetes
    with pytest.raises(rl.RandomObjectiveError, match="nondeterministic kernels"):
        rl.TorchObjective(NoisyEval().double().eval(), F.mse_loss, batches(X, Y))


def test_the_probe_leaves_the_callers_random_stream_alone(diabetes):
    X, Y = diabetes
    net = InlineDropout().double().eval()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    rl.TorchObjective(net, F.mse_loss, batches(X, Y))
    assert torch.equal(torch.rand(3), expected)


def test_zero_dropout_is_accepted_and_inert(diabetes):
    X, Y = diabetes
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(10, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    with_p0 = nn.Sequential(plain[0], plain[1], nn.Dropout(0.0), plain[2]).train()
    obj = rl.TorchObjective(with_p0, F.mse_loss, batches(X, Y))  # was refused by the module scan
    ref = rl.TorchObjective(plain, F.mse_loss, batches(X, Y))
    np.testing.assert_allclose(rl.hessian(obj, obj.theta0).to_dense(), rl.hessian(ref, ref.theta0).to_dense(),
                               rtol=0, atol=1e-13)
    with pytest.raises(rl.ModelModeError, match="dropout"):
        rl.TorchObjective(nn.Sequential(plain[0], nn.Dropout(0.1), plain[2]).train(), F.mse_loss, batches(X, Y))


def test_shuffling_loader_that_drops_samples_is_refused(diabetes):
    X, Y = diabetes
    net = nn.Linear(10, 1).double()
    ds = torch.utils.data.TensorDataset(X, Y)
    torch.manual_seed(0)
    dropping = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, drop_last=True)  # 442 = 6·64 + 58

    def R(loader):
        with torch.no_grad():
            return sum(float(F.mse_loss(net(x), y)) * len(y) for x, y in loader) / sum(len(y) for _, y in loader)

    assert len({R(dropping) for _ in range(3)}) > 1  # the premise: R changes between passes
    with pytest.raises(rl.RandomObjectiveError, match="drop_last=True"):
        rl.TorchObjective(net, F.mse_loss, dropping)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True)
    with pytest.raises(rl.RandomObjectiveError, match="replacement"):
        rl.TorchObjective(net, F.mse_loss, torch.utils.data.DataLoader(ds, batch_size=64, sampler=sampler))
    # The pass's own samples count, not the dataset's: a shuffled subset (the usual train/validation split)
    # of 400 in batches of 64 drops 16 others each pass; a RandomSampler of 200 draws another 200 each pass.
    subset = torch.utils.data.SubsetRandomSampler(range(400))
    subset_loader = torch.utils.data.DataLoader(ds, batch_size=64, sampler=subset, drop_last=True)
    assert len({R(subset_loader) for _ in range(3)}) > 1
    with pytest.raises(rl.RandomObjectiveError, match="400 samples a pass in batches of 64"):
        rl.TorchObjective(net, F.mse_loss, subset_loader)
    part = torch.utils.data.RandomSampler(ds, num_samples=200)
    part_loader = torch.utils.data.DataLoader(ds, batch_size=64, sampler=part)
    assert len({R(part_loader) for _ in range(3)}) > 1
    with pytest.raises(rl.RandomObjectiveError, match="draws 200 of the 442 samples"):
        rl.TorchObjective(net, F.mse_loss, part_loader)
    # A subset in a shuffled order, every batch kept: the same samples each pass, accepted.
    kept = torch.utils.data.DataLoader(ds, batch_size=64, sampler=torch.utils.data.SubsetRandomSampler(range(400)))
    assert rl.TorchObjective(net, F.mse_loss, kept).n_samples == 400
    # A shuffled order alone keeps every sample: accepted, and R is the ordered R to rounding.
    shuffled = rl.TorchObjective(net, F.mse_loss, torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True))
    ordered = rl.TorchObjective(net, F.mse_loss, batches(X, Y, 64))
    assert shuffled.value(shuffled.theta0) == pytest.approx(ordered.value(ordered.theta0), rel=1e-12)


@pytest.mark.parametrize("loss", [nn.MSELoss(reduction="sum"), nn.L1Loss(reduction="sum")], ids=["mse", "l1"])
def test_sum_reduced_loss_is_refused(diabetes, loss):
    X, Y = diabetes
    net = nn.Linear(10, 1).double()
    # The premise, from torch itself: the sum reduction is n times the mean one.
    mean = type(loss)()
    with torch.no_grad():
        assert float(loss(net(X), Y)) == pytest.approx(len(X) * float(mean(net(X), Y)), rel=1e-12)
    with pytest.raises(rl.LossReductionError, match="sum-reduced") as exc:
        rl.TorchObjective(net, loss, batches(X, Y))
    assert "reduction='mean'" in str(exc.value)
    assert probe_objective(rl.TorchObjective(net, mean, batches(X, Y))) == {"value": pytest.approx(float(mean(net(X[:100]), Y[:100]).detach()), rel=1e-12), "evaluations": 2, "reduction": "mean"}


def test_sum_reduced_cross_entropy_is_refused():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16), torch.tensor(y)
    net = nn.Linear(64, 10).double()
    with pytest.raises(rl.LossReductionError):
        rl.TorchObjective(net, nn.CrossEntropyLoss(reduction="sum"), [(X[:500], y[:500])])
    assert probe_objective(rl.TorchObjective(net, nn.CrossEntropyLoss(), [(X[:500], y[:500])]))["reduction"] == "mean"


def test_inputs_a_user_could_get_wrong_are_typed_errors_that_say_where(diabetes):
    X, Y = diabetes
    net = nn.Linear(10, 1).double()
    bad = X.clone()
    bad[130, 4] = float("nan")  # batch 1 (rows 100-199), its row 30, column 4
    with pytest.raises(rl.DataError, match=r"batch 1 has a non-finite value \(nan\) in its inputs at row 30, column 4"):
        rl.TorchObjective(net, F.mse_loss, batches(bad, Y))
    with pytest.raises(rl.RidgelensError, match="got NoneType"):
        rl.TorchObjective(net, F.mse_loss, None)
    with pytest.raises(rl.DataError, match=r"fail on batch 0 \(inputs \(100, 10\) int64"):
        rl.TorchObjective(net, F.mse_loss, batches(X.long(), Y))
    with pytest.raises(rl.LossReductionError, match=r"returned \(100, 1\)"):
        rl.TorchObjective(net, lambda o, t: F.mse_loss(o, t, reduction="none"), batches(X, Y))
    with pytest.raises(rl.RidgelensError, match="'meta' device"):
        rl.TorchObjective(nn.Linear(10, 1, device="meta"), F.mse_loss, batches(X, Y))


def test_a_corrupted_or_truncated_checkpoint_is_named(tmp_path):
    from ridgelens._checkpoint import Checkpoint

    good = Checkpoint(tmp_path, "lanczos", {"n": 3})
    good.save({"x": torch.arange(1000.0)})
    blob = good.path.read_bytes()
    for name, data in (("truncated", blob[: len(blob) // 2]), ("garbage", b"not a checkpoint" * 4)):
        cp = Checkpoint(tmp_path, name, {"n": 3})
        cp.path.write_bytes(data)
        with pytest.raises(rl.DataError, match=f"checkpoint {cp.path} is corrupted or truncated"):
            cp.load()
    assert torch.equal(good.load()["x"], torch.arange(1000.0))  # an intact one still loads


class _NoisyBackward(torch.autograd.Function):
    """The identity forward, a random backward: the loss repeats itself, the gradient does not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * (1 + 1e-3 * torch.randn_like(g))


def test_the_probe_is_two_evaluations_and_sees_noise_in_the_backward_pass(diabetes):
    X, Y = diabetes
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    obj = rl.TorchObjective(net, F.mse_loss, batches(X, Y))
    calls.clear()
    assert probe_objective(obj)["evaluations"] == 2
    assert len(calls) == 2  # the model ran twice on batch 0; the halves reuse the first outputs

    def noisy_loss(out, target):
        return F.mse_loss(_NoisyBackward.apply(out), target)

    with torch.no_grad():  # the premise: the loss itself is deterministic
        assert float(noisy_loss(net(X[:100]), Y[:100])) == float(noisy_loss(net(X[:100]), Y[:100]))
    with pytest.raises(rl.RandomObjectiveError, match="gradients"):
        rl.TorchObjective(net, noisy_loss, batches(X, Y))


@pytest.mark.parametrize("case", ["numpy inputs", "dict inputs", "tuple targets"])
def test_batches_that_are_not_tensor_pairs_are_refused_by_batch(diabetes, case):
    """NumPy arrays straight from scikit-learn, a dict of inputs or a tuple of targets raised a raw
    AttributeError ('… has no attribute to') from deep inside; now a DataError names the batch and the part."""
    X, Y = diabetes
    x, y = {"numpy inputs": (X.numpy(), Y), "dict inputs": ({"x": X}, Y), "tuple targets": (X, (Y, Y))}[case]
    what, kind = {"numpy inputs": ("inputs", "numpy.ndarray"), "dict inputs": ("inputs", "dict"),
                  "tuple targets": ("targets", "tuple")}[case]
    with pytest.raises(rl.DataError, match=rf"batch 1's {what} are a {kind}: .*pair of tensors"):
        rl.TorchObjective(nn.Linear(10, 1).double(), F.mse_loss, [(X[:100], Y[:100]), (x, y)])


@pytest.mark.parametrize("returns", ["dict", "tuple"])
def test_sum_reduced_loss_on_outputs_that_are_not_one_tensor_is_refused(diabetes, returns):
    """A model returning a dict or a tuple: its outputs cannot be sliced, so the probe was undecided and a
    sum-reduced loss was accepted (R, H and every λ scaled by the batch size). The halves of the inputs tell."""
    X, Y = diabetes
    lin = nn.Linear(10, 1).double()

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return {"out": self.lin(x)} if returns == "dict" else (self.lin(x), x.sum())

    def pick(o):
        return o["out"] if returns == "dict" else o[0]

    with pytest.raises(rl.LossReductionError, match="sum-reduced"):
        rl.TorchObjective(Wrapped(), lambda o, t: F.mse_loss(pick(o), t, reduction="sum"), batches(X, Y))
    obj = rl.TorchObjective(Wrapped(), lambda o, t: F.mse_loss(pick(o), t), batches(X, Y))
    assert probe_objective(obj)["reduction"] == "mean"


def test_a_model_that_takes_only_whole_batches_leaves_the_reduction_undecided(diabetes):
    """The halves probe (for dict outputs) runs the model on half a batch: a model that refuses that (here an
    assert) leaves the reduction undecided instead of failing the objective with the model's own exception."""
    X, Y = diabetes
    lin = nn.Linear(10, 1).double()

    class WholeOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            assert len(x) == 100, "whole batches only"
            return {"out": self.lin(x)}

    obj = rl.TorchObjective(WholeOnly(), lambda o, t: F.mse_loss(o["out"], t), batches(X[:400], Y[:400]))
    assert probe_objective(obj)["reduction"] == "undecided"


def test_a_later_batch_the_model_fails_on_is_named(diabetes):
    """The probes run batch 0; a label past the classes in batch 3 raised torch's own IndexError/RuntimeError
    from value() or hessian(), naming no batch. Now a DataError names the batch, its shapes and torch's line."""
    X, _ = diabetes
    Y = torch.zeros(len(X), dtype=torch.long)
    Y[350] = 3  # three classes: 0, 1, 2
    obj = rl.TorchObjective(nn.Sequential(nn.Linear(10, 3)).double(), F.cross_entropy, batches(X, Y))
    with pytest.raises(rl.DataError, match=r"fail on batch 3 \(inputs \(100, 10\) float64, targets \(100,\) "
                                            r"int64\): Target 3 is out of bounds"):
        obj.value(obj.theta0)
    with pytest.raises(rl.DataError, match="fail on batch 3"):
        rl.hessian(obj, obj.theta0, form="double-backward").matvec(np.ones(obj.n_params))


class OutOfMemory(nn.Module):
    """A forward that runs out of the device's memory (as a big model on a small GPU does)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(10, 1)

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_is_the_devices_not_a_bad_batch(diabetes):
    """Running out of memory on batch 0 is torch's OutOfMemoryError, not a DataError blaming the data."""
    X, Y = diabetes
    with pytest.raises(torch.OutOfMemoryError, match="out of memory"):
        rl.TorchObjective(OutOfMemory().double(), F.mse_loss, batches(X, Y))
