"""A small byte-level causal transformer: pure torch, no tokenizer, no dropout.

Pre-norm blocks (LayerNorm → causal self-attention → residual, LayerNorm → MLP(4×, GELU) →
residual), learned position embeddings, an untied output head over the 256 byte values.
Attention goes through ``scaled_dot_product_attention``; ridgelens' products route it to the
math kernel, which has second derivatives. There is no dropout at all, so the loss is a
deterministic function of θ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ridgelens.errors import RidgelensError


@dataclass(frozen=True)
class LMConfig:
    """Shape of a :class:`ByteTransformer`.

    Attributes
    ----------
    layers, width, heads, context : int
        Blocks, model width, attention heads (dividing ``width``), longest input in tokens.
    vocab : int
        Token values (256 for bytes).
    """

    layers: int = 2
    width: int = 32
    heads: int = 2
    context: int = 32
    vocab: int = 256

    def __post_init__(self):
        for name in ("layers", "width", "heads", "context", "vocab"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise RidgelensError(f"--{name} must be a positive integer, got {v!r}")
        if self.width % self.heads:
            raise RidgelensError(f"--width ({self.width}) must be a multiple of --heads ({self.heads})")

    def to_dict(self) -> dict:
        """The configuration as a JSON-ready dict."""
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(cfg.width)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.fc = nn.Linear(cfg.width, 4 * cfg.width)
        self.out = nn.Linear(4 * cfg.width, cfg.width)

    def forward(self, h):
        b, t, w = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(w, dim=-1)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(a.transpose(1, 2).reshape(b, t, w))
        return h + self.out(F.gelu(self.fc(self.ln2(h))))


class ByteTransformer(nn.Module):
    """A causal transformer over token ids: ``(batch, T) → logits (batch, T, vocab)``, T ≤ context.

    Examples
    --------
    >>> import torch
    >>> net = ByteTransformer(LMConfig(layers=1, width=16, heads=2, context=8))
    >>> net(torch.zeros(3, 8, dtype=torch.long)).shape
    torch.Size([3, 8, 256])
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab, config.width)
        self.pos = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.ln = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx):
        t = idx.shape[-1]
        if t > self.config.context:
            raise RidgelensError(f"input of {t} tokens is longer than the model's context ({self.config.context})")
        h = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))
