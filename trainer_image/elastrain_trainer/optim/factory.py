"""Build the optimizer named by an :class:`OptimizerConfig`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from elastrain_trainer.config.optim import OptimizerConfig
from elastrain_trainer.optim.lamb import Lamb

#: RMSprop's smoothing constant for the squared-gradient average; OptimizerConfig has no field for it
#: (its betas are documented for adamw, adam and lamb only), so torch's default is used.
RMSPROP_ALPHA = 0.99

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def build_optimizer(params: Params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Return the optimizer ``cfg.name`` over ``params`` (tensors or param groups), at the peak lr.

    Weight decay is decoupled for adamw and lamb and an L2 penalty for the others. Works on plain
    and on FSDP2-sharded (DTensor) parameters; build it after ``fully_shard``.
    """
    beta1, beta2 = cfg.betas
    match cfg.name:
        case "adamw":
            return torch.optim.AdamW(
                params, lr=cfg.lr, betas=(beta1, beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
            )
        case "adam":
            return torch.optim.Adam(params, lr=cfg.lr, betas=(beta1, beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
        case "lamb":
            return Lamb(params, lr=cfg.lr, betas=(beta1, beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
        case "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
            )
        case "adagrad":
            return torch.optim.Adagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
        case "rmsprop":
            return torch.optim.RMSprop(
                params,
                lr=cfg.lr,
                alpha=RMSPROP_ALPHA,
                eps=cfg.eps,
                weight_decay=cfg.weight_decay,
                momentum=cfg.momentum,
            )
