"""FSDP2 mixed precision from a :class:`PrecisionConfig`.

With master weights (the default) the sharded parameters and the optimizer state stay fp32 and
FSDP2 casts to ``dtype`` when it all-gathers for forward and backward; gradients are reduced in
``reduce_dtype`` and land on the fp32 shards. Without master weights the model itself is cast to
``dtype`` before sharding (:func:`sharded_param_dtype`), so parameters and state are low precision.
"""

from __future__ import annotations

import torch
from torch.distributed.fsdp import MixedPrecisionPolicy

from elastrain_trainer.config.precision import Dtype, PrecisionConfig, ReduceDtype

TORCH_DTYPES: dict[Dtype | ReduceDtype, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def sharded_param_dtype(cfg: PrecisionConfig) -> torch.dtype:
    """Dtype the sharded parameters (and so the optimizer state) are kept in: cast the model to it before sharding."""
    if cfg.dtype == "fp32" or cfg.master_weights:
        return torch.float32
    return TORCH_DTYPES[cfg.dtype]


def build_mixed_precision_policy(cfg: PrecisionConfig) -> MixedPrecisionPolicy:
    """Return the ``mp_policy`` to pass to every ``fully_shard`` call of the model.

    ``param_dtype`` is the compute dtype (None for fp32: nothing to cast), and inputs of each
    sharded module are cast to it so activations flow in ``dtype`` even where the stored
    parameters already have it (no master weights).
    """
    return MixedPrecisionPolicy(
        param_dtype=None if cfg.dtype == "fp32" else TORCH_DTYPES[cfg.dtype],
        reduce_dtype=TORCH_DTYPES[cfg.reduce_dtype],
        output_dtype=None,
        cast_forward_inputs=True,
    )
