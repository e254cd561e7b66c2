"""A user's own model for the ``python`` source (the test copies this file onto the Ray workers' path).

Written as a user would: a plain decoder built on the meta device, its blocks, and a loss; the
``scale`` kwarg comes from ``spec.trainer.model.python.kwargs``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 2 * dim)
        self.down = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.down(F.gelu(self.up(self.norm(x))))
        return out


class TinyDecoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int, layers: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        self.layers = nn.ModuleList(Block(dim) for _ in range(layers))
        self.head = nn.Linear(dim, vocab_size, bias=False)

    def reset_parameters(self) -> None:
        # Called last (after every submodule's own reset): small weights, so the first loss is near ln(vocab).
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        logits: torch.Tensor = self.head(x)
        return logits


def build(cfg: Any, *, dim: int = 32, layers: int = 2, scale: float = 1.0) -> tuple[nn.Module, list[nn.Module], Any]:
    with torch.device("meta"):
        model = TinyDecoder(cfg.vocab_size, dim, layers)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return scale * F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")

    return model, list(model.layers), loss
