"""Optimizers and learning-rate schedules built from the trainer config.

``build_optimizer(params, cfg)`` and ``build_lr_scheduler(optimizer, cfg, total_steps=...)`` are
the two entry points; both work on FSDP2-sharded (DTensor) parameters.
"""

from elastrain_trainer.optim.factory import RMSPROP_ALPHA, build_optimizer
from elastrain_trainer.optim.lamb import Lamb
from elastrain_trainer.optim.norms import compute_norms, local_tensor
from elastrain_trainer.optim.schedule import ScheduledLR, build_lr_scheduler, check_schedule, compute_lr_factor

__all__ = [
    "RMSPROP_ALPHA",
    "Lamb",
    "ScheduledLR",
    "build_lr_scheduler",
    "build_optimizer",
    "check_schedule",
    "compute_lr_factor",
    "compute_norms",
    "local_tensor",
]
