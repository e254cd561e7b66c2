"""Learning-rate schedules: linear warmup, then the shape an :class:`LrScheduleConfig` names.

The lr factor is a closed-form function of the step (:func:`compute_lr_factor`), so the
scheduler's checkpointed state is just its step counter and base lrs (``state_dict``), and a
resumed run continues on exactly the same curve.

Step ``s`` (0-based, the step the optimizer is about to take) of a warmup of ``W`` steps uses
factor ``(s + 1) / (W + 1)``: it never trains at lr 0 and reaches the peak at step ``W``. After
warmup, ``progress`` runs from 0 at step ``W`` to 1 at the last step ``total_steps - 1``.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from elastrain_trainer.config.schedule import LrScheduleConfig


def check_schedule(cfg: LrScheduleConfig, total_steps: int) -> None:
    """Raise ValueError if the schedule does not fit a run of ``total_steps`` steps."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}; set trainer.steps to a positive number")
    if cfg.warmup_steps > total_steps:
        raise ValueError(
            f"lrSchedule.warmupSteps ({cfg.warmup_steps}) exceeds the run's {total_steps} steps; "
            "lower warmupSteps or raise trainer.steps"
        )


def _cosine(min_ratio: float, fraction: float) -> float:
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def _restart_position(step: int, period: int, multiplier: int) -> tuple[int, int]:
    """Return (position within the current cycle, cycle length) for cycles period, period*m, period*m^2..."""
    if multiplier == 1:
        return step % period, period
    # Cycle c starts at period * (m^c - 1) / (m - 1); find it without a loop over cycles.
    cycle = int(math.log(step * (multiplier - 1) / period + 1, multiplier))
    start = period * (multiplier**cycle - 1) // (multiplier - 1)
    if start > step:  # floating-point log rounded up
        cycle -= 1
    elif step >= start + period * multiplier**cycle:  # rounded down
        cycle += 1
    start = period * (multiplier**cycle - 1) // (multiplier - 1)
    return step - start, period * multiplier**cycle


def compute_lr_factor(cfg: LrScheduleConfig, step: int, *, total_steps: int) -> float:
    """Return the multiplier of the peak lr at 0-based ``step`` of a run of ``total_steps`` steps."""
    warmup = cfg.warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    after = step - warmup
    progress = min(1.0, after / max(1, total_steps - 1 - warmup))
    floor = cfg.min_lr_ratio
    match cfg.name:
        case "constant":
            return 1.0
        case "warmup_cosine":
            return _cosine(floor, progress)
        case "polynomial":
            return floor + (1.0 - floor) * math.pow(1.0 - progress, cfg.power)
        case "exponential":
            return max(floor, math.pow(cfg.gamma, after))
        case "cosine_restarts":
            position, length = _restart_position(after, cfg.restart_period_steps, cfg.restart_multiplier)
            return _cosine(floor, position / length)


class ScheduledLR(LRScheduler):
    """Sets every param group's lr to its initial lr times :func:`compute_lr_factor` of the step."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: LrScheduleConfig, *, total_steps: int) -> None:
        check_schedule(cfg, total_steps)
        self.cfg = cfg
        self.total_steps = total_steps
        super().__init__(optimizer)

    def get_lr(self) -> list[float | torch.Tensor]:
        factor = compute_lr_factor(self.cfg, self.last_epoch, total_steps=self.total_steps)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict[str, object]:
        # The config and the run length come from the job spec on resume (trainer.steps may have
        # been raised); only the counters and base lrs are state.
        state = super().state_dict()
        state.pop("cfg", None)
        state.pop("total_steps", None)
        return state


def build_lr_scheduler(optimizer: torch.optim.Optimizer, cfg: LrScheduleConfig, *, total_steps: int) -> LRScheduler:
    """Return the scheduler for ``cfg``; call its ``step()`` after every optimizer step.

    Right after construction the optimizer's lr is the factor of step 0.
    """
    return ScheduledLR(optimizer, cfg, total_steps=total_steps)
