"""The byte LM's hand-written Hessian-vector product (form "r-op") against autograd and finite differences."""

import numpy as np
import pytest
import torch

from ridgelens.errors import RidgelensError
from ridgelens.lm import ByteTransformer, LMConfig, stdlib_split, train_lm
from ridgelens.objectives.lm import LMObjective
from ridgelens.objectives.torch import TorchObjective
from ridgelens.operators import GGNOperator, TorchHessianOperator


@pytest.fixture(scope="module")
def split():
    return stdlib_split(8, 160)


@pytest.fixture(scope="module", params=[(1, 8, 2), (2, 12, 3)], ids=["1 layer", "2 layers"])
def obj(request, split):
    layers, width, heads = request.param
    net = train_lm(LMConfig(layers=layers, width=width, heads=heads, context=8), split.train, steps=30, seed=0)
    # Windows of 6 tokens in a context of 8, cut into batches of 3 windows (the last one shorter)
    return LMObjective(net, split.train[:, :7], max_logits=3 * 6 * 256, dtype=torch.float64)


def _vectors(n, k, seed):
    return torch.randn(n, k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_r_op_equals_double_backward_on_every_parameter(obj):
    assert obj.n_batches > 1 and obj.windows.shape[0] % obj.windows_per_batch  # weighted, unequal batches
    V = _vectors(obj.n_params, 3, 0)
    mine = TorchHessianOperator(obj, obj.theta0, form="r-op") @ V
    ref = TorchHessianOperator(obj, obj.theta0, form="double-backward") @ V
    names, sizes = obj.param_blocks()
    for name, a, b in zip(names, torch.split(mine, sizes), torch.split(ref, sizes), strict=True):
        assert float((a - b).abs().max()) <= 1e-12 * float(ref.abs().max()), name  # layer norms, embeddings too


def test_r_op_equals_central_differences_of_the_gradient(obj):
    v = _vectors(obj.n_params, 1, 1)[:, 0]
    hv = (TorchHessianOperator(obj, obj.theta0, form="r-op") @ v).numpy()
    # Measured: the difference falls as h² (2.5e-6, 2.5e-8, 2.5e-10 of the largest entry at h = 1e-4, 1e-5,
    # 1e-6; 3.6e-6 … 3.6e-10 with 2 layers): truncation, so an error in any rule would stand out.
    h = 1e-6
    fd = (obj.gradient(obj.theta0 + h * v.numpy()) - obj.gradient(obj.theta0 - h * v.numpy())) / (2 * h)
    assert np.abs(hv - fd).max() <= 1e-8 * np.abs(fd).max()


def test_r_op_in_float32_agrees_with_double_backward_in_float32(split):
    net = train_lm(LMConfig(layers=1, width=8, heads=2, context=8), split.train, steps=30, seed=0)
    obj = LMObjective(net, split.train, dtype=torch.float32)
    v = _vectors(obj.n_params, 1, 2)[:, 0].float()
    a = TorchHessianOperator(obj, obj.theta0, form="r-op") @ v
    b = TorchHessianOperator(obj, obj.theta0, form="double-backward") @ v
    assert a.dtype == torch.float32 and float((a - b).norm() / b.norm()) < 1e-5


def test_several_batches_recompute_by_hand_and_build_no_graph(obj):
    """LMObjective.product_options with several batches: form "recompute", the hand-written product, no graph
    measured (building one was most of a recompute product's peak memory on the demo LM) and nothing timed."""
    H = TorchHessianOperator(obj, obj.theta0, **obj.product_options("hessian"))
    assert (H.form, H.reused_batches, H.batch_graph_bytes, H.form_timings) == ("r-op", 0, None, {})
    assert "hand-written R-operator applies" in str(H.choice)


def test_auto_with_no_budget_times_every_recompute_form_r_op_included(obj):
    H = TorchHessianOperator(obj, obj.theta0, memory_budget=0)
    assert H.reused_batches == 0 and set(H.form_timings) == {"double-backward", "fwd-over-rev", "r-op"}
    assert H.form == min(H.form_timings, key=H.form_timings.get)


class _Sub(ByteTransformer):
    pass


def _unsupported(split):
    """Models and objectives the hand-written product does not cover, and the reason each is named by."""
    cfg = LMConfig(layers=1, width=8, heads=2, context=8)
    w = split.train[:4]
    torch.manual_seed(0)
    hooked = ByteTransformer(cfg).double()
    hooked.blocks[0].fc.register_forward_hook(lambda m, i, o: o * 2)
    frozen = ByteTransformer(cfg).double()
    frozen.pos.weight.requires_grad_(False)
    plain = ByteTransformer(cfg).double()
    tied = ByteTransformer(cfg).double()
    tied.head.weight = tied.tok.weight  # one Parameter, listed once
    patched = ByteTransformer(cfg).double()
    patched.blocks[0].ln2.forward = lambda h: h  # an instance's own forward: not the model's arithmetic
    heads = ByteTransformer(cfg).double()
    heads.blocks[0].heads = 1  # the forward reads each block's own (a review found r-op 1.42 off before)
    back = ByteTransformer(cfg).double()
    back.blocks[0].fc.register_full_backward_hook(lambda m, gi, go: None)
    swapped = ByteTransformer(cfg).double()
    swapped.blocks[0].ln1 = torch.nn.RMSNorm(8).double()  # another module in a layer norm's place
    seq = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    X, Y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1])
    return [
        (LMObjective(_Sub(cfg).double(), w), "the model is a _Sub"),
        (LMObjective(hooked, w), "hooks are registered (blocks.0.fc)"),
        (LMObjective(back, w), "hooks are registered (blocks.0.fc)"),
        (LMObjective(heads, w), "a block's heads differ from the config's (2)"),
        (LMObjective(frozen, w), "every parameter of the model trainable"),
        (LMObjective(tied, w), "not a ByteTransformer's own (tied, added or reshaped)"),
        (LMObjective(patched, w), "its modules are not a ByteTransformer's own (blocks.0.ln2)"),
        (LMObjective(swapped, w), "not a ByteTransformer's own (tied, added or reshaped)"),
        (LMObjective(plain, w, dtype=torch.bfloat16), "float32 or float64, and the products are asked for in "
                                                       "torch.bfloat16"),
        (TorchObjective(plain, lambda z, y: z.square().mean(), [(w[:, :-1], w[:, 1:])]), "an LMObjective's own"),
        (TorchObjective(seq, torch.nn.functional.cross_entropy, [(X, Y)]), "an LMObjective's own"),
    ]


def test_models_it_does_not_cover_are_named_and_left_to_the_other_forms(split):
    for objective, says in _unsupported(split):
        H = TorchHessianOperator(objective, objective.theta0, memory_budget=0)
        assert says in H.form_errors["r-op"] and H.form in ("double-backward", "fwd-over-rev")
        with pytest.raises(RidgelensError, match=f"form='r-op' does not apply here: .*{says[:20]}"):
            TorchHessianOperator(objective, objective.theta0, form="r-op")
        H = TorchHessianOperator(objective, objective.theta0, form="recompute")
        assert H.form == "double-backward" and "does not apply" in str(H.choice)


@pytest.mark.parametrize("form, budget", [("reuse", None), ("partial-reuse", "one batch")])
def test_reuse_forms_hold_the_hand_written_pass_and_agree_with_autograd_s_graph(obj, form, budget):
    """On the byte LM a reuse form holds the R-operator's v-free pass (activations, cotangents); hand_written=False
    holds autograd's graph. Same products, to rounding, one vector or a block, before and after release()."""
    def built(hand_written):  # partial-reuse: a budget of one batch's held state
        one = TorchHessianOperator(obj, obj.theta0, form="reuse", hand_written=hand_written).batch_graph_bytes
        return TorchHessianOperator(obj, obj.theta0, form=form, hand_written=hand_written,
                                    **({"memory_budget": one} if budget else {}))

    mine, theirs = built(True), built(False)
    assert (mine.held, theirs.held) == ("r-op", "graph")
    assert mine.reused_batches == theirs.reused_batches == (obj.n_batches if form == "reuse" else 1)
    V = _vectors(obj.n_params, 3, 4)
    ref = TorchHessianOperator(obj, obj.theta0, form="double-backward") @ V
    for op in (mine, theirs):
        torch.testing.assert_close(op @ V, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))
        torch.testing.assert_close(op @ V[:, 0], ref[:, 0], rtol=0, atol=1e-12 * float(ref.abs().max()))
    mine.release()
    assert (mine.form, mine.held) == ("r-op", None)
    torch.testing.assert_close(mine @ V, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))


def test_the_kept_pass_is_counted_in_the_memory_budget(obj):
    """batch_graph_bytes is the kept pass's own size: with one byte less than the whole, not everything is held."""
    whole = TorchHessianOperator(obj, obj.theta0)
    assert whole.form == "reuse" and whole.held == "r-op"
    kept = sum(p.nbytes() for p in whole._graph[1])
    assert whole.batch_graph_bytes * obj.n_batches >= kept > 0
    less = TorchHessianOperator(obj, obj.theta0, memory_budget=whole.batch_graph_bytes * obj.n_batches - 1)
    assert less.reused_batches < obj.n_batches


def test_a_kept_hessian_pass_holds_under_a_third_of_autograd_s_reused_graph(obj):
    """The kept pass remakes what is cheap (the logits' cotangent from softmax − onehot, the scores' cotangents,
    each half's input cotangent, the head's input): 0.28 and 0.31 of autograd's graph on these models, where
    the vocabulary's logits weigh most (0.44 and 0.43 when it held them); 23.4 against 50.5 MiB on the demo LM."""
    by_hand = TorchHessianOperator(obj, obj.theta0, form="reuse")
    autograd = TorchHessianOperator(obj, obj.theta0, form="reuse", hand_written=False)
    assert by_hand.held == "r-op" and autograd.held == "graph"
    assert 0 < by_hand.batch_graph_bytes < autograd.batch_graph_bytes / 3


@pytest.mark.parametrize("layers, width, heads, context, T", [(1, 4, 1, 1, 1), (1, 6, 6, 4, 3), (3, 8, 2, 8, 8)],
                         ids=["one token", "head dim 1", "3 layers"])
def test_r_op_on_edge_shapes_with_weights_far_from_init(layers, width, heads, context, T):
    torch.manual_seed(0)
    net = ByteTransformer(LMConfig(layers=layers, width=width, heads=heads, context=context)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.5)  # curvature well away from the initialisation's near-zero weights
    obj = LMObjective(net, torch.randint(0, 256, (7, T + 1)), max_logits=2 * T * 256)
    V = _vectors(obj.n_params, 2, 5)
    ref = TorchHessianOperator(obj, obj.theta0, form="double-backward") @ V
    for form in ("r-op", "reuse"):
        got = TorchHessianOperator(obj, obj.theta0, form=form) @ V
        assert float((got - ref).abs().max()) <= 1e-12 * float(ref.abs().max()), form


@pytest.mark.parametrize("ggn", [False, True], ids=["hessian", "ggn"])
def test_a_pass_built_before_its_vector_agrees_and_a_recomputing_pass_computes_one_product(obj, ggn):
    """ByteLMPass without ``vectors`` runs its R pass forward in product(); without ``keep_cotangents`` it lets go
    of what it holds as the product goes, so a second product is refused, not computed from emptied state."""
    from ridgelens.lm._rop import ByteLMPass

    theta = obj.flat_tensor(obj.theta0)
    names = obj.param_blocks()[0]
    params = dict(zip(names, obj.parameter_views(theta), strict=True))
    v = _vectors(obj.n_params, 1, 7)[:, 0]
    vectors = dict(zip(names, obj.parameter_views(v), strict=True))
    x, y = next(iter(obj.prepared_batches(0, None)))

    def product(**kw):
        out = torch.zeros_like(v)
        p = ByteLMPass(obj.model, params, x, y, weight=obj.batch_weight(y), ggn=ggn, **kw)
        p.product(vectors, dict(zip(names, obj.parameter_views(out), strict=True)))
        return p, out

    late, a = product()
    _, b = product(vectors=vectors)
    kept, c = product(keep_cotangents=True)
    assert float(a.abs().max()) > 0
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13 * float(b.abs().max()))
    torch.testing.assert_close(c, b, rtol=0, atol=1e-13 * float(b.abs().max()))
    with pytest.raises(RuntimeError, match="one without keep_cotangents computes one"):
        late.product(vectors, dict(zip(names, obj.parameter_views(torch.zeros_like(v)), strict=True)))
    again = torch.zeros_like(v)  # a kept pass computes any number
    kept.product(vectors, dict(zip(names, obj.parameter_views(again), strict=True)))
    torch.testing.assert_close(again, c, rtol=0, atol=0)


@pytest.mark.parametrize("reuse", [True, False], ids=["forward kept", "recomputed"])
def test_ggn_by_hand_equals_autograd_s_ggn(obj, reuse):
    """The byte LM's GGN products by hand (the logits' R forward, H_z, the gradient's way back) against autograd's
    GGN on batches of unequal size; the independent torch.func reference is test_lm's jt_softmax_hessian_j."""
    V = _vectors(obj.n_params, 3, 8)
    ref_op = GGNOperator(obj, obj.theta0, reuse=True, hand_written=False)
    mine = GGNOperator(obj, obj.theta0, reuse=reuse)
    assert (ref_op.held, mine.held, mine.hand_written_unsupported) == ("graph", "r-op" if reuse else None, None)
    ref = ref_op @ V
    tol = 1e-12 * float(ref.abs().max())
    for _ in range(2):  # a kept forward pass serves product after product
        torch.testing.assert_close(mine @ V, ref, rtol=0, atol=tol)
    torch.testing.assert_close(mine @ V[:, 1], ref[:, 1], rtol=0, atol=tol)
    names, sizes = obj.param_blocks()
    for name, a, b in zip(names, torch.split(mine @ V[:, 0], sizes), torch.split(ref[:, 0], sizes), strict=True):
        assert float((a - b).abs().max()) <= tol, name  # norms, embeddings and the head too


def test_ggn_by_hand_keeps_the_forward_only_and_is_left_where_it_does_not_apply(obj, split):
    """What a reused hand-written GGN holds is the forward pass: well under autograd's held graphs (measured on
    these models: about a quarter). A model the hand-written product does not cover keeps autograd's."""
    by_hand = GGNOperator(obj, obj.theta0, reuse=True)
    autograd = GGNOperator(obj, obj.theta0, reuse=True, hand_written=False)
    assert 0 < by_hand.batch_graph_bytes < autograd.batch_graph_bytes / 2
    assert autograd.hand_written_unsupported == "hand_written=False was passed"
    net = train_lm(LMConfig(layers=1, width=8, heads=2, context=8), split.train, steps=5, seed=0)
    net.blocks[0].register_forward_hook(lambda *a: None)
    hooked = LMObjective(net, split.train, dtype=torch.float64)
    G = GGNOperator(hooked, hooked.theta0)
    assert G.held == "graph" and "hooks are registered" in G.hand_written_unsupported


def test_ggn_by_hand_in_float32_agrees_with_autograd_in_float32(split):
    net = train_lm(LMConfig(layers=1, width=8, heads=2, context=8), split.train, steps=30, seed=0)
    obj = LMObjective(net, split.train, dtype=torch.float32)
    v = _vectors(obj.n_params, 1, 9)[:, 0].float()
    a = GGNOperator(obj, obj.theta0) @ v
    b = GGNOperator(obj, obj.theta0, hand_written=False) @ v
    assert a.dtype == torch.float32 and float((a - b).norm() / b.norm()) < 1e-5


def test_an_lm_objective_subclass_keeps_autograd_s_products(obj):
    """A subclass may change the logits (here a temperature in _call) where the hand-written passes would not
    look: found by review, the GGN by hand was 2.67 off and r-op 2.09. Any subclass is now refused by name."""

    class Tempered(LMObjective):
        def _call(self, *args, **kwargs):
            return super()._call(*args, **kwargs) / 2.0

    sub = Tempered(obj.model, obj.windows, max_logits=obj.max_logits, dtype=torch.float64)
    V = _vectors(sub.n_params, 2, 10)
    G, H = GGNOperator(sub, sub.theta0), TorchHessianOperator(sub, sub.theta0)
    assert (G.held, H.held) == ("graph", "graph")
    assert "Tempered is a subclass" in G.hand_written_unsupported and "Tempered is a subclass" in H.r_op_unsupported
    with pytest.raises(RidgelensError, match="subclass"):
        TorchHessianOperator(sub, sub.theta0, form="r-op")
    h = 1e-6  # H against central differences of the tempered gradient, G against autograd's own
    fd = (sub.gradient(sub.theta0 + h * V[:, 0].numpy()) - sub.gradient(sub.theta0 - h * V[:, 0].numpy())) / (2 * h)
    assert np.abs((H @ V[:, 0]).numpy() - fd).max() <= 1e-7 * np.abs(fd).max()
    ref = GGNOperator(sub, sub.theta0, hand_written=False) @ V
    torch.testing.assert_close(G @ V, ref, rtol=0, atol=0)
