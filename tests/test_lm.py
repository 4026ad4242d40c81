"""The byte LM objective: chunked products, the GGN over (tokens × vocab) logits, the corpus, bad input."""

import contextlib
import math

import pytest
import torch
from torch.func import functional_call, grad, jvp, vjp

from helpers import node_names as _node_names
from ridgelens._autodiff import saved_bytes, second_order_attention, second_order_graph
from ridgelens.errors import DataError, ModelOutputError, RidgelensError
from ridgelens.lm import LMConfig, file_split, stdlib_split, train_lm
from ridgelens.objectives.lm import LMObjective
from ridgelens.operators import GGNOperator, TorchHessianOperator

CFG = LMConfig(layers=1, width=8, heads=2, context=8)


@pytest.fixture(scope="module")
def split():
    return stdlib_split(8, 96)


@pytest.fixture(scope="module")
def net(split):
    return train_lm(CFG, split.train, steps=20, seed=0)


def _full_loss(obj, flat):
    """The mean token cross-entropy over every window at once (no batches), written independently."""
    names = [n for n, p in obj.model.named_parameters()]
    shapes = [p.shape for p in obj.model.parameters()]
    params = dict(zip(names, (c.view(s) for c, s in zip(torch.split(flat, [math.prod(s) for s in shapes]),
                                                           shapes, strict=True)), strict=True))
    logits = functional_call(obj.model, params, (obj.windows[:, :-1],))
    logp = torch.log_softmax(logits, -1)
    return -logp.gather(-1, obj.windows[:, 1:, None]).mean()


def test_corpus_is_split_by_file_and_deterministic(split):
    assert not set(split.train_files) & set(split.val_files)
    again = stdlib_split(8, 96)
    assert torch.equal(again.train, split.train) and torch.equal(again.val, split.val)
    assert split.train.shape == (12, 9)
    text = bytes(split.train[0].tolist())
    assert text.decode("utf-8")  # real source text


def test_training_is_reproducible_for_a_seed(split):
    a = train_lm(CFG, split.train, steps=5, seed=3)
    b = train_lm(CFG, split.train, steps=5, seed=3)
    c = train_lm(CFG, split.train, steps=5, seed=4)
    sa, sb, sc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)


def test_loss_is_the_mean_token_cross_entropy(split, net):
    obj = LMObjective(net, split.train, max_logits=3 * 8 * 256, dtype=torch.float64)
    assert obj.n_batches == 4
    flat = obj.flat_tensor(obj.theta0)
    assert obj.value(obj.theta0) == pytest.approx(float(_full_loss(obj, flat)), rel=1e-12)
    assert obj.perplexity(obj.theta0) == pytest.approx(math.exp(float(_full_loss(obj, flat))), rel=1e-12)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_chunked_and_unchunked_products_agree(split, net, kind):
    whole = LMObjective(net, split.train, dtype=torch.float64)
    chunked = LMObjective(net, split.train, max_logits=2 * 8 * 256, dtype=torch.float64)
    assert whole.n_batches == 1 and chunked.n_batches == 6
    seen = []
    for x, _ in chunked.prepared_batches():
        seen.append(x.numel() * chunked.vocab)
    assert max(seen) <= chunked.max_logits
    theta = whole.theta0
    V = torch.randn(whole.n_params, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if kind == "hessian":
        A = TorchHessianOperator(whole, theta)
        B = TorchHessianOperator(chunked, theta, **chunked.product_options("hessian"))
        assert B.reused_batches == 0 and B.form in ("double-backward", "fwd-over-rev", "r-op")
    else:
        A = GGNOperator(whole, theta)
        B = GGNOperator(chunked, theta, **chunked.product_options("ggn"))
        assert B.form == "recompute"
    torch.testing.assert_close(B @ V, A @ V, rtol=1e-10, atol=1e-12)


def test_hessian_product_matches_torch_func_on_the_whole_loss(split, net):
    obj = LMObjective(net, split.train, max_logits=4 * 8 * 256, dtype=torch.float64)
    flat = obj.flat_tensor(obj.theta0)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with second_order_attention():
        _, ref = jvp(grad(lambda f: _full_loss(obj, f)), (flat,), (v,))
    H = TorchHessianOperator(obj, obj.theta0, **obj.product_options("hessian"))
    torch.testing.assert_close(H @ v, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("form", ["reuse", "double-backward"])
def test_hessian_graph_with_second_order_graph_matches_torch_func(split, net, form):
    """The operator's gradient graph goes through the cached GELU; a block of products still equals torch.func's."""
    obj = LMObjective(net, split.train, dtype=torch.float64)
    flat = obj.flat_tensor(obj.theta0)
    V = torch.randn(obj.n_params, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with second_order_attention():  # torch.func through plain F.gelu: the reference
        ref = torch.stack([jvp(grad(lambda f: _full_loss(obj, f)), (flat,), (v,))[1] for v in V.T], dim=1)
    H = TorchHessianOperator(obj, obj.theta0, form=form, hand_written=False)  # autograd's graph (tests/test_rop.py: the other)
    torch.testing.assert_close(H @ V, ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(H @ V[:, 0], ref[:, 0], rtol=1e-9, atol=1e-12)
    if form == "reuse":
        names = _node_names(H._graph[1])
        assert "_GeluGradBackward" in names and "GeluBackwardBackward0" not in names
        assert "_LayerNormGradBackward" in names and "NativeLayerNormBackwardBackward0" not in names
        assert "_CrossEntropyGradBackward" in names and "LogSoftmaxBackwardDataBackward0" not in names


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_second_order_graph_has_gelu_first_and_second_derivatives(approximate):
    """Inside second_order_graph, F.gelu's gradient and Hessian-vector products (exact and tanh forms) equal
    PyTorch's own, off and on zero, through one gradient node; GELU'' also equals its closed form (exact) or
    central differences of PyTorch's GELU' (tanh)."""
    x0 = torch.linspace(-6, 6, 101, dtype=torch.float64)
    w, u = torch.cos(3 * x0), torch.sin(5 * x0)

    def products(ctx):
        x = x0.clone().requires_grad_(True)
        with ctx:
            (g,) = torch.autograd.grad((torch.nn.functional.gelu(x, approximate=approximate) * w).sum(), x,
                                       create_graph=True)
        names = _node_names(g)
        (hu,) = torch.autograd.grad(g, x, u)
        return g.detach(), hu, names

    g0, h0, _ = products(contextlib.nullcontext())
    g1, h1, names = products(second_order_graph())
    assert "_GeluGradBackward" in names and "GeluBackwardBackward0" not in names
    torch.testing.assert_close(g1, g0, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(h1, h0, rtol=1e-12, atol=1e-14)
    if approximate == "none":  # GELU'' = φ(x)(2 − x²), in closed form
        second = torch.exp(-x0 * x0 / 2) / math.sqrt(2 * math.pi) * (2 - x0 * x0)
    else:
        def slope(x):
            return torch.ops.aten.gelu_backward(torch.ones_like(x), x, approximate="tanh")
        second = (slope(x0 + 1e-5) - slope(x0 - 1e-5)) / 2e-5
    torch.testing.assert_close(h1, w * second * u, rtol=1e-8 if approximate == "tanh" else 1e-12, atol=1e-10)
    # a plain first-order backward inside the context is PyTorch's
    x = x0.clone().requires_grad_(True)
    with second_order_graph():
        (torch.nn.functional.gelu(x, approximate=approximate) * w).sum().backward()
    torch.testing.assert_close(x.grad, g0, rtol=1e-13, atol=1e-15)


def test_second_order_graph_gelu_lets_its_input_go_once_the_gradient_graph_is_built():
    """The GELU's input is an activation no pass needs once the slope is kept: after the gradient graph is built
    it is freed (its Hessian products stay right), and a second gradient graph through the same forward
    raises instead of reading a freed input."""
    import weakref

    a = torch.linspace(-3, 3, 12, dtype=torch.float64).requires_grad_(True)
    w, u = torch.cos(a.detach()), torch.sin(2 * a.detach())
    with second_order_graph():
        x = 2 * a  # a non-leaf activation, as a layer's output is
        y = torch.nn.functional.gelu(x)
        gone = weakref.ref(x)
        del x
        (g,) = torch.autograd.grad((y * w).sum(), a, create_graph=True)
        assert gone() is None
        (hu,) = torch.autograd.grad(g, a, u, retain_graph=True)
        pdf = torch.exp(-2 * a.detach() ** 2) / math.sqrt(2 * math.pi)  # ∂²/∂a² GELU(2a) = 4 φ(2a)(2 − 4a²)
        torch.testing.assert_close(hu, 4 * w * pdf * (2 - 4 * a.detach() ** 2) * u, rtol=1e-12, atol=1e-14)
        with pytest.raises(RuntimeError, match="second gradient graph"):
            torch.autograd.grad((y * w).sum(), a, create_graph=True)


@pytest.mark.parametrize("shape,affine", [((6,), "both"), ((6,), "weight"), ((6,), "none"), ((4, 6), "both")])
def test_second_order_graph_layer_norm_matches_pytorchs_derivatives(shape, affine):
    """Inside second_order_graph, layer norm's gradient and every Hessian-vector product (x, weight, bias) equal
    PyTorch's own; gradgradcheck (finite differences of the hand-written second derivatives) passes."""
    gen = torch.Generator().manual_seed(7)
    x0 = 3 * torch.randn(5, 4, 6, dtype=torch.float64, generator=gen) + 1
    w0 = torch.randn(shape, dtype=torch.float64, generator=gen) if affine != "none" else None
    b0 = torch.randn(shape, dtype=torch.float64, generator=gen) if affine == "both" else None
    leaves = [t for t in (x0, w0, b0) if t is not None]
    mix = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    us = [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in leaves]

    def ln(*ts):
        it = iter(ts)
        return torch.nn.functional.layer_norm(next(it), shape, *(next(it) if t is not None else None
                                                                  for t in (w0, b0)), eps=1e-5)

    def products(ctx):
        ts = [t.clone().requires_grad_(True) for t in leaves]
        with ctx:
            gs = torch.autograd.grad((torch.sin(ln(*ts)) * mix).sum(), ts, create_graph=True)
        hs = torch.autograd.grad(gs, ts, us)
        return [g.detach() for g in gs], hs

    g0, h0 = products(contextlib.nullcontext())
    g1, h1 = products(second_order_graph())
    for a, b in zip(g1 + list(h1), g0 + list(h0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    with second_order_graph():
        assert torch.autograd.gradgradcheck(ln, [t.clone().requires_grad_(True) for t in leaves])


@pytest.mark.parametrize("affine", ["both", "weight", "bias"])
def test_second_order_graph_layer_norm_over_every_dim(affine):
    """A layer norm over all of x's dims (no row dims: x of shape normalized_shape) keeps its weight's and bias's
    shapes: torch's sum over () sums every dim, which once gave a 0-d bias/weight gradient (an autograd error).
    The bias-only case is compared with weight = ones (PyTorch's own double backward fails there)."""
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    w0 = torch.randn(4, 6, dtype=torch.float64, generator=gen) if affine != "bias" else None
    b0 = torch.randn(4, 6, dtype=torch.float64, generator=gen) if affine != "weight" else None
    mix = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    leaves = [t for t in (x0, w0, b0) if t is not None]
    us = [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in leaves]

    def products(ctx, ones_for_missing_weight):
        ts = [t.clone().requires_grad_(True) for t in leaves]
        it = iter(ts)
        x, w, b = next(it), next(it) if w0 is not None else None, next(it) if b0 is not None else None
        if w is None and ones_for_missing_weight:
            w = torch.ones(4, 6, dtype=torch.float64)
        with ctx:
            y = torch.nn.functional.layer_norm(x, (4, 6), w, b)
            gs = torch.autograd.grad((torch.sin(y) * mix).sum(), ts, create_graph=True)
        return [g.detach() for g in gs], torch.autograd.grad(gs, ts, us)

    g0, h0 = products(contextlib.nullcontext(), True)
    g1, h1 = products(second_order_graph(), False)
    for a, b in zip(g1 + list(h1), g0 + list(h0), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape,eps", [(6, 1e-5), ((6.0,), 1e-5), ((6,), "1e-3"), ((6,), None)])
def test_second_order_graph_leaves_calls_torch_refuses_to_torch(shape, eps):
    """An F.layer_norm call PyTorch itself refuses (an int or float normalized_shape, a string or None eps) is
    refused inside second_order_graph too, by PyTorch, instead of being read as something else."""
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError) as outside:
        torch.nn.functional.layer_norm(x, shape, None, None, eps)
    with second_order_graph(), pytest.raises(TypeError) as inside:
        torch.nn.functional.layer_norm(x, shape, None, None, eps)
    assert str(inside.value) == str(outside.value)


@pytest.mark.parametrize("call", ["mean", "sum", "ignored rows", "ignore_index a class", "positional",
                                  "label smoothing (PyTorch's own)"])
def test_second_order_graph_cross_entropy_matches_pytorchs_derivatives(call):
    """Inside second_order_graph, a plain F.cross_entropy's loss, gradient and Hessian-vector products (in the
    logits and in a weight on the loss, which reaches the loss's cotangent) equal PyTorch's own; a call it does
    not handle (label smoothing) is PyTorch's."""
    gen = torch.Generator().manual_seed(11)
    z0 = 2 * torch.randn(9, 6, dtype=torch.float64, generator=gen)
    t = torch.randint(0, 6, (9,), generator=gen)
    kwargs = {"sum": {"reduction": "sum"}, "ignore_index a class": {"ignore_index": int(t[0])},
              "label smoothing (PyTorch's own)": {"label_smoothing": 0.1}}.get(call, {})
    if call == "ignored rows":
        t[[2, 5]] = -100
    U = torch.randn(9, 6, dtype=torch.float64, generator=gen)

    def products(ctx):
        z = z0.clone().requires_grad_(True)
        w = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
        with ctx:
            ce = (torch.nn.functional.cross_entropy(z, t, None, None, -100) if call == "positional"
                  else torch.nn.functional.cross_entropy(z, t, **kwargs))
            gz, gw = torch.autograd.grad(w * ce, (z, w), create_graph=True)
            names = _node_names(gz)
        return [ce.detach(), gz.detach(), gw.detach(), *torch.autograd.grad((gz * U).sum() + 0.7 * gw, (z, w))], names

    ref, _ = products(contextlib.nullcontext())
    got, names = products(second_order_graph())
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert ("_CrossEntropyGradBackward" in names) == (call != "label smoothing (PyTorch's own)")


@pytest.mark.parametrize("case", ["causal", "causal, more keys", "causal, fewer keys", "not causal", "scale",
                                  "3-D", "attn_mask (PyTorch's own)"])
def test_second_order_graph_attention_matches_pytorchs_math_kernel(case):
    """Inside second_order_graph, a plain scaled_dot_product_attention is baddbmm, softmax and bmm: its output,
    gradients and Hessian-vector products in q, k and v equal PyTorch's math kernel (causal with as many, more
    or fewer keys than queries, a given scale, no batch dims); a call with a mask stays PyTorch's."""
    L, S = {"causal, more keys": (5, 9), "causal, fewer keys": (9, 5)}.get(case, (7, 7))
    lead = (3,) if case == "3-D" else (2, 3)
    gen = torch.Generator().manual_seed(4)
    q0, k0, v0, W = (torch.randn(*lead, n, d, dtype=torch.float64, generator=gen)
                     for n, d in ((L, 4), (S, 4), (S, 5), (L, 5)))
    kwargs = {"is_causal": case != "not causal"}
    if case == "scale":
        kwargs["scale"] = -0.3
    if case.startswith("attn_mask"):
        kwargs = {"attn_mask": torch.randn(L, S, dtype=torch.float64, generator=gen)}
    us = [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in (q0, k0, v0)]

    def products(ctx):
        ts = [t.clone().requires_grad_(True) for t in (q0, k0, v0)]
        with second_order_attention(), ctx:
            out = torch.nn.functional.scaled_dot_product_attention(*ts, **kwargs)
            gs = torch.autograd.grad((torch.tanh(out) * W).sum(), ts, create_graph=True)
        return [out.detach(), *(g.detach() for g in gs), *torch.autograd.grad(gs, ts, us)], _node_names(out)

    ref, _ = products(contextlib.nullcontext())
    got, names = products(second_order_graph())
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert ("BaddbmmBackward0" in names) == (not case.startswith("attn_mask"))


@pytest.mark.parametrize("bias,shape,x_needs_grad", [(True, (4, 5, 3), True), (False, (6, 3), True),
                                                     (True, (3,), True), (True, (6, 3), False)])
def test_second_order_graph_without_gradient_values_keeps_the_graph_exact(bias, shape, x_needs_grad):
    """With gradient_values=False a linear layer's weight gradient is not computed (zeros stand in), yet every
    Hessian-vector product through the gradient's graph equals PyTorch's; the input and bias gradients are kept."""
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(*shape, dtype=torch.float64, generator=gen)
    w0, w1 = (torch.randn(*s, dtype=torch.float64, generator=gen) for s in ((7, 3), (2, 7)))
    b0 = torch.randn(7, dtype=torch.float64, generator=gen)
    mix = torch.randn(*shape[:-1], 2, dtype=torch.float64, generator=gen)
    leaves = [x0, w0, w1] + ([b0] if bias else [])
    us = [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in leaves]

    def products(ctx):
        ts = [t.clone().requires_grad_(i > 0 or x_needs_grad) for i, t in enumerate(leaves)]
        want = [t for t in ts if t.requires_grad]
        with ctx:
            h = torch.tanh(torch.nn.functional.linear(ts[0], ts[1], ts[3] if bias else None))
            gs = torch.autograd.grad((torch.sin(torch.nn.functional.linear(h, ts[2])) * mix).sum(), want,
                                     create_graph=True)
        hs = torch.autograd.grad(gs, want, [u for u, t in zip(us, ts, strict=True) if t.requires_grad])
        return [g.detach() for g in gs], hs, [i for i, t in enumerate(ts) if t.requires_grad]

    g0, h0, idx = products(contextlib.nullcontext())
    g1, h1, _ = products(second_order_graph(gradient_values=False))
    for a, b in zip(h1, h0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for i, a, b in zip(idx, g1, g0, strict=True):
        if i in (1, 2):  # the weights: not computed
            assert not a.any() and b.abs().max() > 0.1
        else:
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)



@pytest.mark.parametrize("weight", ["merged LoRA W0 + BA", "weight norm g v/|v|", "transposed view"])
def test_recomputed_products_are_exact_for_weights_computed_from_parameters(weight):
    """A recomputed product (gradient_values=False) skips a linear layer's weight gradient only when the weight
    is a parameter or a view of one: for a weight computed from parameters the skipped value multiplies that
    computation's second derivative. The products equal central differences of exact gradients either way,
    and the reused graph's; a view (Wᵀ of a parameter) still takes the one-node path."""
    from ridgelens import TorchObjective, hessian

    gen = torch.Generator().manual_seed(2)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W0 = torch.nn.Parameter(0.5 * torch.randn(3, 4, dtype=torch.float64, generator=gen),
                                         requires_grad=False)
            self.A = torch.nn.Parameter(0.5 * torch.randn(2, 4, dtype=torch.float64, generator=gen))
            self.B = torch.nn.Parameter(0.5 * torch.randn(3, 2, dtype=torch.float64, generator=gen))
            self.g = torch.nn.Parameter(1 + torch.rand(3, 1, dtype=torch.float64, generator=gen))
            self.V = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64, generator=gen))

        def forward(self, x):
            if weight.startswith("merged"):
                w = self.W0 + self.B @ self.A
            elif weight.startswith("weight norm"):
                w = self.g * self.V.T / self.V.T.norm(dim=1, keepdim=True)
            else:
                w = self.V.T
            return torch.nn.functional.linear(x, w)

    net = torch.nn.Sequential(Layer(), torch.nn.Tanh())  # three classes: the layer's is the only linear call
    X = torch.randn(40, 4, dtype=torch.float64, generator=gen)
    Y = torch.randint(0, 3, (40,), generator=gen)
    obj = TorchObjective(net, torch.nn.functional.cross_entropy, [(X[:20], Y[:20]), (X[20:], Y[20:])])
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=gen).numpy()
    fd = (obj.gradient(obj.theta0 + 1e-5 * v) - obj.gradient(obj.theta0 - 1e-5 * v)) / 2e-5
    for form in ("double-backward", "reuse"):
        hv = hessian(obj, obj.theta0, form=form).matvec(v)
        assert abs(hv - fd).max() <= 1e-7 * abs(fd).max(), (form, abs(hv - fd).max() / abs(fd).max())
    flat = obj.flat_tensor(obj.theta0, requires_grad=True)
    with second_order_graph(gradient_values=False):
        (g,) = torch.autograd.grad(next(iter(obj.batch_losses(flat))), flat, create_graph=True)
    assert ("_LinearGradBackward" in _node_names(g)) == (weight == "transposed view")


@pytest.mark.parametrize("call", ["conv1d", "keywords", "beta 2 (PyTorch's own)", "2-D bias (PyTorch's own)"])
def test_addmm_linear_layers_skip_their_weight_gradient_and_keep_the_graph_exact(call):
    """torch.addmm(bias, x, W), Hugging Face's Conv1D, is a linear layer to gradient_values=False: its weight's
    gradient is not computed (zeros), the HVPs equal PyTorch's; other addmm calls stay PyTorch's own and exact."""
    from transformers.pytorch_utils import Conv1D

    gen = torch.Generator().manual_seed(6)
    conv = Conv1D(7, 3).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, dtype=torch.float64, generator=gen))
    x0 = torch.randn(4, 5, 3, dtype=torch.float64, generator=gen)
    mix = torch.randn(4, 5, 7, dtype=torch.float64, generator=gen)
    us = [torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in (x0, conv.weight, conv.bias)]

    def layer(x, w, b):
        x2 = x.reshape(-1, 3)
        if call == "conv1d":
            return functional_call(conv, {"weight": w, "bias": b}, (x,)).reshape(-1, 7)
        if call == "keywords":
            return torch.addmm(input=b, mat1=x2, mat2=w)
        if call.startswith("beta"):
            return torch.addmm(b, x2, w, beta=2)
        return torch.addmm(b.expand(x2.shape[0], 7), x2, w)

    def products(ctx):
        ts = [t.detach().clone().requires_grad_(True) for t in (x0, conv.weight, conv.bias)]
        with ctx:
            gs = torch.autograd.grad((torch.sin(layer(*ts)) * mix.reshape(-1, 7)).sum(), ts, create_graph=True)
        names = _node_names(gs[1])
        return [g.detach() for g in gs], torch.autograd.grad(gs, ts, us), names

    g0, h0, _ = products(contextlib.nullcontext())
    g1, h1, names = products(second_order_graph(gradient_values=False))
    for a, b in zip(h1, h0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    mine = call in ("conv1d", "keywords")
    assert ("_LinearGradBackward" in names) == mine
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(g1[2], g0[2], rtol=1e-13, atol=1e-15)
    if mine:
        assert not g1[1].any() and g0[1].abs().max() > 0.1
    else:
        torch.testing.assert_close(g1[1], g0[1], rtol=1e-13, atol=1e-15)

def _jt_softmax_hessian_j(obj, v):
    """Jᵀ H_out J v over every window at once, H_out = (diag p − p pᵀ)/N per token, from torch.func jvp/vjp."""
    flat = obj.flat_tensor(obj.theta0)

    def logits_of(f):
        return obj.outputs(f, obj.windows[:, :-1])

    with second_order_attention():
        z, Jv = jvp(logits_of, (flat,), (v,))
        p = torch.softmax(z, -1)
        HJv = (p * Jv - p * (p * Jv).sum(-1, keepdim=True)) / obj.n_tokens
        _, pull = vjp(logits_of, flat)
        return pull(HJv)[0]


def test_ggn_is_jt_softmax_hessian_j_over_tokens(split, net):
    """G v = Jᵀ H_out J v, the reference built independently from torch.func jvp/vjp."""
    obj = LMObjective(net, split.train, max_logits=4 * 8 * 256, dtype=torch.float64)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    G = GGNOperator(obj, obj.theta0, **obj.product_options("ggn"))
    torch.testing.assert_close(G @ v, _jt_softmax_hessian_j(obj, v), rtol=1e-9, atol=1e-12)
    # PSD by construction, unlike H at this (not converged) θ̂
    assert float(v @ (G @ v)) > 0


def test_reused_ggn_graph_keeps_no_zero_cotangents(split, net):
    """The held Jᵀu graph (built at u = 0) saves about the forward's bytes, not its zero cotangents too.

    Reference sizes: the bytes autograd saves for the forward, for the loss's gradient in the
    logits, and for Jᵀu built plainly (its zero cotangents included, several times the forward's).
    Several vectors at once (the batched backward) take the broadcast zeros as well.
    """
    obj = LMObjective(net, split.train, dtype=torch.float64)
    assert obj.n_batches == 1
    flat, (x, y) = obj.flat_tensor(obj.theta0, requires_grad=True), next(iter(obj.prepared_batches()))
    with second_order_attention():
        out, fwd = saved_bytes(lambda: obj.outputs(flat, x))
        u = torch.zeros_like(out, requires_grad=True)
        _, plain = saved_bytes(lambda: torch.autograd.grad(out, flat, u, create_graph=True))
        o = out.detach().requires_grad_(True)
        _, loss = saved_bytes(lambda: torch.autograd.grad(obj.loss_fn(o, y), o, create_graph=True))
    G = GGNOperator(obj, obj.theta0, reuse=True, hand_written=False)  # autograd's graph (the byte LM's own: by hand)
    assert G.held == "graph"
    assert plain > 2 * fwd  # the zero cotangents are worth dropping here
    # what it keeps of the Jᵀu graph (forward tensors saved again, counted again) is under half of it
    assert fwd + loss < G.batch_graph_bytes < fwd + loss + plain / 2
    V = torch.randn(obj.n_params, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ref = torch.stack([_jt_softmax_hessian_j(obj, v) for v in V.T], 1)
    for _ in range(2):  # the held graph serves product after product
        torch.testing.assert_close(G.matmat(V), ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(G @ V[:, 0], ref[:, 0], rtol=1e-9, atol=1e-12)


def test_bad_text_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        file_split(empty, 8)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="binary"):
        file_split(binary, 8)
    short = tmp_path / "short.txt"
    short.write_text("def f(): pass\n")
    with pytest.raises(DataError, match="fewer than two contexts"):
        file_split(short, 8)
    with pytest.raises(DataError, match="not found"):
        file_split(tmp_path / "missing.txt", 8)
    utf16 = tmp_path / "u16.txt"
    utf16.write_text("x = 1\n" * 40, encoding="utf-16")  # with its byte-order mark: was called binary
    with pytest.raises(DataError, match=r"u16.txt is UTF-16 .* iconv -f utf-16 -t utf-8 u16.txt > u16-utf8.txt"):
        file_split(utf16, 8)
    utf32 = tmp_path / "u32.txt"
    utf32.write_text("x = 1\n" * 40, encoding="utf-32")  # its mark begins with UTF-16-LE's
    with pytest.raises(DataError, match=r"u32.txt is UTF-32 .* iconv -f utf-32 -t utf-8"):
        file_split(utf32, 8)


@pytest.mark.parametrize("where,value", [((0, 2), -1), ((3, 5), -1), ((5, 8), -100)],
                         ids=["window 0", "a later window", "-100 in the last column (a target only)"])
def test_negative_token_ids_are_refused_by_place(split, net, where, value):
    """A negative id (a padding or ignored-label value) is never a token: refused where it sits. In window 0 it
    was blamed on the largest id, in a later window it gave a raw IndexError at the first value, and as a
    target only (-100) cross-entropy skipped it silently while n_tokens counted it."""
    w = split.train[:6].clone()
    w[where] = value
    with pytest.raises(DataError, match=rf"token id {value} at window {where[0]}, position {where[1]} is negative"):
        LMObjective(net, w)


def test_unpenalized_as_one_string_carries_to_other_windows(split, net):
    """unpenalized="*.bias" is one pattern, on the objective and on the ones on() makes (it was kept as its
    characters there, each refused as matching no parameter)."""
    obj = LMObjective(net, split.train, unpenalized="*.bias")
    other = obj.on(split.val)
    assert (other.penalized == obj.penalized).all() and not obj.penalized.all()


def test_context_longer_than_the_model_is_refused(split, net):
    w = stdlib_split(16, 64).train
    with pytest.raises(DataError, match=r"windows of 16 \+ 1 tokens: .* larger than the model's context of 8"):
        LMObjective(net, w)


def test_forward_without_logits_or_loss_is_refused(split):
    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(256, 4)

        def forward(self, x):
            return {"hidden": self.emb(x)}

    with pytest.raises(ModelOutputError, match="neither logits nor a loss"):
        LMObjective(Features(), split.train)


class _Pooled(torch.nn.Module):
    """Logits at each position from the mean embedding of the whole window (a peek at later tokens), or causal."""

    def __init__(self, causal, dropout=0.0):
        super().__init__()
        self.causal = causal
        self.emb, self.out = torch.nn.Embedding(256, 4), torch.nn.Linear(4, 256)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x):
        e = self.drop(self.emb(x))
        n = torch.arange(1, x.shape[1] + 1).unsqueeze(-1)
        return self.out(e.cumsum(1) / n if self.causal else e.mean(1, keepdim=True).expand_as(e))


def test_a_model_that_sees_later_tokens_is_refused_by_name(split):
    """Next-token prediction needs a causal LM: logits that move when only later tokens change are refused
    (one ulp of rounding is not a peek); a causal model with live dropout is refused for its randomness instead."""
    torch.manual_seed(0)
    with pytest.raises(ModelOutputError, match="the model is not causal"):
        LMObjective(_Pooled(causal=False), split.train)
    LMObjective(_Pooled(causal=True), split.train)  # accepted
    with pytest.raises(RidgelensError) as err:
        LMObjective(_Pooled(causal=True, dropout=0.5), split.train)
    assert "not causal" not in str(err.value) and "Dropout" in str(err.value)


def test_window_over_max_logits_is_refused(split, net):
    with pytest.raises(RidgelensError, match="more than max_logits"):
        LMObjective(net, split.train, max_logits=100)


def test_second_order_attention_sets_the_flags_sdpa_kernel_sets_and_restores_them():
    """The fast context (entered around every product) against torch's own sdpa_kernel(MATH): the same backends
    inside, every flag back as it was after, from a non-default state and through an exception."""
    import torch.nn.attention as attention

    now = attention._cur_sdpa_kernel_backends
    with attention.sdpa_kernel([attention.SDPBackend.MATH, attention.SDPBackend.FLASH_ATTENTION]):
        before = now()
        with attention.sdpa_kernel(attention.SDPBackend.MATH):
            reference = now()
        with second_order_attention():
            assert now() == reference == [attention.SDPBackend.MATH]
        assert now() == before
        with pytest.raises(ZeroDivisionError), second_order_attention():
            raise ZeroDivisionError
        assert now() == before
    q = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    with second_order_attention():  # the math kernel has a second derivative
        (g,) = torch.autograd.grad(torch.nn.functional.scaled_dot_product_attention(q, q, q).square().sum(), q,
                                   create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), q)
    assert torch.isfinite(h).all() and h.abs().sum() > 0


def test_second_order_attention_contexts_open_at_once_restore_the_flags_once():
    """Two contexts whose exits interleave (two threads' products: A enters, B enters, A exits, B exits): the
    math kernel stays the only one until the last exits, and then every flag is back. Each context saving its
    own state left the fused kernels on under B after A's exit, and only the math kernel on for good after B's."""
    import threading

    import torch.nn.attention as attention

    now = attention._cur_sdpa_kernel_backends
    before = now()
    assert before != [attention.SDPBackend.MATH]
    a, b = second_order_attention(), second_order_attention()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert now() == [attention.SDPBackend.MATH]  # B's products still run on the math kernel
    b.__exit__(None, None, None)
    assert now() == before
    seen, barrier = [], threading.Barrier(4)

    def product():
        with second_order_attention():
            barrier.wait()  # all four inside at once
            seen.append(now())
            barrier.wait()

    threads = [threading.Thread(target=product) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [[attention.SDPBackend.MATH]] * 4 and now() == before


@pytest.mark.parametrize(("settings", "needle"), [({"subsamples": 10**6}, "subsamples=1000000 is more than the"),
                                                  ({"k": 10**7}, "settings.k=10000000 is more than the model's")])
def test_analyze_lm_refuses_sizes_before_any_work(split, net, settings, needle, monkeypatch):
    """Too many subsamples (or eigenpairs) is refused before the analysis: the sampling noise, which needs the
    windows, comes last, after every eigensolve and retraining."""
    from ridgelens import pipeline
    from ridgelens.pipeline import LMSettings

    obj = LMObjective(net, split.train[:4])
    monkeypatch.setattr(pipeline._lm, "build_curvature", lambda *a, **k: pytest.fail("work before the check"))
    with pytest.raises(RidgelensError, match=needle):
        pipeline.analyze_lm(obj, obj.on(split.val[:2]), obj.theta0, [0.1], settings=LMSettings(**settings))
