"""Why curvlinops' Hessian product disagrees with every other one on a transformer's layer-norm weights.

``bench_lm.py`` finds curvlinops' ``HessianLinearOperator`` about 1e-3 of the largest entry away
from central differences of gradients, while ridgelens' products, PyTorch's own double backward
and ``torch.func.jvp(grad(f))`` agree with them to rounding. The whole gap is in the layer-norm
weights. curvlinops computes ``torch.func.jvp(jacrev(f))``, and in this torch that composition
is wrong for a layer norm's weight; ``jvp(grad(f))`` is right. This script shows it on a
three-parameter model (linear, layer norm, linear, cross-entropy), each block of the product
against central differences of exact gradients, in float64:

    .venv/bin/python benchmarks/check_jacrev_layernorm.py
"""

import torch
import torch.nn.functional as F
from torch.func import grad, jacrev, jvp


def main():
    torch.manual_seed(0)
    dt = torch.float64
    x, y = torch.randn(6, 5, dtype=dt), torch.randint(0, 3, (6,))
    params = (torch.randn(5, 4, dtype=dt), torch.rand(4, dtype=dt) + 0.5, torch.randn(4, 3, dtype=dt))
    vec = tuple(torch.randn_like(p) for p in params)

    def loss(w1, gamma, w2):
        return F.cross_entropy(F.layer_norm(x @ w1, (4,), gamma) @ w2, y)

    argnums = (0, 1, 2)
    eps = 1e-6

    def gradient_at(s):
        return grad(loss, argnums=argnums)(*(p + s * v for p, v in zip(params, vec, strict=True)))

    fd = tuple((a - b) / (2 * eps) for a, b in zip(gradient_at(eps), gradient_at(-eps), strict=True))
    forms = {"jvp(jacrev(f)) (curvlinops)": jvp(jacrev(loss, argnums=argnums), params, vec)[1],
             "jvp(grad(f))": jvp(grad(loss, argnums=argnums), params, vec)[1]}
    print(f"torch {torch.__version__}: max |product − central differences| per parameter block (ε = {eps:g})")
    print(f"  {'form':30s} {'linear W1':>11s} {'LN weight':>11s} {'linear W2':>11s}")
    print(f"  {'(largest |entry| of the block)':30s} " + " ".join(f"{float(f.abs().max()):11.2e}" for f in fd))
    for name, out in forms.items():
        gaps = [float((o - f).abs().max()) for o, f in zip(out, fd, strict=True)]
        print(f"  {name:30s} " + " ".join(f"{g:11.2e}" for g in gaps))


if __name__ == "__main__":
    main()
