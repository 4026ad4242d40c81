"""The built-in LM's Hessian-vector product written out by hand: Pearlmutter's R-operator, no autograd.

For a :class:`~ridgelens.lm.ByteTransformer` and the mean next-token cross-entropy, one pass
forward carries each activation x together with its directional derivative Rx = (d/dε) x(θ + εv),
and one pass backward carries each cotangent g = ∂R/∂x together with Rg; the product Hv is the
R of the parameters' gradients (Pearlmutter 1994, "Fast exact multiplication by the Hessian").
The rules, per piece (a centred, normalised row x̂ = (x − μ)·r, r = 1/√(var + ε)):

- linear y = xWᵀ + b: Ry = Rx Wᵀ + x Vᵀ + V_b; back gx = gy W, Rgx = Rgy W + gy V,
  (Hv)_W = Rgyᵀ x + gyᵀ Rx, (Hv)_b = Σ Rgy;
- layer norm y = x̂∘w + b: Rx̂ = r(Rx − mean Rx − x̂ m), m = mean(x̂∘Rx); back, with
  u = gy∘w − mean(gy∘w) − x̂·mean(gy∘w∘x̂) (so gx = r·u):
  Rgx = r(Ru − r m u), Ru = R(gy∘w) − mean R(gy∘w) − Rx̂·mean(gy∘w∘x̂) − x̂·mean(R(gy∘w)∘x̂ + gy∘w∘Rx̂);
- GELU: Ry = GELU′(x) Rx, back gx = gy GELU′(x), Rgx = Rgy GELU′(x) + gy GELU″(x) Rx, with
  GELU′ = Φ + xφ and GELU″ = φ(2 − x²);
- causal attention P = softmax(s QKᵀ + mask), O = PV: RP = P∘(RS − ⟨P, RS⟩) with
  RS = s(RQ Kᵀ + Q RKᵀ); back gS = P∘(gP − ⟨P, gP⟩) and
  RgS = RP∘(gP − ⟨P, gP⟩) + P∘(RgP − ⟨RP, gP⟩ − ⟨P, RgP⟩), ⟨·,·⟩ per row;
- cross-entropy (mean over N tokens) of logits z: gz = (softmax z − onehot)/N,
  Rgz = p∘(Rz − ⟨p, Rz⟩)/N.

Recomputed, a product does the matrix products of a double backward that skips the gradient's
weight terms (eight per linear layer against a gradient's three); kept (:class:`ByteLMPass`
with ``keep_cotangents``, what the operator's reuse forms hold) only the R passes' six. No
graph is built or walked and the elementwise work is fused by hand. Demo LM, float64, one
thread (``benchmarks/bench_lm.py``, 21 rounds, three runs): 2.57–2.71× a gradient's time
recomputed, against 3.19–3.35× for the double backward; 1.79–1.89× kept, against 2.13–2.23× for
autograd's reused graph; every product within 1.2e-15 of autograd's.

The Gauss–Newton product (``ggn=True``) G v = Jᵀ H_z J v takes the same R pass forward up to the
logits Rz = J v (each layer's R dropped once the next is made), H_z Rz = w·p∘(Rz − ⟨p, Rz⟩)/N
(w the batch's weight, N its tokens), and the gradient's way back from there (the weights'
pieces gyᵀx and the norms' Σ gy∘x̂, no second-order term). Kept, only the
forward pass is free of v. Demo LM: 1.14× a gradient's time kept and 1.71× recomputed, against
1.77× for autograd's reused graphs; within 2.5e-15 of them.

Memory: a pass keeps per layer what the way back cannot remake cheaply (the norms' x̂ and r,
Q, K, V, the attention's P, the MLP's pre-activation, and in a product their R) and remakes
the rest there (the norms' outputs, PV, GELU and its slopes, the norms' backward terms); a
kept Hessian pass keeps GELU's value and slope and gact∘GELU″ instead of the pre-activation,
since remaking them (an erf and an exp) would cost 8–24% of a product. At the top it keeps
e = softmax − onehot, which stands for both p and the logits' cotangent (w/N)·e, and p at the
targets (where e + 1 would lose digits). A kept pass also remakes per product the scores' cotangents (one T×T batched
product) and each half's input cotangent (carried down from the top, one add per half): 23.4
MiB on the demo LM where it held 27.9, its time within 1.5% in paired runs. A recomputing
pass goes back half a layer at a time (MLP, then attention) and lets go of each cotangent, R
quantity and layer after its last use, so it computes one product. Peak memory
of one recomputed product, as peak RSS of a fresh process (median of 3): 1.68–1.84× a
gradient's on the demo LM and 1.05–1.16× at 10.9M parameters, against 2.69× and 1.45× when it
held a whole layer's cotangents and every activation to the end.

Only this model and loss: :func:`byte_lm_support` says why another is not (a subclass, hooks,
frozen or extra parameters), and the operator then uses its other forms.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from ridgelens.lm._model import ByteTransformer, _Block

_OWN_MODULES = (ByteTransformer, _Block, torch.nn.Embedding, torch.nn.ModuleList, torch.nn.LayerNorm, torch.nn.Linear)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_LOG_PHI0 = -0.5 * math.log(2.0 * math.pi)


def byte_lm_support(model, names, dtype) -> str | None:
    """None if :class:`ByteLMPass` computes this model's products (parameters ``names``, in ``dtype``); else why not."""
    if type(model) is not ByteTransformer:
        return f"it is written for ridgelens' ByteTransformer, and the model is a {type(model).__name__}"
    if dtype not in (torch.float32, torch.float64):  # its layer norm and softmax run in the dtype itself
        return f"it computes in float32 or float64, and the products are asked for in {dtype}"
    g = torch.nn.modules.module
    hooked = [n or "the model" for n, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks]
    if hooked or any((g._global_forward_hooks, g._global_forward_pre_hooks, g._global_backward_hooks,
                      g._global_backward_pre_hooks)):
        return f"hooks are registered ({', '.join(hooked[:3]) or 'global'}), which it would not run"
    if any(b.heads != model.config.heads for b in model.blocks):
        return f"a block's heads differ from the config's ({model.config.heads}), which it reads them from"
    own = [n for n, _ in model.named_parameters()]
    if list(names) != own:
        return "it needs every parameter of the model trainable, in the model's order"
    every = [(n, tuple(p.shape)) for n, p in model.named_parameters(remove_duplicate=False)]
    if every != _expected_parameters(model.config) or [n for n, _ in every] != own:  # own: each Parameter once
        return "the model's parameters are not a ByteTransformer's own (tied, added or reshaped)"
    patched = [n or "the model" for n, m in model.named_modules() if "forward" in vars(m)]
    if patched or any(type(m) not in _OWN_MODULES for m in model.modules()):
        return f"its modules are not a ByteTransformer's own ({', '.join(patched[:3]) or 'other module types'})"
    if any(True for _ in model.buffers()):
        return "the model has buffers it does not know"
    return None


def _expected_parameters(cfg) -> list:
    """``(name, shape)`` of every parameter of a ByteTransformer with config ``cfg``, in its order."""
    W = cfg.width
    block = [("ln1.weight", (W,)), ("ln1.bias", (W,)), ("qkv.weight", (3 * W, W)), ("qkv.bias", (3 * W,)),
             ("proj.weight", (W, W)), ("proj.bias", (W,)), ("ln2.weight", (W,)), ("ln2.bias", (W,)),
             ("fc.weight", (4 * W, W)), ("fc.bias", (4 * W,)), ("out.weight", (W, 4 * W)), ("out.bias", (W,))]
    return [("tok.weight", (cfg.vocab, W)), ("pos.weight", (cfg.context, W)),
            *[(f"blocks.{i}.{n}", s) for i in range(cfg.layers) for n, s in block],
            ("ln.weight", (W,)), ("ln.bias", (W,)), ("head.weight", (cfg.vocab, W))]


class ByteLMPass:
    """The part of a product that does not depend on v, at θ on windows ``(x, y)``.

    ``params`` maps the model's parameter names to θ's tensors of their shapes; ``x`` and ``y``
    are (B, T) token ids; :meth:`product` adds ``weight``·∇²ℓ(θ)·v (with ``ggn``, ``weight``·G·v),
    ℓ the mean next-token cross-entropy of these windows.

    The forward activations always; for the Hessian with ``keep_cotangents`` also the backward
    pass's cotangents and GELU's slopes, so that each :meth:`product` runs the R passes (and
    remakes the scores' cotangents, one T×T batched product per layer): six matrix products per
    linear layer against a gradient's three, where recomputing runs eight. What
    is kept is under half of autograd's graph of the same batch's gradient (demo LM: 23.4
    against 50.5 MiB). With ``ggn`` (the Gauss–Newton product: the logits' R pass forward, H_z,
    then the gradient's way back) what is free of v is the forward pass alone, and that is what
    ``keep_cotangents`` keeps.

    Given ``vectors`` (a pass for one product), each layer's R quantities forward are computed
    right after its activations, while they are in cache: on the demo LM, measured while writing
    it (one process, 21 rounds), 63.1 ms a product against 71.2 ms with every activation first.
    Without ``keep_cotangents`` a pass computes one product, letting go of what it holds as it
    goes (see the module docs); a second :meth:`product` raises ``RuntimeError``.
    """

    def __init__(self, model: ByteTransformer, params: dict, x, y, *, weight: float = 1.0,
                 keep_cotangents: bool = False, vectors: dict | None = None, ggn: bool = False):
        cfg = model.config
        B, T = x.shape
        if T > cfg.context:
            raise ValueError(f"input of {T} tokens is longer than the model's context ({cfg.context})")
        self.model, self.P, self.x, self.keep, self._spent = model, params, x, keep_cotangents, False
        self.ggn = ggn
        self.B, self.T, self.W, self.nh = B, T, cfg.width, cfg.heads
        self.d, self.N = cfg.width // cfg.heads, B * T
        self.scale = weight / self.N  # of the summed token losses: the batch's mean, weighed
        self.s = 1.0 / math.sqrt(self.d)
        P = params
        pos = torch.arange(T, device=x.device)
        h = (P["tok.weight"][x] + P["pos.weight"][pos]).view(self.N, self.W)
        causal = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)
        mask = torch.zeros(T, T, dtype=h.dtype, device=h.device).masked_fill_(causal, float("-inf"))
        self.layers, Rs = [], []
        Rh = None if vectors is None else self._embed_r(vectors)
        for i, blk in enumerate(model.blocks):
            L = {}
            a1, L["xh1"], L["r1"] = _layer_norm(h, self._p(i, "ln1.weight"), self._p(i, "ln1.bias"), blk.ln1.eps)
            L["q"], L["k"], L["v"] = self._heads(torch.addmm(self._p(i, "qkv.bias"), a1, self._p(i, "qkv.weight").t()))
            L["P"] = torch.baddbmm(mask, L["q"], L["k"].transpose(1, 2), alpha=self.s).softmax(-1)
            h1 = torch.addmm(self._p(i, "proj.bias"), self._attention_out(L), self._p(i, "proj.weight").t()).add_(h)
            a2, L["xh2"], L["r2"] = _layer_norm(h1, self._p(i, "ln2.weight"), self._p(i, "ln2.bias"), blk.ln2.eps)
            L["f"] = f = torch.addmm(self._p(i, "fc.bias"), a2, self._p(i, "fc.weight").t())
            L["act"], L["slope"], curv = _gelu(f, slopes=keep_cotangents and not ggn)
            if keep_cotangents:  # GELU's value and slopes kept: f itself is not needed again
                if not ggn:
                    L["curv"] = curv
                del L["f"]
            h = torch.addmm(self._p(i, "out.bias"), L["act"], self._p(i, "out.weight").t()).add_(h1)
            self.layers.append(L)
            if vectors is not None:
                R, Rh = self._r_forward(i, Rh, vectors)
                if not ggn:  # the GGN's way back needs only the logits' R
                    Rs.append(R)
                del R
            if not keep_cotangents:  # recomputed going back (with GELU''), this layer at a time
                del L["act"], L["slope"]
        self._forward_r = None if vectors is None else (vectors, Rs, Rh)  # for product(vectors, …)
        a, self.xhf, self.rf = _layer_norm(h, P["ln.weight"], P["ln.bias"], model.ln.eps)
        # softmax − onehot, the logits' cotangent over w/N: it stands for both (see _logits_r_back)
        self.e = e = (a @ P["head.weight"].t()).softmax(-1)
        del a  # remade where needed (_top_out)
        self.target = (torch.arange(self.N, device=x.device), y.reshape(-1))
        self.p_target = e[self.target]  # p where e = p − 1 would lose digits to cancellation (p ≪ 1 is usual)
        e[self.target] -= 1
        self.cotangents = []
        if ggn:  # its way back starts at the logits, from v: nothing more is free of v
            return
        self.ga = (e * self.scale) @ P["head.weight"]
        gh, self.top = _layer_norm_back(self.ga, self.xhf, self.rf, P["ln.weight"])
        self.gh = gh  # where every product's way back starts
        if keep_cotangents:  # each half's input cotangent (gh, gh1) is not kept: a product carries it down (one add)
            for i in reversed(range(len(self.layers))):
                halves = []
                for back, name in ((self._back_mlp, "gh"), (self._back_attention, "gh1")):
                    halves.append(back(i, gh))
                    gh = halves[-1].pop("below")
                    del halves[-1][name]
                self.cotangents.insert(0, halves)
            del gh

    def nbytes(self) -> int:
        """Bytes of the tensors this pass holds (each storage once)."""
        seen = {}

        def add(t):
            if isinstance(t, torch.Tensor):
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            elif isinstance(t, (tuple, list)):
                for u in t:
                    add(u)
            elif isinstance(t, dict):
                for u in t.values():
                    add(u)

        add([self.layers, self.cotangents, *(getattr(self, n, None) for n in ("xhf", "rf", "e", "p_target", "target", "ga", "top", "gh"))])
        return sum(seen.values())

    # ------------------------------------------------------------------ shapes and names
    def _p(self, i, name):
        return self.P[f"blocks.{i}.{name}"]

    def _norm_out(self, i, n, R=None, V=None):
        """Layer i's norm n output x̂∘w + b; given R and V its R, Rx̂∘w + x̂∘V_w + V_b (recomputed: not kept)."""
        w, xh = self._p(i, f"ln{n}.weight"), self.layers[i][f"xh{n}"]
        if R is None:
            return torch.addcmul(self._p(i, f"ln{n}.bias"), xh, w)
        return torch.addcmul(self._v(V, i, f"ln{n}.bias"), R[f"xh{n}"], w).addcmul_(xh, self._v(V, i, f"ln{n}.weight"))

    def _attention_out(self, L, R=None):
        """A layer's attention output PV as (N, W) rows, from its activations L; given R, its R: RP V + P RV (recomputed: not kept)."""
        if R is None:
            return self._rows(torch.bmm(L["P"], L["v"]))
        return self._rows(torch.bmm(R["P"], L["v"]).baddbmm_(L["P"], R["v"]))

    def _heads(self, z):
        """(N, 3W) → Q, K, V as (B·heads, T, d) each (one copy of all three)."""
        B, T, nh, d = self.B, self.T, self.nh, self.d
        return z.view(B, T, 3, nh, d).permute(2, 0, 3, 1, 4).reshape(3, B * nh, T, d)

    def _head(self, z):
        """(N, W) → (B·heads, T, d)."""
        B, T, nh, d = self.B, self.T, self.nh, self.d
        return z.view(B, T, nh, d).transpose(1, 2).reshape(B * nh, T, d)

    def _rows(self, z):
        """(B·heads, T, d) → (N, W), or (3, B·heads, T, d) → (N, 3W)."""
        B, T, nh, d = self.B, self.T, self.nh, self.d
        if z.dim() == 3:
            return z.view(B, nh, T, d).transpose(1, 2).reshape(self.N, self.W)
        return z.view(3, B, nh, T, d).permute(1, 3, 0, 2, 4).reshape(self.N, 3 * self.W)

    # ------------------------------------------------------------------ the backward pass (v-free)
    def _back_mlp(self, i, gh, grads: dict | None = None) -> dict:
        """Layer i's MLP half's cotangents, given gh at the layer's output; ``"below"``: gh1, at the half's input.

        With ``grads`` (the GGN's way back, gh a cotangent of the logits' R) the linear layers' and
        the norm's pieces (gyᵀx and Σgy; Σ gy∘x̂ and Σgy) are added into it, and the Hessian's
        GELU'' term is left out.
        """
        L, C = self.layers[i], {"gh": gh}
        if not self.keep:  # GELU, GELU' (and GELU'') for the R pass back, this layer only; f's last use
            C["act"], C["slope"], curv = _gelu(L.pop("f"), slopes=grads is None)
        elif grads is None:  # kept until now for this: the R pass needs GELU'' only times gact
            curv = L.pop("curv")
        K = L if self.keep else C
        gact = gh @ self._p(i, "out.weight")
        if grads is None:
            C["gcurv"] = curv.mul_(gact)  # gact∘GELU''
            del curv
        else:
            self._weight_grads(grads, i, "out", gh, K["act"])
        C["gf"] = gf = gact.mul_(K["slope"])
        del gact
        C["ga2"] = ga2 = gf @ self._p(i, "fc.weight")
        if grads is not None:
            self._weight_grads(grads, i, "fc", gf, self._norm_out(i, 2))
            self._weight_grads(grads, i, "ln2", ga2, L["xh2"])
        gx, C["ln2"] = _layer_norm_back(ga2, L["xh2"], L["r2"], self._p(i, "ln2.weight"))
        C["below"] = gx.add_(gh)
        return C

    def _back_attention(self, i, gh1, grads: dict | None = None) -> dict:
        """Layer i's attention half's cotangents, given gh1 at its output; ``"below"``: the layer's input's.

        With ``grads``, as :meth:`_back_mlp`.
        """
        L, C = self.layers[i], {"gh1": gh1}
        if grads is not None:
            self._weight_grads(grads, i, "proj", gh1, self._attention_out(L))
        C["gO"] = gO = self._head(gh1 @ self._p(i, "proj.weight"))
        gPc, gS = self._scores_back(L, gO)
        C["gqkv"] = gqkv = self._qkv_back(L, gO, gS)
        if not self.keep:  # a kept pass remakes these per product: one (T×T)-sized batched product, elementwise
            C["gPc"], C["gS"] = gPc, gS
        del gPc, gS
        C["ga1"] = ga1 = gqkv @ self._p(i, "qkv.weight")
        if grads is not None:
            self._weight_grads(grads, i, "qkv", gqkv, self._norm_out(i, 1))
            self._weight_grads(grads, i, "ln1", ga1, L["xh1"])
        gx, C["ln1"] = _layer_norm_back(ga1, L["xh1"], L["r1"], self._p(i, "ln1.weight"))
        C["below"] = gx.add_(gh1)
        return C

    def _scores_back(self, L, gO):
        """The attention scores' cotangents from gO at PV: gP − ⟨P, gP⟩ (gP = gO Vᵀ) and gS = P∘(gP − ⟨P, gP⟩)."""
        Pm = L["P"]
        gP = torch.bmm(gO, L["v"].transpose(1, 2))
        gPc = gP.sub_((Pm * gP).sum(-1, keepdim=True))
        return gPc, Pm * gPc

    def _qkv_back(self, L, gO, gS):
        """The cotangent at the qkv layer's output, (N, 3W): s·gS K, s·gSᵀ Q and Pᵀ gO."""
        g3 = torch.empty(3, *gO.shape, dtype=gO.dtype, device=gO.device)
        torch.bmm(gS, L["k"], out=g3[0]).mul_(self.s)
        torch.bmm(gS.transpose(1, 2), L["q"], out=g3[1]).mul_(self.s)
        torch.bmm(L["P"].transpose(1, 2), gO, out=g3[2])
        return self._rows(g3)

    def _weight_grads(self, grads, i, name, gy, x) -> None:
        """Add a layer's weight and bias pieces into ``grads``: gyᵀx and Σgy for a linear layer, Σ gy∘x̂ and Σgy for a norm."""
        W, b = grads[f"blocks.{i}.{name}.weight"], grads[f"blocks.{i}.{name}.bias"]
        if name.startswith("ln"):
            W += (gy * x).sum(0)
        else:
            W.addmm_(gy.t(), x)
        b += gy.sum(0)

    # ------------------------------------------------------------------ the GGN's way back
    def _ggn_back(self, Rgz, H) -> None:
        """Add Jᵀ(Rgz) into H below the head's weight, from the logits' cotangent Rgz = w·p∘(Jv − ⟨p, Jv⟩)/N.

        The head's own piece Rgzᵀa is the caller's, which holds a.
        """
        P = self.P
        g = Rgz @ P["head.weight"]
        del Rgz
        H["ln.weight"] += (g * self.xhf).sum(0)
        H["ln.bias"] += g.sum(0)
        gh, _ = _layer_norm_back(g, self.xhf, self.rf, P["ln.weight"])
        del g
        if self._spent:
            del self.xhf, self.rf
        for i in reversed(range(len(self.layers))):
            gh = self._back_mlp(i, gh, H)["below"]
            gh = self._back_attention(i, gh, H)["below"]
            if self._spent:
                self.layers[i] = None
        self._embed_back(gh, H)

    # ------------------------------------------------------------------ the R passes
    def product(self, vectors: dict, out: dict) -> None:
        """Add weight·H·v (weight·G·v for a GGN pass) into ``out``; both dicts map parameter names to tensors.

        A pass without ``keep_cotangents`` computes one product: it lets go of its state on the way.
        """
        P, V, H = self.P, vectors, out
        if self._spent:
            raise RuntimeError("this pass has computed its product; one without keep_cotangents computes one")
        if self._forward_r is not None and self._forward_r[0] is vectors:  # done with the activations
            _, Rs, Rh = self._forward_r
            self._forward_r = None
        else:
            Rs, Rh = [], self._embed_r(V)
            for i in range(len(self.layers)):
                R, Rh = self._r_forward(i, Rh, V)
                if not self.ggn:
                    Rs.append(R)
                del R
        self._spent = not self.keep  # a recomputing pass lets go of its state on the way: what the top needed, then each layer
        Ra, Rxhf, mf = _layer_norm_r(self.xhf, self.rf, Rh, P["ln.weight"], V["ln.weight"], V["ln.bias"])
        del Rh
        a = self._top_out()  # the head's input, remade once per product
        Rz = torch.mm(Ra, P["head.weight"].t()).addmm_(a, V["head.weight"].t())
        Rgz = self._logits_r_back(Rz)
        del Rz
        if self.ggn:
            del Ra, Rxhf, mf
            if self._spent:
                del self.e, self.p_target
            H["head.weight"].addmm_(Rgz.t(), a)
            del a
            return self._ggn_back(Rgz, H)
        inputs = [a, Ra]
        del a, Ra
        Rga = _linear_r_back(self.e, Rgz, inputs, P["head.weight"], V["head.weight"], H["head.weight"], None,
                             gy_scale=self.scale)
        del Rgz
        if self._spent:
            del self.e, self.p_target
        Rgh, _ = _layer_norm_r_back(self.ga, Rga, self.top, self.xhf, Rxhf, self.rf, mf, P["ln.weight"],
                                    V["ln.weight"], H["ln.weight"], H["ln.bias"])
        del Rga, Rxhf, mf
        gh = self.gh
        if self._spent:
            del self.xhf, self.rf, self.ga, self.top, self.gh
        halves = ((self._back_mlp, self._r_back_mlp, "gh"), (self._back_attention, self._r_back_attention, "gh1"))
        for i in reversed(range(len(self.layers))):
            R = Rs.pop()
            for h, (back, r_back, name) in enumerate(halves):
                last = not i and h  # at the embeddings the R pass alone goes on
                if self.keep:  # the kept cotangents and the carried gh; the one below comes from the norm's R back
                    C = {**self.cotangents[i][h], name: gh}
                else:  # recomputed half by half: only one half's cotangents are held at a time
                    C = back(i, gh)
                    gh = None if last else C.pop("below")
                Rgh, below = r_back(i, R, C, Rgh, V, H, below=self.keep and not last)
                if self.keep:
                    gh = below
                del C, below
            if self._spent:
                self.layers[i] = None
        self._embed_back(Rgh, H)

    def _top_out(self):
        """The final norm's output x̂∘w + b, the head's input (remade: not kept)."""
        return torch.addcmul(self.P["ln.bias"], self.xhf, self.P["ln.weight"])

    def _logits_r_back(self, Rz):
        """R of the logits' cotangent, p∘(Rz − ⟨p, Rz⟩)·w/N, into Rz: p is e off the targets and p_target on them."""
        e, target, pt = self.e, self.target, self.p_target
        at_target = Rz[target]
        pRz = Rz.mul_(e)
        pRz[target] = pt * at_target  # p∘Rz
        inner = pRz.sum(-1)  # ⟨p, Rz⟩
        pRz.addcmul_(e, inner[:, None], value=-1)
        pRz[target] = pt * at_target.sub_(inner)  # p∘(Rz − ⟨p, Rz⟩) there too
        return pRz.mul_(self.scale)

    def _embed_back(self, g, H) -> None:
        """Add the embeddings' pieces of a cotangent g at the first layer's input into H (token rows and positions)."""
        H["tok.weight"].index_add_(0, self.x.reshape(-1), g)
        H["pos.weight"][:self.T] += g.view(self.B, self.T, self.W).sum(0)

    def _embed_r(self, V):
        pos = torch.arange(self.T, device=self.x.device)
        return (V["tok.weight"][self.x] + V["pos.weight"][pos]).view(self.N, self.W)

    def _v(self, V, i, name):
        return V[f"blocks.{i}.{name}"]

    def _r_forward(self, i, Rh, V):
        """Layer i's R quantities, given Rh at its input; and R at its output."""
        L, R, s = self.layers[i], {}, self.s

        def lin(name, x, Rx):
            return torch.addmm(self._v(V, i, name + ".bias"), Rx, self._p(i, name + ".weight").t()).addmm_(
                x, self._v(V, i, name + ".weight").t())

        Ra1, R["xh1"], R["m1"] = _layer_norm_r(L["xh1"], L["r1"], Rh, self._p(i, "ln1.weight"),
                                               self._v(V, i, "ln1.weight"), self._v(V, i, "ln1.bias"))
        R["q"], R["k"], R["v"] = self._heads(lin("qkv", self._norm_out(i, 1), Ra1))
        del Ra1
        Pm, q, k = L["P"], L["q"], L["k"]
        RP = torch.bmm(R["q"], k.transpose(1, 2)).baddbmm_(q, R["k"].transpose(1, 2)).mul_(Pm)  # P∘RS / s
        R["P"] = RP.addcmul_(Pm, RP.sum(-1, keepdim=True), value=-1).mul_(s)
        Rh1 = lin("proj", self._attention_out(L), self._attention_out(L, R)).add_(Rh)
        Ra2, R["xh2"], R["m2"] = _layer_norm_r(L["xh2"], L["r2"], Rh1, self._p(i, "ln2.weight"),
                                               self._v(V, i, "ln2.weight"), self._v(V, i, "ln2.bias"))
        R["f"] = Rf = lin("fc", self._norm_out(i, 2), Ra2)
        del Ra2
        act, slope = (L["act"], L["slope"]) if "slope" in L else _gelu(L["f"], slopes=False)[:2]
        return R, lin("out", act, slope * Rf).add_(Rh1)

    def _r_back_mlp(self, i, R, C, Rgh, V, H, below: bool = False):
        """Layer i's MLP half's R cotangents and product pieces (into H), given Rgh at its output; Rgh1 at its input.

        Each R quantity (this product's own) goes as soon as it has been used, and so does each
        cotangent of a pass that recomputes them; a kept pass's cotangents stay, for the next product.
        Returns (Rgh1, gh1), the latter, the cotangent at the half's input, only if ``below``.
        """
        L, r, c, lin, norm = self._r_back_tools(i, R, C, V, H)
        k = L.__getitem__ if self.keep else C.pop  # GELU's value and slopes: kept with L, or recomputed in C
        Rf, slope = r("f"), k("slope")
        gh = C["gh"] if below else None
        Rgact = lin("out", c("gh"), Rgh, [k("act"), partial(torch.mul, slope, Rf)])  # made once act is used
        Rgf = Rf.mul_(c("gcurv")).addcmul_(Rgact, slope)  # into Rf, this product's own, at its last use
        del Rgact, Rf, slope
        Rga2 = lin("fc", c("gf"), Rgf, [self._norm_out(i, 2), self._norm_out(i, 2, R, V)])
        del Rgf
        Rg, g = norm("ln2", c("ga2"), Rga2, 2, below)
        return Rg.add_(Rgh), None if g is None else g.add_(gh)

    def _r_back_attention(self, i, R, C, Rgh1, V, H, below: bool = False):
        """Layer i's attention half's R cotangents and product pieces (into H), given Rgh1; as :meth:`_r_back_mlp`."""
        L, r, c, lin, norm = self._r_back_tools(i, R, C, V, H)
        gh1 = C["gh1"] if below else None
        RgO = self._head(lin("proj", c("gh1"), Rgh1, [self._attention_out(L), self._attention_out(L, R)]))
        Pm, RP, gO, s = L["P"], r("P"), c("gO"), self.s
        gPc, gS = self._scores_back(L, gO) if self.keep else (c("gPc"), c("gS"))  # remade, or the recomputed pass's
        Rg3 = torch.empty(3, *gO.shape, dtype=gO.dtype, device=gO.device)
        torch.bmm(RP.transpose(1, 2), gO, out=Rg3[2]).baddbmm_(Pm.transpose(1, 2), RgO)
        RgP = torch.bmm(RgO, L["v"].transpose(1, 2)).baddbmm_(gO, r("v").transpose(1, 2))
        del RgO, gO
        inner = (RP * gPc).sum(-1, keepdim=True).add_((Pm * RgP).sum(-1, keepdim=True))
        RgS = RgP.sub_(inner).mul_(Pm).addcmul_(RP, gPc)  # RP∘gPc + P∘(RgP − ⟨RP, gP⟩ − ⟨P, RgP⟩)
        del RgP, RP, gPc, inner
        torch.bmm(RgS, L["k"], out=Rg3[0]).baddbmm_(gS, r("k")).mul_(s)
        torch.bmm(RgS.transpose(1, 2), L["q"], out=Rg3[1]).baddbmm_(gS.transpose(1, 2), r("q")).mul_(s)
        del RgS, gS
        Rgqkv = self._rows(Rg3)
        del Rg3
        Rga1 = lin("qkv", c("gqkv"), Rgqkv, [self._norm_out(i, 1), self._norm_out(i, 1, R, V)])
        del Rgqkv
        Rg, g = norm("ln1", c("ga1"), Rga1, 1, below)
        return Rg.add_(Rgh1), None if g is None else g.add_(gh1)

    def _r_back_tools(self, i, R, C, V, H):
        """Layer i's activations, R and cotangent getters (each R, and a recomputed cotangent, taken once), linear and norm R-backs."""
        L, r = self.layers[i], R.pop
        c = C.__getitem__ if self.keep else C.pop

        def lin(name, gy, Rgy, inputs):
            return _linear_r_back(gy, Rgy, inputs, self._p(i, name + ".weight"), self._v(V, i, name + ".weight"),
                                  H[f"blocks.{i}.{name}.weight"], H[f"blocks.{i}.{name}.bias"])

        def norm(name, gy, Rgy, n, gx=False):
            return _layer_norm_r_back(gy, Rgy, c(name), L[f"xh{n}"], r(f"xh{n}"), L[f"r{n}"], r(f"m{n}"),
                                      self._p(i, name + ".weight"), self._v(V, i, name + ".weight"),
                                      H[f"blocks.{i}.{name}.weight"], H[f"blocks.{i}.{name}.bias"], gx)
        return L, r, c, lin, norm


def _gelu(f, slopes: bool):
    """GELU(f) and GELU'(f) = Φ + fφ; with ``slopes`` also GELU''(f) = φ(2 − f²)."""
    f2 = f.square()
    phi = (f2 * -0.5).add_(_LOG_PHI0).exp_()
    curv = f2.neg_().add_(2).mul_(phi) if slopes else None
    cdf = (f * _INV_SQRT2).erf_().add_(1).mul_(0.5)
    slope = torch.addcmul(cdf, f, phi)
    return cdf.mul_(f), slope, curv


def _linear_r_back(gy, Rgy, inputs, W, V, HW, Hb, gy_scale: float = 1.0):
    """Add the weight's and bias's product pieces (Rgyᵀx + gyᵀRx, ΣRgy) into HW, Hb; return Rgx = Rgy W + gy V.

    ``gy_scale``: gy is ``gy_scale`` times the given one (the head's, which is (softmax − onehot)·w/N).

    ``inputs`` is the list [x, Rx], emptied as they are used: where the caller holds them nowhere
    else (an R quantity, a recomputed input), each is freed before the next is made (Rx may be a
    function that makes it) and before Rgx is.
    """
    x, Rx = inputs
    inputs.clear()
    HW.addmm_(Rgy.t(), x)
    del x
    HW.addmm_(gy.t(), Rx() if callable(Rx) else Rx, alpha=gy_scale)
    del Rx
    if Hb is not None:
        Hb += Rgy.sum(0)
    return (Rgy @ W).addmm_(gy, V, alpha=gy_scale)


def _layer_norm(x, w, b, eps):
    """The norm's output x̂∘w + b over the last dimension, x̂ and r."""
    xh = x - x.mean(-1, keepdim=True)
    r = torch.rsqrt(xh.square().mean(-1, keepdim=True).add_(eps))
    xh.mul_(r)
    return torch.addcmul(b, xh, w), xh, r


def _layer_norm_r(xh, r, Rx, w, Vw, Vb):
    """Ry = Rx̂∘w + x̂∘V_w + V_b, Rx̂ = r(Rx − mean Rx − x̂ m) and m = mean(x̂∘Rx)."""
    m = (xh * Rx).mean(-1, keepdim=True)
    Rxh = (Rx - Rx.mean(-1, keepdim=True)).sub_(xh * m).mul_(r)
    return torch.addcmul(Vb, Rxh, w).addcmul_(xh, Vw), Rxh, m


def _layer_norm_back(gy, xh, r, w):
    """The cotangent gx = r·u, and mean(gy∘w∘x̂) for the R pass (which remakes gy∘w and u: see the module docs)."""
    gw = gy * w
    m2 = (gw * xh).mean(-1, keepdim=True)
    u = gw.sub_(gw.mean(-1, keepdim=True)).sub_(xh * m2)
    return u.mul_(r), m2


def _layer_norm_r_back(gy, Rgy, m2, xh, Rxh, r, m, w, Vw, Hw, Hb, gx: bool = False):
    """Add the weight's and bias's pieces into Hw, Hb; return Rgx = r(Ru − r m u), and with ``gx`` the cotangent r·u (else None)."""
    Hw += (Rgy * xh).sum(0).add_((gy * Rxh).sum(0))
    Hb += Rgy.sum(0)
    gw = gy * w
    Rgw = torch.addcmul(Rgy * w, gy, Vw)
    Rm2 = (Rgw * xh).mean(-1, keepdim=True).add_((gw * Rxh).mean(-1, keepdim=True))
    Ru = Rgw.sub_(Rgw.mean(-1, keepdim=True)).sub_(Rxh * m2).sub_(xh * Rm2)
    u = gw.sub_(gw.mean(-1, keepdim=True)).sub_(xh * m2)
    g = u * r if gx else None
    return Ru.sub_(u.mul_(r * m)).mul_(r), g
