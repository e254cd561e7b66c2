"""Learning-rate schedule curves: warmup, end values, decay shapes, restarts, checkpointed state."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from elastrain_trainer.config.schedule import LrScheduleConfig, ScheduleName
from elastrain_trainer.optim import build_lr_scheduler, compute_lr_factor

SHAPES: tuple[ScheduleName, ...] = ("warmup_cosine", "polynomial", "exponential", "constant", "cosine_restarts")


def _lrs(cfg: LrScheduleConfig, total: int, peak: float = 2.0) -> list[float]:
    """Drive a real scheduler and record the lr each optimizer step uses."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = build_lr_scheduler(optimizer, cfg, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("name", SHAPES)
def test_warmup_rises_linearly_to_peak(name: ScheduleName) -> None:
    cfg = LrScheduleConfig(name=name, warmup_steps=4, min_lr_ratio=0.0, gamma=0.5, restart_period_steps=5)
    lrs = _lrs(cfg, total=20)
    assert lrs[:5] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])


@pytest.mark.parametrize("name", ["warmup_cosine", "polynomial"])
def test_decay_ends_at_min_ratio_on_last_step(name: ScheduleName) -> None:
    cfg = LrScheduleConfig(name=name, warmup_steps=3, min_lr_ratio=0.1, power=2.0)
    lrs = _lrs(cfg, total=13, peak=1.0)
    assert lrs[3] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(lrs[3:])), lrs


def test_cosine_midpoint_is_halfway() -> None:
    cfg = LrScheduleConfig(name="warmup_cosine", warmup_steps=0, min_lr_ratio=0.2)
    assert compute_lr_factor(cfg, 5, total_steps=11) == pytest.approx(0.6)


def test_polynomial_power_one_is_linear() -> None:
    cfg = LrScheduleConfig(name="polynomial", warmup_steps=0, min_lr_ratio=0.0, power=1.0)
    assert [compute_lr_factor(cfg, s, total_steps=5) for s in range(5)] == pytest.approx([1, 0.75, 0.5, 0.25, 0])


def test_exponential_multiplies_by_gamma_until_floor() -> None:
    cfg = LrScheduleConfig(name="exponential", warmup_steps=1, gamma=0.5, min_lr_ratio=0.2)
    factors = [compute_lr_factor(cfg, s, total_steps=10) for s in range(6)]
    assert factors == pytest.approx([0.5, 1.0, 0.5, 0.25, 0.2, 0.2])


def test_constant_stays_at_peak() -> None:
    cfg = LrScheduleConfig(name="constant", warmup_steps=0)
    assert set(_lrs(cfg, total=7, peak=3.0)) == {3.0}


@pytest.mark.parametrize(("multiplier", "restarts"), [(1, list(range(0, 30, 4))), (2, [0, 4, 12, 28]), (3, [0, 4, 16])])
def test_cosine_restarts_restart_at_cycle_starts(multiplier: int, restarts: list[int]) -> None:
    cfg = LrScheduleConfig(
        name="cosine_restarts", warmup_steps=2, min_lr_ratio=0.0, restart_period_steps=4, restart_multiplier=multiplier
    )
    factors = [compute_lr_factor(cfg, 2 + s, total_steps=100) for s in range(30)]
    # A restart is where the factor jumps back to 1 after decaying.
    starts = [s for s, f in enumerate(factors) if f == pytest.approx(1.0)]
    assert starts == restarts
    # Inside the first cycle: cosine from 1 towards 0, halfway at mid-cycle.
    assert factors[2] == pytest.approx(0.5)


def test_cosine_restarts_position_is_exact_for_far_steps() -> None:
    cfg = LrScheduleConfig(
        name="cosine_restarts", warmup_steps=0, min_lr_ratio=0.0, restart_period_steps=7, restart_multiplier=10
    )
    # Cycles start at 0, 7, 77, 777, 7777, ...: the closed form must not be off by one cycle.
    for start, length in [(7777, 70000), (777, 7000), (77, 700)]:
        assert compute_lr_factor(cfg, start, total_steps=10**9) == pytest.approx(1.0)
        before = compute_lr_factor(cfg, start - 1, total_steps=10**9)
        assert before == pytest.approx(0.5 * (1 + math.cos(math.pi * (length / 10 - 1) / (length / 10))))


@pytest.mark.parametrize("name", SHAPES)
def test_state_dict_resumes_on_the_same_curve(name: ScheduleName) -> None:
    cfg = LrScheduleConfig(name=name, warmup_steps=3, gamma=0.9, restart_period_steps=4)
    reference = _lrs(cfg, total=12)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = build_lr_scheduler(optimizer, cfg, total_steps=12)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    saved_scheduler, saved_optimizer = scheduler.state_dict(), optimizer.state_dict()

    resumed_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    resumed = build_lr_scheduler(resumed_optimizer, cfg, total_steps=12)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    tail = []
    for _ in range(7):
        tail.append(float(resumed_optimizer.param_groups[0]["lr"]))
        resumed_optimizer.step()
        resumed.step()
    assert tail == pytest.approx(reference[5:])


def test_warmup_longer_than_run_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"warmupSteps \(20\) exceeds the run's 10 steps"):
        _lrs(LrScheduleConfig(warmup_steps=20), total=10)


def test_zero_total_steps_is_rejected() -> None:
    with pytest.raises(ValueError, match="total_steps must be at least 1, got 0"):
        _lrs(LrScheduleConfig(warmup_steps=0), total=0)


def test_resume_follows_a_longer_run_from_the_new_spec() -> None:
    cfg = LrScheduleConfig(name="polynomial", warmup_steps=0, min_lr_ratio=0.0, power=1.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_lr_scheduler(optimizer, cfg, total_steps=5)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    saved = scheduler.state_dict()
    assert "cfg" not in saved
    assert "total_steps" not in saved
    # trainer.steps raised from 5 to 9 before resuming: the decay stretches to the new end.
    resumed = build_lr_scheduler(optimizer, cfg, total_steps=9)
    resumed.load_state_dict(saved)
    optimizer.step()
    resumed.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 - 3 / 8)
