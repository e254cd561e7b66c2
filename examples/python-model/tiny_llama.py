"""A user's own model for elastrain's ``python`` source: a small Llama-style decoder in plain PyTorch.

elastrain calls ``build(model_cfg, **kwargs)`` (``spec.trainer.model.python``) in every trainer
process. The function returns the module built on the meta device (no memory yet), the list of its
repeated blocks (each becomes one FSDP unit and one activation-checkpointing unit) and, optionally,
a loss. elastrain shards the module, allocates each rank's shards and initialises them by calling
every submodule's ``reset_parameters()``, innermost first, block by block and then outside the
blocks: a block's ``reset_parameters`` has the last word on the block's parameters, the root's on
everything outside the blocks (and recomputes buffers such as the rotary tables here).

Nothing in this file knows about distribution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, cos[:s], sin[:s]), rotate(k, cos[:s], sin[:s])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out: torch.Tensor = self.out(y.transpose(1, 2).reshape(b, s, d))
        return out


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp_norm = RMSNorm(dim)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        h = self.mlp_norm(x)
        out: torch.Tensor = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return out

    def reset_parameters(self) -> None:
        """Runs after the layer's submodules: small normal weights for every matrix of the layer."""
        for param in self.parameters():
            if param.dim() == 2:
                nn.init.normal_(param, std=0.02)


class TinyLlama(nn.Module):
    """``forward(tokens)`` returns logits (batch, seq, vocab), as the python source requires."""

    def __init__(self, *, vocab_size: int, dim: int, layers: int, heads: int, seq_len: int) -> None:
        super().__init__()
        self.vocab_size, self.head_dim, self.seq_len = vocab_size, dim // heads, seq_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, 4 * dim) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        self.register_buffer("cos", torch.empty(seq_len, self.head_dim // 2), persistent=False)
        self.register_buffer("sin", torch.empty(seq_len, self.head_dim // 2), persistent=False)

    def reset_parameters(self) -> None:
        """Runs last: the weights outside the layers, and the rotary tables (non-persistent buffers start empty)."""
        for param in (self.embed.weight, self.lm_head.weight):
            nn.init.normal_(param, std=0.02)
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        angles = torch.outer(torch.arange(self.seq_len, dtype=torch.float32), inv)
        self.cos.copy_(angles.cos())
        self.sin.copy_(angles.sin())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        logits: torch.Tensor = self.lm_head(self.norm(x))
        return logits


def build(cfg: Any, *, dim: int = 64, layers: int = 2, heads: int = 4, z_loss: float = 0.0) -> tuple[Any, ...]:
    """The python-source entrypoint: ``(module on meta, its blocks, loss)``.

    ``cfg`` is the job's ``spec.trainer.model`` (vocabSize and seqLen are read from it); the
    keyword arguments come from ``spec.trainer.model.python.kwargs``.
    """
    with torch.device("meta"):
        model = TinyLlama(vocab_size=cfg.vocab_size, dim=dim, layers=layers, heads=heads, seq_len=cfg.seq_len)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy summed over tokens, plus an optional z-loss (PaLM) on the log-normaliser."""
        flat = logits.flatten(0, 1).float()
        total = F.cross_entropy(flat, targets.flatten(), reduction="sum")
        if z_loss:
            total = total + z_loss * torch.logsumexp(flat, dim=-1).pow(2).sum()
        return total

    return model, list(model.layers), loss
