"""Held-out loss of one rank's part of a sample range (the driver sums the ranks' parts)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from elastrain_trainer.data import TokenSamples
from elastrain_trainer.models import ForwardFn, LossFn, call_module, next_token_loss


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    samples: TokenSamples,
    start: int,
    stop: int,
    *,
    rank: int,
    world: int,
    forward: ForwardFn = call_module,
    loss: LossFn = next_token_loss,
) -> tuple[float, int]:
    """Loss sum and token count of rank ``rank``'s part of held-out samples ``[start, stop)``."""
    mine = np.array_split(np.arange(start, stop), world)[rank]
    model.eval()
    inputs, targets = samples.batch(mine.tolist() if len(mine) else [start])
    # every rank runs the same FSDP collectives, even with nothing to score
    total = loss(forward(model, inputs), targets)
    model.train()
    return (float(total), len(mine) * samples.seq_len) if len(mine) else (0.0, 0)
