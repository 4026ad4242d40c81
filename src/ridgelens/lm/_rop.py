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

The same matrix products as a double backward that skips the gradient's weight terms (eight
per linear layer against a gradient's three), but no graph is built or walked and the
elementwise work is fused by hand: on the demo LM (float64, one thread) 2.4× a gradient's
time against 3.0–3.5× for the double backward, agreeing with it to 1e-15
(``benchmarks/bench_lm.py``, contender ``rl-hessian-rop``).

Only this model and loss: :func:`byte_lm_support` says why another is not (a subclass, hooks,
frozen or extra parameters), and the operator then uses its other forms.
"""

from __future__ import annotations

import math

import torch

from ridgelens.lm._model import ByteTransformer

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_LOG_PHI0 = -0.5 * math.log(2.0 * math.pi)


def byte_lm_support(model, names) -> str | None:
    """None if :func:`byte_lm_hvp` computes this model's products with the parameters ``names``; else why not."""
    if type(model) is not ByteTransformer:
        return f"it is written for ridgelens' ByteTransformer, and the model is a {type(model).__name__}"
    hooked = [n or "the model" for n, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks or getattr(m, "_forward_hooks_with_kwargs", None)]
    if hooked or torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
        return f"forward hooks are registered ({', '.join(hooked[:3]) or 'global'}), which it would not run"
    own = [n for n, _ in model.named_parameters()]
    if list(names) != own:
        return "it needs every parameter of the model trainable, in the model's order"
    if any(True for _ in model.buffers()):
        return "the model has buffers it does not know"
    return None


def byte_lm_hvp(model: ByteTransformer, params: dict, vectors: dict, out: dict, x, y) -> None:
    """Add ∇²ℓ(θ)·v into ``out``, ℓ the mean next-token cross-entropy of ``model`` on windows ``x`` → ``y``.

    ``params``, ``vectors`` and ``out`` map the model's parameter names to tensors of their
    shapes (θ, v and the product's views); ``x`` and ``y`` are (B, T) token ids.
    """
    cfg = model.config
    B, T = x.shape
    if T > cfg.context:
        raise ValueError(f"input of {T} tokens is longer than the model's context ({cfg.context})")
    W, nh = cfg.width, cfg.heads
    d, N = W // nh, B * T
    s = 1.0 / math.sqrt(d)
    P, V, H = params, vectors, out
    pos = torch.arange(T, device=x.device)
    h = (P["tok.weight"][x] + P["pos.weight"][pos]).view(N, W)
    Rh = (V["tok.weight"][x] + V["pos.weight"][pos]).view(N, W)
    causal = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)
    mask = torch.zeros(T, T, dtype=h.dtype, device=h.device).masked_fill_(causal, float("-inf"))

    def heads(z):  # (N, 3W) → Q, K, V as (B·heads, T, d) each
        return z.view(B, T, 3, nh, d).permute(2, 0, 3, 1, 4).reshape(3, B * nh, T, d)

    def rows(z):  # (B·heads, T, d) → (N, W), or (3, B·heads, T, d) → (N, 3W)
        if z.dim() == 3:
            return z.view(B, nh, T, d).transpose(1, 2).reshape(N, W)
        return z.view(3, B, nh, T, d).permute(1, 3, 0, 2, 4).reshape(N, 3 * W)

    saved = []
    for i, blk in enumerate(model.blocks):
        def p(n, i=i):
            return P[f"blocks.{i}.{n}"]

        def v(n, i=i):
            return V[f"blocks.{i}.{n}"]

        a1, Ra1, ln1 = _layer_norm(h, Rh, p("ln1.weight"), p("ln1.bias"), v("ln1.weight"), v("ln1.bias"), blk.ln1.eps)
        qkv, Rqkv = _linear(a1, Ra1, p("qkv.weight"), p("qkv.bias"), v("qkv.weight"), v("qkv.bias"))
        (q, k, vv), (Rq, Rk, Rv) = heads(qkv), heads(Rqkv)
        del qkv, Rqkv
        kt = k.transpose(1, 2)
        Pm = torch.baddbmm(mask, q, kt, alpha=s).softmax(-1)
        RP = torch.bmm(Rq, kt).baddbmm_(q, Rk.transpose(1, 2)).mul_(Pm)  # P∘RS / s
        RP.addcmul_(Pm, RP.sum(-1, keepdim=True), value=-1).mul_(s)
        o, Ro = rows(torch.bmm(Pm, vv)), rows(torch.bmm(RP, vv).baddbmm_(Pm, Rv))
        u, Ru = _linear(o, Ro, p("proj.weight"), p("proj.bias"), v("proj.weight"), v("proj.bias"))
        h1, Rh1 = u.add_(h), Ru.add_(Rh)
        a2, Ra2, ln2 = _layer_norm(h1, Rh1, p("ln2.weight"), p("ln2.bias"), v("ln2.weight"), v("ln2.bias"),
                                   blk.ln2.eps)
        f, Rf = _linear(a2, Ra2, p("fc.weight"), p("fc.bias"), v("fc.weight"), v("fc.bias"))
        act, Ract, _, _ = _gelu(f, Rf, slopes=False)
        m, Rm = _linear(act, Ract, p("out.weight"), p("out.bias"), v("out.weight"), v("out.bias"))
        del act, Ract  # recomputed from f, Rf going back: 3 of the 5 hidden-sized arrays a layer would keep
        saved.append((ln1, a1, Ra1, q, k, vv, Rq, Rk, Rv, Pm, RP, o, Ro, ln2, a2, Ra2, f, Rf))
        h, Rh = m.add_(h1), Rm.add_(Rh1)
    a, Ra, lnf = _layer_norm(h, Rh, P["ln.weight"], P["ln.bias"], V["ln.weight"], V["ln.bias"], model.ln.eps)
    z, Rz = _linear(a, Ra, P["head.weight"], None, V["head.weight"], None)
    pz = z.softmax(-1)
    del z
    Rgz = pz.mul(Rz)
    del Rz
    Rgz.addcmul_(pz, Rgz.sum(-1, keepdim=True), value=-1).div_(N)
    gz = pz
    gz[torch.arange(N, device=x.device), y.reshape(-1)] -= 1
    gz.div_(N)
    ga, Rga = _linear_back(gz, Rgz, a, Ra, P["head.weight"], V["head.weight"], H["head.weight"], None)
    del gz, pz, Rgz, a, Ra
    gh, Rgh = _layer_norm_back(ga, Rga, lnf, H["ln.weight"], H["ln.bias"])

    for i in reversed(range(len(model.blocks))):
        (ln1, a1, Ra1, q, k, vv, Rq, Rk, Rv, Pm, RP, o, Ro, ln2, a2, Ra2, f, Rf) = saved.pop()

        def lin(n, gy, Rgy, xin, Rxin, i=i):
            pre = f"blocks.{i}.{n}."
            return _linear_back(gy, Rgy, xin, Rxin, P[pre + "weight"], V[pre + "weight"], H[pre + "weight"],
                                H[pre + "bias"])

        def norm(n, gy, Rgy, kept, i=i):
            return _layer_norm_back(gy, Rgy, kept, H[f"blocks.{i}.{n}.weight"], H[f"blocks.{i}.{n}.bias"])

        act, Ract, slope, curv = _gelu(f, Rf, slopes=True)
        gact, Rgact = lin("out", gh, Rgh, act, Ract)
        del act, Ract, f
        Rgf = (gact * curv).mul_(Rf).addcmul_(Rgact, slope)
        del curv, Rf, Rgact
        ga2, Rga2 = lin("fc", gact.mul_(slope), Rgf, a2, Ra2)
        gx, Rgx = norm("ln2", ga2, Rga2, ln2)
        gh1, Rgh1 = gx.add_(gh), Rgx.add_(Rgh)

        go, Rgo = lin("proj", gh1, Rgh1, o, Ro)
        gO = go.view(B, T, nh, d).transpose(1, 2).reshape(B * nh, T, d)
        RgO = Rgo.view(B, T, nh, d).transpose(1, 2).reshape(B * nh, T, d)
        g3, Rg3 = torch.empty(3, B * nh, T, d, dtype=h.dtype, device=h.device), torch.empty(
            3, B * nh, T, d, dtype=h.dtype, device=h.device)
        Pt, RPt = Pm.transpose(1, 2), RP.transpose(1, 2)
        torch.bmm(Pt, gO, out=g3[2])
        torch.bmm(RPt, gO, out=Rg3[2]).baddbmm_(Pt, RgO)
        gP = torch.bmm(gO, vv.transpose(1, 2))
        RgP = torch.bmm(RgO, vv.transpose(1, 2)).baddbmm_(gO, Rv.transpose(1, 2))
        gPc = gP.sub_((Pm * gP).sum(-1, keepdim=True))  # gP − ⟨P, gP⟩; ⟨RP, gP⟩ = ⟨RP, gPc⟩ (RP's rows sum to 0)
        inner = (RP * gPc).sum(-1, keepdim=True).add_((Pm * RgP).sum(-1, keepdim=True))
        RgS = RgP.sub_(inner).mul_(Pm).addcmul_(RP, gPc)
        gS = gPc.mul_(Pm)
        torch.bmm(gS, k, out=g3[0]).mul_(s)
        torch.bmm(RgS, k, out=Rg3[0]).baddbmm_(gS, Rk).mul_(s)
        gSt, RgSt = gS.transpose(1, 2), RgS.transpose(1, 2)
        torch.bmm(gSt, q, out=g3[1]).mul_(s)
        torch.bmm(RgSt, q, out=Rg3[1]).baddbmm_(gSt, Rq).mul_(s)
        ga1, Rga1 = lin("qkv", rows(g3), rows(Rg3), a1, Ra1)
        gx, Rgx = norm("ln1", ga1, Rga1, ln1)
        gh, Rgh = gx.add_(gh1), Rgx.add_(Rgh1)

    H["tok.weight"].index_add_(0, x.reshape(-1), Rgh)
    H["pos.weight"][:T] += Rgh.view(B, T, W).sum(0)


def _gelu(f, Rf, slopes: bool):
    """GELU(f) and its R, GELU'(f)∘Rf; with ``slopes`` also GELU'(f) = Φ + fφ and GELU''(f) = φ(2 − f²)."""
    f2 = f.square()
    phi = (f2 * -0.5).add_(_LOG_PHI0).exp_()
    curv = f2.neg_().add_(2).mul_(phi) if slopes else None
    cdf = (f * _INV_SQRT2).erf_().add_(1).mul_(0.5)
    slope = torch.addcmul(cdf, f, phi)
    Ract = slope * Rf
    return cdf.mul_(f), Ract, (slope if slopes else None), curv


def _linear(x, Rx, W, b, V, Vb):
    """The layer's output y = xWᵀ + b and its R, Ry = Rx Wᵀ + x Vᵀ + V_b."""
    y = torch.addmm(b, x, W.t()) if b is not None else x @ W.t()
    Ry = torch.addmm(Vb, Rx, W.t()) if Vb is not None else Rx @ W.t()
    return y, Ry.addmm_(x, V.t())


def _linear_back(gy, Rgy, x, Rx, W, V, HW, Hb):
    """Add the weight's and bias's product pieces into HW, Hb; return gx = gy W and Rgx = Rgy W + gy V."""
    HW.addmm_(Rgy.t(), x).addmm_(gy.t(), Rx)
    if Hb is not None:
        Hb += Rgy.sum(0)
    return gy @ W, (Rgy @ W).addmm_(gy, V)


def _layer_norm(x, Rx, w, b, Vw, Vb, eps):
    """The norm's output y = x̂∘w + b, its R (Rx̂∘w + x̂∘V_w + V_b) over the last dimension, and what the backward needs."""
    xh = x - x.mean(-1, keepdim=True)
    r = torch.rsqrt(xh.square().mean(-1, keepdim=True).add_(eps))
    xh.mul_(r)
    m = (xh * Rx).mean(-1, keepdim=True)
    Rxh = (Rx - Rx.mean(-1, keepdim=True)).sub_(xh * m).mul_(r)
    return torch.addcmul(b, xh, w), torch.addcmul(Vb, Rxh, w).addcmul_(xh, Vw), (xh, Rxh, r, m, w, Vw)


def _layer_norm_back(gy, Rgy, kept, Hw, Hb):
    """Add the weight's and bias's product pieces into Hw, Hb; return gx and Rgx (see the module docs)."""
    xh, Rxh, r, m, w, Vw = kept
    Hw += (Rgy * xh).sum(0).add_((gy * Rxh).sum(0))
    Hb += Rgy.sum(0)
    gw = gy * w
    Rgw = torch.addcmul(Rgy * w, gy, Vw)
    m2 = (gw * xh).mean(-1, keepdim=True)
    Rm2 = (Rgw * xh).mean(-1, keepdim=True).add_((gw * Rxh).mean(-1, keepdim=True))
    u = gw.sub_(gw.mean(-1, keepdim=True)).sub_(xh * m2)
    Ru = Rgw.sub_(Rgw.mean(-1, keepdim=True)).sub_(Rxh * m2).sub_(xh * Rm2)
    Ru.sub_(u * (r * m)).mul_(r)
    return u.mul_(r), Ru
