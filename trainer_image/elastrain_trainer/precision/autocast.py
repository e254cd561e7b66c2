"""Mixed precision for whole-model replicas (strategy ddp), where there is no FSDP2 to cast parameters.

The parameters stay fp32 (the master weights) and forward runs under ``torch.autocast`` in the
compute dtype, so matmuls run in it while reductions such as layer norms stay fp32; gradients
land in fp32 on the parameters. Without master weights the model is simply cast to the dtype
(:func:`~elastrain_trainer.precision.policy.sharded_param_dtype`) and needs no autocast.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from elastrain_trainer.config.precision import PrecisionConfig
from elastrain_trainer.precision.policy import TORCH_DTYPES


def autocast_dtype(cfg: PrecisionConfig) -> torch.dtype | None:
    """The dtype forward must autocast to for whole-model replicas, or None when nothing is to cast."""
    if cfg.dtype == "fp32" or not cfg.master_weights:
        return None
    return TORCH_DTYPES[cfg.dtype]


def apply_autocast(model: nn.Module, cfg: PrecisionConfig, *, device_type: str) -> None:
    """Run ``model``'s forward under ``torch.autocast(device_type, dtype)`` when ``cfg`` asks for it.

    The instance's ``forward`` is wrapped, so the module and its state-dict keys stay as they are.
    """
    dtype = autocast_dtype(cfg)
    if dtype is None:
        return
    forward = model.forward

    def autocast_forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=device_type, dtype=dtype):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
