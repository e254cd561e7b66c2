"""The step watchdog's decisions: the bound from the other groups' step times, and who is hung."""

from __future__ import annotations

import pytest

from elastrain_trainer.driver.watchdog import (
    HangPolicy,
    Hung,
    StepTimes,
    compute_collective_timeout,
    compute_hang_bound,
    compute_hang_bounds,
    decide_hung,
    decide_stalled,
)

POLICY = HangPolicy(factor=10.0, floor_seconds=10.0, startup_seconds=60.0, warmup_steps=20)


@pytest.mark.parametrize(
    ("others", "committed_steps", "bound"),
    [
        pytest.param([0.5, 0.6, 0.7], 0, 60.0, id="before-any-step-the-startup-bound"),
        pytest.param([0.5, 0.6, 0.7], 19, 60.0, id="warm-up-not-over-the-startup-bound"),
        pytest.param([0.5, 0.6, 0.7], 20, 10.0, id="fast-steps-the-floor"),
        pytest.param([2.0, 3.0, 100.0], 20, 30.0, id="slow-steps-factor-times-median-not-mean"),
        pytest.param([], 50, 60.0, id="no-times-the-startup-bound"),
    ],
)
def test_compute_hang_bound(others: list[float], committed_steps: int, bound: float) -> None:
    assert compute_hang_bound(others, committed_steps=committed_steps, policy=POLICY) == pytest.approx(bound)


def test_startup_bound_never_below_the_floor() -> None:
    policy = HangPolicy(floor_seconds=90.0, startup_seconds=60.0)
    assert compute_hang_bound([], committed_steps=0, policy=policy) == 90.0


def test_bounds_come_from_the_other_groups_and_a_lone_group_from_its_own() -> None:
    times = {"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0]}
    bounds = compute_hang_bounds(["a", "b", "c"], times, committed_steps=20, policy=POLICY)
    # a: median of b and c (2, 2, 3) = 2; b: median of a and c = 1; c: median of a and b = 1.5.
    assert bounds == {"a": 20.0, "b": 10.0, "c": 15.0}
    alone = compute_hang_bounds(["a"], {"a": [3.0]}, committed_steps=20, policy=POLICY)
    assert alone == {"a": 30.0}
    joined = compute_hang_bounds(["a", "d"], times, committed_steps=20, policy=POLICY)
    assert joined == {"a": 20.0, "d": 60.0}  # a group without a committed step yet may warm up
    saving = compute_hang_bounds(["a", "b"], times, committed_steps=20, policy=POLICY, slow=["b"])
    assert saving == {"a": 20.0, "b": 60.0}  # a group saving a checkpoint in this step may take longer


def test_step_times_keep_a_window_per_group_and_forget_lost_groups() -> None:
    times = StepTimes(window=2)
    for value in (1.0, 2.0, 3.0):
        times.record({"a": value, "b": value * 10})
    assert times.committed_steps == 3
    assert times.by_group() == {"a": [2.0, 3.0], "b": [20.0, 30.0]}
    times.forget("b")
    times.forget("never-there")
    assert times.by_group() == {"a": [2.0, 3.0]}


def test_collective_timeout_is_the_loosest_bound_never_past_the_configured_one() -> None:
    assert compute_collective_timeout({"a": 12.0, "b": 10.0}, configured_seconds=30.0) == 12.0
    assert compute_collective_timeout({"a": 10.0, "b": 60.0}, configured_seconds=30.0) == 30.0
    assert compute_collective_timeout({}, configured_seconds=30.0) == 30.0


BOUNDS = {"a": 10.0, "b": 10.0, "c": 20.0}


@pytest.mark.parametrize(
    ("waited", "pending", "members", "hung"),
    [
        pytest.param(11.0, {"a", "b", "c"}, {"a", "b", "c"}, [], id="everyone-waiting-nobody-hung-yet"),
        pytest.param(9.0, {"a"}, {"a", "b", "c"}, [], id="others-answered-but-within-bound"),
        pytest.param(11.0, {"a"}, {"a", "b", "c"}, ["a"], id="others-answered-past-bound-hung"),
        pytest.param(11.0, {"a", "c"}, {"a", "b", "c"}, ["a"], id="each-member-its-own-bound"),
        pytest.param(21.0, {"a", "c"}, {"a", "b", "c"}, ["a", "c"], id="two-hung-at-once"),
        pytest.param(11.0, {"a"}, {"a"}, ["a"], id="alone-past-bound-hung"),
        pytest.param(11.0, {"a", "b"}, {"a", "b"}, [], id="both-members-waiting"),
        pytest.param(11.0, {"x"}, {"x", "a"}, [], id="no-bound-never-hung"),
    ],
)
def test_decide_hung(waited: float, pending: set[str], members: set[str], hung: list[str]) -> None:
    verdicts = decide_hung(waited, pending=pending, members=members, bounds=BOUNDS)
    assert [v.group_id for v in verdicts] == hung
    assert all(v.waited_seconds == waited and v.bound_seconds == BOUNDS[v.group_id] for v in verdicts)


def test_hung_reason_names_the_wait_and_the_bound() -> None:
    reason = Hung("group1", 12.34, 10.0).describe()
    assert reason.startswith("hung: no step result after 12.3 s") and "bound 10.0 s" in reason


@pytest.mark.parametrize(
    ("called_at", "last_commit_at", "now", "hung"),
    [
        pytest.param({"a": 100.0}, None, 200.0, [], id="nothing-committed-yet-nobody-hung"),
        pytest.param({"a": 100.0}, 99.0, 200.0, [], id="no-step-committed-since-it-asked-it-holds-the-step"),
        pytest.param({"a": 100.0}, 101.0, 105.0, [], id="committed-without-it-but-within-bound"),
        pytest.param({"a": 100.0}, 101.0, 111.0, ["a"], id="committed-without-it-past-bound-hung"),
        pytest.param({"a": 100.0, "c": 100.0}, 101.0, 111.0, ["a"], id="each-its-own-bound"),
        pytest.param({"x": 100.0}, 101.0, 200.0, [], id="no-bound-never-hung"),
    ],
)
def test_decide_stalled_quorum_calls(
    called_at: dict[str, float], last_commit_at: float | None, now: float, hung: list[str]
) -> None:
    verdicts = decide_stalled(called_at, now=now, last_commit_at=last_commit_at, bounds=BOUNDS)
    assert [v.group_id for v in verdicts] == hung
    assert all(v.phase == "quorum" and v.waited_seconds == now - called_at[v.group_id] for v in verdicts)
    assert all(v.describe().startswith("hung: no quorum answer after ") for v in verdicts)
