"""Global-norm gradient clipping that sees whole gradients when they are FSDP2 shards.

The global norm is computed over the full (unsharded) gradients with one all-reduce per shard
group (:func:`~elastrain_trainer.optim.norms.compute_norms`), then every local shard is scaled
by the same factor, so clipping equals clipping the unsharded model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from elastrain_trainer.optim.norms import compute_norms, local_tensor

#: Added to the norm before dividing, as torch's ``clip_grad_norm_`` does.
CLIP_EPS = 1e-6


def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm``; return the norm before clipping.

    ``max_norm`` 0 only measures (``trainer.maxGradNorm: 0`` disables clipping). A non-finite
    norm is returned unchanged and nothing is scaled (the fp16 scaler skips such steps).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.stack(compute_norms(grads)).square().sum().sqrt()
    if max_norm > 0 and torch.isfinite(total):
        coefficient = torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)
        locals_ = [local_tensor(g) for g in grads]
        torch._foreach_mul_(locals_, coefficient.to(locals_[0].dtype))
    return total
