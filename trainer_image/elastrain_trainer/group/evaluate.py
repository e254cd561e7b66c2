"""Held-out loss of one rank's part of a sample range (the driver sums the ranks' parts)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.data import TokenSamples


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, samples: TokenSamples, start: int, stop: int, *, rank: int, world: int
) -> tuple[float, int]:
    """Loss sum and token count of rank ``rank``'s part of held-out samples ``[start, stop)``."""
    mine = np.array_split(np.arange(start, stop), world)[rank]
    model.eval()
    inputs, targets = samples.batch(mine.tolist() if len(mine) else [start])
    logits = model(inputs)  # every rank runs the same FSDP collectives, even with nothing to score
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
    model.train()
    return (float(loss), len(mine) * samples.seq_len) if len(mine) else (0.0, 0)
